package treekem

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

var groupID = []byte("treekem test group")

type member struct {
	priv    *Private
	sigPriv []byte
}

// newLeaf returns a KeyPackage-source leaf with fresh keys.
func newLeaf(t testing.TB, cs *suite.Suite, name string, random ...io.Reader) (*wire.LeafNode, []byte, []byte) {
	t.Helper()
	var r io.Reader
	if len(random) > 0 {
		r = random[0]
	}
	encPriv, encPub, err := cs.GenerateHPKEKey(r)
	if err != nil {
		t.Fatal(err)
	}
	sigPriv, sigPub, err := cs.GenerateSignatureKey(r)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &wire.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)},
		Capabilities: wire.Capabilities{
			Versions: []wire.ProtocolVersion{1}, CipherSuites: []wire.CipherSuite{wire.CipherSuite(cs.ID())},
			Credentials: []wire.CredentialType{wire.CredentialBasic},
		},
		Source:   wire.LeafNodeSourceKeyPackage,
		Lifetime: wire.Lifetime{NotBefore: 0, NotAfter: 1 << 62},
	}
	tbs, err := leaf.TBS(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Signature, err = cs.SignWithLabel(sigPriv, "LeafNodeTBS", tbs); err != nil {
		t.Fatal(err)
	}
	return leaf, encPriv, sigPriv
}

// newGroup returns a tree of n members added one by one (all unmerged)
// and their private states.
func newGroup(t testing.TB, cs *suite.Suite, n int, random ...io.Reader) (*tree.Tree, []*member) {
	t.Helper()
	var tr *tree.Tree
	var members []*member
	for i := range n {
		leaf, encPriv, sigPriv := newLeaf(t, cs, fmt.Sprint("member ", i), random...)
		var l treemath.Leaf
		if tr == nil {
			var err error
			if tr, err = tree.FromWire(wire.RatchetTree{{Type: wire.NodeTypeLeaf, Leaf: leaf}}); err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if l, err = tr.Add(leaf); err != nil {
				t.Fatal(err)
			}
		}
		members = append(members, &member{priv: NewPrivate(cs, l, encPriv), sigPriv: sigPriv})
	}
	return tr, members
}

// commit makes an UpdatePath from members[from] over tr, has every other
// member process it, and returns the new tree. excluded leaves do not get
// the path.
func commit(t *testing.T, cs *suite.Suite, tr *tree.Tree, members []*member, from int, excluded []treemath.Leaf) *tree.Tree {
	t.Helper()
	c := members[from]
	staged := tr.Clone()
	path, err := Create(cs, staged, c.priv, LeafSigner{Template: tr.Leaf(c.priv.Leaf()), SignaturePriv: c.sigPriv, GroupID: groupID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := staged.TreeHash(cs)
	if err := path.Encrypt(staged, ctx, excluded, nil); err != nil {
		t.Fatal(err)
	}
	if err := staged.VerifyParentHashes(cs); err != nil {
		t.Fatalf("committer's tree: %v", err)
	}
	for i, m := range members {
		if i == from {
			continue
		}
		theirs := tr.Clone()
		if err := Merge(cs, theirs, c.priv.Leaf(), path.UpdatePath, groupID); err != nil {
			t.Fatalf("member %d: merge: %v", i, err)
		}
		_, commitSecret, err := m.priv.Decrypt(theirs, c.priv.Leaf(), path.UpdatePath, ctx, excluded)
		if contains(excluded, m.priv.Leaf()) {
			if err == nil {
				t.Fatalf("excluded member %d decrypted the path", i)
			}
			continue
		}
		if err != nil {
			t.Fatalf("member %d: decrypt: %v", i, err)
		}
		if !bytes.Equal(commitSecret, path.CommitSecret) {
			t.Fatalf("member %d: commit secret differs", i)
		}
		if err := m.priv.Check(theirs); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	c.priv = path.Private
	return staged
}

func contains(ls []treemath.Leaf, l treemath.Leaf) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

func TestCommitsAgree(t *testing.T) {
	for _, id := range []suite.ID{1, 2, 3} {
		cs, err := suite.New(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(cs.String(), func(t *testing.T) {
			for _, n := range []int{1, 2, 3, 5, 8} {
				tr, members := newGroup(t, cs, n)
				for from := range members {
					tr = commit(t, cs, tr, members, from, nil)
				}
				for from := range members {
					if err := members[from].priv.Check(tr); err != nil {
						t.Fatalf("n=%d member %d: %v", n, from, err)
					}
				}
				// A commit that adds a member excludes the new leaf.
				if n > 1 {
					leaf, encPriv, sigPriv := newLeaf(t, cs, "new")
					l, err := tr.Add(leaf)
					if err != nil {
						t.Fatal(err)
					}
					members = append(members, &member{priv: NewPrivate(cs, l, encPriv), sigPriv: sigPriv})
					commit(t, cs, tr, members, 0, []treemath.Leaf{l})
				}
			}
		})
	}
}

func TestJoinAt(t *testing.T) {
	cs, _ := suite.New(1)
	tr, members := newGroup(t, cs, 5)
	tr = commit(t, cs, tr, members, 0, nil)
	leaf, encPriv, _ := newLeaf(t, cs, "joiner")
	l, err := tr.Add(leaf)
	if err != nil {
		t.Fatal(err)
	}
	path, err := Create(cs, tr, members[2].priv, LeafSigner{Template: tr.Leaf(2), SignaturePriv: members[2].sigPriv, GroupID: groupID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x, secret, ok := path.SecretFor(l)
	if !ok {
		t.Fatal("no path node above the joiner")
	}
	p := NewPrivate(cs, l, encPriv)
	if err := p.JoinAt(tr, 2, x, secret); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(tr); err != nil {
		t.Fatal(err)
	}
	if len(p.Nodes()) < 2 {
		t.Fatalf("joiner holds keys for %v only", p.Nodes())
	}
	secret[0] ^= 1
	if err := NewPrivate(cs, l, encPriv).JoinAt(tr, 2, x, secret); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("wrong path secret: %v, want ErrKeyMismatch", err)
	}
}

// TestBadPathsRefused changes one thing at a time in a valid UpdatePath
// and checks that Merge or Decrypt refuses it and leaves the private state
// as it was.
func TestBadPathsRefused(t *testing.T) {
	cs, _ := suite.New(1)
	tr, members := newGroup(t, cs, 4)
	tr = commit(t, cs, tr, members, 3, nil)
	staged := tr.Clone()
	path, err := Create(cs, staged, members[0].priv, LeafSigner{Template: tr.Leaf(0), SignaturePriv: members[0].sigPriv, GroupID: groupID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := []byte("context")
	if err := path.Encrypt(staged, ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	good, _ := wire.Marshal(path.UpdatePath)
	fresh := func() *wire.UpdatePath {
		var up wire.UpdatePath
		if err := wire.Unmarshal(good, &up); err != nil {
			t.Fatal(err)
		}
		return &up
	}
	tests := []struct {
		name   string
		change func(up *wire.UpdatePath)
		ctx    []byte
		want   error
	}{
		{"leaf signature", func(up *wire.UpdatePath) { up.LeafNode.Signature[3] ^= 1 }, ctx, ErrPath},
		{"leaf source", func(up *wire.UpdatePath) { up.LeafNode.Source = wire.LeafNodeSourceUpdate }, ctx, ErrPath},
		{"reused key", func(up *wire.UpdatePath) { up.Nodes[1].EncryptionKey = tr.EncryptionKey(0) }, ctx, ErrPath},
		{"parent hash", func(up *wire.UpdatePath) { _, up.Nodes[1].EncryptionKey, _ = cs.GenerateHPKEKey(nil) }, ctx, ErrParentHash},
		{"path length", func(up *wire.UpdatePath) { up.Nodes = up.Nodes[:1] }, ctx, ErrPath},
		{"ciphertext", func(up *wire.UpdatePath) { up.Nodes[1].EncryptedPathSecret[0].Ciphertext[0] ^= 1 }, ctx, ErrDecrypt},
		{"ciphertext count", func(up *wire.UpdatePath) {
			up.Nodes[1].EncryptedPathSecret = append(up.Nodes[1].EncryptedPathSecret, up.Nodes[1].EncryptedPathSecret[0])
		}, ctx, ErrPath},
		{"group context", func(*wire.UpdatePath) {}, []byte("other"), ErrDecrypt},
	}
	receiver := members[2]
	before := receiver.priv.Nodes()
	for _, tc := range tests {
		up := fresh()
		tc.change(up)
		theirs := tr.Clone()
		err := Merge(cs, theirs, 0, up, groupID)
		if err == nil {
			_, _, err = receiver.priv.Decrypt(theirs, 0, up, tc.ctx, nil)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err := receiver.priv.Check(tr); err != nil || len(receiver.priv.Nodes()) != len(before) {
			t.Errorf("%s: private state changed: %v", tc.name, err)
		}
	}
	// The untouched path still works.
	theirs := tr.Clone()
	if err := Merge(cs, theirs, 0, fresh(), groupID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := receiver.priv.Decrypt(theirs, 0, fresh(), ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPrune(t *testing.T) {
	cs, _ := suite.New(1)
	tr, members := newGroup(t, cs, 4)
	tr = commit(t, cs, tr, members, 0, nil)
	p := members[1].priv
	if len(p.Nodes()) != 3 {
		t.Fatalf("member 1 holds %v", p.Nodes())
	}
	if err := tr.Remove(0); err != nil {
		t.Fatal(err)
	}
	p.Prune(tr)
	if got := p.Nodes(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("after removing leaf 0, member 1 holds %v, want [2]", got)
	}
	if err := p.Check(tr); err != nil {
		t.Fatal(err)
	}
}
