package wire

import "github.com/strata-msg/strata/plugins/mls/codec"

// GroupInfo describes a group's current epoch to joiners (RFC 9420
// §12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte // MAC
	Signer          uint32
	Signature       []byte
}

func (g *GroupInfo) encodeTBSFields(w *codec.Writer) {
	g.GroupContext.Encode(w)
	encodeExtensions(w, g.Extensions)
	w.Opaque(g.ConfirmationTag)
	w.Uint32(g.Signer)
}

// Encode writes g.
func (g *GroupInfo) Encode(w *codec.Writer) {
	g.encodeTBSFields(w)
	w.Opaque(g.Signature)
}

// TBS returns the GroupInfoTBS that g's signature covers (label
// "GroupInfoTBS").
func (g *GroupInfo) TBS() ([]byte, error) {
	var w codec.Writer
	g.encodeTBSFields(&w)
	return w.Bytes(), wrap("GroupInfoTBS", w.Err())
}

// Decode reads g.
func (g *GroupInfo) Decode(r *codec.Reader) (err error) {
	*g = GroupInfo{}
	if err = g.GroupContext.Decode(r); err != nil {
		return wrap("GroupInfo", err)
	}
	if g.Extensions, err = decodeExtensions(r); err != nil {
		return wrap("GroupInfo", err)
	}
	if g.ConfirmationTag, err = r.Opaque(); err != nil {
		return wrap("GroupInfo", err)
	}
	if g.Signer, err = r.Uint32(); err != nil {
		return wrap("GroupInfo", err)
	}
	g.Signature, err = r.Opaque()
	return wrap("GroupInfo", err)
}

// GroupSecrets are the secrets a Welcome gives each new member (RFC 9420
// §12.4.3.1). PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte
	PSKs         []PreSharedKeyID
}

// Encode writes g.
func (g *GroupSecrets) Encode(w *codec.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *codec.Writer) { w.Opaque(g.PathSecret) })
	encodeList(w, g.PSKs, func(w *codec.Writer, p *PreSharedKeyID) { p.Encode(w) })
}

// Decode reads g.
func (g *GroupSecrets) Decode(r *codec.Reader) (err error) {
	*g = GroupSecrets{}
	if g.JoinerSecret, err = r.Opaque(); err != nil {
		return wrap("GroupSecrets", err)
	}
	if _, err = r.Optional(func(r *codec.Reader) (err error) {
		g.PathSecret, err = r.Opaque()
		return err
	}); err != nil {
		return wrap("GroupSecrets", err)
	}
	g.PSKs, err = decodeList(r, func(r *codec.Reader, p *PreSharedKeyID) error { return p.Decode(r) })
	return wrap("GroupSecrets", err)
}

// EncryptedGroupSecrets is one new member's GroupSecrets, encrypted to the
// init key of the KeyPackage that NewMember references (RFC 9420 §12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Encode writes e.
func (e *EncryptedGroupSecrets) Encode(w *codec.Writer) {
	w.Opaque(e.NewMember)
	e.EncryptedGroupSecrets.Encode(w)
}

// Decode reads e.
func (e *EncryptedGroupSecrets) Decode(r *codec.Reader) (err error) {
	*e = EncryptedGroupSecrets{}
	if e.NewMember, err = r.Opaque(); err != nil {
		return wrap("EncryptedGroupSecrets", err)
	}
	return wrap("EncryptedGroupSecrets", e.EncryptedGroupSecrets.Decode(r))
}

// Welcome invites new members into a group (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// Encode writes wl.
func (wl *Welcome) Encode(w *codec.Writer) {
	w.Uint16(uint16(wl.CipherSuite))
	encodeList(w, wl.Secrets, func(w *codec.Writer, e *EncryptedGroupSecrets) { e.Encode(w) })
	w.Opaque(wl.EncryptedGroupInfo)
}

// Decode reads wl.
func (wl *Welcome) Decode(r *codec.Reader) error {
	*wl = Welcome{}
	cs, err := r.Uint16()
	if err != nil {
		return wrap("Welcome", err)
	}
	wl.CipherSuite = CipherSuite(cs)
	if wl.Secrets, err = decodeList(r, func(r *codec.Reader, e *EncryptedGroupSecrets) error { return e.Decode(r) }); err != nil {
		return wrap("Welcome", err)
	}
	wl.EncryptedGroupInfo, err = r.Opaque()
	return wrap("Welcome", err)
}
