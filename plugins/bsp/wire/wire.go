// Package wire is the record format of the Bramble Synchronisation
// Protocol (BSP, version 0) as Briar writes it, and the identifiers BSP
// derives (/work/shared/specs/datasync.md §2.3–2.5, from Briar's
// bramble-api sync and record packages, release 1.5.19).
//
// A record is a 4-byte header (protocol version, record type, big-endian
// payload length) and its payload. Records follow each other on a stream
// with no other framing. Every decoder here takes bytes from the network:
// it returns an error for anything a conforming reader rejects and never
// panics; the fuzz targets beside it hold it to that.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Record header and limits (§2.4).
const (
	// ProtocolVersion is the only record version this reader speaks.
	ProtocolVersion = 0
	// HeaderLen is RECORD_HEADER_BYTES.
	HeaderLen = 4
	// MaxRecordPayload is MAX_RECORD_PAYLOAD_BYTES, 48 KiB.
	MaxRecordPayload = 48 * 1024
	// IDLen is UniqueId.LENGTH.
	IDLen = 32
	// MaxIDs is the most ids one ACK, OFFER or REQUEST carries.
	MaxIDs = MaxRecordPayload / IDLen
	// MessageHeaderLen is the group id and the timestamp before a body.
	MessageHeaderLen = IDLen + 8
	// MaxBody is MAX_MESSAGE_BODY_LENGTH, 32 KiB.
	MaxBody = 32 * 1024
	// MaxMessageLen is MAX_MESSAGE_LENGTH.
	MaxMessageLen = MessageHeaderLen + MaxBody
	// MaxSupportedVersions is the most versions a VERSIONS record lists.
	MaxSupportedVersions = 10
	// PriorityNonceLen is the length of a PRIORITY record's nonce.
	PriorityNonceLen = 16
)

// Type is a record type.
type Type uint8

// The record types of BSP version 0.
const (
	Ack      Type = 0
	Message  Type = 1
	Offer    Type = 2
	Request  Type = 3
	Versions Type = 4
	Priority Type = 5
)

// Known reports whether t is a record type of version 0.
func (t Type) Known() bool { return t <= Priority }

// String names the type.
func (t Type) String() string {
	switch t {
	case Ack:
		return "ACK"
	case Message:
		return "MESSAGE"
	case Offer:
		return "OFFER"
	case Request:
		return "REQUEST"
	case Versions:
		return "VERSIONS"
	case Priority:
		return "PRIORITY"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors of the reader. Each is wrapped with its detail; errors.Is
// tells them apart, and a caller counts them by kind.
var (
	// ErrVersion is a record of a protocol version other than 0: the
	// stream is abandoned, not skipped (§2.5).
	ErrVersion = errors.New("bsp: unsupported record protocol version")
	// ErrTruncated is a header or payload cut short.
	ErrTruncated = errors.New("bsp: truncated record")
	// ErrTooLarge is a payload length above MaxRecordPayload.
	ErrTooLarge = errors.New("bsp: record payload too large")
	// ErrIDs is an ACK, OFFER or REQUEST payload that is empty or not a
	// multiple of 32 bytes.
	ErrIDs = errors.New("bsp: bad id list")
	// ErrMessage is a MESSAGE payload of a bad length or with a negative
	// timestamp.
	ErrMessage = errors.New("bsp: bad message")
	// ErrVersions is a VERSIONS payload that is empty or too long.
	ErrVersions = errors.New("bsp: bad versions record")
	// ErrPriority is a PRIORITY payload that is not 16 bytes.
	ErrPriority = errors.New("bsp: bad priority record")
)

// Record is one record as read: its type and its payload, which aliases
// the input.
type Record struct {
	Type    Type
	Payload []byte
}

// Next reads the record at the start of b and returns it with the number
// of bytes it took. It checks the header only: a version other than 0 is
// ErrVersion, a length above MaxRecordPayload ErrTooLarge, a record cut
// short ErrTruncated. A record of an unknown type is returned like any
// other (Type.Known is false): the caller skips it.
func Next(b []byte) (Record, int, error) {
	if len(b) < HeaderLen {
		return Record{}, 0, fmt.Errorf("%w: %d header bytes", ErrTruncated, len(b))
	}
	if b[0] != ProtocolVersion {
		return Record{}, 0, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > MaxRecordPayload {
		return Record{}, 0, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	if len(b)-HeaderLen < n {
		return Record{}, 0, fmt.Errorf("%w: payload of %d bytes, %d present", ErrTruncated, n, len(b)-HeaderLen)
	}
	return Record{Type: Type(b[1]), Payload: b[HeaderLen : HeaderLen+n]}, HeaderLen + n, nil
}

// AppendHeader appends a version-0 record header for a payload of n
// bytes, which must be at most MaxRecordPayload.
func AppendHeader(dst []byte, t Type, n int) []byte {
	if n < 0 || n > MaxRecordPayload {
		panic(fmt.Sprintf("bsp: record payload of %d bytes", n))
	}
	return append(dst, ProtocolVersion, byte(t), byte(n>>8), byte(n))
}

// ID is a 32-byte BSP identifier (message id, group id).
type ID [IDLen]byte

// DecodeIDs reads the payload of an ACK, OFFER or REQUEST: 1 to MaxIDs
// ids, concatenated. The ids alias nothing.
func DecodeIDs(p []byte) ([]ID, error) {
	if len(p) == 0 || len(p)%IDLen != 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrIDs, len(p))
	}
	if len(p) > MaxRecordPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(p))
	}
	ids := make([]ID, len(p)/IDLen)
	for i := range ids {
		copy(ids[i][:], p[i*IDLen:])
	}
	return ids, nil
}

// AppendIDs appends one record of type t (ACK, OFFER or REQUEST) for ids,
// 1 to MaxIDs of them.
func AppendIDs(dst []byte, t Type, ids []ID) []byte {
	if len(ids) == 0 || len(ids) > MaxIDs {
		panic(fmt.Sprintf("bsp: %d ids in one record", len(ids)))
	}
	dst = AppendHeader(dst, t, len(ids)*IDLen)
	for i := range ids {
		dst = append(dst, ids[i][:]...)
	}
	return dst
}

// RawMessage is a message as BSP carries it: its group, its timestamp in
// milliseconds since the Unix epoch, and its body (1 to MaxBody bytes).
type RawMessage struct {
	Group     ID
	Timestamp uint64
	Body      []byte
}

// DecodeMessage reads the payload of a MESSAGE record. The body aliases p.
func DecodeMessage(p []byte) (RawMessage, error) {
	if len(p) <= MessageHeaderLen || len(p) > MaxMessageLen {
		return RawMessage{}, fmt.Errorf("%w: %d bytes", ErrMessage, len(p))
	}
	var m RawMessage
	copy(m.Group[:], p)
	m.Timestamp = binary.BigEndian.Uint64(p[IDLen:])
	if m.Timestamp>>63 != 0 {
		return RawMessage{}, fmt.Errorf("%w: negative timestamp", ErrMessage)
	}
	m.Body = p[MessageHeaderLen:]
	return m, nil
}

// Check reports whether m can be written: a body of 1 to MaxBody bytes and
// a timestamp with the top bit clear.
func (m RawMessage) Check() error {
	if len(m.Body) == 0 || len(m.Body) > MaxBody {
		return fmt.Errorf("%w: body of %d bytes", ErrMessage, len(m.Body))
	}
	if m.Timestamp>>63 != 0 {
		return fmt.Errorf("%w: negative timestamp", ErrMessage)
	}
	return nil
}

// RecordLen is the length of m's MESSAGE record.
func (m RawMessage) RecordLen() int { return HeaderLen + MessageHeaderLen + len(m.Body) }

// AppendMessage appends m's MESSAGE record; m must pass Check.
func AppendMessage(dst []byte, m RawMessage) []byte {
	if err := m.Check(); err != nil {
		panic(err)
	}
	dst = AppendHeader(dst, Message, MessageHeaderLen+len(m.Body))
	dst = append(dst, m.Group[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.Timestamp)
	return append(dst, m.Body...)
}

// DecodeVersions reads a VERSIONS payload: 1 to 10 version bytes.
func DecodeVersions(p []byte) ([]byte, error) {
	if len(p) == 0 || len(p) > MaxSupportedVersions {
		return nil, fmt.Errorf("%w: %d bytes", ErrVersions, len(p))
	}
	return append([]byte(nil), p...), nil
}

// AppendVersions appends a VERSIONS record listing vs (1 to 10).
func AppendVersions(dst []byte, vs ...byte) []byte {
	if len(vs) == 0 || len(vs) > MaxSupportedVersions {
		panic(fmt.Sprintf("bsp: %d versions", len(vs)))
	}
	return append(AppendHeader(dst, Versions, len(vs)), vs...)
}

// DecodePriority reads a PRIORITY payload: a 16-byte nonce.
func DecodePriority(p []byte) ([PriorityNonceLen]byte, error) {
	var n [PriorityNonceLen]byte
	if len(p) != PriorityNonceLen {
		return n, fmt.Errorf("%w: %d bytes", ErrPriority, len(p))
	}
	copy(n[:], p)
	return n, nil
}

// AppendPriority appends a PRIORITY record with nonce.
func AppendPriority(dst []byte, nonce [PriorityNonceLen]byte) []byte {
	return append(AppendHeader(dst, Priority, PriorityNonceLen), nonce[:]...)
}

// Check decodes the payload of a known record type and reports whether a
// conforming reader accepts it; unknown types pass (they are skipped).
func (r Record) Check() error {
	var err error
	switch r.Type {
	case Ack, Offer, Request:
		_, err = DecodeIDs(r.Payload)
	case Message:
		_, err = DecodeMessage(r.Payload)
	case Versions:
		_, err = DecodeVersions(r.Payload)
	case Priority:
		_, err = DecodePriority(r.Payload)
	}
	return err
}
