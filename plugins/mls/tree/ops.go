package tree

import (
	"fmt"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Clone returns a copy of t whose changes do not reach t, so that a change
// can be staged without touching the live tree. The copy shares t's nodes:
// a Tree never modifies a node once it is in the tree (changes replace
// nodes), and callers must not modify the nodes Node and Leaf return
// either. Cloning costs one pointer and one cached hash per node.
func (t *Tree) Clone() *Tree {
	c := &Tree{nodes: slices.Clone(t.nodes)}
	if t.hashes != nil {
		c.hashes = slices.Clone(t.hashes) // the hashes themselves are never modified
		c.hashFor = t.hashFor
	}
	return c
}

// Add puts leaf in the leftmost blank leaf, extending the tree to twice its
// leaves if none is blank, and adds that leaf to the unmerged list of every
// non-blank parent on its direct path (RFC 9420 §7.7, §12.1.1). It returns
// the leaf's index.
func (t *Tree) Add(leaf *wire.LeafNode) (treemath.Leaf, error) {
	n := t.LeafCount()
	l := treemath.Leaf(n)
	for i := range treemath.Leaf(n) {
		if t.nodes[i.Node()] == nil {
			l = i
			break
		}
	}
	if uint32(l) == n {
		if n >= 1<<31 {
			return 0, fmt.Errorf("mls/tree: add: the tree is full")
		}
		t.resize(int(treemath.Width(2 * n)))
	}
	cp := *leaf
	t.nodes[l.Node()] = &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &cp}
	t.touch(l.Node())
	for _, p := range treemath.DirectPath(l.Node(), t.LeafCount()) {
		if pn := t.nodes[p]; pn != nil {
			parent := *pn.Parent
			i, _ := slices.BinarySearch(parent.UnmergedLeaves, uint32(l))
			parent.UnmergedLeaves = slices.Insert(slices.Clone(parent.UnmergedLeaves), i, uint32(l))
			t.nodes[p] = &wire.Node{Type: wire.NodeTypeParent, Parent: &parent}
		}
	}
	return l, nil
}

// Update replaces the leaf at l and blanks its direct path (RFC 9420 §7.7,
// §12.1.2).
func (t *Tree) Update(l treemath.Leaf, leaf *wire.LeafNode) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: update of leaf %d", ErrBlankLeaf, l)
	}
	cp := *leaf
	t.nodes[l.Node()] = &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &cp}
	t.touch(l.Node())
	t.blankPath(l)
	return nil
}

// Remove blanks the leaf at l and its direct path, then truncates the tree
// while its right half holds no non-blank leaf (RFC 9420 §7.7, §12.1.3).
func (t *Tree) Remove(l treemath.Leaf) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: removal of leaf %d", ErrBlankLeaf, l)
	}
	t.nodes[l.Node()] = nil
	t.touch(l.Node())
	t.blankPath(l)
	t.truncate()
	return nil
}

// blankPath blanks the direct path of l and forgets its nodes' hashes.
func (t *Tree) blankPath(l treemath.Leaf) {
	for _, p := range treemath.DirectPath(l.Node(), t.LeafCount()) {
		t.nodes[p] = nil
	}
	t.touch(l.Node())
}

// truncate halves the tree while the right half has no non-blank leaf and
// more than one leaf remains.
func (t *Tree) truncate() {
	for n := t.LeafCount(); n > 1; n /= 2 {
		for l := n / 2; l < n; l++ {
			if t.nodes[treemath.Leaf(l).Node()] != nil {
				return
			}
		}
		t.resize(int(treemath.Width(n / 2)))
	}
}

// Apply applies an Add, Update or Remove proposal sent by the member at
// leaf sender. Other proposal types do not change the tree and return an
// error.
func (t *Tree) Apply(p *wire.Proposal, sender treemath.Leaf) error {
	switch p.Type {
	case wire.ProposalAdd:
		if p.Add == nil {
			return fmt.Errorf("mls/tree: Add proposal without its body")
		}
		_, err := t.Add(&p.Add.KeyPackage.LeafNode)
		return err
	case wire.ProposalUpdate:
		if p.Update == nil {
			return fmt.Errorf("mls/tree: Update proposal without its body")
		}
		return t.Update(sender, &p.Update.LeafNode)
	case wire.ProposalRemove:
		return t.Remove(treemath.Leaf(p.Remove.Removed))
	}
	return fmt.Errorf("mls/tree: proposal type %d does not change the tree", p.Type)
}
