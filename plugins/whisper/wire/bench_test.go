package wire

import (
	"bytes"
	"context"
	"testing"
	"time"
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
