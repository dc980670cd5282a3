package padded

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

// mustBuckets parses a bucket list or fails the test.
func mustBuckets(t testing.TB, list ...string) buckets {
	t.Helper()
	bs, err := parseBuckets(list)
	if err != nil {
		t.Fatalf("parseBuckets(%q): %v", list, err)
	}
	return bs
}

// encode pads a message to the smallest of bs that holds it, with the
// layer's codec.
func encode(bs buckets, conversation, payload []byte) ([]byte, error) {
	return newCodec(bs).Encode(nil, conversation, payload)
}

// defaultBuckets returns the default bucket sizes, as they appear in a
// config section.
func defaultBuckets() []string {
	c, _ := sdk.ConfigDefaults[Config]()
	return c.Buckets
}

// payloadFor returns a payload that, with conversation, makes an unpadded
// message of exactly n bytes, or nil when no payload does (the payload
// length's own uvarint can make an exact fit impossible).
func payloadFor(conversation []byte, n int) []byte {
	for p := max(n-unpaddedLen(len(conversation), 0), 0); p >= 0; p-- {
		if got := unpaddedLen(len(conversation), p); got == n {
			b := make([]byte, p)
			for i := range b {
				b[i] = byte(i*7 + 1)
			}
			return b
		} else if got < n {
			return nil
		}
	}
	return nil
}

func TestRoundTripAtBucketBoundaries(t *testing.T) {
	bs := mustBuckets(t, defaultBuckets()...)
	conversations := map[string][]byte{
		"no conversation":      nil,
		"short conversation":   []byte("conv-1"),
		"longest conversation": bytes.Repeat([]byte{0xC7}, maxConversation),
	}
	for i, bucket := range bs {
		for cname, conv := range conversations {
			// An unpadded message one byte short of the bucket, exactly the
			// bucket, and one byte over it.
			for _, delta := range []int{-1, 0, +1} {
				n := bucket + delta
				payload := payloadFor(conv, n)
				if payload == nil {
					continue // not reachable with this conversation
				}
				name := fmt.Sprintf("bucket %d/%s/unpadded %+d", bucket, cname, delta)
				t.Run(name, func(t *testing.T) {
					wire, err := encode(bs, conv, payload)
					last := i == len(bs)-1
					if delta > 0 && last {
						if !errors.Is(err, errTooLarge) {
							t.Fatalf("encode over the largest bucket: err = %v, want errTooLarge", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("encode: %v", err)
					}
					want := bucket
					if delta > 0 {
						want = bs[i+1]
					}
					if len(wire) != want {
						t.Fatalf("wire length %d, want bucket %d", len(wire), want)
					}
					gotConv, gotPayload, err := decodeMessage(wire)
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					if !bytes.Equal(gotConv, conv) || !bytes.Equal(gotPayload, payload) {
						t.Fatalf("round trip changed the message: conversation %d→%d bytes, payload %d→%d bytes", len(conv), len(gotConv), len(payload), len(gotPayload))
					}
					if len(conv) == 0 && gotConv != nil {
						t.Fatalf("empty conversation decoded as %q, want nil", gotConv)
					}
				})
			}
		}
	}
}

func TestRoundTripSmallMessages(t *testing.T) {
	bs := mustBuckets(t, "16", "64")
	tests := []struct {
		name         string
		conversation []byte
		payload      []byte
		wantLen      int
	}{
		{"empty message", nil, nil, 16},
		{"one byte", nil, []byte{0}, 16},
		// 1 version + 1 conv_len + 1 conversation + 1 payload_len = 4 bytes of overhead.
		{"exact fit of the smallest bucket", []byte("c"), bytes.Repeat([]byte{1}, 16-4), 16},
		{"one past the smallest bucket", []byte("c"), bytes.Repeat([]byte{1}, 16-3), 64},
		{"payload of zeros is not mistaken for padding", nil, make([]byte, 10), 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := encode(bs, tt.conversation, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) != tt.wantLen {
				t.Fatalf("wire length %d, want %d", len(wire), tt.wantLen)
			}
			conv, payload, err := decodeMessage(wire)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(conv, tt.conversation) || !bytes.Equal(payload, tt.payload) {
				t.Fatalf("round trip: got (%x, %x), want (%x, %x)", conv, payload, tt.conversation, tt.payload)
			}
		})
	}
}

func TestAppendMessageRefuses(t *testing.T) {
	tests := []struct {
		name         string
		conversation []byte
		payload      []byte
		size         int
	}{
		{"conversation too long", make([]byte, maxConversation+1), nil, 1024},
		{"payload does not fit", nil, make([]byte, 100), 64},
		{"one byte over", nil, make([]byte, 64-3+1), 64},
		{"size over the wire limit", nil, nil, maxMessage + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := appendMessage(nil, tt.conversation, tt.payload, tt.size); !errors.Is(err, errTooLarge) {
				t.Fatalf("appendMessage = (%d bytes, %v), want errTooLarge", len(b), err)
			}
		})
	}
}

func TestEncodeRefusesOversize(t *testing.T) {
	bs := mustBuckets(t, defaultBuckets()...)
	largest := bs.largest()
	for _, n := range []int{largest - 4, largest, largest + 1, 2 * largest} {
		if _, err := encode(bs, nil, make([]byte, n)); !errors.Is(err, errTooLarge) {
			t.Errorf("encode of a %d-byte payload with largest bucket %d: err = %v, want errTooLarge", n, largest, err)
		}
	}
	if _, err := encode(bs, nil, make([]byte, maxPayload(largest))); err != nil {
		t.Errorf("encode of the largest payload %d: %v", maxPayload(largest), err)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := appendMessage(nil, []byte("ab"), []byte("xyz"), 16)
	if err != nil {
		t.Fatal(err)
	}
	// valid is 01 02 'a' 'b' 03 'x' 'y' 'z' followed by eight zeros.
	with := func(i int, c byte) []byte {
		b := bytes.Clone(valid)
		b[i] = c
		return b
	}
	overflow := bytes.Repeat([]byte{0xff}, 10)
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version 0", with(0, 0)},
		{"version 2", with(0, 2)},
		{"version 0xff", with(0, 0xff)},
		{"version only", []byte{1}},
		{"truncated conversation length", []byte{1, 0x80}},
		{"conversation length overflows", append([]byte{1}, append(overflow, 0x01)...)},
		{"conversation length not minimal", []byte{1, 0x80, 0x00, 0x00}},
		{"conversation length over limit", append([]byte{1, 0x80, 0x02}, make([]byte, 300)...)},
		{"conversation runs past the end", []byte{1, 5, 'a', 'b'}},
		{"payload length missing", []byte{1, 2, 'a', 'b'}},
		{"truncated payload length", []byte{1, 0, 0x80}},
		{"payload length overflows", append([]byte{1, 0}, append(overflow, 0x01)...)},
		{"payload length not minimal", []byte{1, 0, 0x83, 0x00, 'x', 'y', 'z'}},
		{"payload length over the wire limit", []byte{1, 0, 0x81, 0x80, 0x40}},
		{"payload runs past the end", []byte{1, 0, 4, 'x', 'y', 'z'}},
		{"huge payload length", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"nonzero first padding byte", with(8, 1)},
		{"nonzero last padding byte", with(len(valid)-1, 0x80)},
		{"longer than the wire limit", append([]byte{1, 0, 0}, make([]byte, maxMessage)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv, payload, err := decodeMessage(tt.in)
			if !errors.Is(err, errMalformed) {
				t.Fatalf("decodeMessage(% x) = (%q, %q, %v), want errMalformed", head(tt.in), conv, payload, err)
			}
			if conv != nil || payload != nil {
				t.Fatalf("decodeMessage returned data with an error: (%q, %q)", conv, payload)
			}
		})
	}
	if _, _, err := decodeMessage(valid); err != nil {
		t.Fatalf("the unmodified message must decode: %v", err)
	}
}

// head returns at most the first 16 bytes of b, for messages.
func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestUvarintLen(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want int
	}{{0, 1}, {127, 1}, {128, 2}, {16383, 2}, {16384, 3}, {1<<63 - 1, 9}, {1<<64 - 1, 10}} {
		if got := uvarintLen(tt.n); got != tt.want {
			t.Errorf("uvarintLen(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// FuzzDecodeMessage checks that decodeMessage never panics and that what it
// accepts is canonical: re-encoding the decoded message padded to the input's
// length gives back the input exactly. Under plain `go test` it runs the
// seeds below.
func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range []struct {
		conv, payload []byte
		size          int
	}{
		{nil, nil, 16},
		{[]byte("c"), []byte("p"), 256},
		{bytes.Repeat([]byte{9}, maxConversation), []byte("payload"), 1024},
		{nil, make([]byte, 256-4), 256},
	} {
		b, err := appendMessage(nil, seed.conv, seed.payload, seed.size)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0x80, 0x00, 0x00})
	f.Add([]byte{1, 0, 0, 1})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		conv, payload, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		if len(conv) > maxConversation {
			t.Fatalf("accepted a %d-byte conversation id", len(conv))
		}
		again, err := appendMessage(nil, conv, payload, len(b))
		if err != nil {
			t.Fatalf("accepted message does not re-encode at its own length %d: %v", len(b), err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical message:\n got % x\nwant % x", head(b), head(again))
		}
	})
}
