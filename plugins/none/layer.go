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
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/none/wire"
)

// Name is the implementation name a config uses.
const Name = "none"

// Version is the implementation version.
const Version = "0.1.0"

// Protocol is the overlay protocol the layer sends on.
var Protocol = &commonv1.Protocol{Name: "direct", Version: 1, MessageCodes: 1}

// Layer is the none privacy layer.
type Layer struct {
	// cfg and env are set by Configure, address by Start; the SDK orders
	// these before any other use.
	cfg     Config
	env     sdk.Env
	address atomic.Pointer[[]byte]
	c       *counters
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer { return &Layer{c: newCounters()} }

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "direct delivery to the contact's overlay peer; hides no metadata",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{"direct"},
		Requires:    []string{"unicast"},
		MaxPayload:  DefaultMaxPayload,
	}
}

// Configure implements sdk.Layer.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	l.cfg, l.env = cfg, env
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol}}, nil
}

// Start implements sdk.Layer. The privacy address is the overlay address.
func (l *Layer) Start(_ context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	if len(req.GetBelowAddress()) == 0 {
		return nil, fmt.Errorf("none: the p2p layer reported no local address")
	}
	addr := append([]byte(nil), req.GetBelowAddress()...)
	l.address.Store(&addr)
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
			l.c.WrongDirection.Inc()
		}
		if o != nil {
			out = append(out, o)
		}
	}
	for _, ev := range b.GetEvents() {
		if p := ev.GetPeer(); p != nil {
			switch p.GetState() {
			case commonv1.PeerState_PEER_STATE_CONNECTED:
				l.c.peers.Add(1)
			case commonv1.PeerState_PEER_STATE_DISCONNECTED:
				l.c.peers.Add(-1)
			}
		}
	}
	if len(out) > 0 {
		_ = l.env.Out.Emit(ctx, out...)
	}
}

func (l *Layer) down(f *commonv1.Frame) *commonv1.Frame {
	if len(f.GetPeer()) == 0 {
		l.c.DroppedUnaddressed.Inc()
		return nil
	}
	if int64(len(f.GetPayload())) > l.cfg.MaxPayload {
		l.c.DroppedOversize.Inc()
		return nil
	}
	out, err := wire.Append(make([]byte, 0, len(f.GetPayload())+len(f.GetConversation())+4),
		wire.Envelope{Conversation: f.GetConversation(), Payload: f.GetPayload()})
	if err != nil {
		l.c.DroppedOversize.Inc()
		return nil
	}
	l.c.Sent.Inc()
	return &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		TraceId:   f.GetTraceId(),
		Peer:      f.GetPeer(),
		Protocol:  Protocol.GetName(),
		Hints:     f.GetHints(),
		Payload:   out,
	}
}

func (l *Layer) up(f *commonv1.Frame) *commonv1.Frame {
	if f.GetProtocol() != Protocol.GetName() {
		l.c.DroppedBad.Inc()
		return nil
	}
	e, err := wire.Decode(f.GetPayload())
	if err != nil {
		l.c.DroppedBad.Inc()
		return nil
	}
	l.c.Received.Inc()
	return &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Peer:         f.GetPeer(),
		Conversation: e.Conversation,
		Hints:        f.GetHints(),
		Payload:      e.Payload,
	}
}

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	return &commonv1.HealthResponse{Serving: true, Counters: l.c.set.Snapshot()}
}

// Stop implements sdk.Layer: the layer holds nothing to release.
func (l *Layer) Stop(context.Context) error { return nil }

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	addr := l.address.Load()
	if addr == nil {
		return nil, status.Error(codes.FailedPrecondition, "none: not started")
	}
	return &privacyv1.OwnAddressResponse{Address: *addr, DisplayAddress: fmt.Sprintf("direct:%x", *addr)}, nil
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
