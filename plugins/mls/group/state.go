package group

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// ErrBadState means a stored group state does not decode or does not hold
// together.
var ErrBadState = errors.New("mls/group: malformed stored state")

const stateVersion = 1

// State encodes everything the group holds, for storage: the signing
// identity, the current epoch (GroupContext, ratchet tree, epoch secrets,
// what is left of the secret tree), the private tree keys, the interim
// transcript hash, the cached proposals and pending own Updates, and the
// kept past epochs. Every operation that succeeds changes the state; the
// caller stores State() before it sends anything the operation returned
// (a Commit, a Welcome, an application message), so that a restart never
// reuses a key generation or forgets an epoch others have moved to. The
// encoding holds secrets: it must be stored as such, and overwritten (not
// kept alongside) when it changes, or forward secrecy is lost.
func (g *Group) State() ([]byte, error) {
	if g.removed {
		return nil, ErrNotMember
	}
	var w codec.Writer
	w.Uint8(stateVersion)
	w.Uint16(uint16(g.cs.ID()))
	g.id.Credential.Encode(&w)
	w.Opaque(g.id.SignaturePriv)
	w.Opaque(g.id.SignaturePub)
	if err := encodeEpoch(&w, &g.cur.ctx, g.cur.tree, g.cur.secrets); err != nil {
		return nil, err
	}
	k := g.cur.keys
	for _, s := range [][]byte{k.SenderDataSecret, k.EncryptionSecret, k.ExporterSecret, k.ExternalSecret,
		k.ConfirmationKey, k.MembershipKey, k.ResumptionPSK, k.EpochAuthenticator, k.InitSecret} {
		w.Opaque(s)
	}
	priv, err := g.priv.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w.Opaque(priv)
	w.Opaque(g.interim)
	w.Vector(func(w *codec.Writer) {
		for _, c := range g.pending {
			w.Opaque(c.ref)
			c.proposal.Encode(w)
			w.Uint32(uint32(c.sender))
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, pub := range slices.Sorted(maps.Keys(g.updates)) {
			w.Opaque([]byte(pub))
			w.Opaque(g.updates[pub])
		}
	})
	var perr error
	w.Vector(func(w *codec.Writer) {
		for _, p := range g.past {
			if err := encodeEpoch(w, &p.ctx, p.tree, p.secrets); err != nil {
				perr = err
			}
			w.Opaque(p.senderData)
			w.Opaque(p.resumptionPSK)
		}
	})
	if perr != nil {
		return nil, perr
	}
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls/group: encode state: %w", err)
	}
	return w.Bytes(), nil
}

func encodeEpoch(w *codec.Writer, ctx *wire.GroupContext, tr *tree.Tree, secrets *schedule.SecretTree) error {
	ctx.Encode(w)
	rt := tr.Wire()
	rt.Encode(w)
	st, err := secrets.MarshalBinary()
	if err != nil {
		return err
	}
	w.Opaque(st)
	clear(st) // secrets: the copy in w is what is stored
	return nil
}

func decodeEpoch(cs *suite.Suite, r *codec.Reader, keep schedule.Retention) (wire.GroupContext, *tree.Tree, *schedule.SecretTree, error) {
	var ctx wire.GroupContext
	if err := ctx.Decode(r); err != nil {
		return ctx, nil, nil, err
	}
	var rt wire.RatchetTree
	if err := rt.Decode(r); err != nil {
		return ctx, nil, nil, err
	}
	tr, err := tree.FromWire(rt)
	if err != nil {
		return ctx, nil, nil, err
	}
	th, err := tr.TreeHash(cs)
	if err != nil {
		return ctx, nil, nil, err
	}
	if !bytes.Equal(th, ctx.TreeHash) {
		return ctx, nil, nil, fmt.Errorf("the tree of epoch %d does not have its GroupContext's hash", ctx.Epoch)
	}
	st, err := r.Opaque()
	if err != nil {
		return ctx, nil, nil, err
	}
	secrets, err := schedule.UnmarshalSecretTree(cs, st, keep)
	if err != nil {
		return ctx, nil, nil, err
	}
	return ctx, tr, secrets, nil
}

// Restore reads back a group State encoded, with a new Config (which is
// not part of the state). It checks that the state holds together: each
// tree has its GroupContext's tree hash, and the private keys match the
// current tree.
func Restore(cfg Config, data []byte) (*Group, error) {
	g, err := restore(cfg, data)
	if err != nil {
		if errors.Is(err, ErrBadState) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	return g, nil
}

func restore(cfg Config, data []byte) (_ *Group, err error) {
	r := codec.NewReader(data)
	v, err := r.Uint8()
	if err != nil {
		return nil, err
	}
	if v != stateVersion {
		return nil, fmt.Errorf("%w: state version %d", ErrBadState, v)
	}
	id, err := r.Uint16()
	if err != nil {
		return nil, err
	}
	cs, err := suite.New(suite.ID(id))
	if err != nil {
		return nil, err
	}
	g := &Group{cs: cs, cfg: cfg, updates: map[string][]byte{}}
	defer func() {
		if err != nil {
			g.Destroy()
		}
	}()
	if err := g.id.Credential.Decode(r); err != nil {
		return nil, err
	}
	if g.id.SignaturePriv, err = r.Opaque(); err != nil {
		return nil, err
	}
	if g.id.SignaturePub, err = r.Opaque(); err != nil {
		return nil, err
	}
	ctx, tr, secrets, err := decodeEpoch(cs, r, cfg.Retention)
	if err != nil {
		return nil, err
	}
	g.cur = epochState{ctx: ctx, tree: tr, secrets: secrets}
	var e schedule.Epoch
	for _, f := range []*[]byte{&e.SenderDataSecret, &e.EncryptionSecret, &e.ExporterSecret, &e.ExternalSecret,
		&e.ConfirmationKey, &e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret} {
		if *f, err = r.Opaque(); err != nil {
			return nil, err
		}
		if len(*f) != cs.Nh() {
			return nil, fmt.Errorf("%w: an epoch secret of %d bytes", ErrBadState, len(*f))
		}
	}
	g.cur.keys = schedule.RestoreEpoch(cs, e)
	privBytes, err := r.Opaque()
	if err != nil {
		return nil, err
	}
	if g.priv, err = treekem.UnmarshalPrivate(cs, privBytes); err != nil {
		return nil, err
	}
	if err := g.priv.Check(tr); err != nil {
		return nil, err
	}
	if g.interim, err = r.Opaque(); err != nil {
		return nil, err
	}
	err = r.Vector(func(r *codec.Reader) error {
		var c cachedProposal
		var err error
		if c.ref, err = r.Opaque(); err != nil {
			return err
		}
		c.proposal = new(wire.Proposal)
		if err := c.proposal.Decode(r); err != nil {
			return err
		}
		s, err := r.Uint32()
		if err != nil {
			return err
		}
		c.sender = treemath.Leaf(s)
		g.pending = append(g.pending, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Vector(func(r *codec.Reader) error {
		pub, err := r.Opaque()
		if err != nil {
			return err
		}
		priv, err := r.Opaque()
		if err != nil {
			return err
		}
		g.updates[string(pub)] = priv
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Vector(func(r *codec.Reader) error {
		ctx, tr, secrets, err := decodeEpoch(cs, r, cfg.Retention)
		if err != nil {
			return err
		}
		p := &pastEpoch{ctx: ctx, tree: tr, secrets: secrets}
		g.past = append(g.past, p)
		if p.senderData, err = r.Opaque(); err != nil {
			return err
		}
		p.resumptionPSK, err = r.Opaque()
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	for len(g.past) > cfg.pastEpochs() {
		g.past[0].destroy()
		g.past = g.past[1:]
	}
	return g, nil
}
