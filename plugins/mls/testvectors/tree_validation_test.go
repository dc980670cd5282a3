package testvectors

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("tree-validation", checkTreeValidation) }

// checkTreeValidation checks, for each tree, the resolution and the tree
// hash of every node, that every parent node is parent-hash valid, and that
// every leaf's signature verifies with the given group id.
func checkTreeValidation(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite uint16     `json:"cipher_suite"`
		Tree        hexBytes   `json:"tree"`
		GroupID     hexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []hexBytes `json:"tree_hashes"`
	}
	for i, v := range decodeCases[vector](t, data) {
		cs, err := suite.New(suite.ID(v.CipherSuite))
		if err != nil {
			rep.skip("unsupported cipher suite")
			continue
		}
		tr, ok := decodeTree(t, i, v.Tree)
		if !ok {
			continue
		}
		if tr.Width() != len(v.Resolutions) || tr.Width() != len(v.TreeHashes) {
			t.Errorf("case %d: tree of %d nodes, %d resolutions, %d tree hashes", i, tr.Width(), len(v.Resolutions), len(v.TreeHashes))
			continue
		}
		ok = true
		for x, want := range v.Resolutions {
			got := tr.Resolution(treemath.Node(x))
			if !slices.Equal(nodesToUint32(got), want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("case %d: resolution of node %d = %v, want %v", i, x, got, want)
				ok = false
			}
		}
		hashes, err := tr.TreeHashes(cs)
		if err != nil {
			t.Errorf("case %d: tree hashes: %v", i, err)
			continue
		}
		for x, want := range v.TreeHashes {
			if !bytes.Equal(hashes[x], want) {
				t.Errorf("case %d: tree hash of node %d = %x, want %x", i, x, hashes[x], want)
				ok = false
			}
		}
		if err := tr.VerifyParentHashes(cs); err != nil {
			t.Errorf("case %d: %v", i, err)
			ok = false
		}
		if err := tr.VerifyLeafSignatures(cs, v.GroupID); err != nil {
			t.Errorf("case %d: %v", i, err)
			ok = false
		}
		// Not asked by the vector format, but RFC 9420 requires them of
		// any tree a joiner accepts; the generators' trees must pass.
		if err := tr.VerifyUnmergedLeaves(); err != nil {
			t.Errorf("case %d: %v", i, err)
			ok = false
		}
		if err := tr.VerifyDistinctKeys(); err != nil {
			t.Errorf("case %d: %v", i, err)
			ok = false
		}
		if ok {
			rep.pass()
		}
	}
}

func nodesToUint32(xs []treemath.Node) []uint32 {
	out := make([]uint32, len(xs))
	for i, x := range xs {
		out[i] = uint32(x)
	}
	return out
}

// decodeTree decodes a serialized ratchet tree and builds a tree.Tree.
func decodeTree(t *testing.T, i int, b []byte) (*tree.Tree, bool) {
	t.Helper()
	var rt wire.RatchetTree
	if err := wire.Unmarshal(b, &rt); err != nil {
		t.Errorf("case %d: %v", i, err)
		return nil, false
	}
	tr, err := tree.FromWire(rt)
	if err != nil {
		t.Errorf("case %d: %v", i, err)
		return nil, false
	}
	return tr, true
}

// TestTreeValidationDetectsTampering shows that the tree-validation checks
// can fail: a changed parent hash, a changed parent key, a dropped unmerged
// leaf and a changed leaf signature are each caught.
func TestTreeValidationDetectsTampering(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "tree-validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	type vector struct {
		CipherSuite uint16   `json:"cipher_suite"`
		Tree        hexBytes `json:"tree"`
		GroupID     hexBytes `json:"group_id"`
	}
	cs, err := suite.New(1)
	if err != nil {
		t.Fatal(err)
	}
	tampered := map[string]bool{}
	for i, v := range decodeCases[vector](t, data) {
		if v.CipherSuite != 1 {
			continue
		}
		fresh := func() wire.RatchetTree {
			var rt wire.RatchetTree
			if err := wire.Unmarshal(v.Tree, &rt); err != nil {
				t.Fatal(err)
			}
			return rt
		}
		for x, n := range fresh() {
			if n == nil {
				continue
			}
			type change struct {
				name  string
				apply func(*wire.Node)
				leaf  bool
			}
			for _, c := range []change{
				{"parent hash", func(n *wire.Node) { n.Parent.ParentHash = append(n.Parent.ParentHash, 0) }, false},
				{"parent key", func(n *wire.Node) { n.Parent.EncryptionKey[0] ^= 1 }, false},
				{"unmerged leaf", func(n *wire.Node) { n.Parent.UnmergedLeaves = n.Parent.UnmergedLeaves[1:] }, false},
				{"leaf signature", func(n *wire.Node) { n.Leaf.Signature[0] ^= 1 }, true},
			} {
				if c.leaf != (n.Type == wire.NodeTypeLeaf) || (c.name == "unmerged leaf" && len(n.Parent.UnmergedLeaves) == 0) {
					continue
				}
				rt := fresh()
				c.apply(rt[x])
				tr, err := tree.FromWire(rt)
				if err != nil {
					t.Fatalf("case %d: %v", i, err)
				}
				if c.leaf {
					err = tr.VerifyLeafSignatures(cs, v.GroupID)
				} else {
					err = tr.VerifyParentHashes(cs)
				}
				if err == nil {
					t.Errorf("case %d: changing the %s of node %d went unnoticed", i, c.name, x)
				}
				tampered[c.name] = true
			}
		}
	}
	if len(tampered) != 4 {
		t.Fatalf("only %v were tried", tampered)
	}
}
