package wire

import "github.com/strata-msg/strata/plugins/mls/codec"

// KeyPackage is a client's offer to be added to groups (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

func (k *KeyPackage) encodeTBSFields(w *codec.Writer) {
	w.Uint16(uint16(k.Version))
	w.Uint16(uint16(k.CipherSuite))
	w.Opaque(k.InitKey)
	k.LeafNode.Encode(w)
	encodeExtensions(w, k.Extensions)
}

// Encode writes k.
func (k *KeyPackage) Encode(w *codec.Writer) {
	k.encodeTBSFields(w)
	w.Opaque(k.Signature)
}

// TBS returns the KeyPackageTBS that k's signature covers (label
// "KeyPackageTBS").
func (k *KeyPackage) TBS() ([]byte, error) {
	var w codec.Writer
	k.encodeTBSFields(&w)
	return w.Bytes(), wrap("KeyPackageTBS", w.Err())
}

// Decode reads k.
func (k *KeyPackage) Decode(r *codec.Reader) (err error) {
	*k = KeyPackage{}
	var v, cs uint16
	if v, err = r.Uint16(); err != nil {
		return wrap("KeyPackage", err)
	}
	if cs, err = r.Uint16(); err != nil {
		return wrap("KeyPackage", err)
	}
	k.Version, k.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	if k.InitKey, err = r.Opaque(); err != nil {
		return wrap("KeyPackage", err)
	}
	if err = k.LeafNode.Decode(r); err != nil {
		return wrap("KeyPackage", err)
	}
	if k.Extensions, err = decodeExtensions(r); err != nil {
		return wrap("KeyPackage", err)
	}
	k.Signature, err = r.Opaque()
	return wrap("KeyPackage", err)
}

// GroupContext is the state every member of an epoch agrees on (RFC 9420
// §8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

// Encode writes g.
func (g *GroupContext) Encode(w *codec.Writer) {
	w.Uint16(uint16(g.Version))
	w.Uint16(uint16(g.CipherSuite))
	w.Opaque(g.GroupID)
	w.Uint64(g.Epoch)
	w.Opaque(g.TreeHash)
	w.Opaque(g.ConfirmedTranscriptHash)
	encodeExtensions(w, g.Extensions)
}

// Decode reads g.
func (g *GroupContext) Decode(r *codec.Reader) (err error) {
	*g = GroupContext{}
	var v, cs uint16
	if v, err = r.Uint16(); err != nil {
		return wrap("GroupContext", err)
	}
	if cs, err = r.Uint16(); err != nil {
		return wrap("GroupContext", err)
	}
	g.Version, g.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	if g.GroupID, err = r.Opaque(); err != nil {
		return wrap("GroupContext", err)
	}
	if g.Epoch, err = r.Uint64(); err != nil {
		return wrap("GroupContext", err)
	}
	if err = decodeOpaques(r, &g.TreeHash, &g.ConfirmedTranscriptHash); err != nil {
		return wrap("GroupContext", err)
	}
	g.Extensions, err = decodeExtensions(r)
	return wrap("GroupContext", err)
}
