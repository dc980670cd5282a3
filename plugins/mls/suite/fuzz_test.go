package suite

import "testing"

// FuzzUntrustedInputs feeds attacker-chosen keys, signatures and ciphertexts
// to every operation that parses them; none may panic.
func FuzzUntrustedInputs(f *testing.F) {
	f.Add(uint8(1), []byte{1, 2, 3}, []byte{4, 5}, []byte{6})
	f.Add(uint8(5), make([]byte, 133), make([]byte, 137), make([]byte, 66))
	f.Add(uint8(4), make([]byte, 57), make([]byte, 114), make([]byte, 56))
	f.Fuzz(func(t *testing.T, which uint8, a, b, c []byte) {
		ids := Supported()
		s, err := New(ids[int(which)%len(ids)])
		if err != nil {
			t.Fatal(err)
		}
		_ = s.VerifyWithLabel(a, "FramedContentTBS", c, b)
		_, _ = s.DecryptWithLabel(a, "Welcome", nil, b, c)
		_, _ = s.DecryptWithLabel(c, "Welcome", a, b, a)
		_, _, _ = s.EncryptWithLabel(a, "Welcome", b, c, nil)
		_, _ = s.Open(a, b, nil, c)
		_, _ = s.HPKEPublicKey(a)
		_, _ = s.SignWithLabel(a, "x", b)
		_, _, _ = s.DeriveKeyPair(a)
	})
}
