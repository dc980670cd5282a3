package none

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// envelopeVersion is the first byte of every envelope on the wire.
const envelopeVersion = 1

// maxConversation bounds the conversation id carried in an envelope.
const maxConversation = 255

// ErrBadEnvelope is wrapped by every decoding error.
var ErrBadEnvelope = errors.New("none: bad envelope")

// envelope is what the none layer puts on the wire: the sender's
// conversation id and its payload. There is nothing else to carry: direct
// delivery hides no metadata.
//
// Wire format: version (1 byte, = 1) | uvarint len(conversation) |
// conversation | payload (the rest).
type envelope struct {
	conversation []byte
	payload      []byte
}

// appendEnvelope encodes e after dst.
func appendEnvelope(dst []byte, e envelope) ([]byte, error) {
	if len(e.conversation) > maxConversation {
		return nil, fmt.Errorf("none: conversation id of %d bytes exceeds %d", len(e.conversation), maxConversation)
	}
	dst = append(dst, envelopeVersion)
	dst = binary.AppendUvarint(dst, uint64(len(e.conversation)))
	dst = append(dst, e.conversation...)
	return append(dst, e.payload...), nil
}

// decodeEnvelope parses b. The result aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) == 0 {
		return envelope{}, fmt.Errorf("%w: empty", ErrBadEnvelope)
	}
	if b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: version %d, want %d", ErrBadEnvelope, b[0], envelopeVersion)
	}
	n, used := binary.Uvarint(b[1:])
	if used <= 0 {
		return envelope{}, fmt.Errorf("%w: bad conversation length", ErrBadEnvelope)
	}
	rest := b[1+used:]
	if n > maxConversation || n > uint64(len(rest)) {
		return envelope{}, fmt.Errorf("%w: conversation length %d out of range", ErrBadEnvelope, n)
	}
	e := envelope{payload: rest[n:]}
	if n > 0 {
		e.conversation = rest[:n]
	}
	return e, nil
}
