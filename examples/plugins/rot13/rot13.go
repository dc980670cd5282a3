// Package rot13 is a toy third-party Strata privacy layer: direct delivery,
// like the stock `none` layer, with every payload in rot13 on the wire. It
// hides nothing (rot13 is its own inverse and no secret); it shows how
// little a direct layer is on the SDK's skeleton.
package rot13

import "github.com/strata-msg/strata/core/sdk/direct"

// Name is the implementation name a config uses (layers.privacy.plugin).
const Name = "rot13"

// New returns an unconfigured layer.
func New() *direct.Layer {
	return direct.New(direct.Spec{
		Name:        Name,
		Version:     "0.1.0",
		Description: "direct delivery with payloads in rot13; hides nothing",
		Protocol:    "rot13",
		Codec:       direct.Envelope{Seal: rotate, Open: rotate},
	})
}

// rotate is rot13: letters move 13 places, everything else stays.
func rotate(in []byte) ([]byte, error) {
	out := make([]byte, len(in))
	for i, c := range in {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+13)%26
		}
		out[i] = c
	}
	return out, nil
}
