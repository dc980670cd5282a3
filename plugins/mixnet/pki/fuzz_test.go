package pki_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// FuzzDecodeDocument feeds untrusted bytes to the decoder and verifier:
// they must return errors, never panic, and whatever decodes must
// re-encode to exactly its input (one encoding per document).
func FuzzDecodeDocument(f *testing.F) {
	fx := newFixture(f, 11, 2, 2)
	f.Add(fx.net.Encoded)
	f.Add(fx.net.Document.Body)
	f.Add(fx.net.Document.Document.Providers[0].Marshal())
	f.Add(fx.net.Document.Document.Providers[0].Body)
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := pki.ParseSignedDocument(b)
		if err == nil {
			if !bytes.Equal(s.Marshal(), b) {
				t.Fatal("decoded signed document does not re-encode to its input")
			}
			body, err := pki.MarshalUnchecked(s.Document)
			if err != nil {
				t.Fatalf("decoded document does not encode: %v", err)
			}
			if !bytes.Equal(body, s.Body) {
				t.Fatal("decoded document body does not re-encode to its input")
			}
			_ = s.Document.Check()
		}
		d, err := pki.Verify(b, fx.opts)
		if err == nil && d == nil {
			t.Fatal("Verify returned neither document nor error")
		}
		if err != nil && errors.Is(err, pki.ErrConfig) {
			t.Fatalf("Verify blamed its configuration for its input: %v", err)
		}
		if sd, err := pki.ParseSignedDescriptor(b); err == nil && !bytes.Equal(sd.Marshal(), b) {
			t.Fatal("decoded descriptor does not re-encode to its input")
		}
		// The body decoders directly, so that mutations need not keep
		// an envelope intact to reach them.
		if d, err := pki.UnmarshalDocument(b); err == nil {
			if body, err := pki.MarshalUnchecked(d); err != nil || !bytes.Equal(body, b) {
				t.Fatalf("decoded document body does not re-encode to its input (%v)", err)
			}
		}
		if d, err := pki.UnmarshalDescriptor(b); err == nil {
			if body, err := pki.MarshalDescriptorUnchecked(d); err != nil || !bytes.Equal(body, b) {
				t.Fatalf("decoded descriptor body does not re-encode to its input (%v)", err)
			}
		}
	})
}
