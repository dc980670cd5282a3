package padded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/direct"
)

// codec is the wire format below as the direct skeleton's Codec: Encode
// pads to the smallest of its buckets that holds the message, and counts
// the padding.
type codec struct {
	buckets buckets
	stats   codecStats
	set     *sdk.Counters
}

var _ direct.CountingCodec = (*codec)(nil)

// newCodec returns the codec that pads to bs.
func newCodec(bs buckets) *codec {
	c := &codec{buckets: bs}
	c.set = sdk.NewCounters(&c.stats)
	return c
}

// Encode implements direct.Codec. A conversation id over maxConversation
// bytes is errConversationTooLong; a message larger than the largest
// bucket wraps direct.ErrTooLarge.
func (c *codec) Encode(dst, conversation, payload []byte) ([]byte, error) {
	if len(conversation) > maxConversation {
		return nil, fmt.Errorf("%w: %d bytes", errConversationTooLong, len(conversation))
	}
	n := unpaddedLen(len(conversation), len(payload))
	size, ok := c.buckets.fit(n)
	if !ok {
		return nil, fmt.Errorf("%w: %d bytes exceed the largest bucket %d", errTooLarge, n, c.buckets.largest())
	}
	dst, err := appendMessage(dst, conversation, payload, size)
	if err != nil {
		return nil, err
	}
	c.stats.PaddingBytes.Add(uint64(size - n))
	return dst, nil
}

// Decode implements direct.Codec.
func (c *codec) Decode(wire []byte) (conversation, payload []byte, err error) {
	return decodeMessage(wire)
}

// Counters implements direct.CountingCodec.
func (c *codec) Counters() map[string]uint64 { return c.set.Snapshot() }

// The wire format, version 1. Every message the layer sends on the overlay
// protocol "padded" version 1 is
//
//	version       1 byte, always 1
//	conv_len      uvarint, minimally encoded, at most 255
//	conversation  conv_len bytes
//	payload_len   uvarint, minimally encoded
//	payload       payload_len bytes
//	padding       zero bytes up to the end of the message
//
// The sender makes the whole message exactly as long as the smallest
// configured bucket that holds it. A receiver accepts any message of at most
// maxMessage bytes whose fields are in range and whose padding is all zero,
// whatever its own buckets are, so that nodes with different bucket lists can
// still talk to each other. The encoding is canonical: a message that decodes
// re-encodes, padded to its own length, to the same bytes.
const (
	// wireVersion is the first byte of every message.
	wireVersion = 1
	// maxConversation bounds the conversation id carried in a message.
	maxConversation = 255
	// maxMessage is the largest message on the wire and so the largest
	// bucket a config may name. It matches the 1 MiB frame limit of the
	// libp2p overlay.
	maxMessage = 1 << 20
)

// errMalformed is wrapped by every error that decodeMessage returns. It
// wraps direct.ErrMalformed: the skeleton drops the frame as
// dropped_malformed.
var errMalformed = fmt.Errorf("padded: %w", direct.ErrMalformed)

// errTooLarge is wrapped by appendMessage's errors when a message does not
// fit the size asked for. It wraps direct.ErrTooLarge: the skeleton drops
// the frame as dropped_oversize.
var errTooLarge = fmt.Errorf("padded: %w", direct.ErrTooLarge)

// errConversationTooLong is Encode's error for a conversation id the wire
// format cannot carry; the skeleton drops the frame as dropped_unencodable,
// which Layer.Health reports as dropped_conversation_too_long.
var errConversationTooLong = errors.New("padded: conversation id longer than 255 bytes")

// unpaddedLen is the length of a message carrying a conversation id of conv
// bytes and a payload of payload bytes, before padding.
func unpaddedLen(conv, payload int) int {
	return 1 + uvarintLen(uint64(conv)) + conv + uvarintLen(uint64(payload)) + payload
}

// appendMessage appends to dst the message carrying conversation and
// payload, padded with zeros to exactly size bytes.
func appendMessage(dst, conversation, payload []byte, size int) ([]byte, error) {
	if len(conversation) > maxConversation {
		return nil, fmt.Errorf("%w: conversation id of %d bytes exceeds %d", errTooLarge, len(conversation), maxConversation)
	}
	if size > maxMessage {
		return nil, fmt.Errorf("%w: size %d exceeds the wire limit of %d bytes", errTooLarge, size, maxMessage)
	}
	if n := unpaddedLen(len(conversation), len(payload)); n > size {
		return nil, fmt.Errorf("%w: %d bytes do not fit in %d", errTooLarge, n, size)
	}
	dst = slices.Grow(dst, size)
	start := len(dst)
	dst = append(dst, wireVersion)
	dst = binary.AppendUvarint(dst, uint64(len(conversation)))
	dst = append(dst, conversation...)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	dst = append(dst, payload...)
	pad := start + size - len(dst)
	dst = dst[:len(dst)+pad]
	clear(dst[len(dst)-pad:])
	return dst, nil
}

// decodeMessage parses one message. The conversation and payload it returns
// alias b; an empty conversation is returned as nil. It never panics: every
// problem with b is an error wrapping errMalformed.
func decodeMessage(b []byte) (conversation, payload []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", errMalformed)
	}
	if len(b) > maxMessage {
		return nil, nil, fmt.Errorf("%w: %d bytes exceeds the wire limit of %d", errMalformed, len(b), maxMessage)
	}
	if b[0] != wireVersion {
		return nil, nil, fmt.Errorf("%w: version %d, want %d", errMalformed, b[0], wireVersion)
	}
	rest := b[1:]
	convLen, rest, err := readLength(rest, "conversation", maxConversation)
	if err != nil {
		return nil, nil, err
	}
	if convLen > 0 {
		conversation = rest[:convLen]
	}
	rest = rest[convLen:]
	payloadLen, rest, err := readLength(rest, "payload", maxMessage)
	if err != nil {
		return nil, nil, err
	}
	payload, padding := rest[:payloadLen], rest[payloadLen:]
	if i := slices.IndexFunc(padding, func(c byte) bool { return c != 0 }); i >= 0 {
		return nil, nil, fmt.Errorf("%w: padding byte at offset %d is %#x, want 0", errMalformed, len(b)-len(padding)+i, padding[i])
	}
	return conversation, payload, nil
}

// readLength reads the minimally encoded uvarint length of the named field
// from the front of b and checks that it is at most limit and that that many
// bytes follow it. It returns the length and the bytes after the uvarint.
func readLength(b []byte, field string, limit uint64) (int, []byte, error) {
	n, used := binary.Uvarint(b)
	switch {
	case used == 0:
		return 0, nil, fmt.Errorf("%w: %s length is missing or truncated", errMalformed, field)
	case used < 0:
		return 0, nil, fmt.Errorf("%w: %s length overflows 64 bits", errMalformed, field)
	case used != uvarintLen(n):
		return 0, nil, fmt.Errorf("%w: %s length %d is not minimally encoded", errMalformed, field, n)
	}
	rest := b[used:]
	if n > limit {
		return 0, nil, fmt.Errorf("%w: %s length %d exceeds %d", errMalformed, field, n, limit)
	}
	if n > uint64(len(rest)) {
		return 0, nil, fmt.Errorf("%w: %s length %d runs past the end (%d bytes left)", errMalformed, field, n, len(rest))
	}
	return int(n), rest, nil
}

// uvarintLen is the length of the minimal uvarint encoding of n.
func uvarintLen(n uint64) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
