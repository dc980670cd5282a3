package wire

import (
	"bytes"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
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
		if err != nil {
			return
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
	})
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
