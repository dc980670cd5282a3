package whisper

import (
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Address encoding, version 1:
//
//	contact: 0x01 | 0x01 | pubkey (65 bytes, 0x04||X||Y) | topic (4 bytes)
//	shared:  0x01 | 0x02 | topic (4 bytes) | symmetric key (32 bytes)
//
// A contact address's topic must be the partitioned topic of its key.
const (
	addrVersion     = 1
	addrKindContact = 1
	addrKindShared  = 2

	pubKeyLength       = 65
	contactAddrLength  = 2 + pubKeyLength + wire.TopicLength
	sharedAddrLength   = 2 + wire.TopicLength + wire.AESKeyLength
	partitionsNumber   = 5000
	partitionTopicBase = "contact-discovery-"
)

// ErrBadAddress is wrapped by every address decoding error.
var ErrBadAddress = errors.New("whisper: bad address")

// address is a decoded privacy address.
type address struct {
	kind   byte
	pub    *ecdsa.PublicKey // contact
	topic  wire.TopicType
	symKey []byte // shared
}

// PartitionedTopic is Status's 1:1 topic for a recipient key:
// Keccak256("contact-discovery-" + decimal(X mod 5000))[:4].
func PartitionedTopic(pub *ecdsa.PublicKey) wire.TopicType {
	raw := crypto.FromECDSAPub(pub) // 0x04 | X | Y
	if len(raw) != pubKeyLength {
		return wire.TopicType{}
	}
	x := new(big.Int).SetBytes(raw[1:33])
	p := x.Mod(x, big.NewInt(partitionsNumber))
	h := crypto.Keccak256([]byte(partitionTopicBase + strconv.FormatInt(p.Int64(), 10)))
	return wire.BytesToTopic(h)
}

// NameTopic is Status's public-chat topic: Keccak256(name)[:4].
func NameTopic(name string) wire.TopicType {
	return wire.BytesToTopic(crypto.Keccak256([]byte(name)))
}

func encodeContact(pub *ecdsa.PublicKey) []byte {
	t := PartitionedTopic(pub)
	out := make([]byte, 0, contactAddrLength)
	out = append(out, addrVersion, addrKindContact)
	out = append(out, crypto.FromECDSAPub(pub)...)
	return append(out, t[:]...)
}

func encodeShared(topic wire.TopicType, key []byte) []byte {
	out := make([]byte, 0, sharedAddrLength)
	out = append(out, addrVersion, addrKindShared)
	out = append(out, topic[:]...)
	return append(out, key...)
}

func decodeAddress(b []byte) (*address, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadAddress, len(b))
	}
	if b[0] != addrVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadAddress, b[0])
	}
	switch b[1] {
	case addrKindContact:
		if len(b) != contactAddrLength {
			return nil, fmt.Errorf("%w: contact address of %d bytes", ErrBadAddress, len(b))
		}
		pub, err := crypto.UnmarshalPubkey(b[2 : 2+pubKeyLength])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadAddress, err)
		}
		a := &address{kind: addrKindContact, pub: pub, topic: wire.BytesToTopic(b[2+pubKeyLength:])}
		if a.topic != PartitionedTopic(pub) {
			return nil, fmt.Errorf("%w: topic %s is not the key's partitioned topic", ErrBadAddress, a.topic)
		}
		return a, nil
	case addrKindShared:
		if len(b) != sharedAddrLength {
			return nil, fmt.Errorf("%w: shared address of %d bytes", ErrBadAddress, len(b))
		}
		key := append([]byte(nil), b[2+wire.TopicLength:]...)
		if allZero(key) {
			return nil, fmt.Errorf("%w: all-zero key", ErrBadAddress)
		}
		return &address{kind: addrKindShared, topic: wire.BytesToTopic(b[2:]), symKey: key}, nil
	}
	return nil, fmt.Errorf("%w: kind %d", ErrBadAddress, b[1])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// conversationFlag marks, in a free bit of the message's flags byte
// (wire.FreeFlags), a payload that starts with the frame's conversation
// id: uvarint len(conversation) | conversation | payload. A frame without
// a conversation goes out as its bare payload and the bit stays clear, so
// geth and Status clients see exactly what was sent, and a message from
// them (bit clear) comes up as its payload with no conversation.
const conversationFlag = byte(0x80)

// maxConversation bounds a conversation id.
const maxConversation = 255

var errBadInner = errors.New("whisper: bad conversation prefix")

// appendInner appends the whisper payload for a frame, and returns the
// flags it needs.
func appendInner(dst, conversation, payload []byte) ([]byte, byte, error) {
	if len(conversation) > maxConversation {
		return nil, 0, fmt.Errorf("whisper: conversation id of %d bytes exceeds %d", len(conversation), maxConversation)
	}
	if len(conversation) == 0 {
		return append(dst, payload...), 0, nil
	}
	dst = appendUvarint(dst, uint64(len(conversation)))
	dst = append(dst, conversation...)
	return append(dst, payload...), conversationFlag, nil
}

// decodeInner splits a received whisper payload by its message's flags.
func decodeInner(flags byte, b []byte) (conversation, payload []byte, err error) {
	if flags&conversationFlag == 0 {
		return nil, b, nil
	}
	n, used := uvarint(b)
	if used <= 0 || used != len(appendUvarint(nil, n)) { // minimal encoding only
		return nil, nil, errBadInner
	}
	rest := b[used:]
	if n == 0 || n > maxConversation || n > uint64(len(rest)) {
		return nil, nil, errBadInner
	}
	return rest[:n], rest[n:], nil
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }
