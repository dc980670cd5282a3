package x3dh

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
	"time"
)

// testRand returns a deterministic reader seeded from label.
func testRand(label string) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256([]byte("strata x3dh test: " + label)))
}

// party is a responder (Bob) with all his prekeys, and an initiator (Alice).
type party struct {
	alice, bob *Identity
	spk, opk   *PreKeyPair
	kem, pqopk *KEMPreKeyPair
	bundle     *Bundle
}

// scenario says which optional keys a bundle offers.
type scenario struct {
	name              string
	opk, kem, oneTime bool
}

var scenarios = []scenario{
	{name: "x3dh"},
	{name: "x3dh-opk", opk: true},
	{name: "pqxdh-last-resort", kem: true},
	{name: "pqxdh-one-time-opk", opk: true, kem: true, oneTime: true},
}

// Fixed prekey ids of the fixtures and vectors.
const (
	spkID   = 1
	opkID   = 2
	kemID   = 3
	pqopkID = 4
)

var testIssued = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// newParty generates, in this order from r: Alice's identity, Bob's
// identity, Bob's SPK, then as the scenario asks his OPK, last-resort KEM
// prekey and one-time KEM prekey.
func newParty(tb testing.TB, r *rand.ChaCha8, sc scenario) *party {
	tb.Helper()
	p := &party{}
	var err error
	must := func() {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	p.alice, err = NewIdentity(r)
	must()
	p.bob, err = NewIdentity(r)
	must()
	p.spk, err = p.bob.NewSignedPreKey(r, spkID)
	must()
	var opks []*PreKeyPair
	var pqopks []*KEMPreKeyPair
	if sc.opk {
		p.opk, err = NewOneTimePreKey(r, opkID)
		must()
		opks = append(opks, p.opk)
	}
	if sc.kem {
		p.kem, err = p.bob.NewKEMPreKey(r, kemID)
		must()
	}
	if sc.oneTime {
		p.pqopk, err = p.bob.NewKEMPreKey(r, pqopkID)
		must()
		pqopks = append(pqopks, p.pqopk)
	}
	p.bundle = p.bob.Bundle(p.spk, p.kem, opks, pqopks, testIssued)
	if err := p.bundle.Verify(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// responderKeys returns the keys Bob looks up for the ids in hdr.
func (p *party) responderKeys(sc scenario) ResponderKeys {
	k := ResponderKeys{SignedPreKey: p.spk}
	if sc.opk {
		k.OneTimePreKey = p.opk
	}
	switch {
	case sc.oneTime:
		k.KEMPreKey = p.pqopk
	case sc.kem:
		k.KEMPreKey = p.kem
	}
	return k
}
