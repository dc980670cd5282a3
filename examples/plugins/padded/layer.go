// Package padded is an example third-party Strata privacy layer that hides
// message lengths. It is built against the Strata SDK alone and shipped as
// its own module and plugin binary, strata-plugin-padded.
//
// It is the SDK's direct-addressing skeleton (core/sdk/direct) with a
// padding Codec: like the built-in `none` layer, a node's privacy address is
// its overlay peer id and a DOWN frame addressed to it goes to that overlay
// peer, here on the overlay protocol "padded" version 1. Unlike `none`,
// every message on the wire is padded with zeros to the smallest configured
// bucket size that holds it, so an observer of the overlay learns which
// bucket a message fell into but not its length. A message larger than the
// largest bucket is dropped and counted. The wire format is described
// beside appendMessage in wire.go and in docs/plugins/padded.md.
//
// Padding hides length only. The layer does not hide who talks to whom or
// when, and it sends no cover traffic.
package padded

import (
	"context"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/direct"
)

// Name is the implementation name a config uses (layers.privacy.plugin).
const Name = "padded"

// Version is the implementation version.
const Version = "0.1.0"

// The overlay protocol the layer sends and receives on.
const (
	ProtocolName    = "padded"
	ProtocolVersion = 1
)

// CapLengthPadding is the capability padded provides beyond sdk.CapDirect:
// every message on the wire is one of a few fixed sizes.
const CapLengthPadding = "length-padding"

// Layer is the padded privacy layer: the direct skeleton, which does the
// addressing, the privacy control API, the trace ids and hints and the
// Health counters, with padded's Codec. The zero value is not usable; call
// New.
type Layer struct {
	*direct.Layer
	// codec is set by Configure; the SDK orders Configure before any
	// other call that reads it.
	codec *codec
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer {
	l := &Layer{}
	l.Layer = direct.New(direct.Spec{
		Name:        Name,
		Version:     Version,
		Description: "direct delivery to the contact's overlay peer, padded to fixed size buckets; hides message length, not who talks to whom",
		Protocol:    ProtocolName,
		Provides:    []string{CapLengthPadding},
		// The declared limit is that of the default buckets; the one
		// enforced follows the configured largest bucket (direct.Limit),
		// and the codec refuses what a long conversation id pushes past it.
		MaxPayload: uint32(maxPayload(defaultLargestBucket)),
		Config:     sdk.ConfigFields[Config](),
		Configure: func(configJSON string, env sdk.Env) (direct.Codec, error) {
			cfg, err := sdk.LoadConfig[Config](configJSON)
			if err != nil {
				return nil, err
			}
			env.Logger.Debug("configured", "buckets", []int(cfg.buckets))
			l.codec = newCodec(cfg.buckets)
			return direct.Limit(l.codec, maxPayload(cfg.buckets.largest())), nil
		},
	})
	return l
}

// Health implements sdk.Layer: the skeleton's counters and the codec's
// (padding_bytes_sent). The codec refuses as unencodable nothing but a
// conversation id over 255 bytes (a message too large for the largest
// bucket is direct.ErrTooLarge, dropped_oversize), so the skeleton's
// dropped_unencodable is reported under the name padded.md gives that drop.
func (l *Layer) Health(ctx context.Context) *commonv1.HealthResponse {
	h := l.Layer.Health(ctx)
	if c := h.GetCounters(); c != nil {
		c[sdk.DroppedPrefix+"conversation_too_long"] = c[sdk.DroppedPrefix+"unencodable"]
		delete(c, sdk.DroppedPrefix+"unencodable")
	}
	return h
}

// maxPayload is the largest payload that, with an empty conversation id,
// fits a message of size bytes.
func maxPayload(size int) int {
	p := max(size-unpaddedLen(0, 0), 0)
	for p > 0 && unpaddedLen(0, p) > size {
		p--
	}
	return p
}
