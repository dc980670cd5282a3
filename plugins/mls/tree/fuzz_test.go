package tree

import (
	"testing"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

type acceptAll struct{}

func (acceptAll) VerifyWithLabel([]byte, string, []byte, []byte) error { return nil }

// FuzzFromWire feeds decoded ratchet trees to FromWire and every read-only
// operation: none may panic, and a tree that FromWire accepts must give back
// the nodes it was built from.
func FuzzFromWire(f *testing.F) {
	for _, rt := range []wire.RatchetTree{
		{leaf(1)},
		{leaf(1), parent(9, 1), leaf(2), nil, leaf(3)},
		{leaf(1), parent(9, 1), nil, nil, leaf(3)}, // unmerged leaf 1 is blank
	} {
		b, err := wire.Marshal(&rt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var rt wire.RatchetTree
		if wire.Unmarshal(in, &rt) != nil {
			return
		}
		tr, err := FromWire(rt)
		if err != nil {
			return
		}
		if len(tr.Wire()) != len(rt) {
			t.Fatalf("Wire() has %d nodes, built from %d", len(tr.Wire()), len(rt))
		}
		for x := range tr.Width() {
			tr.Resolution(treemath.Node(x))
		}
		if _, err := tr.TreeHashes(sha256Hasher{}); err != nil {
			return
		}
		_ = tr.VerifyParentHashes(sha256Hasher{})
		_ = tr.VerifyLeafSignatures(acceptAll{}, []byte("g"))
		_ = tr.VerifyUnmergedLeaves()
		_ = tr.VerifyDistinctKeys()
		c := tr.Clone()
		if l := c.Leaf(0); l != nil {
			_ = c.Update(0, l)
			_ = c.Remove(0)
		}
		_, _ = c.Add(leaf(7).Leaf)
	})
}
