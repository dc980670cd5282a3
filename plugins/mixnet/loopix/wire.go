package loopix

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Link frames are what nodes send each other over the overlay, one frame
// per overlay message, on the protocol the plugin declares. The first byte
// is the frame type; every frame of a type has one size for a geometry,
// so a frame's size tells a link observer only its type (and packets,
// the frames clients send most, all look alike).
//
//	packet   01 ‖ Sphinx packet (Geometry.PacketLength bytes)
//	pull     02 ‖ mailbox token (32) ‖ ack (u64 big-endian)
//	mailbox  03 ‖ seq (u64 big-endian) ‖ flags (01 real, 00 dummy) ‖ entry (EntryLength)
//
// A client registers with its provider and pulls its mailbox with a pull
// frame: the token is the mailbox's secret, whose hash is the mailbox id
// that senders address (MailboxIDOf); ack is the highest sequence number the
// client has taken from the mailbox, which the provider then deletes. The
// provider answers every pull with exactly the configured number of mailbox
// frames, real entries first and dummies (seq 0, zero entry) after.
const (
	// FramePacket carries a Sphinx packet.
	FramePacket byte = 0x01
	// FramePull is a client's registration and mailbox pull.
	FramePull byte = 0x02
	// FrameMailbox is one entry of a pull's answer.
	FrameMailbox byte = 0x03
)

// Sizes of the link frames' fixed parts.
const (
	// TokenLength is the size of a mailbox token.
	TokenLength = 32
	// PullFrameLength is the size of a pull frame.
	PullFrameLength = 1 + TokenLength + 8
	// mailboxHeaderLength is the type, seq and flags of a mailbox frame.
	mailboxHeaderLength = 1 + 8 + 1
)

const (
	entryReal  = 0x01
	entryDummy = 0x00
)

// ErrFrame reports a link frame that does not decode: unknown type, wrong
// size for its type, or a bad field.
var ErrFrame = errors.New("loopix: malformed link frame")

// MailboxID names a mailbox at its provider: the Recipient id of the
// Sphinx packets addressed to it.
type MailboxID = sphinx.RecipientID

// MailboxIDOf returns the mailbox id of a mailbox token:
// SHA-256("strata-mixnet-mailbox-v1" ‖ token). Only the holder of the token
// can pull the mailbox; anyone with the id can address it.
func MailboxIDOf(token [TokenLength]byte) MailboxID {
	h := sha256.New()
	h.Write([]byte("strata-mixnet-mailbox-v1"))
	h.Write(token[:])
	var id MailboxID
	h.Sum(id[:0])
	return id
}

// Pull is a pull frame's content.
type Pull struct {
	// Token is the mailbox's secret.
	Token [TokenLength]byte
	// Ack is the highest sequence number taken from the mailbox so far
	// (0: none); the provider deletes every entry up to it.
	Ack uint64
}

// Entry is a mailbox frame's content.
type Entry struct {
	// Seq is the entry's sequence number in its mailbox (from 1), 0 for
	// a dummy.
	Seq uint64
	// Real is false for a dummy that pads a pull's answer.
	Real bool
	// Payload is the stored entry (EncodeStored), EntryLength bytes; nil
	// for a dummy.
	Payload []byte
}

// Frame is a decoded link frame.
type Frame struct {
	// Type is FramePacket, FramePull or FrameMailbox.
	Type byte
	// Packet is the Sphinx packet of a packet frame (aliases the input).
	Packet []byte
	// Pull is the content of a pull frame.
	Pull Pull
	// Entry is the content of a mailbox frame (Payload aliases the input).
	Entry Entry
}

// Stored entries. What a provider stores in a mailbox, and sends in a
// mailbox frame, is one of the two kinds of packet that end at a mailbox,
// padded to one size:
//
//	01 ‖ 16 zero bytes ‖ Sphinx forward payload (ForwardPayloadLength) ‖ 32 zero bytes
//	02 ‖ SURB id (16)   ‖ SURB reply block (PayloadTagLength + ForwardPayloadLength)
//
// A forward payload is what a sender sent (sealed to the mailbox's owner,
// with a SURB attached); a SURB reply block is an acknowledgement coming
// back on a SURB the owner made, still under the SURB's keys.
const (
	// StoredForward is a forward packet's payload.
	StoredForward byte = 0x01
	// StoredSURBReply is a SURB reply block with its SURB id.
	StoredSURBReply byte = 0x02
)

// EntryLength is the size of a stored mailbox entry for geometry g.
func EntryLength(g *sphinx.Geometry) int {
	return 1 + sphinx.SURBIDLength + sphinx.PayloadTagLength + g.ForwardPayloadLength
}

// Stored is a decoded stored entry.
type Stored struct {
	// Kind is StoredForward or StoredSURBReply.
	Kind byte
	// SURBID is the SURB id of a SURB reply.
	SURBID sphinx.SURBID
	// Body is the forward payload (ForwardPayloadLength bytes) or the SURB
	// reply block (PayloadTagLength + ForwardPayloadLength bytes); it
	// aliases the decoded bytes.
	Body []byte
}

// EncodeStored returns the stored entry for s; its body must have the
// size its kind requires.
func EncodeStored(g *sphinx.Geometry, s Stored) ([]byte, error) {
	want := g.ForwardPayloadLength
	if s.Kind == StoredSURBReply {
		want += sphinx.PayloadTagLength
	} else if s.Kind != StoredForward || s.SURBID != (sphinx.SURBID{}) {
		return nil, fmt.Errorf("%w: stored entry kind %#02x", ErrFrame, s.Kind)
	}
	if len(s.Body) != want {
		return nil, fmt.Errorf("%w: stored body of %d bytes, want %d", ErrFrame, len(s.Body), want)
	}
	b := make([]byte, EntryLength(g))
	b[0] = s.Kind
	copy(b[1:], s.SURBID[:])
	copy(b[1+sphinx.SURBIDLength:], s.Body)
	return b, nil
}

// DecodeStored decodes a stored entry from untrusted bytes. Errors wrap
// ErrFrame; it never panics.
func DecodeStored(g *sphinx.Geometry, b []byte) (Stored, error) {
	if len(b) != EntryLength(g) {
		return Stored{}, fmt.Errorf("%w: stored entry of %d bytes, want %d", ErrFrame, len(b), EntryLength(g))
	}
	s := Stored{Kind: b[0]}
	copy(s.SURBID[:], b[1:])
	body := b[1+sphinx.SURBIDLength:]
	switch s.Kind {
	case StoredForward:
		for _, c := range b[1 : 1+sphinx.SURBIDLength] {
			if c != 0 {
				return Stored{}, fmt.Errorf("%w: forward entry with a SURB id", ErrFrame)
			}
		}
		for _, c := range body[g.ForwardPayloadLength:] {
			if c != 0 {
				return Stored{}, fmt.Errorf("%w: forward entry with non-zero padding", ErrFrame)
			}
		}
		s.Body = body[:g.ForwardPayloadLength]
	case StoredSURBReply:
		s.Body = body
	default:
		return Stored{}, fmt.Errorf("%w: stored entry kind %#02x", ErrFrame, s.Kind)
	}
	return s, nil
}

// EncodePacket returns the packet frame carrying pkt.
func EncodePacket(pkt []byte) []byte {
	b := make([]byte, 1+len(pkt))
	b[0] = FramePacket
	copy(b[1:], pkt)
	return b
}

// EncodePull returns the pull frame for p.
func EncodePull(p Pull) []byte {
	b := make([]byte, PullFrameLength)
	b[0] = FramePull
	copy(b[1:], p.Token[:])
	binary.BigEndian.PutUint64(b[1+TokenLength:], p.Ack)
	return b
}

// EncodeEntry returns the mailbox frame for e; a dummy (e.Real false) is
// written with seq 0 and a zero entry whatever e holds. A real entry's
// payload must be EntryLength(g) bytes.
func EncodeEntry(g *sphinx.Geometry, e Entry) ([]byte, error) {
	n := EntryLength(g)
	b := make([]byte, mailboxHeaderLength+n)
	b[0] = FrameMailbox
	if !e.Real {
		b[9] = entryDummy
		return b, nil
	}
	if len(e.Payload) != n {
		return nil, fmt.Errorf("%w: mailbox entry of %d bytes, want %d", ErrFrame, len(e.Payload), n)
	}
	binary.BigEndian.PutUint64(b[1:], e.Seq)
	b[9] = entryReal
	copy(b[mailboxHeaderLength:], e.Payload)
	return b, nil
}

// DecodeFrame decodes a link frame from untrusted bytes for geometry g.
// Errors wrap ErrFrame; it never panics. The result aliases b.
func DecodeFrame(g *sphinx.Geometry, b []byte) (Frame, error) {
	if len(b) == 0 {
		return Frame{}, fmt.Errorf("%w: empty", ErrFrame)
	}
	f := Frame{Type: b[0]}
	switch b[0] {
	case FramePacket:
		if len(b) != 1+g.PacketLength {
			return Frame{}, fmt.Errorf("%w: packet frame of %d bytes, want %d", ErrFrame, len(b), 1+g.PacketLength)
		}
		f.Packet = b[1:]
	case FramePull:
		if len(b) != PullFrameLength {
			return Frame{}, fmt.Errorf("%w: pull frame of %d bytes, want %d", ErrFrame, len(b), PullFrameLength)
		}
		copy(f.Pull.Token[:], b[1:])
		f.Pull.Ack = binary.BigEndian.Uint64(b[1+TokenLength:])
	case FrameMailbox:
		if len(b) != mailboxHeaderLength+EntryLength(g) {
			return Frame{}, fmt.Errorf("%w: mailbox frame of %d bytes, want %d", ErrFrame, len(b), mailboxHeaderLength+EntryLength(g))
		}
		f.Entry.Seq = binary.BigEndian.Uint64(b[1:])
		switch b[9] {
		case entryReal:
			if f.Entry.Seq == 0 {
				return Frame{}, fmt.Errorf("%w: real mailbox entry with seq 0", ErrFrame)
			}
			f.Entry.Real = true
			f.Entry.Payload = b[mailboxHeaderLength:]
		case entryDummy:
			if f.Entry.Seq != 0 {
				return Frame{}, fmt.Errorf("%w: dummy mailbox entry with seq %d", ErrFrame, f.Entry.Seq)
			}
			for _, c := range b[mailboxHeaderLength:] {
				if c != 0 {
					return Frame{}, fmt.Errorf("%w: dummy mailbox entry with a non-zero entry", ErrFrame)
				}
			}
		default:
			return Frame{}, fmt.Errorf("%w: mailbox entry flags %#02x", ErrFrame, b[9])
		}
	default:
		return Frame{}, fmt.Errorf("%w: unknown type %#02x", ErrFrame, b[0])
	}
	return f, nil
}
