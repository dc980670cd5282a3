package wire

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

// TestDecodeMemoryBound checks that decoding costs memory in proportion to
// the input for the encodings that pack the most list elements into the
// fewest bytes, so that a message of bounded size cannot make a decoder
// allocate without bound: at most maxAllocPerByte bytes in all (garbage
// included) per input byte.
func TestDecodeMemoryBound(t *testing.T) {
	const n = 20000
	const maxAllocPerByte = 80
	vector := func(prefix []byte, elem []byte, suffix []byte) []byte {
		var w codec.Writer
		w.Raw(prefix)
		w.Opaque(bytes.Repeat(elem, n))
		w.Raw(suffix)
		return w.Bytes()
	}
	tests := []struct {
		name string
		in   []byte
		v    func() Decoder
	}{
		{"commit of empty references", vector(nil, []byte{2, 0}, []byte{0}), func() Decoder { return new(Commit) }},
		{"commit of inline removes", vector(nil, []byte{1, 0, 3, 0, 0, 0, 0}, []byte{0}), func() Decoder { return new(Commit) }},
		{"commit of inline external PSKs", vector(nil, []byte{1, 0, 4, 1, 0, 0}, []byte{0}), func() Decoder { return new(Commit) }},
		{"ratchet tree of blanks", vector(nil, []byte{0}, nil), func() Decoder { return new(RatchetTree) }},
		{"ratchet tree of empty parents", vector(nil, []byte{1, 2, 0, 0, 0}, nil), func() Decoder { return new(RatchetTree) }},
		{"group secrets of empty PSK ids", vector([]byte{0, 0}, []byte{1, 0, 0}, nil), func() Decoder { return new(GroupSecrets) }},
		{"welcome of empty secrets", vector([]byte{0, 1}, []byte{0, 0, 0}, []byte{0}), func() Decoder { return new(Welcome) }},
		{"extensions", vector(nil, []byte{0, 1, 0}, nil), func() Decoder { return new(GroupContextExtensions) }},
		{"capabilities", append(vector(nil, []byte{0, 1}, nil), 0, 0, 0, 0), func() Decoder { return new(Capabilities) }},
	}
	for _, tt := range tests {
		v := tt.v()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := Unmarshal(tt.in, v)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		ratio := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(tt.in))
		if ratio > maxAllocPerByte {
			t.Errorf("%s: %.0f bytes allocated per input byte", tt.name, ratio)
		}
		t.Logf("%s: %.1f bytes allocated per input byte", tt.name, ratio)
	}
}
