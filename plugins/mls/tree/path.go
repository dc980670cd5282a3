package tree

import (
	"bytes"
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// ResolutionExcluding returns the resolution of node x as if the leaves in
// excluded were blank and absent from every unmerged list: the set an
// UpdatePath encrypts to when excluded holds the leaves its Commit adds
// (RFC 9420 §7.6, §12.4.2).
func (t *Tree) ResolutionExcluding(x treemath.Node, excluded []treemath.Leaf) []treemath.Node {
	if len(excluded) == 0 {
		return t.Resolution(x)
	}
	ex := make(map[uint32]bool, len(excluded))
	for _, l := range excluded {
		ex[uint32(l)] = true
	}
	return t.appendResolution(nil, x, ex)
}

// FilteredDirectPath returns the filtered direct path of leaf l, bottom up,
// and the copath child of each of its nodes (RFC 9420 §4.1.2): the direct
// path without the nodes whose child off the path has an empty
// resolution.
func (t *Tree) FilteredDirectPath(l treemath.Leaf) (path, copath []treemath.Node) {
	n := t.LeafCount()
	x := l.Node()
	for _, p := range treemath.DirectPath(x, n) {
		sib, _ := treemath.Sibling(x, n)
		if t.hasResolution(sib) {
			path = append(path, p)
			copath = append(copath, sib)
		}
		x = p
	}
	return path, copath
}

// ApplyPath merges the public part of an UpdatePath from leaf l (RFC 9420
// §7.5, §12.4.2): it blanks l's direct path, puts a parent node with the
// given encryption key and an empty unmerged list at each node of l's
// filtered direct path (keys[i] for the i-th node, bottom up; the filtered
// direct path is computed before the path is blanked, so the caller must
// pass as many keys as FilteredDirectPath returned nodes), and sets each
// node's parent_hash top down (§7.9). It returns the parent hash the new
// leaf must carry. The leaf itself is left for SetLeaf.
func (t *Tree) ApplyPath(l treemath.Leaf, keys [][]byte, h Hasher) (leafParentHash []byte, err error) {
	if t.Leaf(l) == nil {
		return nil, fmt.Errorf("%w: path from leaf %d", ErrBlankLeaf, l)
	}
	path, copath := t.FilteredDirectPath(l)
	if len(keys) != len(path) {
		return nil, fmt.Errorf("%w: path of %d nodes for a filtered direct path of %d", ErrMalformed, len(keys), len(path))
	}
	t.blankPath(l)
	for i, p := range path {
		t.nodes[p] = &wire.Node{Type: wire.NodeTypeParent, Parent: &wire.ParentNode{EncryptionKey: keys[i]}}
	}
	// Top down: the parent_hash of path[i] is the parent hash of path[i+1]
	// over the copath child of path[i+1]; the root of the path keeps an
	// empty one; the leaf gets the parent hash of path[0].
	var above []byte
	for i := len(path) - 1; i >= 0; i-- {
		// path[i] changes (touched by blankPath above); its copath
		// child's subtree, whose hash parentHash needs, does not.
		t.nodes[path[i]].Parent.ParentHash = above
		if above, err = t.parentHash(h, path[i], copath[i]); err != nil {
			return nil, err
		}
	}
	return above, nil
}

// hasResolution reports whether the resolution of x is not empty: whether
// x or a node below it is not blank. It stops at the first such node, so a
// subtree whose leftmost leaf is set costs O(log n).
func (t *Tree) hasResolution(x treemath.Node) bool {
	if t.Node(x) != nil {
		return true
	}
	left, ok := treemath.Left(x)
	if !ok {
		return false
	}
	right, _ := treemath.Right(x)
	return t.hasResolution(left) || t.hasResolution(right)
}

// SetLeaf replaces the leaf at l without touching its direct path, as the
// last step of merging an UpdatePath.
func (t *Tree) SetLeaf(l treemath.Leaf, leaf *wire.LeafNode) error {
	if uint32(l) >= t.LeafCount() {
		return fmt.Errorf("%w: leaf %d outside a tree of %d leaves", ErrBlankLeaf, l, t.LeafCount())
	}
	cp := *leaf
	t.nodes[l.Node()] = &wire.Node{Type: wire.NodeTypeLeaf, Leaf: &cp}
	t.touch(l.Node())
	return nil
}

// HasEncryptionKey reports whether any non-blank node holds key as its
// encryption key.
func (t *Tree) HasEncryptionKey(key []byte) bool {
	for _, node := range t.nodes {
		switch {
		case node == nil:
		case node.Type == wire.NodeTypeParent && bytes.Equal(node.Parent.EncryptionKey, key),
			node.Type == wire.NodeTypeLeaf && bytes.Equal(node.Leaf.EncryptionKey, key):
			return true
		}
	}
	return false
}

// FirstHeldEncryptionKey returns the index in keys of the first key that
// a non-blank node holds as its encryption key, or -1 if none is in the
// tree. It reads the tree once, however many keys it is given.
func (t *Tree) FirstHeldEncryptionKey(keys [][]byte) int {
	want := make(map[string]int, len(keys))
	for i := len(keys) - 1; i >= 0; i-- {
		want[string(keys[i])] = i
	}
	first := -1
	for x, node := range t.nodes {
		if node == nil {
			continue
		}
		if i, ok := want[string(t.EncryptionKey(treemath.Node(x)))]; ok && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

// EncryptionKey returns the encryption key of node x, or nil if it is
// blank.
func (t *Tree) EncryptionKey(x treemath.Node) []byte {
	node := t.Node(x)
	switch {
	case node == nil:
		return nil
	case node.Type == wire.NodeTypeParent:
		return node.Parent.EncryptionKey
	default:
		return node.Leaf.EncryptionKey
	}
}
