// Package tree is the MLS ratchet tree (RFC 9420 §4, §7): the public tree a
// group's members share, with node resolution, tree hashes, parent-hash and
// leaf-signature validation, and the changes the Add, Update and Remove
// proposals make to it.
//
// A Tree holds public data only; private keys (TreeKEM) are not part of
// this package. A Tree never modifies a node it was given or handed out:
// changes replace nodes, so clones share nodes. A Tree is not safe for
// concurrent use (reads fill its tree-hash cache).
package tree

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Errors that validation returns, wrapped with details.
var (
	// ErrMalformed means a ratchet tree does not have the shape RFC 9420
	// §12.4.3.3 requires (empty, last node blank, a leaf at an odd index or
	// a parent at an even one, an unmerged leaf that is not below its
	// parent).
	ErrMalformed = errors.New("mls/tree: malformed ratchet tree")
	// ErrParentHash means a non-blank parent node is not parent-hash valid
	// with respect to exactly one descendant (RFC 9420 §7.9.2).
	ErrParentHash = errors.New("mls/tree: parent hash invalid")
	// ErrLeafSignature means a leaf node's signature does not verify.
	ErrLeafSignature = errors.New("mls/tree: leaf signature invalid")
	// ErrBlankLeaf means an operation named a blank or absent leaf.
	ErrBlankLeaf = errors.New("mls/tree: blank leaf")
)

// Hasher is the cipher suite's hash function.
type Hasher interface {
	Hash(data []byte) []byte
}

// Verifier checks a signature made with SignWithLabel (RFC 9420 §5.1.2).
// It must be safe for concurrent use (VerifyLeafSignatures calls it from
// several goroutines).
type Verifier interface {
	VerifyWithLabel(pub []byte, label string, content, signature []byte) error
}

// Tree is a ratchet tree: 2^d leaves (d >= 0) stored as an array in node
// order, nil for blank nodes.
//
// A Tree caches the tree hash of every node it has computed, and a change
// forgets only the hashes of the changed node and its ancestors, so that
// after a Commit (a leaf and its direct path changed) the tree hash costs
// O(log n) hashes instead of O(n). Because the cache is filled by reads,
// a Tree is not safe for concurrent use even by readers alone.
type Tree struct {
	nodes []*wire.Node
	// hashes[x] is the tree hash of node x under hashFor, or nil if not
	// known; hashes has len(nodes) entries or is nil.
	hashes  [][]byte
	hashFor Hasher
}

// FromWire builds a tree from the ratchet_tree extension's node list (RFC
// 9420 §12.4.3.3): the last node must be non-blank, each node's type must
// match its position, every unmerged leaf must lie below the parent that
// lists it; the list is then padded with blanks to 2^(d+1)-1 nodes. The
// tree keeps the given nodes and never modifies them.
func FromWire(rt wire.RatchetTree) (*Tree, error) {
	n := len(rt)
	if n == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrMalformed)
	}
	if n > int(treemath.Width(1<<31)) {
		return nil, fmt.Errorf("%w: %d nodes", ErrMalformed, n)
	}
	if rt[n-1] == nil {
		return nil, fmt.Errorf("%w: last node is blank", ErrMalformed)
	}
	leaves := uint32(1)
	for int(treemath.Width(leaves)) < n {
		leaves *= 2
	}
	t := &Tree{nodes: make([]*wire.Node, treemath.Width(leaves))}
	copy(t.nodes, rt)
	for i, node := range t.nodes {
		if node == nil {
			continue
		}
		x := treemath.Node(i)
		switch {
		case x.IsLeaf() && (node.Type != wire.NodeTypeLeaf || node.Leaf == nil),
			!x.IsLeaf() && (node.Type != wire.NodeTypeParent || node.Parent == nil):
			return nil, fmt.Errorf("%w: node %d has type %d", ErrMalformed, i, node.Type)
		}
		if node.Type == wire.NodeTypeParent {
			for _, l := range node.Parent.UnmergedLeaves {
				if uint64(l) >= uint64(leaves) || !treemath.InSubtree(treemath.Leaf(l).Node(), x) {
					return nil, fmt.Errorf("%w: node %d lists unmerged leaf %d outside its subtree", ErrMalformed, i, l)
				}
			}
		}
	}
	return t, nil
}

// Wire returns the tree as the ratchet_tree extension carries it: trailing
// blank nodes dropped.
func (t *Tree) Wire() wire.RatchetTree {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1] == nil {
		end--
	}
	return wire.RatchetTree(append([]*wire.Node(nil), t.nodes[:end]...))
}

// LeafCount returns the number of leaves, blank ones included.
func (t *Tree) LeafCount() uint32 { return uint32(len(t.nodes)+1) / 2 }

// Width returns the number of nodes.
func (t *Tree) Width() int { return len(t.nodes) }

// Node returns node x, or nil if it is blank or outside the tree.
func (t *Tree) Node(x treemath.Node) *wire.Node {
	if int(x) >= len(t.nodes) {
		return nil
	}
	return t.nodes[x]
}

// Leaf returns the leaf node at l, or nil if it is blank or outside the
// tree.
func (t *Tree) Leaf(l treemath.Leaf) *wire.LeafNode {
	if uint32(l) >= t.LeafCount() {
		return nil
	}
	n := t.Node(l.Node())
	if n == nil {
		return nil
	}
	return n.Leaf
}

// Resolution returns the resolution of node x (RFC 9420 §4.1.1): x itself
// followed by its unmerged leaves if x is not blank; nothing for a blank
// leaf; the resolutions of both children for a blank parent.
func (t *Tree) Resolution(x treemath.Node) []treemath.Node {
	return t.appendResolution(nil, x, nil)
}

// appendResolution appends the resolution of x to dst, as if the leaves in
// excluded were blank and absent from every unmerged list.
func (t *Tree) appendResolution(dst []treemath.Node, x treemath.Node, excluded map[uint32]bool) []treemath.Node {
	node := t.Node(x)
	if node != nil && x.IsLeaf() {
		if l, _ := x.Leaf(); excluded[uint32(l)] {
			node = nil
		}
	}
	if node != nil {
		dst = append(dst, x)
		if node.Type == wire.NodeTypeParent {
			for _, l := range node.Parent.UnmergedLeaves {
				if !excluded[l] {
					dst = append(dst, treemath.Leaf(l).Node())
				}
			}
		}
		return dst
	}
	left, ok := treemath.Left(x)
	if !ok {
		return dst
	}
	right, _ := treemath.Right(x)
	dst = t.appendResolution(dst, left, excluded)
	return t.appendResolution(dst, right, excluded)
}

// TreeHash returns the tree hash of the whole tree (RFC 9420 §7.8), the
// value in GroupContext.tree_hash.
func (t *Tree) TreeHash(h Hasher) ([]byte, error) {
	return t.subtreeHash(h, treemath.Root(t.LeafCount()), nil, nil)
}

// TreeHashes returns the tree hash of every node, in node order.
func (t *Tree) TreeHashes(h Hasher) ([][]byte, error) {
	out := make([][]byte, len(t.nodes))
	if _, err := t.subtreeHash(h, treemath.Root(t.LeafCount()), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// cache returns the hash cache for h, emptied if it was filled under
// another hasher, or nil if h cannot be compared (then nothing is cached).
func (t *Tree) cache(h Hasher) [][]byte {
	if !reflect.TypeOf(h).Comparable() {
		return nil
	}
	if t.hashFor != h || len(t.hashes) != len(t.nodes) {
		t.hashes = make([][]byte, len(t.nodes))
		t.hashFor = h
	}
	return t.hashes
}

// touch forgets the cached tree hash of node x and of every node above it,
// the hashes a change of x makes stale.
func (t *Tree) touch(x treemath.Node) {
	if t.hashes == nil {
		return
	}
	if int(x) < len(t.hashes) {
		t.hashes[x] = nil
	}
	for _, p := range treemath.DirectPath(x, t.LeafCount()) {
		t.hashes[p] = nil
	}
}

// resize changes the node count to width, keeping the cached hashes of the
// nodes that remain (a subtree's hash does not depend on the tree's size).
func (t *Tree) resize(width int) {
	if width <= len(t.nodes) {
		t.nodes = t.nodes[:width]
		if t.hashes != nil {
			t.hashes = t.hashes[:width]
		}
		return
	}
	t.nodes = append(t.nodes, make([]*wire.Node, width-len(t.nodes))...)
	if t.hashes != nil {
		t.hashes = append(t.hashes, make([][]byte, width-len(t.hashes))...)
	}
}

// hasExcluded reports whether a leaf of excluded lies in the subtree of x.
func hasExcluded(x treemath.Node, excluded map[uint32]bool) bool {
	for l := range excluded {
		if treemath.InSubtree(treemath.Leaf(l).Node(), x) {
			return true
		}
	}
	return false
}

// subtreeHash returns the tree hash of x, treating the leaves in excluded
// as blank and absent from unmerged lists (RFC 9420 §7.9, "original sibling
// tree hash"). If memo is not nil, it records the hash of every node of the
// subtree. The hash of a subtree that holds no excluded leaf is taken from,
// or put into, the tree's cache.
func (t *Tree) subtreeHash(h Hasher, x treemath.Node, excluded map[uint32]bool, memo [][]byte) ([]byte, error) {
	var cache [][]byte
	if len(excluded) == 0 || !hasExcluded(x, excluded) {
		excluded = nil
		cache = t.cache(h)
	}
	if cache != nil && cache[x] != nil {
		if memo == nil {
			return cache[x], nil
		}
		// Every node's hash is wanted: walk the subtree, each hash
		// served from the cache.
		memo[x] = cache[x]
		if left, ok := treemath.Left(x); ok {
			right, _ := treemath.Right(x)
			if _, err := t.subtreeHash(h, left, nil, memo); err != nil {
				return nil, err
			}
			if _, err := t.subtreeHash(h, right, nil, memo); err != nil {
				return nil, err
			}
		}
		return cache[x], nil
	}
	var w codec.Writer
	node := t.Node(x)
	if x.IsLeaf() {
		l, _ := x.Leaf()
		if excluded[uint32(l)] {
			node = nil
		}
		w.Uint8(uint8(wire.NodeTypeLeaf))
		w.Uint32(uint32(l))
		w.Optional(node != nil, func(w *codec.Writer) { node.Leaf.Encode(w) })
	} else {
		left, _ := treemath.Left(x)
		right, _ := treemath.Right(x)
		lh, err := t.subtreeHash(h, left, excluded, memo)
		if err != nil {
			return nil, err
		}
		rh, err := t.subtreeHash(h, right, excluded, memo)
		if err != nil {
			return nil, err
		}
		w.Uint8(uint8(wire.NodeTypeParent))
		w.Optional(node != nil, func(w *codec.Writer) {
			p := *node.Parent
			if len(excluded) > 0 {
				var kept []uint32
				for _, l := range p.UnmergedLeaves {
					if !excluded[l] {
						kept = append(kept, l)
					}
				}
				p.UnmergedLeaves = kept
			}
			p.Encode(w)
		})
		w.Opaque(lh)
		w.Opaque(rh)
	}
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls/tree: tree hash input of node %d: %w", x, err)
	}
	sum := h.Hash(w.Bytes())
	if memo != nil {
		memo[x] = sum
	}
	if cache != nil {
		cache[x] = sum
	}
	return sum, nil
}

// parentHash returns the parent hash of parent node p with respect to its
// child on the side away from copath child s (RFC 9420 §7.9):
// Hash(ParentHashInput{p.encryption_key, p.parent_hash, original tree hash of s}).
func (t *Tree) parentHash(h Hasher, p, s treemath.Node) ([]byte, error) {
	pn := t.nodes[p].Parent
	excluded := make(map[uint32]bool, len(pn.UnmergedLeaves))
	for _, l := range pn.UnmergedLeaves {
		excluded[l] = true
	}
	sh, err := t.subtreeHash(h, s, excluded, nil)
	if err != nil {
		return nil, err
	}
	var w codec.Writer
	w.Opaque(pn.EncryptionKey)
	w.Opaque(pn.ParentHash)
	w.Opaque(sh)
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls/tree: parent hash input of node %d: %w", p, err)
	}
	return h.Hash(w.Bytes()), nil
}
