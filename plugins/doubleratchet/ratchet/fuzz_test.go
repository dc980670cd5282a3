package ratchet

import (
	"bytes"
	"testing"
)

// fuzzSession returns a Bob with a receiving chain, skipped keys in two
// chains and a pending ratchet, plus messages that open on each path.
func fuzzSession(t testing.TB) (*State, []Message) {
	a, b := newPair(t, "fuzz", DefaultLimits())
	b.recv(t, a.send(t, "a0"), "a0")
	skippedOld := a.send(t, "a1")
	b.recv(t, a.send(t, "a2"), "a2")
	a.recv(t, b.send(t, "b0"), "b0")
	skippedCur := a.send(t, "a3")
	current := a.send(t, "a4")
	b.recv(t, current, "a4")
	current = a.send(t, "a5")
	a.recv(t, b.send(t, "b1"), "b1")
	ratchet := a.send(t, "a6")
	return b.s, []Message{skippedOld, skippedCur, current, ratchet}
}

func FuzzDecrypt(f *testing.F) {
	base, msgs := fuzzSession(f)
	for _, m := range msgs {
		f.Add(m.Header, m.Ciphertext)
		f.Add(flip(m.Header, 30), m.Ciphertext)
		f.Add(m.Header, flip(m.Ciphertext, 0))
		f.Add(m.Header[:40], m.Ciphertext)
	}
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, encHeaderLen), make([]byte, tagLen))
	before := marshal(f, base)
	f.Fuzz(func(t *testing.T, hdr, ct []byte) {
		s := base.Clone()
		_, err := s.Decrypt(seeded("fuzz-rand"), t0, Message{Header: hdr, Ciphertext: ct}, testAD)
		if err != nil && !bytes.Equal(before, marshal(t, s)) {
			t.Fatalf("failed Decrypt (%v) changed the state", err)
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	a, b := newPair(f, "fuzz-unmarshal", DefaultLimits())
	f.Add(marshal(f, a.s))
	f.Add(marshal(f, b.s))
	bob, msgs := fuzzSession(f)
	f.Add(marshal(f, bob))
	f.Add([]byte{})
	f.Add([]byte("SDR\x01"))
	// Limits no input can reach, so that Unmarshal trims nothing and an
	// accepted encoding must re-encode to itself.
	roomy := DefaultLimits()
	roomy.MaxSkippedKeys, roomy.MaxSkippedChains = 1<<30, 1<<30
	f.Fuzz(func(t *testing.T, enc []byte) {
		s, err := Unmarshal(enc, roomy)
		if err != nil {
			return
		}
		if !bytes.Equal(marshal(t, s), enc) {
			t.Fatal("accepted encoding is not canonical")
		}
		// A decoded state must be usable without panicking.
		for _, m := range msgs {
			_, _ = s.Clone().Decrypt(seeded("fuzz-rand"), t0, m, testAD)
		}
		_, _ = s.Clone().Encrypt(seeded("fuzz-rand"), []byte("x"), testAD)
		s.Expire(t0)
		s.Zero()
	})
}
