package testvectors

import (
	"testing"

	"github.com/strata-msg/strata/plugins/mls/treemath"
)

func init() { register("tree-math", checkTreeMath) }

// checkTreeMath checks the node count, the root, and every node's left and
// right child, parent and sibling (null where undefined).
func checkTreeMath(t *testing.T, data []byte, rep *report) {
	type vector struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    uint32    `json:"root"`
		Left    []*uint32 `json:"left"`
		Right   []*uint32 `json:"right"`
		Parent  []*uint32 `json:"parent"`
		Sibling []*uint32 `json:"sibling"`
	}
	for i, v := range decodeCases[vector](t, data) {
		n := v.NLeaves
		ok := treemath.Width(n) == v.NNodes && uint32(treemath.Root(n)) == v.Root
		if !ok {
			t.Errorf("case %d: n_leaves %d: width %d root %d, want %d %d", i, n, treemath.Width(n), treemath.Root(n), v.NNodes, v.Root)
		}
		for _, col := range []struct {
			name string
			want []*uint32
			f    func(treemath.Node) (treemath.Node, bool)
		}{
			{"left", v.Left, treemath.Left},
			{"right", v.Right, treemath.Right},
			{"parent", v.Parent, func(x treemath.Node) (treemath.Node, bool) { return treemath.Parent(x, n) }},
			{"sibling", v.Sibling, func(x treemath.Node) (treemath.Node, bool) { return treemath.Sibling(x, n) }},
		} {
			if uint32(len(col.want)) != v.NNodes {
				t.Errorf("case %d: %d %s entries for %d nodes", i, len(col.want), col.name, v.NNodes)
				ok = false
				continue
			}
			for x, want := range col.want {
				got, defined := col.f(treemath.Node(x))
				if defined != (want != nil) || (defined && uint32(got) != *want) {
					t.Errorf("case %d: n_leaves %d: %s(%d) = %d, %v; want %v", i, n, col.name, x, got, defined, fmtOpt(want))
					ok = false
				}
			}
		}
		if ok {
			rep.pass()
		}
	}
}

func fmtOpt(p *uint32) any {
	if p == nil {
		return "null"
	}
	return *p
}
