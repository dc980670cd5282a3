package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// FuzzRecords reads any bytes as a record stream, as a session does: a
// version other than 0 ends it, unknown types are skipped, every other
// error ends it. No input panics; every record accepted encodes again to
// the same bytes.
func FuzzRecords(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.Records {
		f.Add(unhex(f, c.Bytes))
	}
	for _, c := range v.Bad {
		f.Add(unhex(f, c.Bytes))
	}
	for _, c := range v.Stream {
		f.Add(unhex(f, c.Bytes))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			r, n, err := Next(b)
			if err != nil {
				if !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("Next: unexpected error %v", err)
				}
				return
			}
			if n < HeaderLen || n > len(b) || n-HeaderLen > MaxRecordPayload {
				t.Fatalf("Next took %d of %d bytes", n, len(b))
			}
			raw := b[:n]
			b = b[n:]
			if err := r.Check(); err != nil {
				return
			}
			var again []byte
			switch r.Type {
			case Ack, Offer, Request:
				ids, _ := DecodeIDs(r.Payload)
				if len(ids) > MaxIDs {
					t.Fatalf("%d ids", len(ids))
				}
				again = AppendIDs(nil, r.Type, ids)
			case Message:
				m, _ := DecodeMessage(r.Payload)
				again = AppendMessage(nil, m)
			case Versions:
				vs, _ := DecodeVersions(r.Payload)
				again = AppendVersions(nil, vs...)
			case Priority:
				nonce, _ := DecodePriority(r.Payload)
				again = AppendPriority(nil, nonce)
			default:
				continue
			}
			if !bytes.Equal(again, raw) {
				t.Fatalf("re-encoded %s as %s", hex.EncodeToString(raw), hex.EncodeToString(again))
			}
		}
	})
}
