package group

import (
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// nextState is a staged epoch: everything a Commit changes, made on
// copies, installed only once the whole Commit has checked out.
type nextState struct {
	ctx     wire.GroupContext
	tree    *tree.Tree
	keys    *schedule.Epoch
	secrets *schedule.SecretTree
	priv    *treekem.Private
	interim []byte
	removed bool
}

func (n *nextState) destroy() {
	if n.keys != nil {
		n.keys.Destroy()
	}
	if n.secrets != nil {
		n.secrets.Destroy()
	}
	if n.priv != nil {
		n.priv.Destroy()
	}
}

// install makes a staged epoch the current one.
func (g *Group) install(n *nextState) {
	if n.removed {
		g.removed = true
		g.Destroy()
		return
	}
	g.priv.Destroy()
	g.priv = n.priv
	g.interim = n.interim
	g.enterEpoch(n.ctx, n.tree, n.keys, n.secrets)
}

// newContext is the GroupContext of the next epoch with the given tree
// hash and confirmed transcript hash.
func (g *Group) newContext(r *resolved, treeHash, confirmed []byte) wire.GroupContext {
	c := g.cur.ctx
	c.Epoch++
	c.TreeHash = treeHash
	c.ConfirmedTranscriptHash = confirmed
	if r.hasGCE {
		c.Extensions = r.extensions
	}
	return c
}

// nextEpoch runs the key schedule of the next epoch and checks or makes
// the confirmation tag. It returns the staged state, the joiner secret and
// the psk secret (for a Welcome).
func (g *Group) nextEpoch(ac *wire.AuthenticatedContent, r *resolved, tr *tree.Tree, priv *treekem.Private, commitSecret []byte, psks []schedule.PSK, makeTag bool) (*nextState, []byte, []byte, error) {
	input, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	th, err := tr.TreeHash(g.cs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	confirmed := schedule.ConfirmedTranscriptHash(g.cs, g.interim, input)
	ctx := g.newContext(r, th, confirmed)
	ctxBytes, err := wire.Marshal(&ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	joiner, err := schedule.JoinerSecret(g.cs, g.cur.keys.InitSecret, commitSecret, ctxBytes)
	if err != nil {
		return nil, nil, nil, err
	}
	pskSecret, err := schedule.PSKSecret(g.cs, psks)
	if err != nil {
		clear(joiner)
		return nil, nil, nil, err
	}
	keys, err := schedule.NewEpoch(g.cs, joiner, pskSecret, ctxBytes)
	if err != nil {
		clear(joiner)
		return nil, nil, nil, err
	}
	if makeTag {
		ac.Auth.ConfirmationTag = schedule.ConfirmationTag(g.cs, keys.ConfirmationKey, confirmed)
	} else if !schedule.VerifyConfirmationTag(g.cs, keys.ConfirmationKey, confirmed, ac.Auth.ConfirmationTag) {
		keys.Destroy()
		clear(joiner)
		return nil, nil, nil, ErrConfirmationTag
	}
	secrets, err := schedule.NewSecretTree(g.cs, keys.EncryptionSecret, tr.LeafCount(), g.cfg.Retention)
	if err != nil {
		keys.Destroy()
		clear(joiner)
		return nil, nil, nil, err
	}
	next := &nextState{
		ctx: ctx, tree: tr, keys: keys, secrets: secrets, priv: priv,
		interim: schedule.InterimTranscriptHash(g.cs, confirmed, ac.Auth.ConfirmationTag),
	}
	return next, joiner, pskSecret, nil
}

// provisional returns the encoded provisional GroupContext an UpdatePath
// is encrypted under (RFC 9420 §12.4.1): the next epoch, the tree with the
// path merged, the current confirmed transcript hash, the new extensions.
func (g *Group) provisional(r *resolved, tr *tree.Tree) ([]byte, error) {
	th, err := tr.TreeHash(g.cs)
	if err != nil {
		return nil, err
	}
	ctx := g.newContext(r, th, g.cur.ctx.ConfirmedTranscriptHash)
	return wire.Marshal(&ctx)
}

// stagePrivate is the member's private state after the proposals: its own
// committed Update's new leaf key, and no key of a node the proposals
// blanked.
func (g *Group) stagePrivate(r *resolved, tr *tree.Tree) (*treekem.Private, error) {
	priv := g.priv.Clone()
	if r.selfUpdate != nil {
		k, ok := g.updates[string(r.selfUpdate)]
		if !ok {
			priv.Destroy()
			return nil, fmt.Errorf("%w: an Update of this member that it did not make", ErrInvalidCommit)
		}
		priv.Destroy()
		priv = treekem.NewPrivate(g.cs, g.priv.Leaf(), k)
	}
	priv.Prune(tr)
	return priv, nil
}

// processCommit validates a received Commit of the current epoch and
// stages the epoch it leads to (RFC 9420 §12.4.2).
func (g *Group) processCommit(ac *wire.AuthenticatedContent) (*nextState, error) {
	if ac.Content.Sender.Type != wire.SenderMember {
		return nil, fmt.Errorf("%w: commit from sender type %d", ErrUnsupported, ac.Content.Sender.Type)
	}
	committer := treemath.Leaf(ac.Content.Sender.LeafIndex)
	commit := &ac.Content.Commit
	props, err := g.resolve(commit.Proposals, committer)
	if err != nil {
		return nil, err
	}
	tr := g.cur.tree.Clone()
	r, err := g.apply(tr, props, committer)
	if err != nil {
		return nil, err
	}
	if r.pathRequired && commit.Path == nil {
		return nil, fmt.Errorf("%w: the proposals require a path and there is none", ErrInvalidCommit)
	}
	if r.selfRemoved {
		return &nextState{removed: true}, nil
	}
	psks, err := g.pskSecrets(r.psks)
	if err != nil {
		return nil, err
	}
	priv, err := g.stagePrivate(r, tr)
	if err != nil {
		return nil, err
	}
	commitSecret := make([]byte, g.cs.Nh())
	if commit.Path != nil {
		if err := treekem.Merge(g.cs, tr, committer, commit.Path, g.cur.ctx.GroupID); err != nil {
			priv.Destroy()
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		if err := g.checkPathLeaf(r, tr, committer, &commit.Path.LeafNode); err != nil {
			priv.Destroy()
			return nil, err
		}
		ctx, err := g.provisional(r, tr)
		if err != nil {
			priv.Destroy()
			return nil, err
		}
		if _, commitSecret, err = priv.Decrypt(tr, committer, commit.Path, ctx, r.added); err != nil {
			priv.Destroy()
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
	}
	if err := g.cfg.acceptTree(tr); err != nil {
		priv.Destroy()
		clear(commitSecret)
		return nil, err
	}
	next, joiner, pskSecret, err := g.nextEpoch(ac, r, tr, priv, commitSecret, psks, false)
	clear(commitSecret)
	if err != nil {
		priv.Destroy()
		return nil, err
	}
	clear(joiner)
	clear(pskSecret)
	return next, nil
}

// checkPathLeaf validates the committer's new leaf (RFC 9420 §7.3,
// §12.4.2): a valid commit-source leaf, its signature key unchanged or
// not another member's, and every member (the new leaf included) still
// meeting the group's required capabilities and credential types.
func (g *Group) checkPathLeaf(r *resolved, tr *tree.Tree, committer treemath.Leaf, leaf *wire.LeafNode) error {
	if err := validateLeaf(g.cs, leaf, wire.LeafNodeSourceCommit, g.cur.ctx.GroupID, uint32(committer), g.cfg.now()); err != nil {
		return fmt.Errorf("%w: path leaf: %w", ErrInvalidCommit, err)
	}
	if otherHasSignatureKey(tr, committer, leaf.SignatureKey) {
		return fmt.Errorf("%w: path leaf shares another leaf's signature key", ErrInvalidCommit)
	}
	exts := g.cur.ctx.Extensions
	if r.hasGCE {
		exts = r.extensions
	}
	// apply checked every other leaf against exts (all of them after a
	// GroupContextExtensions); only the committer's leaf is new.
	if err := checkMembersSupport(tr, exts, []treemath.Leaf{committer}, false); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	return nil
}

// CommitOptions says what a Commit carries besides every cached proposal
// (which it includes by reference).
type CommitOptions struct {
	// Proposals are included by value.
	Proposals []wire.Proposal
	// Path forces an UpdatePath even when the proposals do not require
	// one (for post-compromise security).
	Path bool
	// AuthenticatedData is sent in the clear with the Commit.
	AuthenticatedData []byte
	// ExternalTree leaves the ratchet tree out of the Welcome's GroupInfo
	// (RFC 9420 §12.4.3.3): the new members must get it another way and
	// pass it to Join. Strata's own groups always send it.
	ExternalTree bool
}

// PendingCommit is a Commit this member made and has not applied: its
// message, the Welcome for the members it adds (nil if none), and the
// staged epoch Merge installs.
type PendingCommit struct {
	Message *wire.MLSMessage
	Welcome *wire.MLSMessage
	epoch   uint64
	next    *nextState
}

// Discard zeroes the staged epoch of a Commit that will not be merged.
func (pc *PendingCommit) Discard() {
	if pc.next != nil {
		pc.next.destroy()
		pc.next = nil
	}
}

// Commit makes a Commit of the cached proposals (by reference; those that
// would make the list invalid are left out, see committable) and the given
// ones (by value), with an UpdatePath when the proposals require one
// or opts.Path asks, and a Welcome for the members it adds (RFC 9420
// §12.4). The group does not change: Merge applies the Commit.
func (g *Group) Commit(opts CommitOptions) (*PendingCommit, error) {
	if g.removed {
		return nil, ErrNotMember
	}
	me := g.priv.Leaf()
	var list []wire.ProposalOrRef
	for _, c := range g.committable() {
		list = append(list, wire.ProposalOrRef{Type: wire.ProposalOrRefReference, Reference: c.ref})
	}
	for i := range opts.Proposals {
		p := opts.Proposals[i]
		list = append(list, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: &p})
	}
	props, err := g.resolve(list, me)
	if err != nil {
		return nil, err
	}
	tr := g.cur.tree.Clone()
	r, err := g.apply(tr, props, me)
	if err != nil {
		return nil, err
	}
	psks, err := g.pskSecrets(r.psks)
	if err != nil {
		return nil, err
	}
	priv, err := g.stagePrivate(r, tr)
	if err != nil {
		return nil, err
	}
	commit := wire.Commit{Proposals: list}
	commitSecret := make([]byte, g.cs.Nh())
	var path *treekem.Path
	if r.pathRequired || opts.Path {
		signer := treekem.LeafSigner{Template: tr.Leaf(me), SignaturePriv: g.id.SignaturePriv, GroupID: g.cur.ctx.GroupID}
		if path, err = treekem.Create(g.cs, tr, priv, signer, g.cfg.random()); err != nil {
			priv.Destroy()
			return nil, fmt.Errorf("mls/group: commit: %w", err)
		}
		defer path.Destroy()
		ctx, err := g.provisional(r, tr)
		if err == nil {
			err = path.Encrypt(tr, ctx, r.added, g.cfg.random())
		}
		if err != nil {
			priv.Destroy()
			path.Private.Destroy()
			return nil, fmt.Errorf("mls/group: commit: %w", err)
		}
		priv.Destroy()
		priv = path.Private
		copy(commitSecret, path.CommitSecret)
		commit.Path = path.UpdatePath
	}
	content := wire.FramedContent{
		GroupID: g.cur.ctx.GroupID, Epoch: g.cur.ctx.Epoch, Sender: g.member(), AuthenticatedData: opts.AuthenticatedData,
		Content: wire.Content{ContentType: wire.ContentCommit, Commit: commit},
	}
	var next *nextState
	var joiner, pskSecret []byte
	msg, _, err := g.protect(content, g.cfg.handshakeFormat(), func(ac *wire.AuthenticatedContent) (err error) {
		next, joiner, pskSecret, err = g.nextEpoch(ac, r, tr, priv, commitSecret, psks, true)
		return err
	})
	clear(commitSecret)
	if err != nil {
		if next != nil {
			next.destroy()
		} else {
			priv.Destroy()
		}
		return nil, fmt.Errorf("mls/group: commit: %w", err)
	}
	defer clear(joiner)
	defer clear(pskSecret)
	pc := &PendingCommit{Message: msg, epoch: g.cur.ctx.Epoch, next: next}
	if len(r.added) > 0 {
		if pc.Welcome, err = g.welcome(next, props, r, path, joiner, pskSecret, !opts.ExternalTree); err != nil {
			next.destroy()
			return nil, err
		}
	}
	return pc, nil
}

// committable returns the cached proposals a Commit of this member can
// include (RFC 9420 §12.2), in the order received: not its own Updates, not
// a Remove of itself, one Update or Remove per leaf, one Add per key, each
// PSK once, one GroupContextExtensions, no Add of keys already in the
// tree, no Update to keys another node holds. The first of two
// conflicting proposals wins. (An Add of a member that another cached
// proposal removes is left out too: its keys are still in the tree.)
func (g *Group) committable() []cachedProposal {
	me := g.priv.Leaf()
	touched := map[treemath.Leaf]bool{}
	keys := map[string]bool{}
	psks := map[string]bool{}
	gce := false
	var out []cachedProposal
	for _, c := range g.pending {
		p := c.proposal
		switch p.Type {
		case wire.ProposalUpdate:
			leaf := &p.Update.LeafNode
			if c.sender == me || touched[c.sender] || g.cur.tree.HasEncryptionKey(leaf.EncryptionKey) ||
				otherHasSignatureKey(g.cur.tree, c.sender, leaf.SignatureKey) {
				continue
			}
			touched[c.sender] = true
		case wire.ProposalRemove:
			l := treemath.Leaf(p.Remove.Removed)
			if l == me || touched[l] {
				continue
			}
			touched[l] = true
		case wire.ProposalAdd:
			leaf := &p.Add.KeyPackage.LeafNode
			k := leaf.SignatureKey
			if keys[string(k)] || hasSignatureKey(g.cur.tree, k) || g.cur.tree.HasEncryptionKey(leaf.EncryptionKey) {
				continue
			}
			keys[string(k)] = true
		case wire.ProposalPSK:
			id, err := wire.Marshal(&p.PreSharedKey.PSK)
			if err != nil || psks[string(id)] {
				continue
			}
			psks[string(id)] = true
		case wire.ProposalGroupContextExtensions:
			if gce {
				continue
			}
			gce = true
		}
		out = append(out, c)
	}
	return out
}

// Merge applies a Commit this member made, once the caller has decided it
// stands. It fails if the group has moved on since the Commit was made.
func (g *Group) Merge(pc *PendingCommit) error {
	if pc.next == nil {
		return fmt.Errorf("%w: the commit was merged or discarded", ErrInvalidCommit)
	}
	if g.removed || pc.epoch != g.cur.ctx.Epoch {
		pc.Discard()
		return fmt.Errorf("%w: commit made in epoch %d, group in epoch %d", ErrWrongEpoch, pc.epoch, g.cur.ctx.Epoch)
	}
	g.install(pc.next)
	pc.next = nil
	return nil
}

// welcome makes the Welcome for the members a Commit adds (RFC 9420
// §12.4.3): the GroupInfo of the new epoch with the ratchet tree, signed
// and encrypted under the welcome secret, and for each new member the
// GroupSecrets (joiner secret, the path secret of the lowest path node
// above it, the PSK ids) encrypted to its init key.
func (g *Group) welcome(next *nextState, props []cachedProposal, r *resolved, path *treekem.Path, joiner, pskSecret []byte, withTree bool) (*wire.MLSMessage, error) {
	var exts []wire.Extension
	if withTree {
		rt := next.tree.Wire()
		rtBytes, err := wire.Marshal(&rt)
		if err != nil {
			return nil, fmt.Errorf("mls/group: welcome: %w", err)
		}
		exts = append(exts, wire.Extension{Type: wire.ExtensionRatchetTree, Data: rtBytes})
	}
	gi := wire.GroupInfo{
		GroupContext:    next.ctx,
		Extensions:      exts,
		ConfirmationTag: schedule.ConfirmationTag(g.cs, next.keys.ConfirmationKey, next.ctx.ConfirmedTranscriptHash),
		Signer:          uint32(g.priv.Leaf()),
	}
	tbs, err := gi.TBS()
	if err != nil {
		return nil, fmt.Errorf("mls/group: welcome: %w", err)
	}
	if gi.Signature, err = g.cs.SignWithLabel(g.id.SignaturePriv, "GroupInfoTBS", tbs); err != nil {
		return nil, fmt.Errorf("mls/group: welcome: %w", err)
	}
	giBytes, err := wire.Marshal(&gi)
	if err != nil {
		return nil, fmt.Errorf("mls/group: welcome: %w", err)
	}
	ws, err := schedule.WelcomeSecret(g.cs, joiner, pskSecret)
	if err != nil {
		return nil, err
	}
	key, nonce, err := schedule.WelcomeKeyNonce(g.cs, ws)
	clear(ws)
	if err != nil {
		return nil, err
	}
	egi, err := g.cs.Seal(key, nonce, nil, giBytes)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("mls/group: welcome: %w", err)
	}
	w := &wire.Welcome{CipherSuite: wire.CipherSuite(g.cs.ID()), EncryptedGroupInfo: egi}
	i := 0
	for _, c := range props {
		if c.proposal.Type != wire.ProposalAdd {
			continue
		}
		l := r.added[i]
		i++
		kp := &c.proposal.Add.KeyPackage
		gs := wire.GroupSecrets{JoinerSecret: joiner, PSKs: r.psks}
		if path != nil {
			if _, ps, ok := path.SecretFor(l); ok {
				gs.PathSecret = ps
			}
		}
		gsBytes, err := wire.Marshal(&gs)
		clear(gs.PathSecret)
		if err != nil {
			return nil, fmt.Errorf("mls/group: welcome: %w", err)
		}
		kem, ct, err := g.cs.EncryptWithLabel(kp.InitKey, "Welcome", egi, gsBytes, g.cfg.random())
		clear(gsBytes)
		if err != nil {
			return nil, fmt.Errorf("mls/group: welcome: %w", err)
		}
		kpBytes, err := wire.Marshal(kp)
		if err != nil {
			return nil, fmt.Errorf("mls/group: welcome: %w", err)
		}
		w.Secrets = append(w.Secrets, wire.EncryptedGroupSecrets{
			NewMember:             g.cs.MakeKeyPackageRef(kpBytes),
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct},
		})
	}
	return &wire.MLSMessage{Version: 1, WireFormat: wire.WireFormatWelcome, Welcome: w}, nil
}
