package group

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// AddProposal proposes adding the client of a KeyPackage.
func AddProposal(kp wire.KeyPackage) wire.Proposal {
	return wire.Proposal{Type: wire.ProposalAdd, Add: &wire.Add{KeyPackage: kp}}
}

// RemoveProposal proposes removing the member at leaf l.
func RemoveProposal(l treemath.Leaf) wire.Proposal {
	return wire.Proposal{Type: wire.ProposalRemove, Remove: wire.Remove{Removed: uint32(l)}}
}

// ExternalPSKProposal proposes injecting the external pre-shared key
// pskID, with a fresh nonce.
func (g *Group) ExternalPSKProposal(pskID []byte) (wire.Proposal, error) {
	nonce := make([]byte, g.cs.Nh())
	if _, err := io.ReadFull(g.cfg.random(), nonce); err != nil {
		return wire.Proposal{}, fmt.Errorf("mls/group: psk nonce: %w", err)
	}
	return wire.Proposal{Type: wire.ProposalPSK, PreSharedKey: wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		Type: wire.PSKExternal, PSKID: bytes.Clone(pskID), Nonce: nonce,
	}}}, nil
}

// GroupContextExtensionsProposal proposes replacing the GroupContext's
// extensions.
func GroupContextExtensionsProposal(exts []wire.Extension) wire.Proposal {
	return wire.Proposal{Type: wire.ProposalGroupContextExtensions, GroupContextExtensions: wire.GroupContextExtensions{Extensions: exts}}
}

// UpdateProposal makes an Update proposal with a fresh leaf encryption
// key; the group keeps the private key until a commit takes the proposal
// or the epoch ends.
func (g *Group) UpdateProposal() (wire.Proposal, error) {
	priv, pub, err := g.cs.GenerateHPKEKey(g.cfg.random())
	if err != nil {
		return wire.Proposal{}, fmt.Errorf("mls/group: update: %w", err)
	}
	leaf := *g.cur.tree.Leaf(g.priv.Leaf())
	leaf.EncryptionKey = pub
	leaf.Source = wire.LeafNodeSourceUpdate
	leaf.Lifetime = wire.Lifetime{}
	leaf.ParentHash = nil
	if err := signLeaf(g.cs, &leaf, g.id.SignaturePriv, g.cur.ctx.GroupID, uint32(g.priv.Leaf())); err != nil {
		return wire.Proposal{}, err
	}
	g.updates[string(pub)] = priv
	return wire.Proposal{Type: wire.ProposalUpdate, Update: &wire.Update{LeafNode: leaf}}, nil
}

// Propose sends a proposal by reference: it is framed for the current
// epoch and cached, so a later Commit of this member includes it like a
// received one.
func (g *Group) Propose(p wire.Proposal) (*wire.MLSMessage, error) {
	if g.removed {
		return nil, ErrNotMember
	}
	if err := g.checkProposal(&p, g.priv.Leaf()); err != nil {
		return nil, err
	}
	content := wire.FramedContent{
		GroupID: g.cur.ctx.GroupID, Epoch: g.cur.ctx.Epoch, Sender: g.member(),
		Content: wire.Content{ContentType: wire.ContentProposal, Proposal: p},
	}
	msg, ac, err := g.protect(content, g.cfg.handshakeFormat(), nil)
	if err != nil {
		return nil, fmt.Errorf("mls/group: propose: %w", err)
	}
	if err := g.cacheProposal(ac); err != nil {
		return nil, err
	}
	return msg, nil
}

// cacheProposal checks a proposal by itself and keeps it by reference.
func (g *Group) cacheProposal(ac *wire.AuthenticatedContent) error {
	sender := treemath.Leaf(ac.Content.Sender.LeafIndex)
	if err := g.checkProposal(&ac.Content.Proposal, sender); err != nil {
		return err
	}
	b, err := wire.Marshal(ac)
	if err != nil {
		return fmt.Errorf("mls/group: proposal: %w", err)
	}
	ref := g.cs.MakeProposalRef(b)
	for _, c := range g.pending {
		if bytes.Equal(c.ref, ref) {
			return nil
		}
	}
	p := ac.Content.Proposal
	g.pending = append(g.pending, cachedProposal{ref: ref, proposal: &p, sender: sender})
	return nil
}

// checkProposal checks what can be checked of one proposal alone (RFC
// 9420 §12.1): the KeyPackage of an Add, the leaf of an Update, the target
// of a Remove, the id of a PSK; types this library does not take.
func (g *Group) checkProposal(p *wire.Proposal, sender treemath.Leaf) error {
	switch p.Type {
	case wire.ProposalAdd:
		if p.Add == nil {
			return fmt.Errorf("%w: Add without a body", ErrInvalidProposal)
		}
		if err := ValidateKeyPackage(g.cs, &p.Add.KeyPackage, g.cfg.now()); err != nil {
			return fmt.Errorf("%w: Add: %w", ErrInvalidProposal, err)
		}
	case wire.ProposalUpdate:
		if p.Update == nil {
			return fmt.Errorf("%w: Update without a body", ErrInvalidProposal)
		}
		old := g.cur.tree.Leaf(sender)
		if old == nil {
			return fmt.Errorf("%w: Update from blank leaf %d", ErrInvalidProposal, sender)
		}
		if err := validateLeaf(g.cs, &p.Update.LeafNode, wire.LeafNodeSourceUpdate, g.cur.ctx.GroupID, uint32(sender), g.cfg.now()); err != nil {
			return fmt.Errorf("%w: Update: %w", ErrInvalidProposal, err)
		}
		if bytes.Equal(p.Update.LeafNode.EncryptionKey, old.EncryptionKey) {
			return fmt.Errorf("%w: Update keeps the leaf's encryption key", ErrInvalidProposal)
		}
	case wire.ProposalRemove:
		if g.cur.tree.Leaf(treemath.Leaf(p.Remove.Removed)) == nil {
			return fmt.Errorf("%w: Remove of blank leaf %d", ErrInvalidProposal, p.Remove.Removed)
		}
	case wire.ProposalPSK:
		id := &p.PreSharedKey.PSK
		if len(id.Nonce) != g.cs.Nh() {
			return fmt.Errorf("%w: PSK nonce of %d bytes", ErrInvalidProposal, len(id.Nonce))
		}
		if id.Type == wire.PSKResumption && id.Usage != wire.ResumptionApplication {
			return fmt.Errorf("%w: resumption PSK of usage %d in a commit", ErrInvalidProposal, id.Usage)
		}
	case wire.ProposalGroupContextExtensions:
		if _, err := parseRequiredCapabilities(p.GroupContextExtensions.Extensions); err != nil {
			return err
		}
	case wire.ProposalReInit, wire.ProposalExternalInit:
		return fmt.Errorf("%w: proposal type %d", ErrUnsupported, p.Type)
	default:
		return fmt.Errorf("%w: proposal type %d", ErrUnsupported, p.Type)
	}
	return nil
}

// resolved is a commit's proposal list with its senders, and the effect of
// applying it.
type resolved struct {
	proposals    []cachedProposal // in the commit's order; ref nil for by value
	pathRequired bool
	added        []treemath.Leaf
	psks         []wire.PreSharedKeyID
	extensions   []wire.Extension // the new GroupContext extensions (a GCE), or nil
	hasGCE       bool
	selfRemoved  bool
	selfUpdate   []byte // our new leaf encryption key, if a committed Update of ours changed it
}

// resolve looks up the commit's proposals by reference in the cache and
// takes the others by value from the committer.
func (g *Group) resolve(list []wire.ProposalOrRef, committer treemath.Leaf) ([]cachedProposal, error) {
	out := make([]cachedProposal, 0, len(list))
	for i := range list {
		por := &list[i]
		switch por.Type {
		case wire.ProposalOrRefProposal:
			if por.Proposal == nil {
				return nil, fmt.Errorf("%w: proposal %d without a body", ErrInvalidProposal, i)
			}
			if err := g.checkProposal(por.Proposal, committer); err != nil {
				return nil, err
			}
			out = append(out, cachedProposal{proposal: por.Proposal, sender: committer})
		case wire.ProposalOrRefReference:
			j := slices.IndexFunc(g.pending, func(c cachedProposal) bool { return bytes.Equal(c.ref, por.Reference) })
			if j < 0 {
				return nil, fmt.Errorf("%w: %x", ErrUnknownProposal, por.Reference)
			}
			out = append(out, g.pending[j])
		default:
			return nil, fmt.Errorf("%w: ProposalOrRef type %d", ErrInvalidProposal, por.Type)
		}
	}
	return out, nil
}

// apply validates a commit's proposal list as a whole (RFC 9420 §12.2) and
// applies it to tr (a staged copy) in the order of §12.3: the
// GroupContextExtensions, then Updates, Removes, Adds, and the PSKs listed.
func (g *Group) apply(tr *tree.Tree, props []cachedProposal, committer treemath.Leaf) (*resolved, error) {
	r := &resolved{proposals: props, pathRequired: len(props) == 0}
	touched := map[treemath.Leaf]bool{}
	pskIDs := map[string]bool{}
	addKeys := map[string]bool{}
	var gce *wire.Proposal
	for _, c := range props {
		p := c.proposal
		switch p.Type {
		case wire.ProposalUpdate:
			r.pathRequired = true
			if c.sender == committer {
				return nil, fmt.Errorf("%w: an Update from the committer", ErrInvalidProposal)
			}
			if touched[c.sender] {
				return nil, fmt.Errorf("%w: two Updates or Removes of leaf %d", ErrInvalidProposal, c.sender)
			}
			touched[c.sender] = true
		case wire.ProposalRemove:
			r.pathRequired = true
			l := treemath.Leaf(p.Remove.Removed)
			if l == committer {
				return nil, fmt.Errorf("%w: a Remove of the committer", ErrInvalidProposal)
			}
			if touched[l] {
				return nil, fmt.Errorf("%w: two Updates or Removes of leaf %d", ErrInvalidProposal, l)
			}
			touched[l] = true
		case wire.ProposalAdd:
			leaf := &p.Add.KeyPackage.LeafNode
			for _, k := range [][]byte{leaf.SignatureKey, leaf.EncryptionKey, p.Add.KeyPackage.InitKey} {
				if addKeys[string(k)] {
					return nil, fmt.Errorf("%w: two Adds share a key", ErrInvalidProposal)
				}
				addKeys[string(k)] = true
			}
		case wire.ProposalPSK:
			id, err := wire.Marshal(&p.PreSharedKey.PSK)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
			}
			if pskIDs[string(id)] {
				return nil, fmt.Errorf("%w: a PSK listed twice", ErrInvalidProposal)
			}
			pskIDs[string(id)] = true
			r.psks = append(r.psks, p.PreSharedKey.PSK)
		case wire.ProposalGroupContextExtensions:
			r.pathRequired = true
			if gce != nil {
				return nil, fmt.Errorf("%w: two GroupContextExtensions", ErrInvalidProposal)
			}
			gce = p
		default:
			return nil, fmt.Errorf("%w: proposal type %d", ErrUnsupported, p.Type)
		}
	}
	if gce != nil {
		r.hasGCE = true
		r.extensions = gce.GroupContextExtensions.Extensions
	}
	var updated []treemath.Leaf
	for _, c := range props {
		if c.proposal.Type != wire.ProposalUpdate {
			continue
		}
		leaf := &c.proposal.Update.LeafNode
		if tr.HasEncryptionKey(leaf.EncryptionKey) || otherHasSignatureKey(tr, c.sender, leaf.SignatureKey) {
			return nil, fmt.Errorf("%w: an Update to keys another node holds", ErrInvalidProposal)
		}
		if err := tr.Update(c.sender, leaf); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		updated = append(updated, c.sender)
		if c.sender == g.priv.Leaf() {
			r.selfUpdate = c.proposal.Update.LeafNode.EncryptionKey
		}
	}
	for _, c := range props {
		if c.proposal.Type != wire.ProposalRemove {
			continue
		}
		l := treemath.Leaf(c.proposal.Remove.Removed)
		if err := tr.Remove(l); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		if l == g.priv.Leaf() {
			r.selfRemoved = true
		}
	}
	// An added client must not already be a member: its keys must be new
	// to the tree (after the Removes).
	for _, c := range props {
		if c.proposal.Type != wire.ProposalAdd {
			continue
		}
		leaf := &c.proposal.Add.KeyPackage.LeafNode
		if tr.HasEncryptionKey(leaf.EncryptionKey) || hasSignatureKey(tr, leaf.SignatureKey) {
			return nil, fmt.Errorf("%w: an Add of a client already in the group", ErrInvalidProposal)
		}
		l, err := tr.Add(leaf)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		r.added = append(r.added, l)
	}
	exts := g.cur.ctx.Extensions
	if r.hasGCE {
		exts = r.extensions
	}
	// Members not named by an Update or an Add were checked against the
	// current extensions when their leaves entered the tree; a
	// GroupContextExtensions changes them, and then everyone is checked.
	if err := checkMembersSupport(tr, exts, append(updated, r.added...), r.hasGCE); err != nil {
		return nil, err
	}
	return r, nil
}

// otherHasSignatureKey reports whether a leaf other than l has key as its
// signature key.
func otherHasSignatureKey(tr *tree.Tree, l treemath.Leaf, key []byte) bool {
	for x := range treemath.Leaf(tr.LeafCount()) {
		if leaf := tr.Leaf(x); x != l && leaf != nil && bytes.Equal(leaf.SignatureKey, key) {
			return true
		}
	}
	return false
}

func hasSignatureKey(tr *tree.Tree, key []byte) bool {
	for l := range treemath.Leaf(tr.LeafCount()) {
		if leaf := tr.Leaf(l); leaf != nil && bytes.Equal(leaf.SignatureKey, key) {
			return true
		}
	}
	return false
}

// checkMembersSupport checks that every member meets the group's required
// capabilities, lists every non-default extension type of the
// GroupContext, and supports every member's credential type (RFC 9420
// §7.3, §11.1, §12.1.7).
//
// With all false, only the leaves in changed are checked in full: the
// caller vouches that exts are the extensions the other leaves were last
// checked against (no GroupContextExtensions) and that those leaves have not
// changed. The others are then checked too only if a changed leaf brings a
// credential type none of them has. The cost is one pass over the leaves
// collecting credential types, and a full check of the changed leaves.
func checkMembersSupport(tr *tree.Tree, exts []wire.Extension, changed []treemath.Leaf, all bool) error {
	rc, err := parseRequiredCapabilities(exts)
	if err != nil {
		return err
	}
	isChanged := make(map[treemath.Leaf]bool, len(changed))
	for _, l := range changed {
		isChanged[l] = true
	}
	var types, unchangedTypes []wire.CredentialType
	for l := range treemath.Leaf(tr.LeafCount()) {
		leaf := tr.Leaf(l)
		if leaf == nil {
			continue
		}
		t := leaf.Credential.Type
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
		if !isChanged[l] && !slices.Contains(unchangedTypes, t) {
			unchangedTypes = append(unchangedTypes, t)
		}
	}
	if len(unchangedTypes) != len(types) {
		all = true // a changed leaf brings a new credential type
	}
	check := func(leaf *wire.LeafNode) error {
		if !rc.supports(&leaf.Capabilities) {
			return fmt.Errorf("%w: a member lacks the group's required capabilities", ErrInvalidProposal)
		}
		for _, e := range exts {
			if !defaultExtension(e.Type) && !slices.Contains(leaf.Capabilities.Extensions, e.Type) {
				return fmt.Errorf("%w: a member does not support the group's extension %d", ErrInvalidProposal, e.Type)
			}
		}
		for _, t := range types {
			if !slices.Contains(leaf.Capabilities.Credentials, t) {
				return fmt.Errorf("%w: a member does not support credential type %d", ErrInvalidProposal, t)
			}
		}
		return nil
	}
	if all {
		for l := range treemath.Leaf(tr.LeafCount()) {
			if leaf := tr.Leaf(l); leaf != nil {
				if err := check(leaf); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, l := range changed {
		if leaf := tr.Leaf(l); leaf != nil {
			if err := check(leaf); err != nil {
				return err
			}
		}
	}
	return nil
}

// pskSecrets finds the secret of each PSK id (RFC 9420 §8.4): external ones
// from Config.ExternalPSK, resumption ones of this group from the current
// or a kept past epoch.
func (g *Group) pskSecrets(ids []wire.PreSharedKeyID) ([]schedule.PSK, error) {
	out := make([]schedule.PSK, 0, len(ids))
	for i := range ids {
		id := &ids[i]
		enc, err := wire.Marshal(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		var secret []byte
		switch id.Type {
		case wire.PSKExternal:
			if g.cfg.ExternalPSK != nil {
				secret, _ = g.cfg.ExternalPSK(id.PSKID)
			}
		case wire.PSKResumption:
			if !bytes.Equal(id.PSKGroupID, g.cur.ctx.GroupID) {
				break
			}
			if id.PSKEpoch == g.cur.ctx.Epoch {
				secret = g.cur.keys.ResumptionPSK
			}
			for _, p := range g.past {
				if p.ctx.Epoch == id.PSKEpoch {
					secret = p.resumptionPSK
				}
			}
		}
		if secret == nil {
			return nil, fmt.Errorf("%w: %x", ErrMissingPSK, enc)
		}
		out = append(out, schedule.PSK{ID: enc, Secret: secret})
	}
	return out, nil
}
