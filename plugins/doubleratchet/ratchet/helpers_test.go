package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// seeded returns a deterministic io.Reader for a label.
func seeded(label string) *mrand.ChaCha8 {
	var seed [32]byte
	copy(seed[:], label)
	return mrand.NewChaCha8(seed)
}

// testAD is the associated data used by most tests.
var testAD = []byte("AD: IK_A || IK_B")

// t0 is a fixed clock for tests.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// peer is one side of a test session with its own deterministic rand.
type peer struct {
	s    *State
	rand io.Reader
}

func (p *peer) send(t testing.TB, pt string) Message {
	t.Helper()
	m, err := p.s.Encrypt(p.rand, []byte(pt), testAD)
	if err != nil {
		t.Fatalf("Encrypt(%q): %v", pt, err)
	}
	return m
}

func (p *peer) recv(t testing.TB, m Message, want string) {
	t.Helper()
	p.recvAt(t, t0, m, want)
}

func (p *peer) recvAt(t testing.TB, now time.Time, m Message, want string) {
	t.Helper()
	pt, err := p.s.Decrypt(p.rand, now, m, testAD)
	if err != nil {
		t.Fatalf("Decrypt (want %q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("Decrypt = %q, want %q", pt, want)
	}
}

// recvErr decrypts m, expects an error matching target, and checks that the
// state is byte-identical afterwards.
func (p *peer) recvErr(t testing.TB, m Message, target error) {
	t.Helper()
	p.recvErrAt(t, t0, m, testAD, target)
}

func (p *peer) recvErrAt(t testing.TB, now time.Time, m Message, ad []byte, target error) {
	t.Helper()
	before := marshal(t, p.s)
	pt, err := p.s.Decrypt(p.rand, now, m, ad)
	if err == nil {
		t.Fatalf("Decrypt succeeded (%q), want %v", pt, target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("Decrypt error %v, want %v", err, target)
	}
	if after := marshal(t, p.s); !bytes.Equal(before, after) {
		t.Fatalf("state changed by failed Decrypt (%v)", err)
	}
}

func marshal(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newPair makes a session from a seed: SK and Bob's signed prekey come from
// seed, each side has its own rand.
func newPair(t testing.TB, seed string, lim Limits) (alice, bob *peer) {
	t.Helper()
	setup := seeded(seed + "/setup")
	sk := make([]byte, 32)
	spk := make([]byte, 32)
	setup.Read(sk)
	setup.Read(spk)
	priv, err := ecdh.X25519().NewPrivateKey(spk)
	if err != nil {
		t.Fatal(err)
	}
	ar, br := seeded(seed+"/alice"), seeded(seed+"/bob")
	a, err := InitAlice(ar, sk, priv.PublicKey().Bytes(), lim)
	if err != nil {
		t.Fatal(err)
	}
	b, err := InitBob(sk, spk, lim)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{a, ar}, &peer{b, br}
}

// clone returns a peer with a cloned state and its own rand.
func (p *peer) clone(label string) *peer {
	return &peer{p.s.Clone(), seeded(label)}
}

// craft builds a message whose header is sealed under hk (as only a holder
// of the header key could) with the given contents and version, and a
// random ciphertext.
func craft(t testing.TB, hk [32]byte, version byte, dh [32]byte, pn, n uint32) Message {
	t.Helper()
	r := seeded("craft")
	hdr := encodeHeader(&dh, pn, n)
	hdr[0] = version
	buf := make([]byte, encHeaderLen)
	r.Read(buf[:headerNonceLen])
	if err := hencrypt(buf, &hk, &hdr, testAD); err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, 20)
	r.Read(ct)
	return Message{Header: buf, Ciphertext: ct}
}

// flip returns a copy of b with byte i changed.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}
