// Package none is the `none` privacy layer: direct delivery with no metadata
// protection. It is the explicit choice for a stack that does not hide who
// talks to whom, and lets a stack run end to end without whisper or a mixnet.
//
// A node's privacy address is its overlay peer id; a DOWN frame addressed to
// it is sent to that overlay peer, on the overlay protocol "direct" version 1,
// wrapped in a small envelope that carries the conversation id.
package none

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the implementation name a config uses.
const Name = "none"

// Version is the implementation version.
const Version = "0.1.0"

// Protocol is the overlay protocol the layer sends on.
var Protocol = &commonv1.Protocol{Name: "direct", Version: 1, MessageCodes: 1}

// DefaultMaxPayload is the default largest payload: 1 MiB (the libp2p
// layer's default frame limit) less the largest envelope header (1 version
// byte, a 2-byte length and a 255-byte conversation id), rounded down.
const DefaultMaxPayload = 1<<20 - 512

// Config is the layer's config section.
type Config struct {
	// MaxPayload is the largest payload accepted from above, in bytes.
	MaxPayload int64 `json:"max_payload"`
}

// Layer is the none privacy layer.
type Layer struct {
	mu      sync.Mutex
	cfg     Config
	env     sdk.Env
	address []byte

	sent, received, droppedBad, droppedOversize, droppedUnaddressed, wrongDirection, peersUp atomic.Uint64
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer { return &Layer{} }

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "direct delivery to the contact's overlay peer; hides no metadata",
		Config: []*commonv1.ConfigField{
			sdk.Int("max_payload", "largest payload accepted from above, in bytes", DefaultMaxPayload, 1, 16<<20),
		},
		Provides:   []string{"direct"},
		Requires:   []string{"unicast"},
		MaxPayload: DefaultMaxPayload,
	}
}

// Configure implements sdk.Layer.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg := Config{MaxPayload: DefaultMaxPayload}
	if err := sdk.DecodeConfig(req.GetConfigJson(), &cfg); err != nil {
		return nil, err
	}
	if cfg.MaxPayload <= 0 {
		return nil, &sdk.ConfigError{Key: "max_payload", Problem: "must be positive"}
	}
	l.mu.Lock()
	l.cfg, l.env = cfg, env
	l.mu.Unlock()
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol}}, nil
}

// Start implements sdk.Layer. The privacy address is the overlay address.
func (l *Layer) Start(_ context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	if len(req.GetBelowAddress()) == 0 {
		return nil, fmt.Errorf("none: the p2p layer reported no local address")
	}
	l.mu.Lock()
	l.address = append([]byte(nil), req.GetBelowAddress()...)
	l.mu.Unlock()
	return &commonv1.StartResponse{
		LocalAddress:   req.GetBelowAddress(),
		ContactSection: req.GetBelowAddress(),
		DisplayAddress: fmt.Sprintf("direct:%x", req.GetBelowAddress()),
	}, nil
}

// HandleBatch implements sdk.Layer.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	out := make([]*commonv1.Frame, 0, len(b.GetFrames()))
	for _, f := range b.GetFrames() {
		var o *commonv1.Frame
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			o = l.down(f)
		case commonv1.Direction_DIRECTION_UP:
			o = l.up(f)
		default:
			l.wrongDirection.Add(1)
		}
		if o != nil {
			out = append(out, o)
		}
	}
	for _, ev := range b.GetEvents() {
		if p := ev.GetPeer(); p != nil {
			switch p.GetState() {
			case commonv1.PeerState_PEER_STATE_CONNECTED:
				l.peersUp.Add(1)
			case commonv1.PeerState_PEER_STATE_DISCONNECTED:
				l.peersUp.Add(^uint64(0))
			}
		}
	}
	if len(out) > 0 {
		_ = l.env.Out.Emit(ctx, out...)
	}
}

func (l *Layer) down(f *commonv1.Frame) *commonv1.Frame {
	if len(f.GetPeer()) == 0 {
		l.droppedUnaddressed.Add(1)
		return nil
	}
	if int64(len(f.GetPayload())) > l.cfg.MaxPayload {
		l.droppedOversize.Add(1)
		return nil
	}
	wire, err := appendEnvelope(make([]byte, 0, len(f.GetPayload())+len(f.GetConversation())+4),
		envelope{conversation: f.GetConversation(), payload: f.GetPayload()})
	if err != nil {
		l.droppedOversize.Add(1)
		return nil
	}
	l.sent.Add(1)
	return &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		TraceId:   f.GetTraceId(),
		Peer:      f.GetPeer(),
		Protocol:  Protocol.GetName(),
		Hints:     f.GetHints(),
		Payload:   wire,
	}
}

func (l *Layer) up(f *commonv1.Frame) *commonv1.Frame {
	if f.GetProtocol() != Protocol.GetName() {
		l.droppedBad.Add(1)
		return nil
	}
	e, err := decodeEnvelope(f.GetPayload())
	if err != nil {
		l.droppedBad.Add(1)
		return nil
	}
	l.received.Add(1)
	return &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Peer:         f.GetPeer(),
		Conversation: e.conversation,
		Hints:        f.GetHints(),
		Payload:      e.payload,
	}
}

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	started := l.address != nil
	l.mu.Unlock()
	return &commonv1.HealthResponse{Serving: started, Counters: map[string]uint64{
		"frames_sent":             l.sent.Load(),
		"frames_received":         l.received.Load(),
		"dropped_bad_envelope":    l.droppedBad.Load(),
		"dropped_oversize":        l.droppedOversize.Load(),
		"dropped_unaddressed":     l.droppedUnaddressed.Load(),
		"dropped_wrong_direction": l.wrongDirection.Load(),
		"peers":                   l.peersUp.Load(),
	}}
}

// Stop implements sdk.Layer.
func (l *Layer) Stop(context.Context) error { return nil }

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.address == nil {
		return nil, status.Error(codes.FailedPrecondition, "none: not started")
	}
	return &privacyv1.OwnAddressResponse{Address: l.address, DisplayAddress: fmt.Sprintf("direct:%x", l.address)}, nil
}

// Subscribe implements privacyv1.ControlServer. Direct delivery has no
// shared addresses: a group over `none` is pairwise fan-out by the layers
// above, so the call is refused with Unimplemented.
func (l *Layer) Subscribe(context.Context, *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "none: direct delivery has no shared addresses; send to each member")
}

// Unsubscribe implements privacyv1.ControlServer; see Subscribe.
func (l *Layer) Unsubscribe(context.Context, *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "none: direct delivery has no shared addresses")
}
