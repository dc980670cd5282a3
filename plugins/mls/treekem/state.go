package treekem

import (
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/treemath"
)

// MarshalBinary encodes the private state for storage: the leaf index and
// each node's private key, in node order. The encoding holds secrets.
func (p *Private) MarshalBinary() ([]byte, error) {
	var w codec.Writer
	w.Uint32(uint32(p.leaf))
	w.Vector(func(w *codec.Writer) {
		for _, x := range p.Nodes() {
			w.Uint32(uint32(x))
			w.Opaque(p.keys[x])
		}
	})
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls/treekem: encode private state: %w", err)
	}
	return w.Bytes(), nil
}

// UnmarshalPrivate reads back a state MarshalBinary encoded. Nodes must
// be in increasing order and lie on the leaf's path (the leaf itself
// included); the keys are not checked against a tree here (Check does).
func UnmarshalPrivate(cs *suite.Suite, data []byte) (*Private, error) {
	r := codec.NewReader(data)
	leaf, err := r.Uint32()
	if err != nil {
		return nil, fmt.Errorf("mls/treekem: decode private state: %w", err)
	}
	if leaf >= 1<<31 {
		return nil, fmt.Errorf("mls/treekem: decode private state: leaf %d", leaf)
	}
	p := &Private{cs: cs, leaf: treemath.Leaf(leaf), keys: map[treemath.Node][]byte{}}
	var last treemath.Node
	err = r.Vector(func(r *codec.Reader) error {
		x, err := r.Uint32()
		if err != nil {
			return err
		}
		key, err := r.Opaque()
		if err != nil {
			return err
		}
		n := treemath.Node(x)
		if (len(p.keys) > 0 && n <= last) || !treemath.InSubtree(p.leaf.Node(), n) {
			return fmt.Errorf("node %d out of order or not above leaf %d", x, leaf)
		}
		last = n
		p.keys[n] = key
		return nil
	})
	if err == nil {
		err = r.Done()
	}
	if err == nil && p.keys[p.leaf.Node()] == nil {
		err = fmt.Errorf("no key for leaf %d", leaf)
	}
	if err != nil {
		p.Destroy()
		return nil, fmt.Errorf("mls/treekem: decode private state: %w", err)
	}
	return p, nil
}
