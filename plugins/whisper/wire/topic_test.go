package wire

import (
	"bytes"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/sha3"
)

func keccak(b []byte) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write(b)
	return h.Sum(nil)
}

// handBloom re-derives geth's rule with plain byte operations.
func handBloom(t TopicType) []byte {
	b := make([]byte, 64)
	i0 := int(t[0]) | int(t[3]&1)<<8
	i1 := int(t[1]) | int(t[3]>>1&1)<<8
	i2 := int(t[2]) | int(t[3]>>2&1)<<8
	b[i0>>3] = 1 << (i0 & 7)
	b[i1>>3] = 1 << (i1 & 7) // assignment: may overwrite i0's bit
	b[i2>>3] = 1 << (i2 & 7)
	return b
}

func TestTopicToBloom(t *testing.T) {
	cases := []struct {
		topic string
		set   map[int]byte // expected non-zero bytes
	}{
		{"01020300", map[int]byte{0: 0x08}},                     // geth vector: EIP would give 0x0e
		{"ff008005", map[int]byte{0: 0x01, 48: 0x01, 63: 0x80}}, // geth vector
		{"00000000", map[int]byte{0: 0x01}},
		{"0008ff07", map[int]byte{32: 0x01, 33: 0x01, 63: 0x80}},
		{"deadbeef", nil},
		{"cd423760", nil},
	}
	for _, c := range cases {
		topic := BytesToTopic(mustHex(t, c.topic))
		got := TopicToBloom(topic)
		if len(got) != BloomFilterSize {
			t.Fatalf("len %d", len(got))
		}
		if want := handBloom(topic); !bytes.Equal(got, want) {
			t.Errorf("%s: bloom %x, hand-derived %x", c.topic, got, want)
		}
		if c.set != nil {
			for i, b := range got {
				if b != c.set[i] {
					t.Errorf("%s: byte %d = %#x, want %#x", c.topic, i, b, c.set[i])
				}
			}
		}
		bits := 0
		for _, b := range got {
			for ; b != 0; b &= b - 1 {
				bits++
			}
		}
		if bits < 1 || bits > 3 {
			t.Errorf("%s: %d bits set", c.topic, bits)
		}
		e := Envelope{Topic: topic}
		if !bytes.Equal(e.Bloom(), got) {
			t.Errorf("Envelope.Bloom differs")
		}
	}
}

func TestBloomFilterMatch(t *testing.T) {
	a := TopicToBloom(TopicType{1, 2, 3, 0})
	b := TopicToBloom(TopicType{0xff, 0, 0x80, 5})
	f := make([]byte, 64)
	for i := range f {
		f[i] = a[i] | b[i]
	}
	if !BloomFilterMatch(f, a) || !BloomFilterMatch(f, b) || !BloomFilterMatch(nil, a) {
		t.Fatal("expected match")
	}
	if BloomFilterMatch(a, b) {
		t.Fatal("unexpected match")
	}
}

func TestBytesToTopicAndConventions(t *testing.T) {
	if BytesToTopic([]byte{1, 2}) != (TopicType{1, 2, 0, 0}) {
		t.Fatal("short input")
	}
	if BytesToTopic([]byte{1, 2, 3, 4, 5}) != (TopicType{1, 2, 3, 4}) {
		t.Fatal("long input")
	}
	if got := hex.EncodeToString(keccak([]byte("contact-discovery"))[:4]); got != "f8946aac" {
		t.Fatalf("discovery topic %s", got)
	}
	if s := (TopicType{0xde, 0xad, 0xbe, 0xef}).String(); s != "0xdeadbeef" {
		t.Fatal(s)
	}
}
