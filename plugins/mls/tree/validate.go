package tree

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid (RFC 9420 §7.9.2), top down: each must be valid with
// respect to exactly one of its descendants. A descendant D is valid for
// parent P, whose child on D's side is C and other child S, when D's
// parent_hash equals P's parent hash over S, D is in the resolution of C,
// and P's unmerged leaves below C are exactly the rest of that resolution.
func (t *Tree) VerifyParentHashes(h Hasher) error {
	for i, node := range t.nodes {
		if node == nil || node.Type != wire.NodeTypeParent {
			continue
		}
		p := treemath.Node(i)
		left, _ := treemath.Left(p)
		right, _ := treemath.Right(p)
		valid := 0
		for _, side := range [2][2]treemath.Node{{left, right}, {right, left}} {
			c, s := side[0], side[1]
			n, err := t.validDescendants(h, p, c, s)
			if err != nil {
				return err
			}
			valid += n
		}
		if valid != 1 {
			return fmt.Errorf("%w: node %d is valid with respect to %d descendants, want 1", ErrParentHash, p, valid)
		}
	}
	return nil
}

// validDescendants counts the nodes in the resolution of c (a child of p;
// s is the other child) for which p is parent-hash valid.
func (t *Tree) validDescendants(h Hasher, p, c, s treemath.Node) (int, error) {
	res := t.Resolution(c)
	if len(res) == 0 {
		return 0, nil
	}
	// P's unmerged leaves that lie under C, as node indices.
	var unmergedBelow []treemath.Node
	for _, l := range t.nodes[p].Parent.UnmergedLeaves {
		if x := treemath.Leaf(l).Node(); treemath.InSubtree(x, c) {
			unmergedBelow = append(unmergedBelow, x)
		}
	}
	var ph []byte
	count := 0
	for i, d := range res {
		dn := t.nodes[d]
		var dHash []byte
		switch {
		case dn == nil:
			continue // an unmerged leaf that is blank: never a valid descendant
		case dn.Type == wire.NodeTypeParent:
			dHash = dn.Parent.ParentHash
		case dn.Leaf.Source == wire.LeafNodeSourceCommit:
			dHash = dn.Leaf.ParentHash
		default:
			continue // a leaf from a KeyPackage or an Update carries no parent hash
		}
		rest := append(append([]treemath.Node(nil), res[:i]...), res[i+1:]...)
		if !sameSet(rest, unmergedBelow) {
			continue
		}
		if ph == nil {
			var err error
			if ph, err = t.parentHash(h, p, s); err != nil {
				return 0, err
			}
		}
		if bytes.Equal(dHash, ph) {
			count++
		}
	}
	return count, nil
}

func sameSet(a, b []treemath.Node) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// parallelLeaves is the leaf count from which VerifyLeafSignatures spreads
// the signatures over several goroutines.
const parallelLeaves = 64

// VerifyLeafSignatures checks the signature of every non-blank leaf over
// its LeafNodeTBS (label "LeafNodeTBS"); groupID and the leaf's index are
// part of the signed content for leaves whose source is update or commit.
// A tree of many leaves is checked by up to GOMAXPROCS goroutines (at most
// 8), each over a contiguous range of leaves, so v must be safe for
// concurrent use; the error returned is that of the lowest failing leaf,
// as a sequential check would give.
func (t *Tree) VerifyLeafSignatures(v Verifier, groupID []byte) error {
	n := t.LeafCount()
	workers := min(runtime.GOMAXPROCS(0), 8)
	if n < parallelLeaves || workers < 2 {
		return t.verifyLeafRange(v, groupID, 0, n)
	}
	errs := make([]error, workers)
	chunk := (n + uint32(workers) - 1) / uint32(workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo := min(uint32(w)*chunk, n)
		hi := min(lo+chunk, n)
		wg.Go(func() { errs[w] = t.verifyLeafRange(v, groupID, lo, hi) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyLeafRange checks the signatures of the leaves in [lo, hi), in
// order, and returns the first failure.
func (t *Tree) verifyLeafRange(v Verifier, groupID []byte, lo, hi uint32) error {
	for l := treemath.Leaf(lo); uint32(l) < hi; l++ {
		leaf := t.Leaf(l)
		if leaf == nil {
			continue
		}
		tbs, err := leaf.TBS(groupID, uint32(l))
		if err != nil {
			return fmt.Errorf("mls/tree: leaf %d: %w", l, err)
		}
		if err := v.VerifyWithLabel(leaf.SignatureKey, "LeafNodeTBS", tbs, leaf.Signature); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrLeafSignature, l, err)
		}
	}
	return nil
}

// VerifyUnmergedLeaves checks the unmerged lists: each is strictly
// increasing (RFC 9420 §7.1), every leaf a parent lists is non-blank, and
// every non-blank parent between that leaf and the parent lists it too
// (§7.9.2).
func (t *Tree) VerifyUnmergedLeaves() error {
	n := t.LeafCount()
	for i, node := range t.nodes {
		if node == nil || node.Type != wire.NodeTypeParent {
			continue
		}
		p := treemath.Node(i)
		for j, l := range node.Parent.UnmergedLeaves {
			if j > 0 && l <= node.Parent.UnmergedLeaves[j-1] {
				return fmt.Errorf("%w: unmerged leaves of node %d are not in increasing order", ErrMalformed, p)
			}
			if t.Leaf(treemath.Leaf(l)) == nil {
				return fmt.Errorf("%w: node %d lists blank leaf %d as unmerged", ErrMalformed, p, l)
			}
			for _, q := range treemath.DirectPath(treemath.Leaf(l).Node(), n) {
				if q == p {
					break
				}
				if qn := t.nodes[q]; qn != nil && !slices.Contains(qn.Parent.UnmergedLeaves, l) {
					return fmt.Errorf("%w: node %d lists unmerged leaf %d but node %d below it does not", ErrMalformed, p, l, q)
				}
			}
		}
	}
	return nil
}

// VerifyDistinctKeys checks that no two non-blank nodes share an
// encryption key and no two leaves share a signature key (RFC 9420 §7.3,
// §12.4.3.1).
func (t *Tree) VerifyDistinctKeys() error {
	enc := map[string]int{}
	sig := map[string]int{}
	for i, node := range t.nodes {
		if node == nil {
			continue
		}
		var key []byte
		if node.Type == wire.NodeTypeParent {
			key = node.Parent.EncryptionKey
		} else {
			key = node.Leaf.EncryptionKey
			if j, dup := sig[string(node.Leaf.SignatureKey)]; dup {
				return fmt.Errorf("%w: nodes %d and %d share a signature key", ErrMalformed, j, i)
			}
			sig[string(node.Leaf.SignatureKey)] = i
		}
		if j, dup := enc[string(key)]; dup {
			return fmt.Errorf("%w: nodes %d and %d share an encryption key", ErrMalformed, j, i)
		}
		enc[string(key)] = i
	}
	return nil
}
