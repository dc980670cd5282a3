package testvectors

import (
	"testing"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

func init() { register("deserialization", checkDeserialization) }

// checkDeserialization checks the variable-length vector header: each
// vlbytes_header decodes to length using every byte, and length encodes back
// to the same header.
func checkDeserialization(t *testing.T, data []byte, rep *report) {
	type vector struct {
		Header hexBytes `json:"vlbytes_header"`
		Length int      `json:"length"`
	}
	for i, v := range decodeCases[vector](t, data) {
		r := codec.NewReader(v.Header)
		n, err := r.Length()
		if err == nil {
			err = r.Done()
		}
		if err != nil || n != v.Length {
			t.Errorf("case %d: header %x decodes to %d, %v; want %d", i, v.Header, n, err, v.Length)
			continue
		}
		var w codec.Writer
		w.Length(v.Length)
		if w.Err() != nil || string(w.Bytes()) != string(v.Header) {
			t.Errorf("case %d: length %d encodes to %x, %v; want %x", i, v.Length, w.Bytes(), w.Err(), v.Header)
			continue
		}
		rep.pass()
	}
}
