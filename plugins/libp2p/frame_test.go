package libp2pplugin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// appendFrame appends payload, framed, to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// readAll reads frames from b until an error and returns them with it.
func readAll(b []byte, max int) ([][]byte, error) {
	fr := newFrameReader(bytes.NewReader(b), max)
	var out [][]byte
	for {
		p, err := fr.ReadFrame()
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	payloads := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 127), bytes.Repeat([]byte{8}, 128), bytes.Repeat([]byte{9}, 3*readChunk+5)}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, p := range payloads {
		if err := writeFrame(w, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(buf.Bytes(), 4*readChunk)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if len(got) != len(payloads) {
		t.Fatalf("read %d frames, want %d", len(got), len(payloads))
	}
	for i := range payloads {
		if !bytes.Equal(got[i], payloads[i]) {
			t.Errorf("frame %d: %d bytes, want %d", i, len(got[i]), len(payloads[i]))
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		max   int
		want  error
		count int // frames read before the error
	}{
		{"empty stream", nil, 10, io.EOF, 0},
		{"exactly max", appendFrame(nil, make([]byte, 10)), 10, io.EOF, 1},
		{"above max", appendFrame(nil, make([]byte, 11)), 10, errFrameTooLarge, 0},
		{"huge length, no body", binary.AppendUvarint(nil, 1<<62), 1 << 24, errFrameTooLarge, 0},
		{"after a good frame", appendFrame(appendFrame(nil, []byte("ok")), make([]byte, 11)), 10, errFrameTooLarge, 1},
		{"length cut short", []byte{0x80}, 10, io.ErrUnexpectedEOF, 0},
		{"body cut short", []byte{5, 'a', 'b'}, 10, io.ErrUnexpectedEOF, 0},
		{"long body cut short", binary.AppendUvarint(nil, 3*readChunk), 4 * readChunk, io.ErrUnexpectedEOF, 0},
		{"padded length", []byte{0x81, 0x00, 'x'}, 10, errBadLength, 0},
		{"ten-byte overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 10, errBadLength, 0},
		{"eleven-byte length", bytes.Repeat([]byte{0x80}, 11), 10, errBadLength, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(tt.input, tt.max)
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if len(got) != tt.count {
				t.Errorf("read %d frames before the error, want %d", len(got), tt.count)
			}
		})
	}
}

// FuzzReadFrame checks that the frame reader never panics, never returns
// a frame above its maximum, and reads only canonical encodings: the
// frames it returns, framed again, are a prefix of its input.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{}, uint16(16))
	f.Add(appendFrame(appendFrame(nil, []byte("hello")), nil), uint16(16))
	f.Add(appendFrame(nil, make([]byte, 300)), uint16(299))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint16(1000))
	f.Add([]byte{0x80, 0x00}, uint16(1))
	f.Add([]byte{0x05, 'a'}, uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		limit := int(max) + 1
		frames, err := readAll(data, limit)
		if err == nil {
			t.Fatal("readAll ended without an error")
		}
		var again []byte
		for _, p := range frames {
			if len(p) > limit {
				t.Fatalf("frame of %d bytes above the maximum %d", len(p), limit)
			}
			again = appendFrame(again, p)
		}
		if !bytes.HasPrefix(data, again) {
			t.Fatalf("frames re-encode to %x, not a prefix of the input %x", again, data)
		}
		if errors.Is(err, io.EOF) && len(again) != len(data) {
			t.Fatalf("clean end after %d of %d bytes", len(again), len(data))
		}
	})
}
