package whisper

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/strata-msg/strata/plugins/whisper/wire"
)

func TestStatusEncodingMatchesGeth(t *testing.T) {
	// Digest §2/§13: a default geth v1.9.20 node sends exactly these bytes.
	want, _ := hex.DecodeString("cc06883fc999999999999a8080")
	if got := encodeStatus(0.2, nil, false); !bytes.Equal(got, want) {
		t.Fatalf("status %x, want %x", got, want)
	}
	// PoW 0 is the canonical integer 0 (0x80); light true is 0x01.
	bloom := bytes.Repeat([]byte{0xff}, 64)
	got := encodeStatus(0, bloom, true)
	wantLight := append([]byte{0xf8, 0x45, 0x06, 0x80, 0xb8, 0x40}, append(bloom, 0x01)...)
	if !bytes.Equal(got, wantLight) {
		t.Fatalf("status %x, want %x", got, wantLight)
	}
	st, err := decodeStatus(got)
	if err != nil || st.PoW != 0 || !bytes.Equal(st.Bloom, bloom) || !st.Light || !st.PoWSet {
		t.Fatalf("round trip: %+v %v", st, err)
	}
}

func TestDecodeStatusLenient(t *testing.T) {
	enc := func(v any) []byte { b, _ := rlp.EncodeToBytes(v); return b }
	ok := []struct {
		name  string
		in    []byte
		pow   float64
		set   bool
		light bool
	}{
		{"version only", enc([]any{uint64(6)}), 0, false, false},
		{"pow not uint", enc([]any{uint64(6), []any{}, make([]byte, 64)}), 0, false, false},
		{"no light", enc([]any{uint64(6), math.Float64bits(1.5), []byte{}}), 1.5, true, false},
		{"bad light", enc([]any{uint64(6), math.Float64bits(1.5), []byte{}, []byte{7, 7}}), 1.5, true, false},
		{"trailing items", enc([]any{uint64(6), math.Float64bits(0.2), []byte{}, true, true, uint64(9)}), 0.2, true, true},
	}
	for _, c := range ok {
		st, err := decodeStatus(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if st.PoW != c.pow || st.PoWSet != c.set || st.Light != c.light {
			t.Errorf("%s: %+v", c.name, st)
		}
	}
	bad := map[string][]byte{
		"not a list":  enc(uint64(6)),
		"empty list":  enc([]any{}),
		"version 5":   enc([]any{uint64(5), math.Float64bits(0.2), []byte{}, false}),
		"NaN":         enc([]any{uint64(6), math.Float64bits(math.NaN()), []byte{}, false}),
		"+Inf":        enc([]any{uint64(6), math.Float64bits(math.Inf(1)), []byte{}, false}),
		"negative":    enc([]any{uint64(6), math.Float64bits(-1), []byte{}, false}),
		"bloom of 63": enc([]any{uint64(6), math.Float64bits(0.2), make([]byte, 63), false}),
		"garbage":     {0xff, 0x00},
	}
	for name, in := range bad {
		if _, err := decodeStatus(in); !errors.Is(err, errBadPacket) {
			t.Errorf("%s: got %v, want errBadPacket", name, err)
		}
	}
}

func TestPoWAndBloomPackets(t *testing.T) {
	if b := encodePoWRequirement(0.2); hex.EncodeToString(b) != "883fc999999999999a" {
		t.Fatalf("pow requirement %x", b)
	}
	if v, err := decodePoWRequirement(encodePoWRequirement(3.5)); err != nil || v != 3.5 {
		t.Fatalf("%v %v", v, err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(-1), -0.5} {
		if _, err := decodePoWRequirement(encodePoWRequirement(v)); err == nil {
			t.Errorf("%v accepted", v)
		}
	}
	if _, err := decodePoWRequirement([]byte{0x84, 1}); err == nil {
		t.Error("truncated accepted")
	}
	bloom := wire.TopicToBloom(wire.TopicType{1, 2, 3, 0})
	if got, err := decodeBloom(encodeBloom(bloom)); err != nil || !bytes.Equal(got, bloom) {
		t.Fatalf("%x %v", got, err)
	}
	for _, n := range []int{0, 63, 65} {
		if _, err := decodeBloom(encodeBloom(make([]byte, n))); err == nil {
			t.Errorf("bloom of %d accepted", n)
		}
	}
}

func TestDecodeMessages(t *testing.T) {
	e := &wire.Envelope{Expiry: 1600000050, TTL: 50, Topic: wire.TopicType{0xde, 0xad, 0xbe, 0xef}, Data: []byte("0123456789abcdef0123456789abcdef"), Nonce: 0x1234}
	got, err := decodeMessages(encodeMessages([][]byte{e.Encode(), e.Encode()}))
	if err != nil || len(got) != 2 || got[1].Hash() != e.Hash() {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := decodeMessages([]byte{0xc0}); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v %v", got, err)
	}
	for _, in := range [][]byte{{}, {0x80}, {0xc1, 0x01}, {0xc2, 0xc0}} {
		if _, err := decodeMessages(in); !errors.Is(err, errBadPacket) {
			t.Errorf("%x: %v", in, err)
		}
	}
}
