package direct

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	reverse := func(b []byte) ([]byte, error) {
		out := bytes.Clone(b)
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out, nil
	}
	tests := []struct {
		name         string
		codec        Envelope
		conversation []byte
		payload      []byte
	}{
		{"empty", Envelope{}, nil, nil},
		{"payload only", Envelope{}, nil, []byte("hello")},
		{"conversation and payload", Envelope{}, []byte("group-1"), []byte{0, 1, 2}},
		{"longest conversation", Envelope{}, bytes.Repeat([]byte{7}, MaxConversation), []byte("x")},
		{"transformed", Envelope{Seal: reverse, Open: reverse}, []byte("c"), []byte("abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.codec.Encode(nil, tt.conversation, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > len(tt.payload)+EnvelopeOverhead {
				t.Fatalf("%d bytes on the wire for a %d-byte payload, more than EnvelopeOverhead allows", len(b), len(tt.payload))
			}
			conv, payload, err := tt.codec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(conv, tt.conversation) || !bytes.Equal(payload, tt.payload) {
				t.Fatalf("round trip: got %q/%q, want %q/%q", conv, payload, tt.conversation, tt.payload)
			}
		})
	}
}

// TestEnvelopeWire pins the wire format that `none` has always spoken.
func TestEnvelopeWire(t *testing.T) {
	b, err := Envelope{}.Encode(nil, []byte("cv"), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 'c', 'v', 'h', 'i'}; !bytes.Equal(b, want) {
		t.Fatalf("Encode = %x, want %x", b, want)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	fail := func([]byte) ([]byte, error) { return nil, errors.New("no") }
	tests := []struct {
		name  string
		codec Envelope
		in    []byte
	}{
		{"empty", Envelope{}, nil},
		{"wrong version", Envelope{}, []byte{2, 0}},
		{"no length", Envelope{}, []byte{1}},
		{"length past end", Envelope{}, []byte{1, 5, 'a'}},
		{"length over limit", Envelope{}, []byte{1, 0x80, 0x02}},
		{"overlong varint", Envelope{}, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"open fails", Envelope{Open: fail}, []byte{1, 0, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tt.codec.Decode(tt.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%x) = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
	if _, err := (Envelope{}).Encode(nil, make([]byte, MaxConversation+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode with an oversize conversation id: %v, want ErrTooLarge", err)
	}
	if _, err := (Envelope{Seal: fail}).Encode(nil, nil, []byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode with a failing Seal: %v, want ErrTooLarge", err)
	}
}

func FuzzEnvelopeDecode(f *testing.F) {
	good, _ := Envelope{}.Encode(nil, []byte("c"), []byte("p"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		conv, payload, err := Envelope{}.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		re, err := Envelope{}.Encode(nil, conv, payload)
		if err != nil {
			t.Fatalf("a decoded envelope does not re-encode: %v", err)
		}
		c2, p2, err := Envelope{}.Decode(re)
		if err != nil || !bytes.Equal(c2, conv) || !bytes.Equal(p2, payload) {
			t.Fatal("a re-encoded envelope differs")
		}
	})
}
