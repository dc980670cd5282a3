package wire

import "github.com/strata-msg/strata/plugins/mls/codec"

// PreSharedKeyID names a pre-shared key (RFC 9420 §8.4). PSKID is used for
// external PSKs; Usage, PSKGroupID and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	Type       PSKType
	PSKID      []byte
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	Nonce      []byte
}

// Encode writes p.
func (p *PreSharedKeyID) Encode(w *codec.Writer) {
	w.Uint8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.Opaque(p.PSKID)
	case PSKResumption:
		w.Uint8(uint8(p.Usage))
		w.Opaque(p.PSKGroupID)
		w.Uint64(p.PSKEpoch)
	default:
		w.Fail(invalid("psktype", p.Type))
	}
	w.Opaque(p.Nonce)
}

// Decode reads p.
func (p *PreSharedKeyID) Decode(r *codec.Reader) error {
	t, err := r.Uint8()
	if err != nil {
		return wrap("PreSharedKeyID", err)
	}
	*p = PreSharedKeyID{Type: PSKType(t)}
	switch p.Type {
	case PSKExternal:
		p.PSKID, err = r.Opaque()
	case PSKResumption:
		var u uint8
		if u, err = r.Uint8(); err != nil {
			break
		}
		if p.Usage = ResumptionPSKUsage(u); p.Usage < ResumptionApplication || p.Usage > ResumptionBranch {
			err = invalid("resumption usage", u)
			break
		}
		if p.PSKGroupID, err = r.Opaque(); err != nil {
			break
		}
		p.PSKEpoch, err = r.Uint64()
	default:
		err = invalid("psktype", t)
	}
	if err != nil {
		return wrap("PreSharedKeyID", err)
	}
	p.Nonce, err = r.Opaque()
	return wrap("PreSharedKeyID", err)
}

// PSKLabel returns the PSKLabel encoding used to derive the index-th of
// count PSKs into the psk_secret (RFC 9420 §8.4).
func (p *PreSharedKeyID) PSKLabel(index, count uint16) ([]byte, error) {
	var w codec.Writer
	p.Encode(&w)
	w.Uint16(index)
	w.Uint16(count)
	return w.Bytes(), wrap("PSKLabel", w.Err())
}

// Add proposes adding the client of a KeyPackage (RFC 9420 §12.1.1).
type Add struct{ KeyPackage KeyPackage }

// Encode writes a.
func (a *Add) Encode(w *codec.Writer) { a.KeyPackage.Encode(w) }

// Decode reads a.
func (a *Add) Decode(r *codec.Reader) error { return wrap("Add", a.KeyPackage.Decode(r)) }

// Update proposes replacing the sender's leaf (RFC 9420 §12.1.2).
type Update struct{ LeafNode LeafNode }

// Encode writes u.
func (u *Update) Encode(w *codec.Writer) { u.LeafNode.Encode(w) }

// Decode reads u.
func (u *Update) Decode(r *codec.Reader) error { return wrap("Update", u.LeafNode.Decode(r)) }

// Remove proposes removing the member at a leaf (RFC 9420 §12.1.3).
type Remove struct{ Removed uint32 }

// Encode writes m.
func (m *Remove) Encode(w *codec.Writer) { w.Uint32(m.Removed) }

// Decode reads m.
func (m *Remove) Decode(r *codec.Reader) (err error) {
	m.Removed, err = r.Uint32()
	return wrap("Remove", err)
}

// PreSharedKey proposes injecting a PSK into the key schedule (RFC 9420
// §12.1.4).
type PreSharedKey struct{ PSK PreSharedKeyID }

// Encode writes p.
func (p *PreSharedKey) Encode(w *codec.Writer) { p.PSK.Encode(w) }

// Decode reads p.
func (p *PreSharedKey) Decode(r *codec.Reader) error { return wrap("PreSharedKey", p.PSK.Decode(r)) }

// ReInit proposes re-initializing the group with new parameters (RFC 9420
// §12.1.5).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  []Extension
}

// Encode writes ri.
func (ri *ReInit) Encode(w *codec.Writer) {
	w.Opaque(ri.GroupID)
	w.Uint16(uint16(ri.Version))
	w.Uint16(uint16(ri.CipherSuite))
	encodeExtensions(w, ri.Extensions)
}

// Decode reads ri.
func (ri *ReInit) Decode(r *codec.Reader) (err error) {
	*ri = ReInit{}
	if ri.GroupID, err = r.Opaque(); err != nil {
		return wrap("ReInit", err)
	}
	var v, cs uint16
	if v, err = r.Uint16(); err != nil {
		return wrap("ReInit", err)
	}
	if cs, err = r.Uint16(); err != nil {
		return wrap("ReInit", err)
	}
	ri.Version, ri.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	ri.Extensions, err = decodeExtensions(r)
	return wrap("ReInit", err)
}

// ExternalInit carries the KEM output of an external commit (RFC 9420
// §12.1.6).
type ExternalInit struct{ KEMOutput []byte }

// Encode writes e.
func (e *ExternalInit) Encode(w *codec.Writer) { w.Opaque(e.KEMOutput) }

// Decode reads e.
func (e *ExternalInit) Decode(r *codec.Reader) (err error) {
	e.KEMOutput, err = r.Opaque()
	return wrap("ExternalInit", err)
}

// GroupContextExtensions proposes new GroupContext extensions (RFC 9420
// §12.1.7).
type GroupContextExtensions struct{ Extensions []Extension }

// Encode writes g.
func (g *GroupContextExtensions) Encode(w *codec.Writer) { encodeExtensions(w, g.Extensions) }

// Decode reads g.
func (g *GroupContextExtensions) Decode(r *codec.Reader) (err error) {
	g.Extensions, err = decodeExtensions(r)
	return wrap("GroupContextExtensions", err)
}

// Proposal is one proposed change to the group (RFC 9420 §12.1); the field
// named by Type holds its body. The large bodies (Add, Update, ReInit) are
// pointers, nil unless Type names them, so that a Commit's list of
// proposals costs memory in proportion to its encoding. Decoding rejects
// proposal types this package does not know, since their bodies have no
// length to skip.
type Proposal struct {
	Type                   ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 Remove
	PreSharedKey           PreSharedKey
	ReInit                 *ReInit
	ExternalInit           ExternalInit
	GroupContextExtensions GroupContextExtensions
}

// Encode writes p.
func (p *Proposal) Encode(w *codec.Writer) {
	w.Uint16(uint16(p.Type))
	var body Encoder
	switch p.Type {
	case ProposalAdd:
		if p.Add != nil {
			body = p.Add
		}
	case ProposalUpdate:
		if p.Update != nil {
			body = p.Update
		}
	case ProposalRemove:
		body = &p.Remove
	case ProposalPSK:
		body = &p.PreSharedKey
	case ProposalReInit:
		if p.ReInit != nil {
			body = p.ReInit
		}
	case ProposalExternalInit:
		body = &p.ExternalInit
	case ProposalGroupContextExtensions:
		body = &p.GroupContextExtensions
	}
	if body == nil {
		w.Fail(invalid("Proposal without a body for proposal_type", p.Type))
		return
	}
	body.Encode(w)
}

// Decode reads p.
func (p *Proposal) Decode(r *codec.Reader) error {
	t, err := r.Uint16()
	if err != nil {
		return wrap("Proposal", err)
	}
	*p = Proposal{Type: ProposalType(t)}
	var body Decoder
	switch p.Type {
	case ProposalAdd:
		p.Add = new(Add)
		body = p.Add
	case ProposalUpdate:
		p.Update = new(Update)
		body = p.Update
	case ProposalRemove:
		body = &p.Remove
	case ProposalPSK:
		body = &p.PreSharedKey
	case ProposalReInit:
		p.ReInit = new(ReInit)
		body = p.ReInit
	case ProposalExternalInit:
		body = &p.ExternalInit
	case ProposalGroupContextExtensions:
		body = &p.GroupContextExtensions
	default:
		return wrap("Proposal", invalid("proposal_type", t))
	}
	return wrap("Proposal", body.Decode(r))
}

// ProposalOrRef is a Commit's entry: a proposal inline (Proposal, nil
// otherwise) or the ProposalRef of one sent before (RFC 9420 §12.4).
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte // ProposalRef
}

// Encode writes p.
func (p *ProposalOrRef) Encode(w *codec.Writer) {
	w.Uint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		if p.Proposal == nil {
			w.Fail(invalid("ProposalOrRef without its proposal, type", p.Type))
			return
		}
		p.Proposal.Encode(w)
	case ProposalOrRefReference:
		w.Opaque(p.Reference)
	default:
		w.Fail(invalid("ProposalOrRef type", p.Type))
	}
}

// Decode reads p.
func (p *ProposalOrRef) Decode(r *codec.Reader) error {
	t, err := r.Uint8()
	if err != nil {
		return wrap("ProposalOrRef", err)
	}
	*p = ProposalOrRef{Type: ProposalOrRefType(t)}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		err = p.Proposal.Decode(r)
	case ProposalOrRefReference:
		p.Reference, err = r.Opaque()
	default:
		err = invalid("ProposalOrRef type", t)
	}
	return wrap("ProposalOrRef", err)
}

// UpdatePathNode is one node of an UpdatePath: its new public key and the
// path secret encrypted to each node of the copath child's resolution
// (RFC 9420 §7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

// Encode writes n.
func (n *UpdatePathNode) Encode(w *codec.Writer) {
	w.Opaque(n.EncryptionKey)
	encodeList(w, n.EncryptedPathSecret, func(w *codec.Writer, c *HPKECiphertext) { c.Encode(w) })
}

// Decode reads n.
func (n *UpdatePathNode) Decode(r *codec.Reader) (err error) {
	*n = UpdatePathNode{}
	if n.EncryptionKey, err = r.Opaque(); err != nil {
		return wrap("UpdatePathNode", err)
	}
	n.EncryptedPathSecret, err = decodeList(r, func(r *codec.Reader, c *HPKECiphertext) error { return c.Decode(r) })
	return wrap("UpdatePathNode", err)
}

// UpdatePath is the committer's new leaf and path (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// Encode writes u.
func (u *UpdatePath) Encode(w *codec.Writer) {
	u.LeafNode.Encode(w)
	encodeList(w, u.Nodes, func(w *codec.Writer, n *UpdatePathNode) { n.Encode(w) })
}

// Decode reads u.
func (u *UpdatePath) Decode(r *codec.Reader) (err error) {
	*u = UpdatePath{}
	if err = u.LeafNode.Decode(r); err != nil {
		return wrap("UpdatePath", err)
	}
	u.Nodes, err = decodeList(r, func(r *codec.Reader, n *UpdatePathNode) error { return n.Decode(r) })
	return wrap("UpdatePath", err)
}

// Commit applies proposals and, with Path, refreshes the committer's path
// (RFC 9420 §12.4). Path is nil when absent.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// Encode writes c.
func (c *Commit) Encode(w *codec.Writer) {
	encodeList(w, c.Proposals, func(w *codec.Writer, p *ProposalOrRef) { p.Encode(w) })
	w.Optional(c.Path != nil, func(w *codec.Writer) { c.Path.Encode(w) })
}

// Decode reads c.
func (c *Commit) Decode(r *codec.Reader) (err error) {
	*c = Commit{}
	if c.Proposals, err = decodeList(r, func(r *codec.Reader, p *ProposalOrRef) error { return p.Decode(r) }); err != nil {
		return wrap("Commit", err)
	}
	var path UpdatePath
	present, err := r.Optional(path.Decode)
	if present && err == nil {
		c.Path = &path
	}
	return wrap("Commit", err)
}
