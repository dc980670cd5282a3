package group

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

var testNow = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func testConfig(format wire.WireFormat) Config {
	psks := map[string][]byte{"psk-1": []byte("external secret one")}
	return Config{
		Now:             func() time.Time { return testNow },
		HandshakeFormat: format,
		PadTo:           32,
		ExternalPSK: func(id []byte) ([]byte, bool) {
			s, ok := psks[string(id)]
			return s, ok
		},
	}
}

func newIdentity(t testing.TB, cs *suite.Suite, name string) Identity {
	t.Helper()
	priv, pub, err := cs.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)}, SignaturePriv: priv, SignaturePub: pub}
}

func newBundle(t testing.TB, cs *suite.Suite, name string) *KeyPackageBundle {
	t.Helper()
	b, err := NewKeyPackage(cs, newIdentity(t, cs, name), testNow, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip sends a message through its encoding, as the network would.
func roundTrip(t testing.TB, m *wire.MLSMessage) *wire.MLSMessage {
	t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out wire.MLSMessage
	if err := wire.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// world is a set of members of one group and a lossless network.
type world struct {
	t       *testing.T
	cs      *suite.Suite
	cfg     Config
	members map[string]*Group
}

func newWorld(t *testing.T, id suite.ID, format wire.WireFormat) *world {
	cs, err := suite.New(id)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, cs: cs, cfg: testConfig(format), members: map[string]*Group{}}
	gid, err := NewGroupID(w.cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Create(w.cfg, cs, gid, newIdentity(t, cs, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.members["alice"] = g
	return w
}

// deliver hands a message from one member to every other member.
func (w *world) deliver(from string, m *wire.MLSMessage) map[string]*Event {
	w.t.Helper()
	evs := map[string]*Event{}
	for name, g := range w.members {
		if name == from {
			continue
		}
		ev, err := g.Handle(roundTrip(w.t, m))
		if err != nil {
			w.t.Fatalf("%s handles %s's message: %v", name, from, err)
		}
		evs[name] = ev
	}
	return evs
}

// commit has member from commit, everyone process it, new members join
// from the Welcome, and checks that all agree.
func (w *world) commit(from string, opts CommitOptions, joiners ...*KeyPackageBundle) {
	w.t.Helper()
	g := w.members[from]
	pc, err := g.Commit(opts)
	if err != nil {
		w.t.Fatalf("%s commits: %v", from, err)
	}
	evs := w.deliver(from, pc.Message)
	if err := g.Merge(pc); err != nil {
		w.t.Fatal(err)
	}
	for name, ev := range evs {
		if ev.Kind != EventCommit {
			w.t.Fatalf("%s: event %d, want a commit", name, ev.Kind)
		}
		if ev.Removed {
			w.members[name].Destroy()
			delete(w.members, name)
		}
	}
	if len(joiners) > 0 && pc.Welcome == nil {
		w.t.Fatal("no Welcome for the added members")
	}
	for _, b := range joiners {
		wm := roundTrip(w.t, pc.Welcome)
		j, err := Join(w.cfg, b, wm.Welcome, nil)
		if err != nil {
			w.t.Fatalf("%s joins: %v", b.Identity.Credential.Identity, err)
		}
		w.members[string(b.Identity.Credential.Identity)] = j
	}
	w.agree()
}

// reload stores and restores every member, as a restart would.
func (w *world) reload() {
	w.t.Helper()
	for name, g := range w.members {
		b, err := g.State()
		if err != nil {
			w.t.Fatalf("%s: state: %v", name, err)
		}
		r, err := Restore(w.cfg, b)
		if err != nil {
			w.t.Fatalf("%s: restore: %v", name, err)
		}
		again, err := r.State()
		if err != nil || !bytes.Equal(again, b) {
			w.t.Fatalf("%s: the restored state encodes differently (%v)", name, err)
		}
		g.Destroy()
		w.members[name] = r
	}
}

// agree checks every member is in the same epoch with the same epoch
// authenticator, tree hash and exporter output.
func (w *world) agree() {
	w.t.Helper()
	var ref *Group
	var refName string
	for name, g := range w.members {
		if ref == nil {
			ref, refName = g, name
			continue
		}
		if g.Epoch() != ref.Epoch() || !bytes.Equal(g.EpochAuthenticator(), ref.EpochAuthenticator()) {
			w.t.Fatalf("%s (epoch %d) and %s (epoch %d) disagree", name, g.Epoch(), refName, ref.Epoch())
		}
		a, _ := g.Export("test", []byte("ctx"), 16)
		b, _ := ref.Export("test", []byte("ctx"), 16)
		if !bytes.Equal(a, b) {
			w.t.Fatalf("%s and %s export different secrets", name, refName)
		}
		ga, gb := g.GroupContext(), ref.GroupContext()
		if !bytes.Equal(ga.TreeHash, gb.TreeHash) {
			w.t.Fatalf("%s and %s have different trees", name, refName)
		}
	}
}

// chat has every member send an application message that every other
// member reads.
func (w *world) chat() {
	w.t.Helper()
	for name, g := range w.members {
		text := []byte(fmt.Sprintf("hello from %s in epoch %d", name, g.Epoch()))
		m, err := g.Protect(text, []byte("ad"))
		if err != nil {
			w.t.Fatal(err)
		}
		for other, ev := range w.deliver(name, m) {
			if ev.Kind != EventApplication || !bytes.Equal(ev.ApplicationData, text) || !bytes.Equal(ev.AuthenticatedData, []byte("ad")) {
				w.t.Fatalf("%s reads %q from %s, want %q", other, ev.ApplicationData, name, text)
			}
		}
	}
}

func (w *world) leafOf(name string) treemath.Leaf { return w.members[name].LeafIndex() }

func TestGroupLifecycle(t *testing.T) {
	for _, tc := range []struct {
		suite  suite.ID
		format wire.WireFormat
	}{
		{1, wire.WireFormatPrivateMessage},
		{1, wire.WireFormatPublicMessage},
		{3, wire.WireFormatPrivateMessage},
		{2, wire.WireFormatPublicMessage},
	} {
		t.Run(fmt.Sprintf("suite%d/format%d", tc.suite, tc.format), func(t *testing.T) {
			w := newWorld(t, tc.suite, tc.format)
			cs := w.cs
			// Alice adds Bob and Carol by value.
			bob, carol := newBundle(t, cs, "bob"), newBundle(t, cs, "carol")
			w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage), AddProposal(carol.KeyPackage)}}, bob, carol)
			w.chat()
			// Bob proposes adding Dave by reference; Carol commits it.
			dave := newBundle(t, cs, "dave")
			m, err := w.members["bob"].Propose(AddProposal(dave.KeyPackage))
			if err != nil {
				t.Fatal(err)
			}
			w.deliver("bob", m)
			w.reload() // cached proposals survive a restart
			w.commit("carol", CommitOptions{}, dave)
			w.chat()
			// Dave updates by reference; Alice commits it (with a path).
			up, err := w.members["dave"].UpdateProposal()
			if err != nil {
				t.Fatal(err)
			}
			m, err = w.members["dave"].Propose(up)
			if err != nil {
				t.Fatal(err)
			}
			w.deliver("dave", m)
			w.reload() // so does Dave's pending Update key
			w.commit("alice", CommitOptions{})
			w.chat()
			// Empty commits (a full path) from everyone.
			for _, name := range []string{"bob", "dave", "carol"} {
				w.commit(name, CommitOptions{})
			}
			// An external PSK and new GroupContext extensions.
			psk, err := w.members["bob"].ExternalPSKProposal([]byte("psk-1"))
			if err != nil {
				t.Fatal(err)
			}
			gce := GroupContextExtensionsProposal([]wire.Extension{{Type: wire.ExtensionApplicationID, Data: []byte("strata")}})
			w.commit("bob", CommitOptions{Proposals: []wire.Proposal{psk, gce}})
			if ext := w.members["dave"].GroupContext().Extensions; len(ext) != 1 {
				t.Fatalf("extensions after GCE: %v", ext)
			}
			// Carol removes Bob by value, adding Erin in the same commit.
			erin := newBundle(t, cs, "erin")
			w.commit("carol", CommitOptions{Proposals: []wire.Proposal{RemoveProposal(w.leafOf("bob")), AddProposal(erin.KeyPackage)}}, erin)
			if _, ok := w.members["bob"]; ok {
				t.Fatal("bob was not told he is removed")
			}
			w.chat()
			// Erin removes Alice by reference through Dave's proposal.
			m, err = w.members["dave"].Propose(RemoveProposal(w.leafOf("alice")))
			if err != nil {
				t.Fatal(err)
			}
			w.deliver("dave", m)
			w.commit("erin", CommitOptions{})
			w.chat()
			if len(w.members) != 3 {
				t.Fatalf("%d members left, want 3", len(w.members))
			}
			for name, g := range w.members {
				m := g.Members()
				if len(m) != 3 || string(m[g.LeafIndex()].Credential.Identity) != name {
					t.Fatalf("%s sees members %v", name, m)
				}
			}
		})
	}
}

// TestLateApplicationMessage: a message sent in one epoch and delivered
// after the next commit still decrypts, within the PastEpochs window.
func TestLateApplicationMessage(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	var late []*wire.MLSMessage
	for range 3 {
		m, err := w.members["alice"].Protect([]byte("late"), nil)
		if err != nil {
			t.Fatal(err)
		}
		late = append(late, m)
		w.commit("alice", CommitOptions{Path: true})
	}
	w.reload() // past epochs survive a restart
	// Bob is in epoch 4; the messages are of epochs 1, 2, 3; two past
	// epochs are kept.
	for i, m := range late {
		ev, err := w.members["bob"].Handle(m)
		if i == 0 {
			if !errors.Is(err, ErrWrongEpoch) {
				t.Fatalf("message of an epoch beyond the window: %v, want ErrWrongEpoch", err)
			}
			continue
		}
		if err != nil || string(ev.ApplicationData) != "late" {
			t.Fatalf("late message %d: %v", i, err)
		}
	}
}

// TestTamperedCommitRefused changes a Commit in transit, in several ways,
// and checks every receiver refuses it and stays as it was.
func TestTamperedCommitRefused(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPublicMessage)
	bob, carol := newBundle(t, w.cs, "bob"), newBundle(t, w.cs, "carol")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage), AddProposal(carol.KeyPackage)}}, bob, carol)

	pc, err := w.members["alice"].Commit(CommitOptions{Path: true})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := wire.Marshal(pc.Message)
	resign := func(m *wire.MLSMessage) {} // tampering without re-signing
	tests := []struct {
		name   string
		change func(m *wire.MLSMessage)
	}{
		{"confirmation tag", func(m *wire.MLSMessage) { m.PublicMessage.Auth.ConfirmationTag[0] ^= 1 }},
		{"membership tag", func(m *wire.MLSMessage) { m.PublicMessage.MembershipTag[0] ^= 1 }},
		{"signature", func(m *wire.MLSMessage) { m.PublicMessage.Auth.Signature[5] ^= 1 }},
		{"epoch", func(m *wire.MLSMessage) { m.PublicMessage.Content.Epoch++ }},
		{"path key", func(m *wire.MLSMessage) { m.PublicMessage.Content.Commit.Path.Nodes[0].EncryptionKey[1] ^= 1 }},
		{"sender", func(m *wire.MLSMessage) { m.PublicMessage.Content.Sender.LeafIndex = 1 }},
	}
	for _, tc := range tests {
		for _, name := range []string{"bob", "carol"} {
			g := w.members[name]
			before := g.EpochAuthenticator()
			var m wire.MLSMessage
			if err := wire.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tc.change(&m)
			resign(&m)
			if _, err := g.Handle(&m); err == nil {
				t.Fatalf("%s: %s accepted a tampered commit", tc.name, name)
			}
			if g.Epoch() != 1 || !bytes.Equal(g.EpochAuthenticator(), before) {
				t.Fatalf("%s: %s's state changed", tc.name, name)
			}
		}
	}
	// The untampered commit still applies.
	w.deliver("alice", pc.Message)
	if err := w.members["alice"].Merge(pc); err != nil {
		t.Fatal(err)
	}
	w.agree()
}

// TestInvalidProposalLists checks the proposal-list rules of RFC 9420
// §12.2 on the committer's side.
func TestInvalidProposalLists(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	alice := w.members["alice"]
	expired := newBundle(t, w.cs, "old")
	expired.KeyPackage.LeafNode.Lifetime.NotAfter = uint64(testNow.Unix()) - 1
	badSig := newBundle(t, w.cs, "mallory")
	badSig.KeyPackage.Signature[0] ^= 1
	dup := newBundle(t, w.cs, "twice")
	upd, err := w.members["bob"].UpdateProposal()
	if err != nil {
		t.Fatal(err)
	}
	psk, _ := alice.ExternalPSKProposal([]byte("psk-1"))
	unknownPSK, _ := alice.ExternalPSKProposal([]byte("nope"))
	tests := []struct {
		name  string
		props []wire.Proposal
		want  error
	}{
		{"remove self", []wire.Proposal{RemoveProposal(0)}, ErrInvalidProposal},
		{"remove twice", []wire.Proposal{RemoveProposal(1), RemoveProposal(1)}, ErrInvalidProposal},
		{"remove blank", []wire.Proposal{RemoveProposal(7)}, ErrInvalidProposal},
		{"expired key package", []wire.Proposal{AddProposal(expired.KeyPackage)}, ErrInvalidProposal},
		{"bad key package signature", []wire.Proposal{AddProposal(badSig.KeyPackage)}, ErrInvalidProposal},
		{"add twice", []wire.Proposal{AddProposal(dup.KeyPackage), AddProposal(dup.KeyPackage)}, ErrInvalidProposal},
		{"add a member", []wire.Proposal{AddProposal(bob.KeyPackage)}, ErrInvalidProposal},
		{"update by value from another", []wire.Proposal{upd}, ErrInvalidProposal},
		{"psk twice", []wire.Proposal{psk, psk}, ErrInvalidProposal},
		{"unknown psk", []wire.Proposal{unknownPSK}, ErrMissingPSK},
		{"two GCEs", []wire.Proposal{GroupContextExtensionsProposal(nil), GroupContextExtensionsProposal(nil)}, ErrInvalidProposal},
		{"reinit", []wire.Proposal{{Type: wire.ProposalReInit, ReInit: &wire.ReInit{}}}, ErrUnsupported},
	}
	for _, tc := range tests {
		if _, err := alice.Commit(CommitOptions{Proposals: tc.props}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if alice.Epoch() != 1 {
		t.Fatalf("refused commits moved the epoch to %d", alice.Epoch())
	}
}

// TestMergeStale: a Commit made before the group moved on cannot be merged.
func TestMergeStale(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	stale, err := w.members["alice"].Commit(CommitOptions{Path: true})
	if err != nil {
		t.Fatal(err)
	}
	w.commit("bob", CommitOptions{})
	if err := w.members["alice"].Merge(stale); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("stale merge: %v, want ErrWrongEpoch", err)
	}
	w.agree()
}

// TestJoinRefusesBadWelcome breaks a Welcome in several ways.
func TestJoinRefusesBadWelcome(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	pc, err := w.members["alice"].Commit(CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := wire.Marshal(pc.Welcome)
	other := newBundle(t, w.cs, "other")
	tests := []struct {
		name   string
		bundle *KeyPackageBundle
		change func(*wire.Welcome)
	}{
		{"not for us", other, func(*wire.Welcome) {}},
		{"group info", bob, func(wl *wire.Welcome) { wl.EncryptedGroupInfo[3] ^= 1 }},
		{"group secrets", bob, func(wl *wire.Welcome) { wl.Secrets[0].EncryptedGroupSecrets.Ciphertext[0] ^= 1 }},
		{"suite", bob, func(wl *wire.Welcome) { wl.CipherSuite = 3 }},
	}
	for _, tc := range tests {
		var m wire.MLSMessage
		if err := wire.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		tc.change(m.Welcome)
		if _, err := Join(w.cfg, tc.bundle, m.Welcome, nil); err == nil {
			t.Errorf("%s: joined", tc.name)
		}
	}
	var m wire.MLSMessage
	_ = wire.Unmarshal(good, &m)
	if _, err := Join(w.cfg, bob, m.Welcome, nil); err != nil {
		t.Fatal(err)
	}
}

// TestCommitLeavesOutConflicts: cached proposals that would make a Commit
// invalid (a Remove of the committer, a second Remove of a leaf) are left
// out, and the others are committed.
func TestCommitLeavesOutConflicts(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob, carol := newBundle(t, w.cs, "bob"), newBundle(t, w.cs, "carol")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage), AddProposal(carol.KeyPackage)}}, bob, carol)
	for _, p := range []struct {
		from string
		prop wire.Proposal
	}{
		{"bob", RemoveProposal(w.leafOf("alice"))},
		{"bob", RemoveProposal(w.leafOf("carol"))},
		{"alice", RemoveProposal(w.leafOf("carol"))},
	} {
		m, err := w.members[p.from].Propose(p.prop)
		if err != nil {
			t.Fatal(err)
		}
		w.deliver(p.from, m)
	}
	w.commit("alice", CommitOptions{})
	if _, ok := w.members["carol"]; ok || len(w.members) != 2 {
		t.Fatalf("members after the commit: %d, carol removed: %v", len(w.members), !ok)
	}
}

// TestUnsupportedAndReusedRefused: a GroupContextExtensions with an
// extension a member does not support, and an Update to a key another
// member holds, are refused.
func TestUnsupportedAndReusedRefused(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	alice, b := w.members["alice"], w.members["bob"]
	gce := GroupContextExtensionsProposal([]wire.Extension{{Type: 0xff00, Data: []byte{1}}})
	if _, err := alice.Commit(CommitOptions{Proposals: []wire.Proposal{gce}}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("unsupported extension: %v, want ErrInvalidProposal", err)
	}
	up, err := b.UpdateProposal()
	if err != nil {
		t.Fatal(err)
	}
	up.Update.LeafNode.EncryptionKey = alice.Tree().Leaf(alice.LeafIndex()).EncryptionKey
	if err := signLeaf(w.cs, &up.Update.LeafNode, b.id.SignaturePriv, b.GroupID(), uint32(b.LeafIndex())); err != nil {
		t.Fatal(err)
	}
	m, err := b.Propose(up)
	if err != nil {
		t.Fatal(err)
	}
	w.deliver("bob", m)
	// A receiver refuses a list that holds it...
	if _, err := alice.apply(alice.cur.tree.Clone(), alice.pending, alice.LeafIndex()); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("update to another member's key: %v, want ErrInvalidProposal", err)
	}
	// ...and a committer leaves it out.
	before := alice.Tree().Leaf(b.LeafIndex()).EncryptionKey
	w.commit("alice", CommitOptions{})
	if !bytes.Equal(alice.Tree().Leaf(b.LeafIndex()).EncryptionKey, before) {
		t.Fatal("the bad Update was committed")
	}
}

// TestRemovedMemberStops: a removed member learns it from the Commit and
// then refuses to send or receive.
func TestRemovedMemberStops(t *testing.T) {
	w := newWorld(t, 1, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	b := w.members["bob"]
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{RemoveProposal(b.LeafIndex())}})
	if !b.Removed() {
		t.Fatal("bob does not know he was removed")
	}
	m, err := w.members["alice"].Protect([]byte("after"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Handle(m); !errors.Is(err, ErrNotMember) {
		t.Fatalf("handle after removal: %v", err)
	}
	if _, err := b.Protect([]byte("x"), nil); !errors.Is(err, ErrNotMember) {
		t.Fatalf("protect after removal: %v", err)
	}
	if _, err := b.Commit(CommitOptions{}); !errors.Is(err, ErrNotMember) {
		t.Fatalf("commit after removal: %v", err)
	}
	if _, err := b.State(); !errors.Is(err, ErrNotMember) {
		t.Fatalf("state after removal: %v", err)
	}
}

// TestTamperedPrivateCommitRefused: a PrivateMessage Commit with a changed
// byte is refused, the receiver's epoch stays, and the genuine Commit still
// applies after the tampered copies.
func TestTamperedPrivateCommitRefused(t *testing.T) {
	w := newWorld(t, 3, wire.WireFormatPrivateMessage)
	bob := newBundle(t, w.cs, "bob")
	w.commit("alice", CommitOptions{Proposals: []wire.Proposal{AddProposal(bob.KeyPackage)}}, bob)
	pc, err := w.members["alice"].Commit(CommitOptions{Path: true})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := wire.Marshal(pc.Message)
	for _, i := range []int{len(good) - 1, len(good) / 2, 20} {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x40
		var m wire.MLSMessage
		if wire.Unmarshal(bad, &m) != nil {
			continue
		}
		if _, err := w.members["bob"].Handle(&m); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
		if w.members["bob"].Epoch() != 1 {
			t.Fatal("epoch moved")
		}
	}
	// The tampered copies did not burn the key: the genuine Commit applies.
	w.deliver("alice", pc.Message)
	if err := w.members["alice"].Merge(pc); err != nil {
		t.Fatal(err)
	}
	w.agree()
}
