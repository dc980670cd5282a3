package wire

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

var (
	fuzzSymKey  = bytes.Repeat([]byte{0x5a}, 32)
	fuzzPrivHex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
)

func fuzzSeedEnvelopes(f *testing.F) []*Envelope {
	priv, err := crypto.HexToECDSA(fuzzPrivHex)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	var out []*Envelope
	for _, p := range []*MessageParams{
		{KeySym: fuzzSymKey, Payload: []byte("hello")},
		{KeySym: fuzzSymKey, Payload: []byte("signed"), Src: priv},
		{Dst: &priv.PublicKey, Payload: []byte("hello")},
		{Dst: &priv.PublicKey, Payload: []byte("signed"), Src: priv, Padding: []byte{1}},
	} {
		msg, err := NewSentMessage(p)
		if err != nil {
			f.Fatal(err)
		}
		env, err := msg.Wrap(p, now)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(mustHex(f, vecRLP))
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add(mustHex(f, "c90101840000000080"+"80"))
	for _, e := range fuzzSeedEnvelopes(f) {
		f.Add(e.Encode())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEnvelope(in)
		// The hand-written decoder gives geth's reflection decoder's answer.
		var ref rlpEnvelope
		refErr := rlp.DecodeBytes(in, &ref)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("DecodeEnvelope(%x): error %v, geth's decoder: %v", in, err, refErr)
		}
		if err != nil {
			return
		}
		if e.Expiry != ref.Expiry || e.TTL != ref.TTL || e.Topic != ref.Topic || e.Nonce != ref.Nonce || !bytes.Equal(e.Data, ref.Data) {
			t.Fatalf("DecodeEnvelope(%x) = %+v, geth's decoder: %+v", in, *e, ref)
		}
		// The decoder accepts only canonical encodings, so re-encoding
		// must reproduce the input exactly (and the hash of the input).
		if out := e.Encode(); !bytes.Equal(out, in) {
			t.Fatalf("re-encode %x != input %x", out, in)
		}
		h := e.Hash()
		if !bytes.Equal(h[:], keccak(in)) {
			t.Fatal("hash differs from Keccak256(input)")
		}
		_ = e.PoW()
		_ = e.Validate(time.Unix(1700000000, 0), DefaultMaxMessageSize, DefaultMinimumPoW)
		// The sharing decoder gives the same envelope, its Data inside in.
		s, err := DecodeEnvelopeShared(in)
		if err != nil {
			t.Fatalf("DecodeEnvelopeShared refused what DecodeEnvelope took: %v", err)
		}
		if s.Expiry != e.Expiry || s.TTL != e.TTL || s.Topic != e.Topic || s.Nonce != e.Nonce || !bytes.Equal(s.Data, e.Data) || cap(s.Data) != len(s.Data) {
			t.Fatalf("DecodeEnvelopeShared(%x) = %+v, DecodeEnvelope: %+v", in, *s, *e)
		}
		if len(s.Data) > 0 && &s.Data[0] != &in[len(in)-len(s.Data)-rlpUintLen(e.Nonce)] {
			t.Fatal("DecodeEnvelopeShared copied Data")
		}
	})
}

// rlpUintLen is the length of the canonical RLP encoding of x.
func rlpUintLen(x uint64) int {
	b, _ := rlp.EncodeToBytes(x)
	return len(b)
}

func FuzzOpenSymmetric(f *testing.F) {
	for _, e := range fuzzSeedEnvelopes(f)[:2] {
		f.Add(e.Data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rm, err := OpenSymmetric(&Envelope{Expiry: 100, TTL: 50, Data: data}, fuzzSymKey)
		if err == nil && rm == nil {
			t.Fatal("nil message without error")
		}
	})
}

func FuzzOpenAsymmetric(f *testing.F) {
	priv, err := crypto.HexToECDSA(fuzzPrivHex)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range fuzzSeedEnvelopes(f)[2:] {
		f.Add(e.Data)
	}
	f.Add([]byte{4})
	f.Add(append([]byte{2}, make([]byte, 200)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		rm, err := OpenAsymmetric(&Envelope{Expiry: 100, TTL: 50, Data: data}, priv)
		if err == nil && rm == nil {
			t.Fatal("nil message without error")
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"00", "0103616263", "0105616263", "02030061626378", "03ffffff", "04"} {
		f.Add(mustHex(f, s))
	}
	priv, err := crypto.HexToECDSA(fuzzPrivHex)
	if err != nil {
		f.Fatal(err)
	}
	if signed, err := sign([]byte{1, 2, 'h', 'i', 0}, priv); err == nil {
		f.Add(signed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rm, err := ParseMessage(raw)
		if err != nil {
			return
		}
		n := len(rm.Payload) + len(rm.Padding) + len(rm.Signature) + 1 + int(raw[0]&SizeMask)
		if n != len(raw) {
			t.Fatalf("parts cover %d of %d bytes", n, len(raw))
		}
		if (raw[0]&signatureFlag != 0) != (rm.Src != nil) {
			t.Fatal("signed flag and signer disagree")
		}
	})
}

// TestDecodeEnvelopeAgreesWithGeth: the hand-written decoder and geth's
// reflection decoder agree on inputs at each of the rules' edges, and
// accept exactly the valid ones.
func TestDecodeEnvelopeAgreesWithGeth(t *testing.T) {
	const topic, empty = "8400000000", "80"
	cases := []struct {
		name string
		hex  string
		ok   bool
	}{
		{"valid", list("01", "01", topic, empty, empty), true},
		{"valid, data and nonce", list("01", "01", "8401020304", "83aabbcc", "8201ff"), true},
		{"max uint32", list("84ffffffff", "01", topic, empty, empty), true},
		{"max nonce", list("01", "01", topic, empty, "88ffffffffffffffff"), true},
		{"zero as a byte", list("00", "01", topic, empty, empty), false},
		{"leading zero", list("820001", "01", topic, empty, empty), false},
		{"single byte as a string", list("8101", "01", topic, empty, empty), false},
		{"uint32 overflow", list("850100000000", "01", topic, empty, empty), false},
		{"nonce overflow", list("01", "01", topic, empty, "89010000000000000000"), false},
		{"short topic", list("01", "01", "83000000", empty, empty), false},
		{"long topic", list("01", "01", "850000000000", empty, empty), false},
		{"byte as topic", list("01", "01", "01", empty, empty), false},
		{"list as topic", list("01", "01", "c0", empty, empty), false},
		{"list as data", list("01", "01", topic, "c0", empty), false},
		{"list as expiry", list("c0", "01", topic, empty, empty), false},
		{"too few", list("01", "01", topic, empty), false},
		{"too many", list("01", "01", topic, empty, empty, empty), false},
		{"trailing byte", list("01", "01", topic, empty, empty) + "00", false},
		{"long size form for a short list", "f809" + list("01", "01", topic, empty, empty)[2:], false},
		{"empty list", "c0", false},
		{"empty input", "", false},
		{"a string", "8401020304", false},
	}
	for _, c := range cases {
		in := mustHex(t, c.hex)
		e, err := DecodeEnvelope(in)
		var ref rlpEnvelope
		refErr := rlp.DecodeBytes(in, &ref)
		if (err == nil) != c.ok || (refErr == nil) != c.ok {
			t.Errorf("%s (%s): error %v, geth's decoder: %v; want ok=%v", c.name, c.hex, err, refErr, c.ok)
			continue
		}
		if err == nil && (e.Expiry != ref.Expiry || e.TTL != ref.TTL || e.Topic != ref.Topic || e.Nonce != ref.Nonce || !bytes.Equal(e.Data, ref.Data)) {
			t.Errorf("%s: %+v, geth's decoder: %+v", c.name, *e, ref)
		}
	}
}

// list is the hex of a short RLP list of the given hex items.
func list(items ...string) string {
	var body string
	for _, it := range items {
		body += it
	}
	return fmt.Sprintf("%02x", 0xc0+len(body)/2) + body
}
