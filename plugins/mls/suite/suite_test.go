package suite

import (
	"bytes"
	"errors"
	"testing"
)

func allSuites(t *testing.T) []*Suite {
	t.Helper()
	var out []*Suite
	for _, id := range Supported() {
		s, err := New(id)
		if err != nil {
			t.Fatalf("New(%v): %v", id, err)
		}
		out = append(out, s)
	}
	return out
}

func TestNewUnsupported(t *testing.T) {
	for _, id := range []ID{0, 0x0a0a, 0x1a1a, 0x0008, 0xf000} {
		if _, err := New(id); !errors.Is(err, ErrUnsupported) {
			t.Errorf("New(0x%04x) = %v, want ErrUnsupported", uint16(id), err)
		}
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		id         ID
		nh, nk, nn int
	}{
		{MLS128DHKEMX25519AES128GCMSHA256Ed25519, 32, 16, 12},
		{MLS128DHKEMP256AES128GCMSHA256P256, 32, 16, 12},
		{MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519, 32, 32, 12},
		{MLS256DHKEMX448AES256GCMSHA512Ed448, 64, 32, 12},
		{MLS256DHKEMP521AES256GCMSHA512P521, 64, 32, 12},
		{MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448, 64, 32, 12},
		{MLS256DHKEMP384AES256GCMSHA384P384, 48, 32, 12},
	}
	for _, tt := range tests {
		s, err := New(tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Nh() != tt.nh || s.Nk() != tt.nk || s.Nn() != tt.nn {
			t.Errorf("%v: Nh, Nk, Nn = %d, %d, %d; want %d, %d, %d", s, s.Nh(), s.Nk(), s.Nn(), tt.nh, tt.nk, tt.nn)
		}
		if len(s.Hash(nil)) != tt.nh {
			t.Errorf("%v: hash is %d bytes", s, len(s.Hash(nil)))
		}
	}
}

// TestDeriveKeyPairMatchesCircl checks the RFC 9180 derivation written here
// against circl's for seeds of the length circl accepts.
func TestDeriveKeyPairMatchesCircl(t *testing.T) {
	for _, s := range allSuites(t) {
		scheme := s.p.kem.Scheme()
		for i := range 8 {
			seed := bytes.Repeat([]byte{byte(i*37 + 1)}, scheme.SeedSize())
			wantPK, wantSK := scheme.DeriveKeyPair(seed)
			priv, pub, err := s.DeriveKeyPair(seed)
			if err != nil {
				t.Fatalf("%v: %v", s, err)
			}
			wantPriv, _ := wantSK.MarshalBinary()
			wantPub, _ := wantPK.MarshalBinary()
			if !bytes.Equal(priv, wantPriv) || !bytes.Equal(pub, wantPub) {
				t.Errorf("%v seed %d: DeriveKeyPair differs from circl", s, i)
			}
		}
	}
}

func TestDeriveKeyPairAnyLength(t *testing.T) {
	for _, s := range allSuites(t) {
		for _, n := range []int{0, 1, s.Nh(), 100} {
			priv, pub, err := s.DeriveKeyPair(make([]byte, n))
			if err != nil {
				t.Fatalf("%v ikm %d bytes: %v", s, n, err)
			}
			got, err := s.HPKEPublicKey(priv)
			if err != nil || !bytes.Equal(got, pub) {
				t.Errorf("%v ikm %d bytes: public key of derived private key differs (%v)", s, n, err)
			}
		}
	}
}

func TestEncryptWithLabel(t *testing.T) {
	for _, s := range allSuites(t) {
		priv, pub, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, pt := []byte("group context"), []byte("path secret")
		kemOut, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt, nil)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		got, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v: round trip: %v", s, err)
		}
		if _, err := s.DecryptWithLabel(priv, "Welcome", ctx, kemOut, ct); err == nil {
			t.Errorf("%v: opened under another label", s)
		}
		if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", []byte("other"), kemOut, ct); err == nil {
			t.Errorf("%v: opened under another context", s)
		}
		bad := bytes.Clone(ct)
		bad[0] ^= 1
		if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, bad); err == nil {
			t.Errorf("%v: opened a modified ciphertext", s)
		}
		if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut[1:], ct); err == nil {
			t.Errorf("%v: accepted a short kem_output", s)
		}
		if _, _, err := s.EncryptWithLabel(pub[1:], "UpdatePathNode", ctx, pt, nil); err == nil {
			t.Errorf("%v: sealed to a short public key", s)
		}
	}
}

func TestSignWithLabel(t *testing.T) {
	for _, s := range allSuites(t) {
		priv, pub, err := s.GenerateSignatureKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		content := []byte("FramedContentTBS bytes")
		sig, err := s.SignWithLabel(priv, "FramedContentTBS", content)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		if err := s.VerifyWithLabel(pub, "FramedContentTBS", content, sig); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v: other label: %v, want ErrBadSignature", s, err)
		}
		if err := s.VerifyWithLabel(pub, "FramedContentTBS", content[1:], sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v: other content: %v, want ErrBadSignature", s, err)
		}
		if err := s.VerifyWithLabel(pub[1:], "FramedContentTBS", content, sig); err == nil {
			t.Errorf("%v: verified with a short public key", s)
		}
		if _, err := s.SignWithLabel(nil, "FramedContentTBS", content); err == nil {
			t.Errorf("%v: signed with an empty private key", s)
		}
		if _, err := s.SignWithLabel(append(bytes.Clone(priv), 0), "FramedContentTBS", content); err == nil {
			t.Errorf("%v: signed with a long private key", s)
		}
	}
}

func TestAEAD(t *testing.T) {
	for _, s := range allSuites(t) {
		key := bytes.Repeat([]byte{7}, s.Nk())
		nonce := bytes.Repeat([]byte{9}, s.Nn())
		ct, err := s.Seal(key, nonce, []byte("aad"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.Open(key, nonce, []byte("aad"), ct); err != nil || string(pt) != "hello" {
			t.Fatalf("%v: open: %q, %v", s, pt, err)
		}
		if _, err := s.Open(key, nonce, []byte("aaD"), ct); !errors.Is(err, ErrOpen) {
			t.Errorf("%v: other aad: %v, want ErrOpen", s, err)
		}
		if _, err := s.Seal(key[1:], nonce, nil, nil); err == nil {
			t.Errorf("%v: sealed with a short key", s)
		}
		if _, err := s.Open(key, nonce[1:], nil, ct); err == nil {
			t.Errorf("%v: opened with a short nonce", s)
		}
	}
}

func TestExpandWithLabelLimits(t *testing.T) {
	s, _ := New(MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	secret := make([]byte, 32)
	if _, err := s.ExpandWithLabel(secret, "x", nil, 255*32+1); err == nil {
		t.Error("ExpandWithLabel beyond 255*Nh succeeded")
	}
	if _, err := s.ExpandWithLabel(secret, "x", nil, -1); err == nil {
		t.Error("ExpandWithLabel with a negative length succeeded")
	}
	a, _ := s.DeriveTreeSecret(secret, "key", 1, 16)
	b, _ := s.DeriveTreeSecret(secret, "key", 2, 16)
	if bytes.Equal(a, b) {
		t.Error("DeriveTreeSecret ignores the generation")
	}
}

func TestMAC(t *testing.T) {
	s, _ := New(MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	tag := s.MAC([]byte("k"), []byte("d"))
	if !s.VerifyMAC([]byte("k"), []byte("d"), tag) || s.VerifyMAC([]byte("k"), []byte("e"), tag) {
		t.Error("VerifyMAC")
	}
}

// TestShortNISTScalars checks that NIST-curve private keys serialized
// without their leading zero bytes, as some implementations write them, are
// accepted as the same key.
func TestShortNISTScalars(t *testing.T) {
	s, err := New(MLS256DHKEMP521AES256GCMSHA512P521)
	if err != nil {
		t.Fatal(err)
	}
	// About half of all P-521 scalars start with a zero byte.
	var sigPriv, sigPub []byte
	for sigPriv == nil || sigPriv[0] != 0 {
		if sigPriv, sigPub, err = s.GenerateSignatureKey(nil); err != nil {
			t.Fatal(err)
		}
	}
	sig, err := s.SignWithLabel(sigPriv[1:], "x", []byte("content"))
	if err != nil {
		t.Fatalf("sign with a 65-byte P-521 key: %v", err)
	}
	if err := s.VerifyWithLabel(sigPub, "x", []byte("content"), sig); err != nil {
		t.Fatal(err)
	}

	var hpkePriv, hpkePub []byte
	for i := byte(0); hpkePriv == nil || hpkePriv[0] != 0; i++ {
		if hpkePriv, hpkePub, err = s.DeriveKeyPair([]byte{i}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := s.HPKEPublicKey(hpkePriv[1:])
	if err != nil || !bytes.Equal(pub, hpkePub) {
		t.Fatalf("public key of a 65-byte P-521 HPKE key: %v", err)
	}
	kemOut, ct, err := s.EncryptWithLabel(hpkePub, "Welcome", nil, []byte("pt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.DecryptWithLabel(hpkePriv[1:], "Welcome", nil, kemOut, ct); err != nil || string(pt) != "pt" {
		t.Fatalf("decrypt with a 65-byte P-521 HPKE key: %q, %v", pt, err)
	}
}
