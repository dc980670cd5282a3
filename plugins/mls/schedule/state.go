package schedule

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/suite"
)

// ErrBadState means a stored secret tree or epoch does not decode.
var ErrBadState = errors.New("mls/schedule: malformed stored state")

// RestoreEpoch returns an Epoch of suite s with the given secrets, for a
// group state read back from storage. Only the exported fields of secrets
// are used; the Epoch takes them as they are (not copies).
func RestoreEpoch(s *suite.Suite, secrets Epoch) *Epoch {
	secrets.suite = s
	return &secrets
}

// MarshalBinary encodes what the tree still holds, for storage: its leaf
// count, the secrets of the nodes not yet consumed, and each started
// ratchet's current secret, generation and kept skipped keys. Consumed
// secrets are not in it. The encoding holds secrets: store it as such.
//
// The tree keeps the parts it encoded until they change, so that encoding
// a large tree again after a few of its senders moved costs a copy of the
// rest (TestSecretTreeEncodingKept). Keeping them is a change of the tree:
// like every other call, MarshalBinary must not run concurrently with
// another on the same tree.
func (t *SecretTree) MarshalBinary() ([]byte, error) {
	var w codec.Writer
	w.Uint32(t.nLeaves)
	if t.nodesEnc == nil {
		var nw codec.Writer
		for _, x := range slices.Sorted(maps.Keys(t.nodes)) {
			nw.Uint32(x)
			nw.Opaque(t.nodes[x])
		}
		if err := nw.Err(); err != nil {
			return nil, fmt.Errorf("mls/schedule: encode secret tree: %w", err)
		}
		t.nodesEnc = nonNil(nw.Bytes())
	}
	w.Vector(func(w *codec.Writer) { w.Raw(t.nodesEnc) })
	if t.enc == nil {
		t.enc = make(map[uint32][]byte, len(t.leaves))
	}
	var err error
	w.Vector(func(w *codec.Writer) {
		for _, leaf := range t.leaves {
			e, ok := t.enc[leaf]
			if !ok {
				if e, err = encodeRatchets(leaf, t.ratchets[leaf]); err != nil {
					return
				}
				t.enc[leaf] = e
			}
			w.Raw(e)
		}
	})
	if err == nil {
		err = w.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: encode secret tree: %w", err)
	}
	return w.Bytes(), nil
}

// encodeRatchets is leaf's entry of the ratchets vector.
func encodeRatchets(leaf uint32, rs *[2]ratchet) ([]byte, error) {
	var w codec.Writer
	w.Uint32(leaf)
	for _, r := range rs {
		if r.done {
			w.Opaque(nil)
		} else {
			w.Opaque(r.secret)
		}
		w.Uint32(r.next)
		done := uint8(0)
		if r.done {
			done = 1
		}
		w.Uint8(done)
		w.Vector(func(w *codec.Writer) {
			for _, g := range slices.Sorted(maps.Keys(r.skipped)) {
				kn := r.skipped[g]
				w.Uint32(g)
				w.Opaque(kn.Key)
				w.Opaque(kn.Nonce)
			}
		})
	}
	return w.Bytes(), w.Err()
}

// nonNil is b, or an empty slice for nil (a kept encoding of nothing).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// UnmarshalSecretTree reads back a tree MarshalBinary encoded. It checks
// that every index lies in the tree, every secret has the suite's length
// and each ratchet's skipped keys are in order. A ratchet stored with more
// skipped keys than keep allows (a tree written under a larger MaxSkipped)
// keeps the newest keep.MaxSkipped of them.
func UnmarshalSecretTree(s *suite.Suite, data []byte, keep Retention) (*SecretTree, error) {
	r := codec.NewReader(data)
	n, err := r.Uint32()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	t, err := NewSecretTree(s, make([]byte, s.Nh()), n, keep)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	delete(t.nodes, t.root)
	width := 2*uint64(t.root) + 1 // the tree is padded to a power of two leaves
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadState}, args...)...)
	}
	var lastNode, lastLeaf uint32
	err = r.Vector(func(r *codec.Reader) error {
		x, err := r.Uint32()
		if err != nil {
			return err
		}
		secret, err := r.Opaque()
		if err != nil {
			return err
		}
		if uint64(x) >= width || len(secret) != s.Nh() {
			return bad("node %d with a secret of %d bytes", x, len(secret))
		}
		if len(t.nodes) > 0 && x <= lastNode {
			return bad("node %d out of order", x)
		}
		lastNode = x
		t.nodes[x] = secret
		return nil
	})
	if err == nil {
		err = r.Vector(func(r *codec.Reader) error {
			leaf, err := r.Uint32()
			if err != nil {
				return err
			}
			if leaf >= n {
				return bad("ratchets of leaf %d of %d", leaf, n)
			}
			if len(t.ratchets) > 0 && leaf <= lastLeaf {
				return bad("ratchets of leaf %d out of order", leaf)
			}
			lastLeaf = leaf
			var rs [2]ratchet
			for i := range rs {
				if err := readRatchet(s, r, &rs[i], t.keep, bad); err != nil {
					return err
				}
			}
			t.ratchets[leaf] = &rs
			t.leaves = append(t.leaves, leaf) // in order, checked above
			return nil
		})
	}
	if err == nil {
		err = r.Done()
	}
	if err != nil {
		t.Destroy()
		if errors.Is(err, ErrBadState) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	return t, nil
}

func readRatchet(s *suite.Suite, r *codec.Reader, rt *ratchet, keep Retention, bad func(string, ...any) error) error {
	var err error
	if rt.secret, err = r.Opaque(); err != nil {
		return err
	}
	if rt.next, err = r.Uint32(); err != nil {
		return err
	}
	done, err := r.Uint8()
	if err != nil {
		return err
	}
	switch {
	case done > 1:
		return bad("ratchet state %d", done)
	case done == 1:
		rt.done = true
		if len(rt.secret) != 0 {
			return bad("a finished ratchet with a secret")
		}
	case len(rt.secret) != s.Nh():
		return bad("ratchet secret of %d bytes", len(rt.secret))
	}
	var last uint32
	var order []uint32
	err = r.Vector(func(r *codec.Reader) error {
		g, err := r.Uint32()
		if err != nil {
			return err
		}
		var kn KeyNonce
		if kn.Key, err = r.Opaque(); err != nil {
			return err
		}
		if kn.Nonce, err = r.Opaque(); err != nil {
			return err
		}
		kn.Generation = g
		if len(kn.Key) != s.Nk() || len(kn.Nonce) != s.Nn() || (!rt.done && g >= rt.next) {
			return bad("skipped key of generation %d", g)
		}
		if rt.skipped == nil {
			rt.skipped = map[uint32]KeyNonce{}
		}
		if len(rt.skipped) > 0 && g <= last {
			return bad("skipped key of generation %d out of order", g)
		}
		last = g
		rt.skipped[g] = kn
		order = append(order, g)
		return nil
	})
	if err != nil {
		return err
	}
	// A tree stored under a larger MaxSkipped keeps only the newest keys
	// the present policy allows, as keepSkipped would have.
	if excess := len(order) - max(keep.MaxSkipped, 0); excess > 0 {
		for _, g := range order[:excess] {
			kn := rt.skipped[g]
			kn.Destroy()
			delete(rt.skipped, g)
		}
		if len(rt.skipped) == 0 {
			rt.skipped = nil
		}
	}
	return nil
}
