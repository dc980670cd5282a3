package senderkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func newPair(t *testing.T, limits Limits) (*Sender, *Receiver) {
	t.Helper()
	s, err := NewSender(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(s.Distribution(), limits)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func seal(t *testing.T, s *Sender, conv, pt []byte) Message {
	t.Helper()
	m, err := s.Seal(conv, pt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSealOpenInOrderAndOutOfOrder(t *testing.T) {
	conv := []byte("group")
	s, r := newPair(t, DefaultLimits())
	var msgs []Message
	for i := range 6 {
		msgs = append(msgs, seal(t, s, conv, []byte{byte(i)}))
	}
	for _, i := range []int{0, 3, 1, 5, 2, 4} {
		pt, err := r.Open(conv, msgs[i])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(pt, []byte{byte(i)}) {
			t.Fatalf("message %d opened to %x", i, pt)
		}
	}
	if len(r.skipped) != 0 {
		t.Fatalf("%d skipped keys left after every message opened", len(r.skipped))
	}
	for i, m := range msgs {
		if _, err := r.Open(conv, m); !errors.Is(err, ErrReplay) {
			t.Fatalf("message %d opened twice: %v", i, err)
		}
	}
}

// TestProfile recomputes one message with direct standard-library calls,
// so that the profile in the package comment is what the code does.
func TestProfile(t *testing.T) {
	conv := []byte{1, 2, 3}
	s, _ := newPair(t, DefaultLimits())
	d := s.Distribution()
	seal(t, s, conv, []byte("skip me"))
	m := seal(t, s, conv, []byte("hello group"))

	mac := func(k []byte, b byte) []byte { h := hmac.New(sha256.New, k); h.Write([]byte{b}); return h.Sum(nil) }
	ck := d.ChainKey[:]
	ck = mac(ck, 0x02) // past iteration 0
	mk := mac(ck, 0x01)
	okm, err := hkdf.Key(sha256.New, mk, make([]byte, 32), "Strata_SenderKey_MessageKeys", 44)
	if err != nil {
		t.Fatal(err)
	}
	var h []byte
	h = append(h, "strata-dr-senderkey-v1\x00"...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(conv)))
	h = append(h, conv...)
	h = binary.BigEndian.AppendUint32(h, d.KeyID)
	h = binary.BigEndian.AppendUint32(h, 1)
	aead, _ := chacha20poly1305.New(okm[:32])
	want := aead.Seal(nil, okm[32:], []byte("hello group"), append(bytes.Clone(h), d.SigningKey...))
	if m.Iteration != 1 || !bytes.Equal(m.Ciphertext, want) {
		t.Fatalf("ciphertext %x, want %x", m.Ciphertext, want)
	}
	if !ed25519.Verify(d.SigningKey, append(h, m.Ciphertext...), m.Signature) {
		t.Fatal("signature is not over header ‖ ciphertext")
	}
}

func TestOpenRefuses(t *testing.T) {
	conv := []byte("group")
	limits := Limits{MaxSkip: 5, MaxSkippedKeys: 3}
	s, r := newPair(t, limits)
	other, _ := newPair(t, limits)
	good := seal(t, s, conv, []byte("x"))
	tests := []struct {
		name string
		conv []byte
		m    func() Message
		want error
	}{
		{"flipped ciphertext", conv, func() Message { m := good; m.Ciphertext = bytes.Clone(m.Ciphertext); m.Ciphertext[0] ^= 1; return m }, ErrSignature},
		{"short signature", conv, func() Message { m := good; m.Signature = m.Signature[:10]; return m }, ErrSignature},
		{"other conversation", []byte("other"), func() Message { return good }, ErrSignature},
		{"other iteration", conv, func() Message { m := good; m.Iteration = 1; return m }, ErrSignature},
		{"other key id", conv, func() Message { m := good; m.KeyID++; return m }, ErrKeyID},
		{"another member's chain", conv, func() Message {
			m := seal(t, other, conv, []byte("x"))
			m.KeyID = good.KeyID
			return m
		}, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := r.MarshalBinary()
			if _, err := r.Open(tt.conv, tt.m()); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			after, _ := r.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Fatal("a refused message changed the receiver")
			}
		})
	}
	if _, err := r.Open(conv, good); err != nil {
		t.Fatalf("the good message after the refusals: %v", err)
	}

	// A signed message that does not decrypt (a forged signing key is not
	// possible; a receiver started from a wrong chain key is).
	d := s.Distribution()
	d.ChainKey[0] ^= 1
	wrong, err := NewReceiver(d, limits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Open(conv, seal(t, s, conv, []byte("y"))); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong chain key: %v", err)
	}

	// Too far ahead, and the skipped-key bound. The receiver is at
	// iteration 1 (the "y" message went only to the wrong receiver), and
	// ahead[i] has iteration 2+i.
	var ahead []Message
	for range 6 {
		ahead = append(ahead, seal(t, s, conv, []byte("z")))
	}
	if _, err := r.Open(conv, ahead[5]); !errors.Is(err, ErrTooFar) {
		t.Fatalf("6 ahead with MaxSkip 5: %v", err)
	}
	if _, err := r.Open(conv, ahead[4]); err != nil {
		t.Fatalf("5 ahead with MaxSkip 5: %v", err)
	}
	if len(r.skipped) != 3 {
		t.Fatalf("%d skipped keys kept, want the bound 3", len(r.skipped))
	}
	if _, err := r.Open(conv, ahead[0]); !errors.Is(err, ErrReplay) {
		t.Fatalf("the oldest skipped keys should be gone: %v", err)
	}
	if _, err := r.Open(conv, ahead[3]); err != nil {
		t.Fatalf("a kept skipped key: %v", err)
	}
}

func TestLateJoinerStartsAtTheDistribution(t *testing.T) {
	conv := []byte("group")
	s, _ := newPair(t, DefaultLimits())
	early := seal(t, s, conv, []byte("before"))
	r, err := NewReceiver(s.Distribution(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(conv, early); !errors.Is(err, ErrReplay) {
		t.Fatalf("a message from before the distribution: %v", err)
	}
	if _, err := r.Open(conv, seal(t, s, conv, []byte("after"))); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	conv := []byte("group")
	s, r := newPair(t, DefaultLimits())
	var msgs []Message
	for range 4 {
		msgs = append(msgs, seal(t, s, conv, []byte("m")))
	}
	if _, err := r.Open(conv, msgs[3]); err != nil {
		t.Fatal(err)
	}
	sb, _ := s.MarshalBinary()
	rb, _ := r.MarshalBinary()
	s2, err := UnmarshalSender(sb)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := UnmarshalReceiver(rb, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 0, 2} {
		if _, err := r2.Open(conv, msgs[i]); err != nil {
			t.Fatalf("skipped message %d after a reload: %v", i, err)
		}
	}
	if _, err := r2.Open(conv, seal(t, s2, conv, []byte("next"))); err != nil {
		t.Fatalf("the reloaded sender's next message: %v", err)
	}
	for _, b := range [][]byte{nil, {tagReceiver}, rb[:len(rb)-1], append(bytes.Clone(rb), 0), sb[:len(sb)-1]} {
		if _, err := UnmarshalReceiver(b, DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("receiver state of %d bytes: %v", len(b), err)
		}
	}
	if _, err := UnmarshalSender(rb); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a receiver's state as a sender's: %v", err)
	}
}

func TestExhausted(t *testing.T) {
	s, _ := newPair(t, DefaultLimits())
	s.iteration = ^uint32(0)
	if _, err := s.Seal(nil, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v", err)
	}
}

func TestZero(t *testing.T) {
	s, r := newPair(t, DefaultLimits())
	seal(t, s, nil, nil)
	m := seal(t, s, nil, nil)
	if _, err := r.Open(nil, m); err != nil {
		t.Fatal(err)
	}
	s.Zero()
	r.Zero()
	if s.chainKey != ([KeySize]byte{}) || r.chainKey != ([KeySize]byte{}) || len(r.skipped) != 0 {
		t.Fatal("secrets left after Zero")
	}
	for _, b := range s.signing {
		if b != 0 {
			t.Fatal("signing key left after Zero")
		}
	}
}

func FuzzUnmarshalReceiver(f *testing.F) {
	s, _ := NewSender(rand.Reader)
	r, _ := NewReceiver(s.Distribution(), DefaultLimits())
	b, _ := r.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalReceiver(b, DefaultLimits())
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil || len(again) != len(b) {
			t.Fatalf("decoded state re-encodes to %d bytes, from %d", len(again), len(b))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	s, _ := NewSender(rand.Reader)
	pt := make([]byte, 1024)
	for b.Loop() {
		if _, err := s.Seal([]byte("group"), pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s, _ := NewSender(rand.Reader)
	r, _ := NewReceiver(s.Distribution(), DefaultLimits())
	pt := make([]byte, 1024)
	msgs := make([]Message, b.N)
	for i := range msgs {
		msgs[i], _ = s.Seal([]byte("group"), pt)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.Open([]byte("group"), msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}
