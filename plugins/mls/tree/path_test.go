package tree

import (
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// sparseTree returns a tree of 8 leaves with leaves 1, 2, 3 and 6 blank
// and one parent node (5, over leaves 2 and 3) set.
func sparseTree(t *testing.T) *Tree {
	t.Helper()
	leaf := func(b byte) *wire.Node {
		return &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &wire.LeafNode{
			EncryptionKey: []byte{b}, SignatureKey: []byte{b}, Source: wire.LeafNodeSourceKeyPackage,
			Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte{b}},
		}}
	}
	rt := make(wire.RatchetTree, 15)
	for _, l := range []int{0, 4, 5, 7} {
		rt[2*l] = leaf(byte(l))
	}
	tr, err := FromWire(rt)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestFilteredDirectPath(t *testing.T) {
	tr := sparseTree(t)
	tests := []struct {
		leaf         treemath.Leaf
		path, copath []treemath.Node
	}{
		// Leaf 0: node 1's other child (leaf 1) and node 3's (node 5, leaves 2-3) are empty.
		{0, []treemath.Node{7}, []treemath.Node{11}},
		// Leaf 4: sibling leaf 5 is there; node 11's other child (leaves 6-7) holds leaf 7.
		{4, []treemath.Node{9, 11, 7}, []treemath.Node{10, 13, 3}},
		{7, []treemath.Node{11, 7}, []treemath.Node{9, 3}},
	}
	for _, tc := range tests {
		path, copath := tr.FilteredDirectPath(tc.leaf)
		if !slices.Equal(path, tc.path) || !slices.Equal(copath, tc.copath) {
			t.Errorf("leaf %d: path %v copath %v, want %v %v", tc.leaf, path, copath, tc.path, tc.copath)
		}
	}
}

func TestApplyPathLength(t *testing.T) {
	tr := sparseTree(t)
	if _, err := tr.ApplyPath(4, [][]byte{{1}, {2}}, fakeHash{}); err == nil {
		t.Fatal("a path of 2 keys for a filtered direct path of 3 was accepted")
	}
	if _, err := tr.ApplyPath(1, nil, fakeHash{}); err == nil {
		t.Fatal("a path from a blank leaf was accepted")
	}
	ph, err := tr.ApplyPath(4, [][]byte{{41}, {42}, {43}}, fakeHash{})
	if err != nil || len(ph) == 0 {
		t.Fatalf("ApplyPath: %v", err)
	}
	for i, x := range []treemath.Node{9, 11, 7} {
		n := tr.Node(x)
		if n == nil || n.Parent.EncryptionKey[0] != byte(41+i) || len(n.Parent.UnmergedLeaves) != 0 {
			t.Fatalf("node %d after ApplyPath: %+v", x, n)
		}
	}
	if tr.Node(7).Parent.ParentHash != nil {
		t.Fatal("the root of the path has a parent hash")
	}
	if !tr.HasEncryptionKey([]byte{42}) || tr.HasEncryptionKey([]byte{99}) {
		t.Fatal("HasEncryptionKey")
	}
	if got := tr.ResolutionExcluding(13, []treemath.Leaf{7}); len(got) != 0 {
		t.Fatalf("resolution of node 13 without leaf 7: %v", got)
	}
}

type fakeHash struct{}

func (fakeHash) Hash(b []byte) []byte {
	var s byte
	for _, c := range b {
		s = s*31 + c
	}
	return []byte{s, 1}
}
