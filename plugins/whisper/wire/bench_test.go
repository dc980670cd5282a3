package wire

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
)

func benchEnvelope(b *testing.B, size int) *Envelope {
	b.Helper()
	p := &MessageParams{KeySym: bytes.Repeat([]byte{1}, 32), Topic: TopicType{1, 2, 3, 4}, Payload: make([]byte, size)}
	msg, err := NewSentMessage(p)
	if err != nil {
		b.Fatal(err)
	}
	env, err := msg.Wrap(p, time.Unix(1700000000, 0))
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkPoW measures one PoW computation on a 256-byte-plaintext envelope.
func BenchmarkPoW(b *testing.B) {
	env := benchEnvelope(b, 100)
	b.SetBytes(int64(len(env.Data)))
	b.ReportAllocs()
	for b.Loop() {
		_ = env.PoW()
	}
}

// BenchmarkMine measures finding a nonce at DefaultMinimumPoW for a
// 256-byte-plaintext envelope (TTL 50).
func BenchmarkMine(b *testing.B) {
	env := benchEnvelope(b, 100)
	ctx := context.Background()
	for b.Loop() {
		env.Nonce = 0
		env.Expiry++ // a fresh search every iteration
		if err := env.Mine(ctx, DefaultMinimumPoW); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValidate decodes and validates a 1 KiB envelope.
func BenchmarkDecodeValidate(b *testing.B) {
	env := &Envelope{Expiry: 1700000050, TTL: 50, Topic: TopicType{1, 2, 3, 4}, Data: bytes.Repeat([]byte{0xcd}, 1024-EnvelopeHeaderLength)}
	if err := env.Mine(context.Background(), DefaultMinimumPoW); err != nil {
		b.Fatal(err)
	}
	raw := env.Encode()
	now := time.Unix(1700000000, 0)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := DecodeEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Validate(now, DefaultMaxMessageSize, DefaultMinimumPoW); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealDefault measures Seal, as the whisper layer calls it for a
// post, at the defaults: target DefaultMinimumPoW, TTL DefaultTTL, a
// 100-byte payload (284 bytes of Data), nonces searched on every CPU (-cpu
// 1 for one). Each iteration seals a different envelope. The comparison
// with go-ethereum v1.9.20's Seal is plugins/whisper's BenchmarkSeal.
func BenchmarkSealDefault(b *testing.B) {
	env := benchEnvelope(b, 100)
	tries := 0.0
	b.ResetTimer()
	for range b.N {
		env.Nonce = 0
		env.Expiry++ // a fresh search every iteration
		if err := env.Seal(DefaultMinimumPoW, time.Minute); err != nil {
			b.Fatal(err)
		}
		tries += float64(env.Nonce + 1)
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns, "ns/seal")
	b.ReportMetric(1e9/ns, "seals/s")
	if workers() == 1 {
		b.ReportMetric(tries/float64(b.N), "hashes/seal")
	}
}

// TestRLPWithoutNonce checks the hand-built encoding the PoW is computed on
// (made for speed, see BenchmarkPoW) against the rlp package's, on the
// integer and length boundaries of RLP and random envelopes.
func TestRLPWithoutNonce(t *testing.T) {
	ints := []uint32{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffff, 0x1000000, 1700000050, 0xffffffff}
	lens := []int{0, 1, 2, 55, 56, 57, 255, 256, 1000, 65535, 65536, 70000}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(e *Envelope) {
		t.Helper()
		want, err := rlp.EncodeToBytes([]any{e.Expiry, e.TTL, e.Topic, e.Data})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.rlpWithoutNonce(); !bytes.Equal(got, want) {
			t.Fatalf("expiry %d ttl %d data %d bytes: got %x…, want %x…", e.Expiry, e.TTL, len(e.Data), got[:min(len(got), 40)], want[:min(len(want), 40)])
		}
		h := keccak(append(want, 0, 0, 0, 0, 0, 0, 0, byte(e.Nonce)))
		if pow := powFormula(leadingZeros(h), len(want), e.TTL, 0); pow != e.PoW() {
			t.Fatalf("PoW %v, want %v", e.PoW(), pow)
		}
	}
	for _, x := range ints {
		for _, n := range lens {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			check(&Envelope{Expiry: x, TTL: x, Topic: TopicType{1, 2, 3, 4}, Data: data, Nonce: uint64(n & 0xff)})
			check(&Envelope{Expiry: x, TTL: 50, Data: data})
		}
	}
	for b := 0; b < 256; b++ { // single bytes: below 0x80 a byte is its own encoding
		check(&Envelope{Expiry: 100, TTL: 50, Data: []byte{byte(b)}, Nonce: uint64(b)})
	}
}
