// Package wire is the none privacy layer's wire format: one envelope
// around each payload, carrying the conversation id.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the first byte of every Envelope on the wire.
const Version = 1

// MaxConversation bounds the conversation id carried in an envelope.
const MaxConversation = 255

// ErrBadEnvelope is wrapped by every decoding error.
var ErrBadEnvelope = errors.New("none: bad envelope")

// Envelope is what the none layer puts on the wire: the sender's
// conversation id and its payload. There is nothing else to carry: direct
// delivery hides no metadata.
//
// Wire format: version (1 byte, = 1) | uvarint len(conversation) |
// conversation | payload (the rest).
type Envelope struct {
	// Conversation is the sender's conversation id.
	Conversation []byte
	// Payload is the layer above's payload.
	Payload []byte
}

// Append encodes e after dst.
func Append(dst []byte, e Envelope) ([]byte, error) {
	if len(e.Conversation) > MaxConversation {
		return nil, fmt.Errorf("none: conversation id of %d bytes exceeds %d", len(e.Conversation), MaxConversation)
	}
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(e.Conversation)))
	dst = append(dst, e.Conversation...)
	return append(dst, e.Payload...), nil
}

// Decode parses b. The result aliases b.
func Decode(b []byte) (Envelope, error) {
	if len(b) == 0 {
		return Envelope{}, fmt.Errorf("%w: empty", ErrBadEnvelope)
	}
	if b[0] != Version {
		return Envelope{}, fmt.Errorf("%w: version %d, want %d", ErrBadEnvelope, b[0], Version)
	}
	n, used := binary.Uvarint(b[1:])
	if used <= 0 {
		return Envelope{}, fmt.Errorf("%w: bad conversation length", ErrBadEnvelope)
	}
	rest := b[1+used:]
	if n > MaxConversation || n > uint64(len(rest)) {
		return Envelope{}, fmt.Errorf("%w: conversation length %d out of range", ErrBadEnvelope, n)
	}
	e := Envelope{Payload: rest[n:]}
	if n > 0 {
		e.Conversation = rest[:n]
	}
	return e, nil
}
