package pki

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The wire format of every record (document, descriptor, parameters, …) is
// a sequence of fields, each
//
//	tag    uvarint (minimal encoding, 1 ≤ tag ≤ maxTag)
//	length uvarint (minimal encoding)
//	value  length bytes
//
// with tags in non-decreasing order: a tag repeats only for list fields,
// whose entries follow each other. Integers are values holding one
// minimal uvarint, booleans the integers 0 and 1, floats 8 big-endian
// IEEE 754 bytes, strings UTF-8 bytes, nested records their own field
// sequence. Every known scalar field of a record is present exactly once,
// even when zero, so a value has exactly one encoding; the decoder refuses
// any other (ErrNonCanonical). Fields with tags a decoder does not know
// are kept, in order, in the record's Unknown list and written back where
// their tag puts them, so an older node passes on what a newer one added.

// maxTag bounds field tags; larger ones are refused as malformed.
const maxTag = 1 << 20

// Field is a field of a record whose tag this version does not know. It is
// kept so that re-encoding reproduces it.
type Field struct {
	// Tag is the field's tag, never one this version knows.
	Tag uint64
	// Value is the field's raw value.
	Value []byte
}

// encoder appends fields to a buffer.
type encoder struct{ b []byte }

func (e *encoder) bytes(tag uint64, v []byte) {
	e.b = binary.AppendUvarint(e.b, tag)
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) string(tag uint64, v string) { e.bytes(tag, []byte(v)) }

func (e *encoder) uint(tag, v uint64) {
	var buf [binary.MaxVarintLen64]byte
	e.bytes(tag, binary.AppendUvarint(buf[:0], v))
}

func (e *encoder) bool(tag uint64, v bool) {
	if v {
		e.uint(tag, 1)
	} else {
		e.uint(tag, 0)
	}
}

func (e *encoder) float(tag uint64, v float64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], math.Float64bits(v))
	e.bytes(tag, buf[:])
}

func (e *encoder) record(tag uint64, f func(*encoder)) {
	var inner encoder
	f(&inner)
	e.bytes(tag, inner.b)
}

// unknownBefore writes the unknown fields whose tag is below tag and
// returns the rest; called before each known field so that the merged
// sequence stays in tag order.
func (e *encoder) unknownBefore(tag uint64, unknown []Field) []Field {
	for len(unknown) > 0 && unknown[0].Tag < tag {
		e.bytes(unknown[0].Tag, unknown[0].Value)
		unknown = unknown[1:]
	}
	return unknown
}

// field is one decoded field.
type field struct {
	tag uint64
	val []byte
}

// uvarint reads a minimally encoded uvarint from b.
func uvarint(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: bad varint", ErrMalformed)
	}
	if n > 1 && b[n-1] == 0 {
		return 0, 0, fmt.Errorf("%w: varint not minimal", ErrNonCanonical)
	}
	return v, n, nil
}

// parseFields splits a record into fields, checking their framing and
// order; at most maxFields fields are accepted.
func parseFields(b []byte, maxFields int) ([]field, error) {
	var out []field
	var last uint64
	for len(b) > 0 {
		if len(out) == maxFields {
			return nil, fmt.Errorf("%w: more than %d fields", ErrTooLarge, maxFields)
		}
		tag, n, err := uvarint(b)
		if err != nil {
			return nil, fmt.Errorf("field tag: %w", err)
		}
		b = b[n:]
		if tag == 0 || tag > maxTag {
			return nil, fmt.Errorf("%w: field tag %d out of range", ErrMalformed, tag)
		}
		if tag < last {
			return nil, fmt.Errorf("%w: field %d after field %d", ErrNonCanonical, tag, last)
		}
		last = tag
		l, n, err := uvarint(b)
		if err != nil {
			return nil, fmt.Errorf("field %d length: %w", tag, err)
		}
		b = b[n:]
		if l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: field %d length %d exceeds the %d bytes left", ErrMalformed, tag, l, len(b))
		}
		out = append(out, field{tag: tag, val: b[:l:l]})
		b = b[l:]
	}
	return out, nil
}

// fieldReader walks a record's fields in order, field by known field.
type fieldReader struct {
	fields  []field
	unknown []Field
	record  string
}

func newFieldReader(record string, b []byte, maxFields int) (*fieldReader, error) {
	fs, err := parseFields(b, maxFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", record, err)
	}
	return &fieldReader{fields: fs, record: record}, nil
}

// skipUnknown moves fields with tags below tag into the unknown list.
func (r *fieldReader) skipUnknown(tag uint64) {
	for len(r.fields) > 0 && r.fields[0].tag < tag {
		r.unknown = append(r.unknown, Field{Tag: r.fields[0].tag, Value: append([]byte(nil), r.fields[0].val...)})
		r.fields = r.fields[1:]
	}
}

// one returns the single value of the required field tag.
func (r *fieldReader) one(tag uint64, name string) ([]byte, error) {
	r.skipUnknown(tag)
	if len(r.fields) == 0 || r.fields[0].tag != tag {
		return nil, fmt.Errorf("%w: %s: field %s missing", ErrMalformed, r.record, name)
	}
	v := r.fields[0].val
	r.fields = r.fields[1:]
	if len(r.fields) > 0 && r.fields[0].tag == tag {
		return nil, fmt.Errorf("%w: %s: field %s repeated", ErrMalformed, r.record, name)
	}
	return v, nil
}

// list returns every value of the list field tag, at most max of them.
func (r *fieldReader) list(tag uint64, name string, max int) ([][]byte, error) {
	r.skipUnknown(tag)
	var out [][]byte
	for len(r.fields) > 0 && r.fields[0].tag == tag {
		if len(out) == max {
			return nil, fmt.Errorf("%w: %s: more than %d %s", ErrTooLarge, r.record, max, name)
		}
		out = append(out, r.fields[0].val)
		r.fields = r.fields[1:]
	}
	return out, nil
}

// done moves the remaining fields (all with tags above the known ones)
// into the unknown list and returns it.
func (r *fieldReader) done() []Field {
	r.skipUnknown(math.MaxUint64)
	return r.unknown
}

func (r *fieldReader) uint(tag uint64, name string) (uint64, error) {
	v, err := r.one(tag, name)
	if err != nil {
		return 0, err
	}
	x, n, err := uvarint(v)
	if err != nil {
		return 0, fmt.Errorf("%s: field %s: %w", r.record, name, err)
	}
	if n != len(v) {
		return 0, fmt.Errorf("%w: %s: field %s has trailing bytes", ErrMalformed, r.record, name)
	}
	return x, nil
}

func (r *fieldReader) bool(tag uint64, name string) (bool, error) {
	x, err := r.uint(tag, name)
	if err != nil {
		return false, err
	}
	if x > 1 {
		return false, fmt.Errorf("%w: %s: field %s is %d, not a boolean", ErrMalformed, r.record, name, x)
	}
	return x == 1, nil
}

func (r *fieldReader) float(tag uint64, name string) (float64, error) {
	v, err := r.one(tag, name)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s: field %s is %d bytes, not 8", ErrMalformed, r.record, name, len(v))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), nil
}

// str returns a string field of at most max bytes.
func (r *fieldReader) str(tag uint64, name string, max int) (string, error) {
	v, err := r.one(tag, name)
	if err != nil {
		return "", err
	}
	if len(v) > max {
		return "", fmt.Errorf("%w: %s: field %s is %d bytes, over %d", ErrTooLarge, r.record, name, len(v), max)
	}
	return string(v), nil
}

// fixed returns a field of exactly size bytes, copied.
func (r *fieldReader) fixed(tag uint64, name string, size int) ([]byte, error) {
	v, err := r.one(tag, name)
	if err != nil {
		return nil, err
	}
	if len(v) != size {
		return nil, fmt.Errorf("%w: %s: field %s is %d bytes, not %d", ErrMalformed, r.record, name, len(v), size)
	}
	return append([]byte(nil), v...), nil
}
