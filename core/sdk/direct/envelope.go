package direct

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// envelopeVersion is the first byte of every envelope on the wire.
const envelopeVersion = 1

// MaxConversation bounds the conversation id an envelope carries.
const MaxConversation = 255

// EnvelopeOverhead is the most bytes an envelope adds to its payload: the
// version byte, a 2-byte length and the longest conversation id.
const EnvelopeOverhead = 1 + 2 + MaxConversation

// ErrMalformed is wrapped by every error of a Codec's Decode: the bytes
// from the overlay are not a message. The layer drops the frame and counts
// it as dropped_malformed.
var ErrMalformed = errors.New("direct: malformed message")

// ErrTooLarge is wrapped by a Codec's Encode error when a message does not
// fit the wire format. The layer drops the frame and counts it as
// dropped_oversize.
var ErrTooLarge = errors.New("direct: message too large")

// Envelope is the default Codec, the wire format of the `none` layer:
//
//	version (1 byte, = 1) | uvarint len(conversation) | conversation | payload (the rest)
//
// Seal and Open, when set, transform the payload on its way to the wire
// and back (Open undoes Seal); an error from Open drops the frame as
// malformed, one from Seal as too large. They are the hook for a layer
// whose difference from `none` is what it does to a payload.
type Envelope struct {
	Seal func(payload []byte) ([]byte, error)
	Open func(sealed []byte) ([]byte, error)
}

// Encode implements Codec.
func (e Envelope) Encode(dst, conversation, payload []byte) ([]byte, error) {
	if len(conversation) > MaxConversation {
		return nil, fmt.Errorf("%w: conversation id of %d bytes exceeds %d", ErrTooLarge, len(conversation), MaxConversation)
	}
	if e.Seal != nil {
		sealed, err := e.Seal(payload)
		if err != nil {
			return nil, fmt.Errorf("%w: seal: %v", ErrTooLarge, err)
		}
		payload = sealed
	}
	dst = append(dst, envelopeVersion)
	dst = binary.AppendUvarint(dst, uint64(len(conversation)))
	dst = append(dst, conversation...)
	return append(dst, payload...), nil
}

// Decode implements Codec. The conversation aliases b; so does the payload
// unless Open makes a new one.
func (e Envelope) Decode(b []byte) (conversation, payload []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if b[0] != envelopeVersion {
		return nil, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], envelopeVersion)
	}
	n, used := binary.Uvarint(b[1:])
	if used <= 0 {
		return nil, nil, fmt.Errorf("%w: bad conversation length", ErrMalformed)
	}
	rest := b[1+used:]
	if n > MaxConversation || n > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: conversation length %d out of range", ErrMalformed, n)
	}
	if n > 0 {
		conversation = rest[:n]
	}
	payload = rest[n:]
	if e.Open != nil {
		if payload, err = e.Open(payload); err != nil {
			return nil, nil, fmt.Errorf("%w: open: %v", ErrMalformed, err)
		}
	}
	return conversation, payload, nil
}
