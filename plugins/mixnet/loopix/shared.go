package loopix

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Shared mailboxes (public chats). A shared address is derived from a name
// (and an optional key) the same way on every client:
//
//	seed     = HKDF-Extract(SHA-256, salt "strata-mixnet-shared-v1", u16 len ‖ name ‖ u16 len ‖ key)
//	mailbox  = HKDF-Expand(seed, "mailbox", 32)    the shared mailbox id (a Recipient id)
//	seal key = HKDF-Expand(seed, "seal key", 32)   XChaCha20-Poly1305 key of every post
//	selector = HKDF-Expand(seed, "provider", 32)
//
// The shared mailbox lives at the provider of the PKI document whose
// SHA-256("strata-mixnet-shared-provider-v1" ‖ selector ‖ node id) is the
// highest (rendezvous hashing): it stays the same across documents as long
// as that provider is listed, and when it leaves, the chat moves to the
// provider with the next highest score (the backlog at the old one is
// lost to readers; nothing else moves).
//
// The address the layer above sees is 03 ‖ mailbox id (33 bytes): it names
// the chat, not the provider, so it stays the same when the provider
// changes.
//
// What travels: a post is a Sphinx forward packet to that provider with
// Recipient = the shared mailbox id, a SURB back to the sender (the
// provider acknowledges on it once the post is durable), and the user
// payload
//
//	"stratash" ‖ 01 ‖ sealed post: nonce (24) ‖ XChaCha20-Poly1305(fragment), AD "stratash" ‖ mailbox id
//
// A pull is a forward packet to the same provider and Recipient with
//
//	"stratash" ‖ 02 ‖ position (u64) ‖ n (u8) ‖ n SURBs ‖ zeros
//
// and the forward payload's own SURB: the provider answers with exactly
// n+1 SURB replies (SharedPullSURBs), the entries above position first and
// dummies after, each SURB reply's plaintext
//
//	flags (01 real, 00 dummy) ‖ seq (u64) ‖ gone (u64) ‖ sealed post ‖ zeros
//
// gone is the highest sequence number at or below which the provider no
// longer holds anything the reader has not had (retention expired it); a
// reader moves its position there, so a gap never stalls it.
const (
	// SharedAddressVersion is the version byte of a shared address.
	SharedAddressVersion = 3
	// SharedAddressLength is the size of a shared address.
	SharedAddressLength = 1 + sphinx.RecipientIDLength

	sharedMagic      = "stratash"
	sharedHeader     = len(sharedMagic) + 1
	sharedKindPost   = 0x01
	sharedKindPull   = 0x02
	sharedNonce      = chacha20poly1305.NonceSizeX
	sharedSealExtra  = sharedNonce + chacha20poly1305.Overhead
	sharedPullFixed  = sharedHeader + 8 + 1
	sharedReplyFixed = 1 + 8 + 8
	// maxSharedPullExtra bounds the SURBs a pull carries in its payload.
	maxSharedPullExtra = 3
)

// ErrShared reports a shared-mailbox payload or address that does not
// decode.
var ErrShared = errors.New("loopix: malformed shared payload")

// Channel is a shared address as a client derives it from a name.
type Channel struct {
	// Mailbox is the shared mailbox id, the Recipient id of its packets.
	Mailbox MailboxID
	// Key seals the posts.
	Key [32]byte
	// Selector chooses the provider (ProviderOf).
	Selector [32]byte
}

// DeriveChannel derives the shared address of name (and key, which may be
// empty).
func DeriveChannel(name string, key []byte) (*Channel, error) {
	if len(name) > 0xffff || len(key) > 0xffff {
		return nil, fmt.Errorf("%w: name or key over 65535 bytes", ErrShared)
	}
	ikm := make([]byte, 0, 4+len(name)+len(key))
	ikm = binary.BigEndian.AppendUint16(ikm, uint16(len(name)))
	ikm = append(ikm, name...)
	ikm = binary.BigEndian.AppendUint16(ikm, uint16(len(key)))
	ikm = append(ikm, key...)
	seed, err := hkdf.Extract(sha256.New, ikm, []byte("strata-mixnet-shared-v1"))
	if err != nil {
		return nil, fmt.Errorf("loopix: derive shared address: %w", err)
	}
	defer clear(seed)
	ch := &Channel{}
	for _, part := range []struct {
		info string
		dst  []byte
	}{{"mailbox", ch.Mailbox[:]}, {"seal key", ch.Key[:]}, {"provider", ch.Selector[:]}} {
		b, err := hkdf.Expand(sha256.New, seed, part.info, 32)
		if err != nil {
			return nil, fmt.Errorf("loopix: derive shared address: %w", err)
		}
		copy(part.dst, b)
		clear(b)
	}
	return ch, nil
}

// Address returns the shared address the layer above sends to.
func (ch *Channel) Address() []byte { return SharedAddress(ch.Mailbox) }

// SharedAddress returns the shared address of a shared mailbox id.
func SharedAddress(id MailboxID) []byte {
	return append([]byte{SharedAddressVersion}, id[:]...)
}

// ParseSharedAddress decodes a shared address from untrusted bytes. Errors
// wrap ErrAddress.
func ParseSharedAddress(b []byte) (MailboxID, error) {
	var id MailboxID
	if len(b) != SharedAddressLength || b[0] != SharedAddressVersion {
		return id, fmt.Errorf("%w: not a shared address", ErrAddress)
	}
	copy(id[:], b[1:])
	return id, nil
}

// ProviderOf returns the provider of d that holds the channel's shared
// mailbox: the highest rendezvous score.
func (ch *Channel) ProviderOf(d *Directory) (*Node, error) {
	var best *Node
	var bestScore []byte
	for _, p := range d.Providers {
		h := sha256.New()
		h.Write([]byte("strata-mixnet-shared-provider-v1"))
		h.Write(ch.Selector[:])
		h.Write(p.ID[:])
		s := h.Sum(nil)
		if best == nil || bytes.Compare(s, bestScore) > 0 {
			best, bestScore = p, s
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: the directory lists no provider", ErrNoRoute)
	}
	return best, nil
}

// SharedInnerLength is the size of a shared post's fragment (what the
// seal key seals) for geometry g.
func SharedInnerLength(g *sphinx.Geometry) int {
	return g.UserForwardPayloadLength - sharedHeader - sharedSealExtra
}

// sharedEntryLength is the size of a sealed post as a provider stores it.
func sharedEntryLength(g *sphinx.Geometry) int {
	return g.UserForwardPayloadLength - sharedHeader
}

// SharedPullSURBs is the number of SURB replies a pull of a shared
// mailbox is answered with for geometry g (at least 1: the forward
// payload's own SURB).
func SharedPullSURBs(g *sphinx.Geometry) int {
	n := (g.UserForwardPayloadLength - sharedPullFixed) / g.SURBLength
	return 1 + max(0, min(n, maxSharedPullExtra))
}

// sealShared seals a fragment (SharedInnerLength bytes) for a shared
// mailbox.
func sealShared(r io.Reader, ch *Channel, inner []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(ch.Key[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, sharedNonce, sharedNonce+len(inner)+chacha20poly1305.Overhead)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("loopix: seal shared post: %w", err)
	}
	return aead.Seal(out, out[:sharedNonce], inner, sharedAD(ch.Mailbox)), nil
}

// OpenShared opens a sealed post of the shared mailbox ch. Errors wrap
// ErrOpen; it never panics.
func OpenShared(ch *Channel, sealed []byte) ([]byte, error) {
	if len(sealed) < sharedSealExtra {
		return nil, fmt.Errorf("%w: %d bytes", ErrOpen, len(sealed))
	}
	aead, err := chacha20poly1305.NewX(ch.Key[:])
	if err != nil {
		return nil, err
	}
	p, err := aead.Open(nil, sealed[:sharedNonce], sealed[sharedNonce:], sharedAD(ch.Mailbox))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOpen, err)
	}
	return p, nil
}

func sharedAD(id MailboxID) []byte { return append([]byte(sharedMagic), id[:]...) }

// SharedRequest is a decoded post or pull of a shared mailbox.
type SharedRequest struct {
	// Post is true for a post, false for a pull.
	Post bool
	// Entry is a post's sealed entry (aliases the input).
	Entry []byte
	// Position is a pull's: the reader has every entry up to it.
	Position uint64
	// SURBs are a pull's SURBs carried in the payload (alias the input).
	SURBs [][]byte
}

// EncodeSharedPost returns the user payload of a post of a sealed entry.
func EncodeSharedPost(g *sphinx.Geometry, sealed []byte) ([]byte, error) {
	if len(sealed) != sharedEntryLength(g) {
		return nil, fmt.Errorf("%w: sealed post of %d bytes, want %d", ErrShared, len(sealed), sharedEntryLength(g))
	}
	b := make([]byte, 0, g.UserForwardPayloadLength)
	b = append(b, sharedMagic...)
	b = append(b, sharedKindPost)
	return append(b, sealed...), nil
}

// EncodeSharedPull returns the user payload of a pull from position with
// surbs (SharedPullSURBs(g)−1 of them).
func EncodeSharedPull(g *sphinx.Geometry, position uint64, surbs [][]byte) ([]byte, error) {
	if len(surbs) != SharedPullSURBs(g)-1 {
		return nil, fmt.Errorf("%w: %d SURBs in a pull, want %d", ErrShared, len(surbs), SharedPullSURBs(g)-1)
	}
	b := make([]byte, 0, g.UserForwardPayloadLength)
	b = append(b, sharedMagic...)
	b = append(b, sharedKindPull)
	b = binary.BigEndian.AppendUint64(b, position)
	b = append(b, byte(len(surbs)))
	for _, s := range surbs {
		if len(s) != g.SURBLength {
			return nil, fmt.Errorf("%w: SURB of %d bytes", ErrShared, len(s))
		}
		b = append(b, s...)
	}
	return append(b, make([]byte, g.UserForwardPayloadLength-len(b))...), nil
}

// IsShared reports whether a forward packet's user payload is meant for a
// shared mailbox (a private mailbox's payloads are sealed: they begin
// with an ephemeral key, which matches the marker with probability
// 2^-64).
func IsShared(user []byte) bool {
	return len(user) >= sharedHeader && string(user[:len(sharedMagic)]) == sharedMagic
}

// DecodeSharedRequest decodes a shared mailbox's post or pull from an
// untrusted user payload. Errors wrap ErrShared; it never panics.
func DecodeSharedRequest(g *sphinx.Geometry, user []byte) (SharedRequest, error) {
	if len(user) != g.UserForwardPayloadLength || !IsShared(user) {
		return SharedRequest{}, fmt.Errorf("%w: not a shared payload of %d bytes", ErrShared, g.UserForwardPayloadLength)
	}
	switch user[len(sharedMagic)] {
	case sharedKindPost:
		return SharedRequest{Post: true, Entry: user[sharedHeader:]}, nil
	case sharedKindPull:
		if len(user) < sharedPullFixed {
			return SharedRequest{}, fmt.Errorf("%w: short pull", ErrShared)
		}
		r := SharedRequest{Position: binary.BigEndian.Uint64(user[sharedHeader:])}
		n := int(user[sharedHeader+8])
		if n != SharedPullSURBs(g)-1 {
			return SharedRequest{}, fmt.Errorf("%w: %d SURBs in a pull, want %d", ErrShared, n, SharedPullSURBs(g)-1)
		}
		rest := user[sharedPullFixed:]
		for range n {
			r.SURBs = append(r.SURBs, rest[:g.SURBLength])
			rest = rest[g.SURBLength:]
		}
		for _, c := range rest {
			if c != 0 {
				return SharedRequest{}, fmt.Errorf("%w: pull with non-zero padding", ErrShared)
			}
		}
		return r, nil
	}
	return SharedRequest{}, fmt.Errorf("%w: kind %#02x", ErrShared, user[len(sharedMagic)])
}

// SharedReply is one answer to a pull: an entry, or a dummy.
type SharedReply struct {
	// Real is false for a dummy.
	Real bool
	// Seq is the entry's sequence number in its shared mailbox.
	Seq uint64
	// Gone: the provider holds nothing the reader lacks at or below it.
	Gone uint64
	// Entry is the sealed post (aliases the input).
	Entry []byte
}

// EncodeSharedReply returns the SURB reply payload (ForwardPayloadLength
// bytes) of r.
func EncodeSharedReply(g *sphinx.Geometry, r SharedReply) ([]byte, error) {
	b := make([]byte, g.ForwardPayloadLength)
	if !r.Real {
		return b, nil
	}
	if len(r.Entry) != sharedEntryLength(g) || r.Seq == 0 {
		return nil, fmt.Errorf("%w: reply entry of %d bytes, seq %d", ErrShared, len(r.Entry), r.Seq)
	}
	b[0] = 0x01
	binary.BigEndian.PutUint64(b[1:], r.Seq)
	binary.BigEndian.PutUint64(b[9:], r.Gone)
	copy(b[sharedReplyFixed:], r.Entry)
	return b, nil
}

// DecodeSharedReply decodes a pull's answer from an untrusted SURB reply
// payload. Errors wrap ErrShared; it never panics.
func DecodeSharedReply(g *sphinx.Geometry, b []byte) (SharedReply, error) {
	n := sharedEntryLength(g)
	if len(b) != g.ForwardPayloadLength || len(b) < sharedReplyFixed+n {
		return SharedReply{}, fmt.Errorf("%w: reply of %d bytes", ErrShared, len(b))
	}
	switch b[0] {
	case 0x00:
		for _, c := range b {
			if c != 0 {
				return SharedReply{}, fmt.Errorf("%w: dummy reply not zero", ErrShared)
			}
		}
		return SharedReply{}, nil
	case 0x01:
		r := SharedReply{Real: true, Seq: binary.BigEndian.Uint64(b[1:]), Gone: binary.BigEndian.Uint64(b[9:]), Entry: b[sharedReplyFixed : sharedReplyFixed+n]}
		if r.Seq == 0 || r.Gone >= r.Seq {
			return SharedReply{}, fmt.Errorf("%w: seq %d, gone %d", ErrShared, r.Seq, r.Gone)
		}
		for _, c := range b[sharedReplyFixed+n:] {
			if c != 0 {
				return SharedReply{}, fmt.Errorf("%w: reply with non-zero padding", ErrShared)
			}
		}
		return r, nil
	}
	return SharedReply{}, fmt.Errorf("%w: reply flags %#02x", ErrShared, b[0])
}

// SharedMailboxes is a provider's durable store of shared mailboxes.
// PutShared creates the mailbox if needed (ErrTooManyMailboxes past the
// bound), appends entry durably, and drops the oldest entries past the
// count bound (returning how many); entries older than the retention are
// dropped by both calls. ReadShared never deletes for a reader: it returns
// up to limit entries above after, in sequence order, and gone (see
// SharedReply); ErrNoMailbox for an unknown mailbox.
type SharedMailboxes interface {
	PutShared(ctx context.Context, id MailboxID, entry []byte, now time.Time) (evicted int, err error)
	ReadShared(ctx context.Context, id MailboxID, after uint64, limit int, now time.Time) (entries []Entry, gone uint64, err error)
}
