package tree

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

type sha256Hasher struct{}

func (sha256Hasher) Hash(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func leaf(id byte) *wire.Node {
	return &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &wire.LeafNode{
		EncryptionKey: []byte{id}, SignatureKey: []byte{id},
		Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte{id}},
		Source:     wire.LeafNodeSourceKeyPackage,
	}}
}

func parent(id byte, unmerged ...uint32) *wire.Node {
	return &wire.Node{Type: wire.NodeTypeParent, Parent: &wire.ParentNode{EncryptionKey: []byte{id}, UnmergedLeaves: unmerged}}
}

func TestFromWireShape(t *testing.T) {
	tests := []struct {
		name  string
		nodes wire.RatchetTree
		width int // 0: must fail
	}{
		{"one leaf", wire.RatchetTree{leaf(1)}, 1},
		{"three leaves padded", wire.RatchetTree{leaf(1), nil, leaf(2), nil, leaf(3)}, 7},
		{"empty", wire.RatchetTree{}, 0},
		{"last blank", wire.RatchetTree{leaf(1), nil, nil}, 0},
		{"parent at leaf position", wire.RatchetTree{parent(1)}, 0},
		{"leaf at parent position", wire.RatchetTree{leaf(1), leaf(2), leaf(3)}, 0},
		{"parent type without a ParentNode", wire.RatchetTree{leaf(1), {Type: wire.NodeTypeParent, Leaf: leaf(2).Leaf}, leaf(3)}, 0},
		{"unmerged leaf outside subtree", wire.RatchetTree{leaf(1), parent(9, 2), leaf(2), nil, leaf(3)}, 0},
		{"unmerged leaf beyond tree", wire.RatchetTree{leaf(1), parent(9, 7), leaf(2)}, 0},
	}
	for _, tt := range tests {
		tr, err := FromWire(tt.nodes)
		if tt.width == 0 {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: error %v, want ErrMalformed", tt.name, err)
			}
			continue
		}
		if err != nil || tr.Width() != tt.width {
			t.Errorf("%s: %v, width %d", tt.name, err, tr.Width())
			continue
		}
		if got := tr.Wire(); len(got) != len(tt.nodes) {
			t.Errorf("%s: Wire() has %d nodes, want %d", tt.name, len(got), len(tt.nodes))
		}
	}
}

func TestResolution(t *testing.T) {
	//            3 (blank)
	//     1 [um 1]         5 (blank)
	//   0      2        4      6 (blank)
	tr, err := FromWire(wire.RatchetTree{leaf(1), parent(9, 1), leaf(2), nil, leaf(3)})
	if err != nil {
		t.Fatal(err)
	}
	for x, want := range map[treemath.Node][]treemath.Node{
		0: {0}, 1: {1, 2}, 3: {1, 2, 4}, 5: {4}, 6: nil,
	} {
		if got := tr.Resolution(x); !slices.Equal(got, want) {
			t.Errorf("Resolution(%d) = %v, want %v", x, got, want)
		}
	}
}

func TestAddUpdateRemove(t *testing.T) {
	tr, _ := FromWire(wire.RatchetTree{leaf(1), parent(9), leaf(2)})
	// Full: Add extends to 4 leaves; the new leaf's path has no non-blank
	// parent but 3 (blank root).
	l, err := tr.Add(leaf(3).Leaf)
	if err != nil || l != 2 || tr.LeafCount() != 4 {
		t.Fatalf("Add: leaf %d, %v, %d leaves", l, err, tr.LeafCount())
	}
	tr.nodes[3] = parent(8)
	// Remove leaf 0 leaves a hole that the next Add fills, and both
	// non-blank parents on its path then list it, in order.
	if err := tr.Remove(0); err != nil {
		t.Fatal(err)
	}
	if tr.nodes[1] != nil || tr.nodes[3] != nil {
		t.Fatal("Remove did not blank the direct path")
	}
	tr.nodes[3] = parent(8, 2)
	if l, _ := tr.Add(leaf(4).Leaf); l != 0 {
		t.Fatalf("Add went to leaf %d, want 0", l)
	}
	if got := tr.nodes[3].Parent.UnmergedLeaves; !slices.Equal(got, []uint32{0, 2}) {
		t.Fatalf("unmerged leaves of the root %v, want [0 2]", got)
	}
	if err := tr.Update(1, leaf(5).Leaf); err != nil || tr.nodes[3] != nil {
		t.Fatalf("Update: %v, root %v", err, tr.nodes[3])
	}
	// Removing the last two leaves truncates back to one leaf... of two.
	_ = tr.Remove(2)
	if tr.LeafCount() != 2 {
		t.Fatalf("after removing leaf 2: %d leaves, want 2", tr.LeafCount())
	}
	if err := tr.Remove(3); !errors.Is(err, ErrBlankLeaf) {
		t.Fatalf("removing a leaf outside the tree: %v", err)
	}
	if err := tr.Update(1<<31+1, leaf(6).Leaf); !errors.Is(err, ErrBlankLeaf) {
		t.Fatalf("updating leaf 2^31+1: %v", err)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	tr, _ := FromWire(wire.RatchetTree{leaf(1), parent(9, 1), leaf(2)})
	before, _ := tr.TreeHash(sha256Hasher{})
	c := tr.Clone()
	if _, err := c.Add(leaf(3).Leaf); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(0, leaf(4).Leaf); err != nil {
		t.Fatal(err)
	}
	_ = c.Remove(1)
	after, _ := tr.TreeHash(sha256Hasher{})
	if tr.Width() != 3 || tr.nodes[1] == nil || !slices.Equal(tr.nodes[1].Parent.UnmergedLeaves, []uint32{1}) ||
		tr.Leaf(1) == nil || tr.Leaf(0).EncryptionKey[0] != 1 || !bytes.Equal(before, after) {
		t.Fatal("changing the clone changed the tree")
	}
}

func TestTreeHashesCoverEveryNode(t *testing.T) {
	tr, _ := FromWire(wire.RatchetTree{leaf(1), nil, leaf(2), nil, leaf(3)})
	hs, err := tr.TreeHashes(sha256Hasher{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := tr.TreeHash(sha256Hasher{})
	if len(hs) != 7 || string(hs[3]) != string(root) {
		t.Fatal("TreeHashes and TreeHash disagree")
	}
	for i, h := range hs {
		if len(h) != 32 {
			t.Fatalf("node %d has no hash", i)
		}
	}
}

func TestVerifyUnmergedLeaves(t *testing.T) {
	tests := []struct {
		name  string
		nodes wire.RatchetTree
		ok    bool
	}{
		{"listed at root and below", wire.RatchetTree{leaf(1), parent(8, 0), leaf(2), parent(9, 0), leaf(3)}, true},
		{"missing below", wire.RatchetTree{leaf(1), parent(8), leaf(2), parent(9, 0), leaf(3)}, false},
		{"blank parent below is fine", wire.RatchetTree{leaf(1), nil, leaf(2), parent(9, 0), leaf(3)}, true},
		{"blank unmerged leaf", wire.RatchetTree{nil, parent(8, 0), leaf(2)}, false},
		{"sorted", wire.RatchetTree{leaf(1), nil, leaf(2), parent(9, 0, 2), leaf(3)}, true},
		{"unsorted", wire.RatchetTree{leaf(1), nil, leaf(2), parent(9, 2, 0), leaf(3)}, false},
		{"duplicate", wire.RatchetTree{leaf(1), nil, leaf(2), parent(9, 0, 0), leaf(3)}, false},
	}
	for _, tt := range tests {
		tr, err := FromWire(tt.nodes)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if err := tr.VerifyUnmergedLeaves(); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestVerifyDistinctKeys(t *testing.T) {
	tr, _ := FromWire(wire.RatchetTree{leaf(1), parent(2), leaf(3)})
	if err := tr.VerifyDistinctKeys(); err != nil {
		t.Fatal(err)
	}
	tr, _ = FromWire(wire.RatchetTree{leaf(1), parent(1), leaf(3)})
	if err := tr.VerifyDistinctKeys(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("shared encryption key: %v", err)
	}
	l := leaf(3)
	l.Leaf.SignatureKey = []byte{1}
	tr, _ = FromWire(wire.RatchetTree{leaf(1), parent(2), l})
	if err := tr.VerifyDistinctKeys(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("shared signature key: %v", err)
	}
}

func TestChangesLeaveGivenNodesAlone(t *testing.T) {
	rt := wire.RatchetTree{leaf(1), parent(9), nil, nil, leaf(3)}
	before, _ := wire.Marshal(&rt)
	tr, _ := FromWire(rt)
	if _, err := tr.Add(leaf(2).Leaf); err != nil {
		t.Fatal(err)
	}
	if got := tr.Node(1).Parent.UnmergedLeaves; !slices.Equal(got, []uint32{1}) {
		t.Fatalf("unmerged leaves %v", got)
	}
	_ = tr.Update(0, leaf(4).Leaf)
	_ = tr.Remove(2)
	after, _ := wire.Marshal(&rt)
	if string(before) != string(after) {
		t.Fatal("changing the tree changed the nodes it was built from")
	}
}
