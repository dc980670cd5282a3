package mvds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// ID is a message id: the 32 bytes of SHA-256 that MessageID computes.
type ID [32]byte

// idPrefix is the ASCII prefix 2/MVDS hashes before a message's fields.
const idPrefix = "MESSAGE_ID"

// MessageID returns the 2/MVDS id of a message,
//
//	SHA-256( "MESSAGE_ID" || group || u64le(timestamp) || body )
//
// exactly as the vacp2p/mvds Go code encodes HASH("MESSAGE_ID", group_id,
// timestamp, body): the 10 ASCII bytes of the prefix, the group id as
// carried, the timestamp as 8 bytes little-endian (two's complement), and
// the body as carried, with no lengths or separators. Strata's body holds
// the author, the parents and the ephemeral flag, so all of them are bound
// to the id.
func MessageID(group []byte, timestamp int64, body []byte) ID {
	h := sha256.New()
	h.Write([]byte(idPrefix))
	h.Write(group)
	var ts [8]byte
	binary.LittleEndian.PutUint64(ts[:], uint64(timestamp))
	h.Write(ts[:])
	h.Write(body)
	var id ID
	h.Sum(id[:0])
	return id
}

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// short returns the first bytes of an id or key in hex, for logs.
func short(b []byte) string {
	if len(b) > 4 {
		b = b[:4]
	}
	return hex.EncodeToString(b)
}
