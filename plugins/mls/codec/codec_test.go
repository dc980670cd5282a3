package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestLengthRoundTrip(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{63, []byte{0x3f}},
		{64, []byte{0x40, 0x40}},
		{16383, []byte{0x7f, 0xff}},
		{16384, []byte{0x80, 0x00, 0x40, 0x00}},
		{MaxLength, []byte{0xbf, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		var w Writer
		w.Length(tt.n)
		if w.Err() != nil || !bytes.Equal(w.Bytes(), tt.want) {
			t.Errorf("Length(%d) = %x, %v; want %x", tt.n, w.Bytes(), w.Err(), tt.want)
			continue
		}
		got, err := NewReader(tt.want).Length()
		if err != nil || got != tt.n {
			t.Errorf("read %x = %d, %v; want %d", tt.want, got, err, tt.n)
		}
	}
}

func TestLengthRejects(t *testing.T) {
	tests := []struct {
		in   []byte
		want error
	}{
		{nil, ErrShort},
		{[]byte{0x40}, ErrShort},
		{[]byte{0x80, 0, 0}, ErrShort},
		{[]byte{0x40, 0x3f}, ErrNonMinimal},
		{[]byte{0x80, 0x00, 0x3f, 0xff}, ErrNonMinimal},
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, ErrBadPrefix},
	}
	for _, tt := range tests {
		if _, err := NewReader(tt.in).Length(); !errors.Is(err, tt.want) {
			t.Errorf("Length(%x) error %v, want %v", tt.in, err, tt.want)
		}
	}
	var w Writer
	w.Length(MaxLength + 1)
	if !errors.Is(w.Err(), ErrTooLong) {
		t.Errorf("writing MaxLength+1: error %v, want ErrTooLong", w.Err())
	}
}

func TestVectorHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 100, 16383, 16384, 70000} {
		body := bytes.Repeat([]byte{0xaa}, n)
		var w Writer
		w.Uint8(7)
		w.Vector(func(w *Writer) { w.Raw(body) })
		w.Uint8(9)
		var want Writer
		want.Uint8(7)
		want.Opaque(body)
		want.Uint8(9)
		if !bytes.Equal(w.Bytes(), want.Bytes()) {
			t.Fatalf("Vector of %d bytes differs from Opaque", n)
		}
		r := NewReader(w.Bytes())
		if v, _ := r.Uint8(); v != 7 {
			t.Fatalf("n=%d: first byte %d", n, v)
		}
		got, err := r.Opaque()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("n=%d: Opaque: %v", n, err)
		}
		if v, _ := r.Uint8(); v != 9 || r.Done() != nil {
			t.Fatalf("n=%d: trailing byte %d, done %v", n, v, r.Done())
		}
	}
}

func TestNestedVectorAndOptional(t *testing.T) {
	var w Writer
	w.Vector(func(w *Writer) {
		for i := range 3 {
			w.Optional(i != 1, func(w *Writer) { w.Uint16(uint16(i)) })
		}
	})
	w.Uint32(0xdeadbeef)
	w.Uint64(1 << 40)
	var got []int
	r := NewReader(w.Bytes())
	err := r.Vector(func(r *Reader) error {
		present, err := r.Optional(func(r *Reader) error {
			v, err := r.Uint16()
			got = append(got, int(v))
			return err
		})
		if !present {
			got = append(got, -1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, -1, 2}; !equalInts(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if v, _ := r.Uint32(); v != 0xdeadbeef {
		t.Fatalf("uint32 %x", v)
	}
	if v, _ := r.Uint64(); v != 1<<40 {
		t.Fatalf("uint64 %x", v)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(*Reader) error
		want error
	}{
		{"opaque longer than input", []byte{0x05, 1, 2}, func(r *Reader) error { _, err := r.Opaque(); return err }, ErrTooLong},
		{"huge claimed length", []byte{0xbf, 0xff, 0xff, 0xff}, func(r *Reader) error { _, err := r.Opaque(); return err }, ErrTooLong},
		{"bad optional", []byte{2}, func(r *Reader) error { _, err := r.Optional(func(*Reader) error { return nil }); return err }, ErrBadOptional},
		{"no progress", []byte{1, 0}, func(r *Reader) error { return r.Vector(func(*Reader) error { return nil }) }, ErrNoProgress},
		{"element overruns vector", []byte{1, 0, 0}, func(r *Reader) error {
			return r.Vector(func(r *Reader) error { _, err := r.Uint16(); return err })
		}, ErrShort},
		{"raw negative", []byte{1}, func(r *Reader) error { _, err := r.Raw(-1); return err }, ErrShort},
		{"trailing", []byte{1, 2}, func(r *Reader) error { _, _ = r.Uint8(); return r.Done() }, ErrTrailing},
	}
	for _, tt := range tests {
		if err := tt.read(NewReader(tt.in)); !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestOpaqueCopies(t *testing.T) {
	in := []byte{2, 'a', 'b'}
	got, err := NewReader(in).Opaque()
	if err != nil {
		t.Fatal(err)
	}
	in[1] = 'x'
	if string(got) != "ab" {
		t.Fatalf("Opaque aliases its input: %q", got)
	}
	empty, _ := NewReader([]byte{0}).Opaque()
	if empty == nil {
		t.Fatal("empty Opaque is nil")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0x40, 0x40})
	f.Add([]byte{0x03, 1, 0, 2})
	f.Add([]byte{0x80, 0, 0x40, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		// Read a vector of optional<opaque>; whatever decodes must re-encode
		// to the bytes it came from.
		r := NewReader(in)
		var items [][]byte
		var present []bool
		err := r.Vector(func(r *Reader) error {
			var v []byte
			p, err := r.Optional(func(r *Reader) error {
				var err error
				v, err = r.Opaque()
				return err
			})
			items, present = append(items, v), append(present, p)
			return err
		})
		if err != nil {
			return
		}
		var w Writer
		w.Vector(func(w *Writer) {
			for i, v := range items {
				w.Optional(present[i], func(w *Writer) { w.Opaque(v) })
			}
		})
		if consumed := in[:len(in)-r.Len()]; !bytes.Equal(w.Bytes(), consumed) {
			t.Fatalf("re-encoding %x gave %x", consumed, w.Bytes())
		}
	})
}
