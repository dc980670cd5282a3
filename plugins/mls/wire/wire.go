// Package wire holds the structures of RFC 9420 (MLS) with their encodings
// in the TLS presentation language: every struct has an Encode method that
// writes it to a codec.Writer and a Decode method that reads it from a
// codec.Reader.
//
// Decoding is syntactic: it checks what the encoding itself fixes (vector
// headers, optional flags, the enum values whose set the RFC closes, no
// trailing bytes, zero padding) and nothing that needs keys, a group or a
// tree. Decode methods never panic; every error wraps a codec sentinel
// (codec.ErrShort, codec.ErrInvalid, ...).
//
// Byte slices a decoder returns are copies of the input, never aliases, and
// a decoded opaque field is non-nil even when empty; optional byte fields use
// nil for "absent".
package wire

import (
	"fmt"
	"strings"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

// Encoder is a value with an MLS encoding.
type Encoder interface {
	Encode(w *codec.Writer)
}

// Decoder is a value that can be read from its MLS encoding.
type Decoder interface {
	Decode(r *codec.Reader) error
}

// Marshal returns the encoding of v.
func Marshal(v Encoder) ([]byte, error) {
	var w codec.Writer
	v.Encode(&w)
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls: encode %T: %w", v, err)
	}
	return w.Bytes(), nil
}

// Unmarshal decodes b into v; every byte of b must be used.
func Unmarshal(b []byte, v Decoder) error {
	r := codec.NewReader(b)
	if err := v.Decode(r); err != nil {
		// Decode methods name their struct: "MLSMessage: Welcome: ...".
		return fmt.Errorf("mls: decode %w", err)
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("mls: decode %s: %w", strings.TrimPrefix(fmt.Sprintf("%T", v), "*wire."), err)
	}
	return nil
}

// wrap adds the name of the struct being decoded to err.
func wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

func invalid(what string, v any) error {
	return fmt.Errorf("%w: %s %v", codec.ErrInvalid, what, v)
}

// encodeList writes xs as a <V> vector, each element with enc.
func encodeList[T any](w *codec.Writer, xs []T, enc func(*codec.Writer, *T)) {
	w.Vector(func(w *codec.Writer) {
		for i := range xs {
			enc(w, &xs[i])
		}
	})
}

// decodeList reads a <V> vector of elements, each with dec. It decodes into
// chunks of growing size and copies them once into a slice of the exact
// length, so that the memory a list costs is about twice its elements'
// size, not the five times that append's growth would allocate on the way.
func decodeList[T any](r *codec.Reader, dec func(*codec.Reader, *T) error) ([]T, error) {
	var full [][]T
	var cur []T
	n := 0
	err := r.Vector(func(r *codec.Reader) error {
		if len(cur) == cap(cur) {
			if cur != nil {
				full = append(full, cur)
			}
			cur = make([]T, 0, min(max(2*cap(cur), 4), 1024))
		}
		cur = cur[:len(cur)+1]
		n++
		return dec(r, &cur[len(cur)-1])
	})
	if err != nil {
		return nil, err
	}
	if full == nil {
		return cur, nil
	}
	out := make([]T, 0, n)
	for _, c := range full {
		out = append(out, c...)
	}
	return append(out, cur...), nil
}

func decodeUint16s(r *codec.Reader) ([]uint16, error) {
	return decodeList(r, func(r *codec.Reader, x *uint16) (err error) {
		*x, err = r.Uint16()
		return err
	})
}

// decodeOpaques reads fields of type opaque<V> in order, stopping at the
// first error.
func decodeOpaques(r *codec.Reader, dst ...*[]byte) error {
	for _, d := range dst {
		v, err := r.Opaque()
		if err != nil {
			return err
		}
		*d = v
	}
	return nil
}
