package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Envelope
	}{
		{"empty", Envelope{}},
		{"payload only", Envelope{Payload: []byte("hello")}},
		{"conversation and payload", Envelope{Conversation: []byte("group-1"), Payload: []byte{0, 1, 2}}},
		{"longest conversation", Envelope{Conversation: bytes.Repeat([]byte{7}, MaxConversation), Payload: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Append(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Conversation, tt.in.Conversation) || !bytes.Equal(got.Payload, tt.in.Payload) {
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
			if _, err := Decode(tt.in); !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("Decode(%x) = %v, want ErrBadEnvelope", tt.in, err)
			}
		})
	}
	if _, err := Append(nil, Envelope{Conversation: make([]byte, MaxConversation+1)}); err == nil {
		t.Fatal("Append accepted an oversize conversation id")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	good, _ := Append(nil, Envelope{Conversation: []byte("c"), Payload: []byte("p")})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		re, err := Append(nil, e)
		if err != nil {
			t.Fatalf("decoded Envelope does not re-encode: %v", err)
		}
		again, err := Decode(re)
		if err != nil || !bytes.Equal(again.Conversation, e.Conversation) || !bytes.Equal(again.Payload, e.Payload) {
			t.Fatalf("re-encoded Envelope differs")
		}
	})
}
