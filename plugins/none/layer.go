// Package none is the `none` privacy layer: direct delivery with no metadata
// protection. It is the explicit choice for a stack that does not hide who
// talks to whom, and lets a stack run end to end without whisper or a mixnet.
//
// A node's privacy address is its overlay peer id; a DOWN frame addressed to
// it is sent to that overlay peer, on the overlay protocol "direct" version 1,
// wrapped in a small envelope that carries the conversation id
// (direct.Envelope). It is the SDK's direct skeleton (core/sdk/direct) with
// nothing added but a configurable payload limit.
package none

import (
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/direct"
)

// Name is the implementation name a config uses.
const Name = "none"

// Version is the implementation version.
const Version = "0.1.0"

// ProtocolName is the overlay protocol the layer sends on (version 1).
const ProtocolName = "direct"

// New returns an unconfigured layer.
func New() *direct.Layer {
	return direct.New(direct.Spec{
		Name:        Name,
		Version:     Version,
		Description: "direct delivery to the contact's overlay peer; hides no metadata",
		Protocol:    ProtocolName,
		MaxPayload:  DefaultMaxPayload,
		PublicChats: true,
		Config:      sdk.ConfigFields[Config](),
		Configure: func(configJSON string, _ sdk.Env) (direct.Codec, error) {
			cfg, err := sdk.LoadConfig[Config](configJSON)
			if err != nil {
				return nil, err
			}
			return direct.Limit(direct.Envelope{}, int(cfg.MaxPayload)), nil
		},
	})
}
