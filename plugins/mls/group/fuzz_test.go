package group

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// fuzzGroup builds, from a fixed seed, a three-member group (alice, bob,
// carol) and returns bob's and carol's states, a fresh KeyPackage bundle
// for dave, and seed messages: an application message, a proposal, a
// commit (from alice) and a Welcome for dave.
func fuzzGroup(t testing.TB, format wire.WireFormat) (bob, carol *Group, dave *KeyPackageBundle, seeds [][]byte) {
	cs, err := suite.New(1)
	if err != nil {
		t.Fatal(err)
	}
	random := rand.NewChaCha8([32]byte{'m', 'l', 's', ' ', 'g', 'r', 'o', 'u', 'p'})
	cfg := testConfig(format)
	cfg.Random = random
	id := func(name string) Identity {
		priv, pub, err := cs.GenerateSignatureKey(random)
		if err != nil {
			t.Fatal(err)
		}
		return Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)}, SignaturePriv: priv, SignaturePub: pub}
	}
	bundle := func(name string) *KeyPackageBundle {
		b, err := NewKeyPackage(cs, id(name), testNow, time.Hour, random)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	alice, err := Create(cfg, cs, []byte("fuzz group"), id("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, c := bundle("bob"), bundle("carol")
	pc, err := alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(b.KeyPackage), AddProposal(c.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Merge(pc); err != nil {
		t.Fatal(err)
	}
	if bob, err = Join(cfg, b, pc.Welcome.Welcome, nil); err != nil {
		t.Fatal(err)
	}
	if carol, err = Join(cfg, c, pc.Welcome.Welcome, nil); err != nil {
		t.Fatal(err)
	}
	enc := func(m *wire.MLSMessage) []byte {
		out, err := wire.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	app, err := alice.Protect([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prop, err := alice.Propose(RemoveProposal(2))
	if err != nil {
		t.Fatal(err)
	}
	dave = bundle("dave")
	commit, err := alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(dave.KeyPackage)}, Path: true})
	if err != nil {
		t.Fatal(err)
	}
	return bob, carol, dave, [][]byte{enc(app), enc(prop), enc(commit.Message), enc(commit.Welcome)}
}

// FuzzHandle feeds arbitrary MLSMessage bytes to a member: no input may
// panic, and a refused message must leave the epoch and its authenticator
// as they were.
func FuzzHandle(f *testing.F) {
	for _, format := range []wire.WireFormat{wire.WireFormatPrivateMessage, wire.WireFormatPublicMessage} {
		_, _, _, seeds := fuzzGroup(f, format)
		for _, s := range seeds {
			f.Add(s)
		}
	}
	bob, _, _, _ := fuzzGroup(f, wire.WireFormatPublicMessage)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wire.MLSMessage
		if wire.Unmarshal(data, &m) != nil {
			return
		}
		if bob.Removed() {
			return
		}
		epoch, auth := bob.Epoch(), bob.EpochAuthenticator()
		if _, err := bob.Handle(&m); err != nil && (bob.Epoch() != epoch || !bytes.Equal(bob.EpochAuthenticator(), auth)) {
			t.Fatalf("refused message changed the group: %v", err)
		}
	})
}

// FuzzJoin feeds arbitrary MLSMessage bytes to Join as a Welcome for a
// fixed KeyPackage: no input may panic.
func FuzzJoin(f *testing.F) {
	_, _, dave, seeds := fuzzGroup(f, wire.WireFormatPrivateMessage)
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := testConfig(wire.WireFormatPrivateMessage)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wire.MLSMessage
		if wire.Unmarshal(data, &m) != nil || m.Welcome == nil {
			return
		}
		if g, err := Join(cfg, dave, m.Welcome, nil); err == nil {
			g.Destroy()
		}
	})
}

// FuzzRestore: a stored state read back never panics, and a state that
// restores encodes back to the same bytes.
func FuzzRestore(f *testing.F) {
	bob, _, _, _ := fuzzGroup(f, wire.WireFormatPrivateMessage)
	b, err := bob.State()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	cfg := testConfig(wire.WireFormatPrivateMessage)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Restore(cfg, data)
		if err != nil {
			return
		}
		again, err := g.State()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}
