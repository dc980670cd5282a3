package wire

import (
	"github.com/strata-msg/strata/plugins/mls/codec"
)

// Credential is a member's credential (RFC 9420 §5.3). A basic credential
// carries Identity, an X.509 one Certificates. Any other type keeps its
// body as one opaque<V> in Data, as OpenMLS and mls-rs do for custom types.
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic
	Certificates [][]byte // x509: each Certificate's cert_data
	Data         []byte   // any other type
}

// Encode writes c.
func (c *Credential) Encode(w *codec.Writer) {
	w.Uint16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		w.Opaque(c.Identity)
	case CredentialX509:
		encodeList(w, c.Certificates, func(w *codec.Writer, b *[]byte) { w.Opaque(*b) })
	default:
		w.Opaque(c.Data)
	}
}

// Decode reads c.
func (c *Credential) Decode(r *codec.Reader) error {
	t, err := r.Uint16()
	if err != nil {
		return wrap("Credential", err)
	}
	*c = Credential{Type: CredentialType(t)}
	switch c.Type {
	case CredentialBasic:
		c.Identity, err = r.Opaque()
	case CredentialX509:
		c.Certificates, err = decodeList(r, func(r *codec.Reader, b *[]byte) (err error) {
			*b, err = r.Opaque()
			return err
		})
	default:
		c.Data, err = r.Opaque()
	}
	return wrap("Credential", err)
}

// Extension is a typed extension (RFC 9420 §13).
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Encode writes e.
func (e *Extension) Encode(w *codec.Writer) {
	w.Uint16(uint16(e.Type))
	w.Opaque(e.Data)
}

// Decode reads e.
func (e *Extension) Decode(r *codec.Reader) error {
	t, err := r.Uint16()
	if err != nil {
		return wrap("Extension", err)
	}
	e.Type = ExtensionType(t)
	e.Data, err = r.Opaque()
	return wrap("Extension", err)
}

func encodeExtensions(w *codec.Writer, xs []Extension) {
	encodeList(w, xs, func(w *codec.Writer, e *Extension) { e.Encode(w) })
}

func decodeExtensions(r *codec.Reader) ([]Extension, error) {
	return decodeList(r, func(r *codec.Reader, e *Extension) error { return e.Decode(r) })
}

// Capabilities lists what a client supports (RFC 9420 §7.2).
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// Encode writes c.
func (c *Capabilities) Encode(w *codec.Writer) {
	encodeList(w, c.Versions, func(w *codec.Writer, v *ProtocolVersion) { w.Uint16(uint16(*v)) })
	encodeList(w, c.CipherSuites, func(w *codec.Writer, v *CipherSuite) { w.Uint16(uint16(*v)) })
	encodeList(w, c.Extensions, func(w *codec.Writer, v *ExtensionType) { w.Uint16(uint16(*v)) })
	encodeList(w, c.Proposals, func(w *codec.Writer, v *ProposalType) { w.Uint16(uint16(*v)) })
	encodeList(w, c.Credentials, func(w *codec.Writer, v *CredentialType) { w.Uint16(uint16(*v)) })
}

// Decode reads c.
func (c *Capabilities) Decode(r *codec.Reader) error {
	var lists [5][]uint16
	for i := range lists {
		var err error
		if lists[i], err = decodeUint16s(r); err != nil {
			return wrap("Capabilities", err)
		}
	}
	*c = Capabilities{
		Versions:     convert[ProtocolVersion](lists[0]),
		CipherSuites: convert[CipherSuite](lists[1]),
		Extensions:   convert[ExtensionType](lists[2]),
		Proposals:    convert[ProposalType](lists[3]),
		Credentials:  convert[CredentialType](lists[4]),
	}
	return nil
}

func convert[T ~uint16](xs []uint16) []T {
	if xs == nil {
		return nil
	}
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = T(x)
	}
	return out
}

// Lifetime bounds a KeyPackage's validity in seconds since the Unix epoch
// (RFC 9420 §7.2).
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// Encode writes l.
func (l *Lifetime) Encode(w *codec.Writer) {
	w.Uint64(l.NotBefore)
	w.Uint64(l.NotAfter)
}

// Decode reads l.
func (l *Lifetime) Decode(r *codec.Reader) (err error) {
	if l.NotBefore, err = r.Uint64(); err != nil {
		return wrap("Lifetime", err)
	}
	l.NotAfter, err = r.Uint64()
	return wrap("Lifetime", err)
}

// LeafNode is a member's leaf in the ratchet tree (RFC 9420 §7.2).
// Lifetime is used only when Source is key_package, ParentHash only when it
// is commit.
type LeafNode struct {
	EncryptionKey []byte // HPKEPublicKey
	SignatureKey  []byte // SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime
	ParentHash    []byte
	Extensions    []Extension
	Signature     []byte
}

// encodeTBSFields writes the fields that precede the signature.
func (l *LeafNode) encodeTBSFields(w *codec.Writer) {
	w.Opaque(l.EncryptionKey)
	w.Opaque(l.SignatureKey)
	l.Credential.Encode(w)
	l.Capabilities.Encode(w)
	w.Uint8(uint8(l.Source))
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		l.Lifetime.Encode(w)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		w.Opaque(l.ParentHash)
	default:
		w.Fail(invalid("leaf_node_source", l.Source))
	}
	encodeExtensions(w, l.Extensions)
}

// Encode writes l.
func (l *LeafNode) Encode(w *codec.Writer) {
	l.encodeTBSFields(w)
	w.Opaque(l.Signature)
}

// TBS returns the LeafNodeTBS that l's signature covers (label
// "LeafNodeTBS"). groupID and leafIndex are part of it only when the source
// is update or commit.
func (l *LeafNode) TBS(groupID []byte, leafIndex uint32) ([]byte, error) {
	var w codec.Writer
	l.encodeTBSFields(&w)
	if l.Source == LeafNodeSourceUpdate || l.Source == LeafNodeSourceCommit {
		w.Opaque(groupID)
		w.Uint32(leafIndex)
	}
	return w.Bytes(), wrap("LeafNodeTBS", w.Err())
}

// Decode reads l.
func (l *LeafNode) Decode(r *codec.Reader) error {
	*l = LeafNode{}
	if err := decodeOpaques(r, &l.EncryptionKey, &l.SignatureKey); err != nil {
		return wrap("LeafNode", err)
	}
	if err := l.Credential.Decode(r); err != nil {
		return wrap("LeafNode", err)
	}
	if err := l.Capabilities.Decode(r); err != nil {
		return wrap("LeafNode", err)
	}
	src, err := r.Uint8()
	if err != nil {
		return wrap("LeafNode", err)
	}
	l.Source = LeafNodeSource(src)
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		err = l.Lifetime.Decode(r)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		l.ParentHash, err = r.Opaque()
	default:
		err = invalid("leaf_node_source", src)
	}
	if err != nil {
		return wrap("LeafNode", err)
	}
	if l.Extensions, err = decodeExtensions(r); err != nil {
		return wrap("LeafNode", err)
	}
	l.Signature, err = r.Opaque()
	return wrap("LeafNode", err)
}

// ParentNode is a parent node of the ratchet tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []uint32
}

// Encode writes p.
func (p *ParentNode) Encode(w *codec.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	encodeList(w, p.UnmergedLeaves, func(w *codec.Writer, v *uint32) { w.Uint32(*v) })
}

// Decode reads p.
func (p *ParentNode) Decode(r *codec.Reader) (err error) {
	*p = ParentNode{}
	if err := decodeOpaques(r, &p.EncryptionKey, &p.ParentHash); err != nil {
		return wrap("ParentNode", err)
	}
	p.UnmergedLeaves, err = decodeList(r, func(r *codec.Reader, v *uint32) (err error) {
		*v, err = r.Uint32()
		return err
	})
	return wrap("ParentNode", err)
}

// Node is a non-blank node of the ratchet tree (RFC 9420 §12.4.3.3): a
// LeafNode or a ParentNode, as Type says; the other field is nil. (Pointers
// keep a decoded tree's memory proportional to its encoding.)
type Node struct {
	Type   NodeType
	Leaf   *LeafNode
	Parent *ParentNode
}

// Encode writes n.
func (n *Node) Encode(w *codec.Writer) {
	w.Uint8(uint8(n.Type))
	switch {
	case n.Type == NodeTypeLeaf && n.Leaf != nil:
		n.Leaf.Encode(w)
	case n.Type == NodeTypeParent && n.Parent != nil:
		n.Parent.Encode(w)
	default:
		w.Fail(invalid("Node without a body for node_type", n.Type))
	}
}

// Decode reads n.
func (n *Node) Decode(r *codec.Reader) error {
	t, err := r.Uint8()
	if err != nil {
		return wrap("Node", err)
	}
	*n = Node{Type: NodeType(t)}
	switch n.Type {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		err = n.Leaf.Decode(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		err = n.Parent.Decode(r)
	default:
		err = invalid("node_type", t)
	}
	return wrap("Node", err)
}

// RatchetTree is the ratchet tree as the ratchet_tree extension carries it
// (RFC 9420 §12.4.3.3): optional<Node> ratchet_tree<V>, nodes in array
// order, nil for a blank node. Decoding checks only the syntax; whether the
// node count and the leaf/parent positions make a tree is the tree's
// business.
type RatchetTree []*Node

// Encode writes t.
func (t *RatchetTree) Encode(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for _, n := range *t {
			w.Optional(n != nil, func(w *codec.Writer) { n.Encode(w) })
		}
	})
}

// Decode reads t.
func (t *RatchetTree) Decode(r *codec.Reader) error {
	nodes, err := decodeList(r, func(r *codec.Reader, n **Node) error {
		_, err := r.Optional(func(r *codec.Reader) error {
			*n = new(Node)
			return (*n).Decode(r)
		})
		return err
	})
	*t = nodes
	return wrap("RatchetTree", err)
}

// HPKECiphertext is an HPKE encryption's output (RFC 9420 §5.1.3).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// Encode writes c.
func (c *HPKECiphertext) Encode(w *codec.Writer) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

// Decode reads c.
func (c *HPKECiphertext) Decode(r *codec.Reader) error {
	return wrap("HPKECiphertext", decodeOpaques(r, &c.KEMOutput, &c.Ciphertext))
}
