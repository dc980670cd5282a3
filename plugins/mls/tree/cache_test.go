package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// runOps applies the changes ops describes to a tree of one member, two
// bytes per change (the kind, then which member), and after them checks
// the cached tree hashes against a tree rebuilt from the wire form, whose
// hashes are all computed afresh, and the parent hashes of both.
func runOps(t *testing.T, ops []byte) {
	t.Helper()
	h := sha256Hasher{}
	key := uint32(0)
	next := func() []byte {
		key++
		return binary.BigEndian.AppendUint32([]byte("key-"), key)
	}
	newLeaf := func() *wire.LeafNode {
		k := next()
		return &wire.LeafNode{
			EncryptionKey: k, SignatureKey: k, Source: wire.LeafNodeSourceKeyPackage,
			Credential: wire.Credential{Type: wire.CredentialBasic, Identity: k},
		}
	}
	tr, err := FromWire(wire.RatchetTree{{Type: wire.NodeTypeLeaf, Leaf: newLeaf()}})
	if err != nil {
		t.Fatal(err)
	}
	members := func() []treemath.Leaf {
		var ls []treemath.Leaf
		for l := range treemath.Leaf(tr.LeafCount()) {
			if tr.Leaf(l) != nil {
				ls = append(ls, l)
			}
		}
		return ls
	}
	for i := 0; i+1 < len(ops); i += 2 {
		ms := members()
		l := ms[int(ops[i+1])%len(ms)]
		switch ops[i] % 4 {
		case 0:
			if _, err := tr.Add(newLeaf()); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := tr.Update(l, newLeaf()); err != nil {
				t.Fatal(err)
			}
		case 2:
			if len(ms) > 1 {
				if err := tr.Remove(l); err != nil {
					t.Fatal(err)
				}
			}
		case 3:
			path, _ := tr.FilteredDirectPath(l)
			keys := make([][]byte, len(path))
			for j := range keys {
				keys[j] = next()
			}
			ph, err := tr.ApplyPath(l, keys, h)
			if err != nil {
				t.Fatal(err)
			}
			leaf := *newLeaf()
			leaf.Source = wire.LeafNodeSourceCommit
			leaf.ParentHash = ph
			if err := tr.SetLeaf(l, &leaf); err != nil {
				t.Fatal(err)
			}
		}
		if ops[i]%8 >= 4 && i+2 < len(ops) {
			continue // check every other step only, so that stale entries have time to matter
		}
		fresh, err := FromWire(tr.Wire())
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Width() != tr.Width() {
			t.Fatalf("step %d: rebuilt tree has %d nodes, want %d", i/2, fresh.Width(), tr.Width())
		}
		want, err := fresh.TreeHashes(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tr.TreeHashes(h)
		if err != nil {
			t.Fatal(err)
		}
		for x := range want {
			if !bytes.Equal(got[x], want[x]) {
				t.Fatalf("step %d (op %d): cached hash of node %d differs from a fresh computation", i/2, ops[i]%4, x)
			}
		}
		if err := fresh.VerifyParentHashes(h); err != nil {
			t.Fatalf("step %d: rebuilt tree: %v", i/2, err)
		}
		if err := tr.VerifyParentHashes(h); err != nil {
			t.Fatalf("step %d: cached tree: %v", i/2, err)
		}
		// A clone carries the cache and stays right after its own change.
		c := tr.Clone()
		if _, err := c.Add(newLeaf()); err != nil {
			t.Fatal(err)
		}
		cf, _ := FromWire(c.Wire())
		a, _ := c.TreeHash(h)
		b, _ := cf.TreeHash(h)
		if !bytes.Equal(a, b) {
			t.Fatalf("step %d: a clone's cached tree hash is stale", i/2)
		}
	}
}

// TestTreeHashCache checks the cached tree hashes (and the parent hashes
// computed from them) against fresh computations after random sequences
// of adds, updates, removals and paths.
func TestTreeHashCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	runs := 200
	if testing.Short() {
		runs = 40
	}
	for range runs {
		ops := make([]byte, 2*(1+rng.IntN(60)))
		for j := range ops {
			ops[j] = byte(rng.Uint32())
		}
		// Grow first, so that paths and removals meet larger trees.
		for j := 0; j < len(ops)/3; j += 2 {
			ops[j] &^= 3
		}
		runOps(t, ops)
	}
}

// FuzzTreeHashCache runs arbitrary change sequences through runOps.
func FuzzTreeHashCache(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 3, 1, 1, 2, 2, 3, 3, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 7, 2, 6, 1, 5, 3, 3, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		runOps(t, ops)
	})
}

// badSignature fails the signatures that read "bad".
type badSignature struct{}

func (badSignature) VerifyWithLabel(_ []byte, _ string, _, sig []byte) error {
	if string(sig) == "bad" {
		return errors.New("bad signature")
	}
	return nil
}

// TestVerifyLeafSignaturesParallel checks that a large tree, checked by
// several goroutines, reports the lowest failing leaf, as a sequential
// check does, and passes when every signature verifies.
func TestVerifyLeafSignaturesParallel(t *testing.T) {
	for _, bad := range [][]int{nil, {199}, {3, 150}, {120, 121}, {0}} {
		rt := make(wire.RatchetTree, 2*200-1)
		for l := range 200 {
			n := leaf(byte(l))
			n.Leaf.Signature = []byte("ok")
			if slices.Contains(bad, l) {
				n.Leaf.Signature = []byte("bad")
			}
			rt[2*l] = n
		}
		tr, err := FromWire(rt)
		if err != nil {
			t.Fatal(err)
		}
		err = tr.VerifyLeafSignatures(badSignature{}, []byte("g"))
		switch {
		case len(bad) == 0 && err != nil:
			t.Fatalf("every signature good: %v", err)
		case len(bad) > 0 && (!errors.Is(err, ErrLeafSignature) || !strings.Contains(err.Error(), fmt.Sprintf("leaf %d:", bad[0]))):
			t.Fatalf("bad leaves %v: got %v, want leaf %d reported", bad, err, bad[0])
		}
	}
}

func TestFirstHeldEncryptionKey(t *testing.T) {
	tr := sparseTree(t) // leaves 0, 4, 5, 7 with keys {0}, {4}, {5}, {7}
	for _, tc := range []struct {
		keys [][]byte
		want int
	}{
		{nil, -1},
		{[][]byte{{1}, {2}}, -1},
		{[][]byte{{1}, {5}, {4}}, 1},
		{[][]byte{{7}, {0}}, 0},
		{[][]byte{{9}, {9}, {0}}, 2},
	} {
		if got := tr.FirstHeldEncryptionKey(tc.keys); got != tc.want {
			t.Errorf("FirstHeldEncryptionKey(%v) = %d, want %d", tc.keys, got, tc.want)
		}
	}
}
