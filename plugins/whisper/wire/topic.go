package wire

import "encoding/hex"

// TopicType is the 4-byte routing label of an envelope.
type TopicType [TopicLength]byte

// BytesToTopic copies up to the first 4 bytes of b into a topic (shorter
// input leaves the remaining bytes zero), as geth does.
func BytesToTopic(b []byte) (t TopicType) {
	copy(t[:], b)
	return t
}

// String returns the topic as 0x-prefixed hex.
func (t TopicType) String() string {
	return "0x" + hex.EncodeToString(t[:])
}

// TopicToBloom maps a topic to a 64-byte bloom filter exactly as geth
// v1.9.20 does: for j in 0..2 the bit index is topic[j] (+256 when bit j of
// topic[3] is set) and the byte index/8 is ASSIGNED 1<<(index%8), so between
// one and three bits end up set.
func TopicToBloom(topic TopicType) []byte {
	b := make([]byte, BloomFilterSize)
	for j := 0; j < 3; j++ {
		idx := int(topic[j])
		if topic[3]&(1<<uint(j)) != 0 {
			idx += 256
		}
		b[idx/8] = 1 << uint(idx%8)
	}
	return b
}

// BloomFilterMatch reports whether filter contains every bit of sample. A
// nil (or empty) filter matches everything, as in geth.
func BloomFilterMatch(filter, sample []byte) bool {
	if len(filter) == 0 {
		return true
	}
	if len(filter) != BloomFilterSize || len(sample) != BloomFilterSize {
		return false
	}
	for i := 0; i < BloomFilterSize; i++ {
		if filter[i]|sample[i] != filter[i] {
			return false
		}
	}
	return true
}
