// Package treemath is the array arithmetic of MLS ratchet trees (RFC 9420
// §4.1 and Appendix C).
//
// A tree with n leaves (n a power of two, as RFC 9420 keeps it) is stored as
// an array of 2n-1 nodes in in-order: leaf i at node index 2i, parents at odd
// indices, and a node's level is the number of trailing one bits of its
// index. Leaf and node indices have distinct types so that one cannot be
// passed for the other, a mistake interop testing has found more than once.
//
// Functions take the number of leaves n where the answer depends on the
// tree's size; n must be at least 1 and at most 1<<31. No function panics:
// a question without an answer (the parent of the root, a leaf's children)
// returns false.
package treemath

import "math/bits"

// Node is an index into the array of a ratchet tree's nodes.
type Node uint32

// Leaf is the index of a leaf among the leaves (leaf i is node 2i).
type Leaf uint32

// Node returns the node index of leaf l; l must be below 1<<31.
func (l Leaf) Node() Node { return Node(2 * l) }

// IsLeaf reports whether x is a leaf node.
func (x Node) IsLeaf() bool { return x&1 == 0 }

// Leaf returns the leaf index of x, and false if x is not a leaf.
func (x Node) Leaf() (Leaf, bool) {
	if !x.IsLeaf() {
		return 0, false
	}
	return Leaf(x / 2), true
}

// Level returns the level of x in the tree: 0 for leaves, and the number of
// trailing one bits of the index for parents.
func Level(x Node) int { return bits.TrailingZeros32(^uint32(x)) }

// Width returns the number of nodes of a tree with n leaves: 2(n-1)+1, or 0
// when n is 0.
func Width(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root returns the root of a tree with n leaves.
func Root(n uint32) Node {
	w := Width(n)
	if w == 0 {
		return 0
	}
	return Node(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// Left returns the left child of x, and false if x is a leaf.
func Left(x Node) (Node, bool) {
	k := Level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ Node(1)<<(k-1), true
}

// Right returns the right child of x, and false if x is a leaf.
func Right(x Node) (Node, bool) {
	k := Level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ Node(3)<<(k-1), true
}

// inTree reports whether x is a node of a tree with n leaves.
func inTree(x Node, n uint32) bool { return uint32(x) < Width(n) }

// Parent returns the parent of x in a tree with n leaves, and false if x is
// the root or outside the tree.
func Parent(x Node, n uint32) (Node, bool) {
	if !inTree(x, n) || x == Root(n) {
		return 0, false
	}
	k := Level(x)
	b := (x >> (k + 1)) & 1
	return (x | Node(1)<<k) ^ (b << (k + 1)), true
}

// Sibling returns the other child of x's parent in a tree with n leaves,
// and false if x is the root or outside the tree.
func Sibling(x Node, n uint32) (Node, bool) {
	p, ok := Parent(x, n)
	if !ok {
		return 0, false
	}
	if x < p {
		return Right(p)
	}
	return Left(p)
}

// DirectPath returns the parents of x from its parent up to the root, in a
// tree with n leaves (RFC 9420 §4.1). It is empty for the root.
func DirectPath(x Node, n uint32) []Node {
	var path []Node
	for p, ok := Parent(x, n); ok; p, ok = Parent(p, n) {
		path = append(path, p)
	}
	return path
}

// Copath returns the siblings of x and of each node of its direct path
// except the root, bottom up, in a tree with n leaves (RFC 9420 §4.1).
func Copath(x Node, n uint32) []Node {
	if !inTree(x, n) || x == Root(n) {
		return nil
	}
	path := append([]Node{x}, DirectPath(x, n)...)
	path = path[:len(path)-1]
	copath := make([]Node, len(path))
	for i, y := range path {
		copath[i], _ = Sibling(y, n)
	}
	return copath
}

// InSubtree reports whether x is in the subtree rooted at a (a itself
// included).
func InSubtree(x, a Node) bool {
	k := Level(a)
	lo := uint64(a) - (uint64(1)<<k - 1)
	hi := uint64(a) + (uint64(1)<<k - 1)
	return lo <= uint64(x) && uint64(x) <= hi
}

// CommonAncestor returns the lowest node whose subtree holds both x and y
// (x itself if x == y).
func CommonAncestor(x, y Node) Node {
	// RFC 9420 Appendix C, common_ancestor_direct: first the cases where
	// one node is an ancestor of the other, then the shared prefix of the
	// two indices followed by a one and zeros... minus one.
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := uint64(x), uint64(y)
	k := 0
	for xn != yn {
		xn, yn = xn>>1, yn>>1
		k++
	}
	return Node((xn << k) + (uint64(1) << (k - 1)) - 1)
}
