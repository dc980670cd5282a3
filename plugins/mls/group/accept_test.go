package group

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// TestAcceptLeaf checks that Config.AcceptLeaf sees every leaf of the tree
// a Commit or a Welcome leads to, and that its refusal leaves the group as
// it was (Commit) or joins nothing (Welcome).
func TestAcceptLeaf(t *testing.T) {
	cs, err := suite.New(suite.ID(1))
	if err != nil {
		t.Fatal(err)
	}
	refuse := []byte("mallory")
	accept := func(leaf *wire.LeafNode) error {
		if bytes.Equal(leaf.Credential.Identity, refuse) {
			return errors.New("not this one")
		}
		return nil
	}
	cfg := testConfig(wire.WireFormatPrivateMessage)
	cfg.AcceptLeaf = accept
	alice, err := Create(testConfig(wire.WireFormatPrivateMessage), cs, []byte("group"), newIdentity(t, cs, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bobKP := newBundle(t, cs, "bob")
	pc, err := alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(bobKP.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Merge(pc); err != nil {
		t.Fatal(err)
	}
	bob, err := Join(cfg, bobKP, pc.Welcome.Welcome, nil)
	if err != nil {
		t.Fatalf("join with every leaf accepted: %v", err)
	}

	// A Commit that adds a refused member is refused, and bob stays put.
	malloryKP, err := NewKeyPackage(cs, newIdentity(t, cs, string(refuse)), testNow, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err = alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(malloryKP.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	epoch, auth := bob.Epoch(), bob.EpochAuthenticator()
	if _, err := bob.Handle(roundTrip(t, pc.Message)); !errors.Is(err, ErrRejectedLeaf) {
		t.Fatalf("commit adding a refused leaf: %v, want ErrRejectedLeaf", err)
	}
	if bob.Epoch() != epoch || !bytes.Equal(bob.EpochAuthenticator(), auth) {
		t.Fatal("a refused commit changed the group")
	}
	if err := alice.Merge(pc); err != nil {
		t.Fatal(err)
	}
	// A Welcome into a tree with a refused leaf is refused too.
	carolKP := newBundle(t, cs, "carol")
	pc, err = alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(carolKP.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(cfg, carolKP, pc.Welcome.Welcome, nil); !errors.Is(err, ErrRejectedLeaf) {
		t.Fatalf("Welcome into a tree with a refused leaf: %v, want ErrRejectedLeaf", err)
	}
	if _, err := Join(testConfig(wire.WireFormatPrivateMessage), carolKP, pc.Welcome.Welcome, nil); err != nil {
		t.Fatalf("the same Welcome without the check: %v", err)
	}
}

// TestEventSenderLeaf checks that a handled message names its sender's
// leaf from the tree of the epoch it was sent in, also after that leaf
// left the tree.
func TestEventSenderLeaf(t *testing.T) {
	cs, err := suite.New(suite.ID(1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(wire.WireFormatPrivateMessage)
	alice, err := Create(cfg, cs, []byte("group"), newIdentity(t, cs, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bobKP := newBundle(t, cs, "bob")
	pc, err := alice.Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(bobKP.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Merge(pc); err != nil {
		t.Fatal(err)
	}
	bob, err := Join(cfg, bobKP, pc.Welcome.Welcome, nil)
	if err != nil {
		t.Fatal(err)
	}
	late, err := bob.Protect([]byte("late"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err = alice.Commit(CommitOptions{Proposals: []wire.Proposal{RemoveProposal(bob.LeafIndex())}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Merge(pc); err != nil {
		t.Fatal(err)
	}
	ev, err := alice.Handle(roundTrip(t, late))
	if err != nil {
		t.Fatalf("late message of a removed member within the window: %v", err)
	}
	if ev.SenderLeaf == nil || string(ev.SenderLeaf.Credential.Identity) != "bob" {
		t.Fatalf("sender leaf %+v, want bob's", ev.SenderLeaf)
	}
}
