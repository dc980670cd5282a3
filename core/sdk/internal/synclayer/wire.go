package synclayer

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ID is a message id: 32 bytes of SHA-256 (see MessageID).
type ID [32]byte

// idDomain separates syncfix message ids from every other SHA-256 use.
const idDomain = "strata-syncfix/v1/message-id"

// MessageID returns the id of a message: SHA-256 over
//
//	"strata-syncfix/v1/message-id"    (28 ASCII bytes, no terminator)
//	u32be(len(group))   || group
//	u32be(len(author))  || author     (the author's identity key)
//	u32be(len(parents)) || parents    (32 bytes each, in the order given)
//	u32be(len(payload)) || payload
//
// Every field is length-prefixed, so no two different messages share an
// encoding. Ephemerality is not hashed: a message's id is its content.
func MessageID(group, author []byte, parents []ID, payload []byte) ID {
	h := sha256.New()
	var n [4]byte
	h.Write([]byte(idDomain))
	for _, field := range [][]byte{group, author} {
		binary.BigEndian.PutUint32(n[:], uint32(len(field)))
		h.Write(n[:])
		h.Write(field)
	}
	binary.BigEndian.PutUint32(n[:], uint32(len(parents)))
	h.Write(n[:])
	for _, p := range parents {
		h.Write(p[:])
	}
	binary.BigEndian.PutUint32(n[:], uint32(len(payload)))
	h.Write(n[:])
	h.Write(payload)
	var id ID
	h.Sum(id[:0])
	return id
}

// The wire format, version 1. The payload of every frame the layer sends
// down is exactly one wire frame; the group is the frame's conversation and
// the author the frame's peer, which the layer below authenticates, so
// neither travels inside. Integers are big-endian.
//
//	offset 0  u8  version, 1
//	offset 1  u8  type: 1 message, 2 ack
//
// A message (type 1):
//
//	offset 2  u8     flags: bit 0 ephemeral; the other bits must be 0
//	offset 3  u8     parent count n, 0..MaxParents
//	offset 4  n*32   parent ids
//	then      u32be  payload length, 0..MaxPayload
//	then      the payload
//
// An ack (type 2), which says the sender has stored the messages named:
//
//	offset 2  u16be  id count n, 1..MaxAckIDs
//	offset 4  n*32   message ids
//
// Nothing may follow. A decoder rejects another version, an unknown type or
// flag, a count or length out of range, a short frame and trailing bytes,
// so that every accepted frame has exactly one encoding.
const (
	wireVersion    = 1
	wireMessage    = 1
	wireAck        = 2
	flagEphemeral  = 1 << 0
	messageHeader  = 4 // version, type, flags, parent count
	ackHeader      = 4 // version, type, id count
	payloadLenSize = 4
)

// Limits of the wire format and of the layer's memory.
const (
	// MaxPayload is the largest message payload, in bytes.
	MaxPayload = 64 << 10
	// MaxParents is the most parents a message may name.
	MaxParents = 16
	// MaxAckIDs is the most ids one ack frame carries.
	MaxAckIDs = 1024
	// MaxWireSize is the largest wire frame: a message of MaxPayload bytes
	// with MaxParents parents (an ack frame is smaller).
	MaxWireSize = messageHeader + MaxParents*len(ID{}) + payloadLenSize + MaxPayload
)

// errMalformed is what every decoding error wraps.
var errMalformed = errors.New("syncfix: malformed wire frame")

// wireFrame is one decoded wire frame. For a message, ephemeral, parents and
// payload are set; for an ack, acks. Decoded slices alias the input.
type wireFrame struct {
	typ       byte
	ephemeral bool
	parents   []ID
	payload   []byte
	acks      []ID
}

// encodeMessage returns the wire form of a message. The caller keeps
// len(parents) <= MaxParents and len(payload) <= MaxPayload.
func encodeMessage(ephemeral bool, parents []ID, payload []byte) []byte {
	b := make([]byte, 0, messageHeader+len(parents)*len(ID{})+payloadLenSize+len(payload))
	var flags byte
	if ephemeral {
		flags |= flagEphemeral
	}
	b = append(b, wireVersion, wireMessage, flags, byte(len(parents)))
	for _, p := range parents {
		b = append(b, p[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// encodeAck returns the wire form of an ack for ids. The caller keeps
// 1 <= len(ids) <= MaxAckIDs.
func encodeAck(ids []ID) []byte {
	b := make([]byte, 0, ackHeader+len(ids)*len(ID{}))
	b = append(b, wireVersion, wireAck)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// decodeWire parses one wire frame. It returns an error wrapping
// errMalformed for anything but a well-formed version 1 frame, and never
// panics.
func decodeWire(b []byte) (wireFrame, error) {
	if len(b) < 2 {
		return wireFrame{}, fmt.Errorf("%w: %d bytes, shorter than a header", errMalformed, len(b))
	}
	if b[0] != wireVersion {
		return wireFrame{}, fmt.Errorf("%w: version %d, want %d", errMalformed, b[0], wireVersion)
	}
	switch b[1] {
	case wireMessage:
		return decodeMessage(b)
	case wireAck:
		return decodeAck(b)
	default:
		return wireFrame{}, fmt.Errorf("%w: unknown type %d", errMalformed, b[1])
	}
}

func decodeMessage(b []byte) (wireFrame, error) {
	if len(b) < messageHeader {
		return wireFrame{}, fmt.Errorf("%w: message header is %d bytes, want %d", errMalformed, len(b), messageHeader)
	}
	flags, n := b[2], int(b[3])
	if flags&^flagEphemeral != 0 {
		return wireFrame{}, fmt.Errorf("%w: unknown flags %#x", errMalformed, flags)
	}
	if n > MaxParents {
		return wireFrame{}, fmt.Errorf("%w: %d parents, at most %d", errMalformed, n, MaxParents)
	}
	rest := b[messageHeader:]
	if len(rest) < n*len(ID{})+payloadLenSize {
		return wireFrame{}, fmt.Errorf("%w: message truncated in its parents", errMalformed)
	}
	w := wireFrame{typ: wireMessage, ephemeral: flags&flagEphemeral != 0}
	if n > 0 {
		w.parents = make([]ID, n)
		for i := range w.parents {
			copy(w.parents[i][:], rest[i*len(ID{}):])
		}
	}
	rest = rest[n*len(ID{}):]
	size := binary.BigEndian.Uint32(rest)
	rest = rest[payloadLenSize:]
	if size > MaxPayload {
		return wireFrame{}, fmt.Errorf("%w: payload of %d bytes, at most %d", errMalformed, size, MaxPayload)
	}
	if uint64(len(rest)) != uint64(size) {
		return wireFrame{}, fmt.Errorf("%w: payload length %d but %d bytes follow", errMalformed, size, len(rest))
	}
	w.payload = rest
	return w, nil
}

func decodeAck(b []byte) (wireFrame, error) {
	if len(b) < ackHeader {
		return wireFrame{}, fmt.Errorf("%w: ack header is %d bytes, want %d", errMalformed, len(b), ackHeader)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n == 0 || n > MaxAckIDs {
		return wireFrame{}, fmt.Errorf("%w: ack of %d ids, want 1 to %d", errMalformed, n, MaxAckIDs)
	}
	rest := b[ackHeader:]
	if len(rest) != n*len(ID{}) {
		return wireFrame{}, fmt.Errorf("%w: ack of %d ids carries %d bytes, want %d", errMalformed, n, len(rest), n*len(ID{}))
	}
	w := wireFrame{typ: wireAck, acks: make([]ID, n)}
	for i := range w.acks {
		copy(w.acks[i][:], rest[i*len(ID{}):])
	}
	return w, nil
}
