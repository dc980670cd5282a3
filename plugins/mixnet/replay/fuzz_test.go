package replay

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the snapshot and log decoders: they
// return ErrCorrupt or a result, never panic, and a snapshot that decodes
// re-encodes to exactly its input.
func FuzzLoad(f *testing.F) {
	m, k, _ := Sizing(100, 0.01)
	flt := newFilter(100, m, k, [32]byte{9})
	for i := range 30 {
		tag := tagN(i)
		flt.insert(&tag)
	}
	good := encodeSnapshot(7, flt)
	f.Add(good)
	f.Add(good[:snapHeaderSize])
	var log []byte
	for i := range 3 {
		tag := tagN(i)
		log = appendRecord(log, 7, &tag)
	}
	f.Add(log)
	f.Add(append(log, 1, 2))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := decodeSnapshot(b, 7); err == nil {
			if !bytes.Equal(encodeSnapshot(7, g), b) {
				t.Fatal("decoded snapshot does not re-encode to its input")
			}
			tag := tagN(1)
			g.insert(&tag)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeSnapshot: %v is not ErrCorrupt", err)
		}
		tags, valid, err := parseLog(b, 7)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseLog: %v is not ErrCorrupt", err)
			}
			return
		}
		if valid > len(b) || valid%recordSize != 0 || len(tags) != valid/recordSize {
			t.Fatalf("parseLog: %d tags, valid prefix %d of %d bytes", len(tags), valid, len(b))
		}
	})
}
