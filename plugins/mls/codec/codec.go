// Package codec reads and writes the TLS presentation language as RFC 9420
// (MLS) §2.1 uses it: big-endian integers, fixed-length byte strings,
// optional<T> values and <V> vectors whose length is a variable-length
// integer of 1, 2 or 4 bytes.
//
// A Reader never panics on malformed input: every failure is an error value
// that wraps one of the sentinel errors below, and no length read from the
// input is trusted beyond the bytes that remain. A Writer cannot fail except
// when a vector is longer than a header can say (2^30-1 bytes); that error
// sticks and is reported by Err.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxLength is the largest length a <V> vector header can carry (2^30-1).
const MaxLength = 1<<30 - 1

// Sentinel errors. Reader and Writer errors wrap one of them.
var (
	// ErrShort means the input ended before a value did.
	ErrShort = errors.New("codec: input too short")
	// ErrTooLong means a vector header claims more bytes than remain, or a
	// vector to write is longer than MaxLength.
	ErrTooLong = errors.New("codec: vector length exceeds input")
	// ErrNonMinimal means a vector header is not in its shortest form.
	ErrNonMinimal = errors.New("codec: non-minimal vector length")
	// ErrBadPrefix means a vector header starts with the reserved bits 0b11.
	ErrBadPrefix = errors.New("codec: invalid vector length prefix")
	// ErrBadOptional means an optional<T> presence byte is neither 0 nor 1.
	ErrBadOptional = errors.New("codec: invalid optional presence byte")
	// ErrTrailing means bytes remain after a value that must fill its input.
	ErrTrailing = errors.New("codec: trailing bytes")
	// ErrNoProgress means a vector element decoder consumed no bytes, which
	// would loop forever.
	ErrNoProgress = errors.New("codec: vector element consumed no bytes")
	// ErrInvalid means a value is syntactically well formed but not allowed
	// (an unknown enum value, a reserved type). Decoders built on this
	// package wrap it.
	ErrInvalid = errors.New("codec: invalid value")
)

// Writer appends encoded values to a byte slice. The zero value is ready to
// use.
type Writer struct {
	buf []byte
	err error
}

// NewWriter returns a Writer that appends to buf (which may be nil).
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf} }

// Bytes returns the encoded bytes written so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Err returns the first error met while writing, if any: a vector longer
// than MaxLength.
func (w *Writer) Err() error { return w.err }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// Fail records err as the Writer's error unless one is already recorded.
// Encoders call it for values they cannot encode (an unknown enum value).
func (w *Writer) Fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Uint8 writes v.
func (w *Writer) Uint8(v uint8) { w.buf = append(w.buf, v) }

// Uint16 writes v big-endian.
func (w *Writer) Uint16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }

// Uint32 writes v big-endian.
func (w *Writer) Uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// Uint64 writes v big-endian.
func (w *Writer) Uint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Raw writes b as is, with no length header (a fixed-length opaque field).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Length writes n as a variable-length vector header in its shortest form.
func (w *Writer) Length(n int) {
	switch {
	case n < 0 || n > MaxLength:
		if w.err == nil {
			w.err = fmt.Errorf("%w: %d bytes", ErrTooLong, n)
		}
	case n < 1<<6:
		w.buf = append(w.buf, byte(n))
	case n < 1<<14:
		w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(n)|0x4000)
	default:
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(n)|0x80000000)
	}
}

// Opaque writes b as opaque b<V>: a length header, then the bytes.
func (w *Writer) Opaque(b []byte) {
	w.Length(len(b))
	w.buf = append(w.buf, b...)
}

// Vector writes a <V> vector whose content is whatever f writes, prefixed
// with its length.
func (w *Writer) Vector(f func(*Writer)) {
	// Reserve one header byte and write the body in place; if the length
	// needs a longer header, shift the body right to make room.
	start := len(w.buf)
	w.buf = append(w.buf, 0)
	f(w)
	n := len(w.buf) - start - 1
	var hdr int
	switch {
	case n < 1<<6:
		w.buf[start] = byte(n)
		return
	case n < 1<<14:
		hdr = 2
	case n <= MaxLength:
		hdr = 4
	default:
		if w.err == nil {
			w.err = fmt.Errorf("%w: %d bytes", ErrTooLong, n)
		}
		return
	}
	w.buf = append(w.buf, make([]byte, hdr-1)...)
	copy(w.buf[start+hdr:], w.buf[start+1:start+1+n])
	if hdr == 2 {
		binary.BigEndian.PutUint16(w.buf[start:], uint16(n)|0x4000)
	} else {
		binary.BigEndian.PutUint32(w.buf[start:], uint32(n)|0x80000000)
	}
}

// Optional writes optional<T>: a presence byte, then what f writes if
// present is true. f may be nil when present is false.
func (w *Writer) Optional(present bool, f func(*Writer)) {
	if !present {
		w.Uint8(0)
		return
	}
	w.Uint8(1)
	f(w)
}

// Reader decodes values from a byte slice.
type Reader struct {
	b []byte
}

// NewReader returns a Reader over b. The Reader does not modify b; byte
// slices it returns are copies.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Done returns an error wrapping ErrTrailing if unread bytes remain.
func (r *Reader) Done() error {
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes left", ErrTrailing, len(r.b))
	}
	return nil
}

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b) {
		return nil, fmt.Errorf("%w: need %d bytes, have %d", ErrShort, n, len(r.b))
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

// Uint8 reads one byte.
func (r *Reader) Uint8() (uint8, error) {
	b, err := r.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// Uint16 reads a big-endian uint16.
func (r *Reader) Uint16() (uint16, error) {
	b, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

// Uint32 reads a big-endian uint32.
func (r *Reader) Uint32() (uint32, error) {
	b, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// Uint64 reads a big-endian uint64.
func (r *Reader) Uint64() (uint64, error) {
	b, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// Raw reads exactly n bytes (a fixed-length opaque field) and returns a copy.
func (r *Reader) Raw(n int) ([]byte, error) {
	b, err := r.take(n)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

// Length reads a variable-length vector header. It rejects the reserved
// prefix 0b11 and any encoding longer than needed. It does not compare the
// length with the remaining input; Opaque and Vector do.
func (r *Reader) Length() (int, error) {
	first, err := r.Uint8()
	if err != nil {
		return 0, err
	}
	var n uint32
	switch first >> 6 {
	case 0:
		return int(first), nil
	case 1:
		b, err := r.take(1)
		if err != nil {
			return 0, err
		}
		n = uint32(first&0x3f)<<8 | uint32(b[0])
		if n < 1<<6 {
			return 0, fmt.Errorf("%w: %d in 2 bytes", ErrNonMinimal, n)
		}
	case 2:
		b, err := r.take(3)
		if err != nil {
			return 0, err
		}
		n = uint32(first&0x3f)<<24 | uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
		if n < 1<<14 {
			return 0, fmt.Errorf("%w: %d in 4 bytes", ErrNonMinimal, n)
		}
	default:
		return 0, fmt.Errorf("%w: 0x%02x", ErrBadPrefix, first)
	}
	return int(n), nil
}

func (r *Reader) body() ([]byte, error) {
	n, err := r.Length()
	if err != nil {
		return nil, err
	}
	if n > len(r.b) {
		return nil, fmt.Errorf("%w: header says %d bytes, %d remain", ErrTooLong, n, len(r.b))
	}
	return r.take(n)
}

// Opaque reads opaque x<V> and returns a copy of its bytes (never nil).
func (r *Reader) Opaque() ([]byte, error) {
	b, err := r.body()
	if err != nil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

// Vector reads a <V> vector header and calls f on a Reader over the
// vector's bytes until they are used up. f must consume at least one byte
// per call.
func (r *Reader) Vector(f func(*Reader) error) error {
	b, err := r.body()
	if err != nil {
		return err
	}
	sub := &Reader{b: b}
	for len(sub.b) > 0 {
		before := len(sub.b)
		if err := f(sub); err != nil {
			return err
		}
		if len(sub.b) == before {
			return ErrNoProgress
		}
	}
	return nil
}

// Optional reads optional<T>: a presence byte, then, if it is 1, calls f to
// read the value. It reports whether the value was present.
func (r *Reader) Optional(f func(*Reader) error) (present bool, err error) {
	p, err := r.Uint8()
	if err != nil {
		return false, err
	}
	switch p {
	case 0:
		return false, nil
	case 1:
		return true, f(r)
	default:
		return false, fmt.Errorf("%w: %d", ErrBadOptional, p)
	}
}
