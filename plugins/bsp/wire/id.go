package wire

import (
	"encoding/binary"

	"golang.org/x/crypto/blake2b"
)

// Labels and the format version of BSP's tagged hashes (§2.3).
const (
	LabelGroupID      = "org.briarproject.bramble/GROUP_ID"
	LabelMessageBlock = "org.briarproject.bramble/MESSAGE_BLOCK"
	LabelMessageID    = "org.briarproject.bramble/MESSAGE_ID"
	// FormatVersion is the one byte hashed after each label.
	FormatVersion = 1
	// MaxGroupDescriptor is the largest group descriptor, 16 KiB.
	MaxGroupDescriptor = 16 * 1024
)

// TaggedHash is BSP's TH(label, x1..xn): unkeyed BLAKE2b-256 over the
// label and each input, each preceded by its length as a 4-byte
// big-endian unsigned integer.
func TaggedHash(label string, xs ...[]byte) ID {
	h, err := blake2b.New256(nil)
	if err != nil {
		panic(err) // only a key longer than 64 bytes fails
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(label)))
	h.Write(n[:])
	h.Write([]byte(label))
	for _, x := range xs {
		binary.BigEndian.PutUint32(n[:], uint32(len(x)))
		h.Write(n[:])
		h.Write(x)
	}
	var id ID
	h.Sum(id[:0])
	return id
}

// BlockRoot is the root of a body of one block, its block hash:
// TH(MESSAGE_BLOCK, 0x01, body).
func BlockRoot(body []byte) ID {
	return TaggedHash(LabelMessageBlock, []byte{FormatVersion}, body)
}

// MessageID is a message's id as Briar's MessageFactoryImpl derives it:
// TH(MESSAGE_ID, 0x01, group, u64be(timestamp), BlockRoot(body)).
func MessageID(group ID, timestamp uint64, body []byte) ID {
	root := BlockRoot(body)
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], timestamp)
	return TaggedHash(LabelMessageID, []byte{FormatVersion}, group[:], ts[:], root[:])
}

// ID returns m's message id.
func (m RawMessage) ID() ID { return MessageID(m.Group, m.Timestamp, m.Body) }

// GroupID is a group's id as Briar's GroupFactoryImpl derives it:
// TH(GROUP_ID, 0x01, utf8(client), u32be(major), descriptor). The
// descriptor is at most MaxGroupDescriptor bytes; the caller checks.
func GroupID(client string, major uint32, descriptor []byte) ID {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], major)
	return TaggedHash(LabelGroupID, []byte{FormatVersion}, []byte(client), v[:], descriptor)
}
