package none

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   envelope
	}{
		{"empty", envelope{}},
		{"payload only", envelope{payload: []byte("hello")}},
		{"conversation and payload", envelope{conversation: []byte("group-1"), payload: []byte{0, 1, 2}}},
		{"longest conversation", envelope{conversation: bytes.Repeat([]byte{7}, maxConversation), payload: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendEnvelope(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.conversation, tt.in.conversation) || !bytes.Equal(got.payload, tt.in.payload) {
				t.Fatalf("round trip: got %+v, want %+v", got, tt.in)
			}
		})
	}
}

func TestEnvelopeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"wrong version", []byte{2, 0}},
		{"no length", []byte{1}},
		{"length past end", []byte{1, 5, 'a'}},
		{"length over limit", []byte{1, 0x80, 0x02}},
		{"overlong varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tt.in); !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("decodeEnvelope(%x) = %v, want ErrBadEnvelope", tt.in, err)
			}
		})
	}
	if _, err := appendEnvelope(nil, envelope{conversation: make([]byte, maxConversation+1)}); err == nil {
		t.Fatal("appendEnvelope accepted an oversize conversation id")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	good, _ := appendEnvelope(nil, envelope{conversation: []byte("c"), payload: []byte("p")})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		re, err := appendEnvelope(nil, e)
		if err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
		again, err := decodeEnvelope(re)
		if err != nil || !bytes.Equal(again.conversation, e.conversation) || !bytes.Equal(again.payload, e.payload) {
			t.Fatalf("re-encoded envelope differs")
		}
	})
}
