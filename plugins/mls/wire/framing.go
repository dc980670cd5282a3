package wire

import (
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

// Sender says who sent a FramedContent (RFC 9420 §6). LeafIndex is used for
// member senders, SenderIndex (into the external_senders extension) for
// external ones.
type Sender struct {
	Type        SenderType
	LeafIndex   uint32
	SenderIndex uint32
}

// Encode writes s.
func (s *Sender) Encode(w *codec.Writer) {
	w.Uint8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		w.Uint32(s.LeafIndex)
	case SenderExternal:
		w.Uint32(s.SenderIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		w.Fail(invalid("sender_type", s.Type))
	}
}

// Decode reads s.
func (s *Sender) Decode(r *codec.Reader) error {
	t, err := r.Uint8()
	if err != nil {
		return wrap("Sender", err)
	}
	*s = Sender{Type: SenderType(t)}
	switch s.Type {
	case SenderMember:
		s.LeafIndex, err = r.Uint32()
	case SenderExternal:
		s.SenderIndex, err = r.Uint32()
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		err = invalid("sender_type", t)
	}
	return wrap("Sender", err)
}

// Content is the body of a FramedContent or a PrivateMessageContent: the
// field that ContentType names holds it.
type Content struct {
	ContentType     ContentType
	ApplicationData []byte
	Proposal        Proposal
	Commit          Commit
}

func (c *Content) encodeBody(w *codec.Writer) {
	switch c.ContentType {
	case ContentApplication:
		w.Opaque(c.ApplicationData)
	case ContentProposal:
		c.Proposal.Encode(w)
	case ContentCommit:
		c.Commit.Encode(w)
	default:
		w.Fail(invalid("content_type", c.ContentType))
	}
}

// decodeBody reads the body that c.ContentType selects.
func (c *Content) decodeBody(r *codec.Reader) (err error) {
	switch c.ContentType {
	case ContentApplication:
		c.ApplicationData, err = r.Opaque()
	case ContentProposal:
		err = c.Proposal.Decode(r)
	case ContentCommit:
		err = c.Commit.Decode(r)
	default:
		err = invalid("content_type", c.ContentType)
	}
	return err
}

// FramedContent is a message's content with its group, epoch and sender
// (RFC 9420 §6).
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	Content
}

// Encode writes f.
func (f *FramedContent) Encode(w *codec.Writer) {
	w.Opaque(f.GroupID)
	w.Uint64(f.Epoch)
	f.Sender.Encode(w)
	w.Opaque(f.AuthenticatedData)
	w.Uint8(uint8(f.ContentType))
	f.encodeBody(w)
}

// Decode reads f.
func (f *FramedContent) Decode(r *codec.Reader) (err error) {
	*f = FramedContent{}
	if f.GroupID, err = r.Opaque(); err != nil {
		return wrap("FramedContent", err)
	}
	if f.Epoch, err = r.Uint64(); err != nil {
		return wrap("FramedContent", err)
	}
	if err = f.Sender.Decode(r); err != nil {
		return wrap("FramedContent", err)
	}
	if f.AuthenticatedData, err = r.Opaque(); err != nil {
		return wrap("FramedContent", err)
	}
	ct, err := r.Uint8()
	if err != nil {
		return wrap("FramedContent", err)
	}
	f.ContentType = ContentType(ct)
	return wrap("FramedContent", f.decodeBody(r))
}

// FramedContentAuthData authenticates a FramedContent (RFC 9420 §6.1):
// its signature and, for a commit, the confirmation tag. Its encoding
// depends on the content type, so it has no Encoder/Decoder methods of its
// own.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // MAC; commits only
}

// EncodeFor writes a as it follows content of type ct.
func (a *FramedContentAuthData) EncodeFor(w *codec.Writer, ct ContentType) {
	w.Opaque(a.Signature)
	if ct == ContentCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

// DecodeFor reads a as it follows content of type ct.
func (a *FramedContentAuthData) DecodeFor(r *codec.Reader, ct ContentType) (err error) {
	*a = FramedContentAuthData{}
	if a.Signature, err = r.Opaque(); err != nil {
		return wrap("FramedContentAuthData", err)
	}
	if ct == ContentCommit {
		a.ConfirmationTag, err = r.Opaque()
	}
	return wrap("FramedContentAuthData", err)
}

// AuthenticatedContent is a FramedContent with its wire format and
// authentication data (RFC 9420 §6.1). Its encoding is the input of
// ProposalRef.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// Encode writes a.
func (a *AuthenticatedContent) Encode(w *codec.Writer) {
	w.Uint16(uint16(a.WireFormat))
	a.Content.Encode(w)
	a.Auth.EncodeFor(w, a.Content.ContentType)
}

// Decode reads a.
func (a *AuthenticatedContent) Decode(r *codec.Reader) error {
	*a = AuthenticatedContent{}
	wf, err := r.Uint16()
	if err != nil {
		return wrap("AuthenticatedContent", err)
	}
	a.WireFormat = WireFormat(wf)
	if err := a.Content.Decode(r); err != nil {
		return wrap("AuthenticatedContent", err)
	}
	return wrap("AuthenticatedContent", a.Auth.DecodeFor(r, a.Content.ContentType))
}

// encodeTBS writes FramedContentTBS (RFC 9420 §6.1). The GroupContext is
// part of it for member and new_member_commit senders, and must then be
// given.
func (a *AuthenticatedContent) encodeTBS(w *codec.Writer, ctx *GroupContext) {
	w.Uint16(uint16(MLS10))
	w.Uint16(uint16(a.WireFormat))
	a.Content.Encode(w)
	switch a.Content.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		if ctx == nil {
			w.Fail(fmt.Errorf("%w: FramedContentTBS of a %d sender needs the GroupContext", codec.ErrInvalid, a.Content.Sender.Type))
			return
		}
		ctx.Encode(w)
	}
}

// TBS returns the FramedContentTBS that the signature covers (label
// "FramedContentTBS"). ctx is the sender's GroupContext for the content's
// epoch; it is used only for member and new_member_commit senders and may
// be nil otherwise.
func (a *AuthenticatedContent) TBS(ctx *GroupContext) ([]byte, error) {
	var w codec.Writer
	a.encodeTBS(&w, ctx)
	return w.Bytes(), wrap("FramedContentTBS", w.Err())
}

// TBM returns the AuthenticatedContentTBM that a PublicMessage's
// membership_tag covers: FramedContentTBS followed by the auth data (RFC
// 9420 §6.2).
func (a *AuthenticatedContent) TBM(ctx *GroupContext) ([]byte, error) {
	var w codec.Writer
	a.encodeTBS(&w, ctx)
	a.Auth.EncodeFor(&w, a.Content.ContentType)
	return w.Bytes(), wrap("AuthenticatedContentTBM", w.Err())
}

// ConfirmedTranscriptHashInput returns the input that a commit adds to the
// confirmed transcript hash: wire format, content and signature (RFC 9420
// §8.2).
func (a *AuthenticatedContent) ConfirmedTranscriptHashInput() ([]byte, error) {
	var w codec.Writer
	w.Uint16(uint16(a.WireFormat))
	a.Content.Encode(&w)
	w.Opaque(a.Auth.Signature)
	return w.Bytes(), wrap("ConfirmedTranscriptHashInput", w.Err())
}

// InterimTranscriptHashInput returns the input that a commit's
// confirmation tag adds to the interim transcript hash (RFC 9420 §8.2).
func InterimTranscriptHashInput(confirmationTag []byte) []byte {
	var w codec.Writer
	w.Opaque(confirmationTag)
	return w.Bytes()
}

// PublicMessage is a signed, unencrypted handshake message (RFC 9420 §6.2).
// MembershipTag is present exactly when the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // MAC; member senders only
}

// Encode writes p.
func (p *PublicMessage) Encode(w *codec.Writer) {
	p.Content.Encode(w)
	p.Auth.EncodeFor(w, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		w.Opaque(p.MembershipTag)
	}
}

// Decode reads p.
func (p *PublicMessage) Decode(r *codec.Reader) (err error) {
	*p = PublicMessage{}
	if err = p.Content.Decode(r); err != nil {
		return wrap("PublicMessage", err)
	}
	if err = p.Auth.DecodeFor(r, p.Content.ContentType); err != nil {
		return wrap("PublicMessage", err)
	}
	if p.Content.Sender.Type == SenderMember {
		p.MembershipTag, err = r.Opaque()
	}
	return wrap("PublicMessage", err)
}

// AuthenticatedContent returns the AuthenticatedContent that p carries.
func (p *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: p.Content, Auth: p.Auth}
}

// PrivateMessage is an encrypted message (RFC 9420 §6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// Encode writes p.
func (p *PrivateMessage) Encode(w *codec.Writer) {
	w.Opaque(p.GroupID)
	w.Uint64(p.Epoch)
	w.Uint8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	w.Opaque(p.EncryptedSenderData)
	w.Opaque(p.Ciphertext)
}

// Decode reads p.
func (p *PrivateMessage) Decode(r *codec.Reader) (err error) {
	*p = PrivateMessage{}
	if p.GroupID, err = r.Opaque(); err != nil {
		return wrap("PrivateMessage", err)
	}
	if p.Epoch, err = r.Uint64(); err != nil {
		return wrap("PrivateMessage", err)
	}
	ct, err := r.Uint8()
	if err != nil {
		return wrap("PrivateMessage", err)
	}
	if p.ContentType = ContentType(ct); !p.ContentType.valid() {
		return wrap("PrivateMessage", invalid("content_type", ct))
	}
	return wrap("PrivateMessage", decodeOpaques(r, &p.AuthenticatedData, &p.EncryptedSenderData, &p.Ciphertext))
}

// ContentAAD returns the PrivateContentAAD, the additional data of the
// content encryption (RFC 9420 §6.3.1).
func (p *PrivateMessage) ContentAAD() ([]byte, error) {
	var w codec.Writer
	w.Opaque(p.GroupID)
	w.Uint64(p.Epoch)
	w.Uint8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	return w.Bytes(), wrap("PrivateContentAAD", w.Err())
}

// SenderDataAAD returns the SenderDataAAD, the additional data of the
// sender-data encryption (RFC 9420 §6.3.2).
func (p *PrivateMessage) SenderDataAAD() ([]byte, error) {
	var w codec.Writer
	w.Opaque(p.GroupID)
	w.Uint64(p.Epoch)
	w.Uint8(uint8(p.ContentType))
	return w.Bytes(), wrap("SenderDataAAD", w.Err())
}

// PrivateMessageContent is the plaintext of a PrivateMessage's ciphertext
// (RFC 9420 §6.3.1): the content body, its auth data and Padding zero bytes.
type PrivateMessageContent struct {
	Content
	Auth    FramedContentAuthData
	Padding int // number of zero bytes after the auth data
}

// Encode writes c, padding included.
func (c *PrivateMessageContent) Encode(w *codec.Writer) {
	c.encodeBody(w)
	c.Auth.EncodeFor(w, c.ContentType)
	if c.Padding < 0 {
		w.Fail(invalid("padding length", c.Padding))
		return
	}
	w.Raw(make([]byte, c.Padding))
}

// DecodePrivateMessageContent decodes the whole of b, the decrypted
// ciphertext of a PrivateMessage whose content_type is ct. Every byte after
// the auth data must be zero.
func DecodePrivateMessageContent(b []byte, ct ContentType) (*PrivateMessageContent, error) {
	c := &PrivateMessageContent{Content: Content{ContentType: ct}}
	r := codec.NewReader(b)
	if err := c.decodeBody(r); err != nil {
		return nil, fmt.Errorf("mls: decode PrivateMessageContent: %w", err)
	}
	if err := c.Auth.DecodeFor(r, ct); err != nil {
		return nil, fmt.Errorf("mls: decode PrivateMessageContent: %w", err)
	}
	pad, _ := r.Raw(r.Len())
	var acc byte
	for _, x := range pad {
		acc |= x
	}
	if acc != 0 {
		return nil, fmt.Errorf("mls: decode PrivateMessageContent: %w: non-zero padding", codec.ErrInvalid)
	}
	c.Padding = len(pad)
	return c, nil
}

// SenderData identifies the sender and key generation of a PrivateMessage
// (RFC 9420 §6.3.2).
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// Encode writes s.
func (s *SenderData) Encode(w *codec.Writer) {
	w.Uint32(s.LeafIndex)
	w.Uint32(s.Generation)
	w.Raw(s.ReuseGuard[:])
}

// Decode reads s.
func (s *SenderData) Decode(r *codec.Reader) (err error) {
	if s.LeafIndex, err = r.Uint32(); err != nil {
		return wrap("SenderData", err)
	}
	if s.Generation, err = r.Uint32(); err != nil {
		return wrap("SenderData", err)
	}
	g, err := r.Raw(4)
	copy(s.ReuseGuard[:], g)
	return wrap("SenderData", err)
}
