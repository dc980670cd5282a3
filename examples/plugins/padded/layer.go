// Package padded is an example third-party Strata privacy layer that hides
// message lengths. It is built against the Strata SDK alone and shipped as
// its own module and plugin binary, strata-plugin-padded.
//
// Like the built-in `none` layer, padded delivers directly: a node's privacy
// address is its overlay peer id, and a DOWN frame addressed to it goes to
// that overlay peer on the overlay protocol "padded" version 1. Unlike
// `none`, every message on the wire is padded with zeros to the smallest
// configured bucket size that holds it, so an observer of the overlay learns
// which bucket a message fell into but not its length. A message larger than
// the largest bucket is dropped and counted. The wire format is described
// beside appendMessage in wire.go and in docs/plugins/padded.md.
//
// Padding hides length only. The layer does not hide who talks to whom or
// when, and it sends no cover traffic.
package padded

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
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

// Protocol returns the overlay protocol the layer asks the p2p layer to
// carry.
func Protocol() *commonv1.Protocol {
	return &commonv1.Protocol{Name: ProtocolName, Version: ProtocolVersion, MessageCodes: 1}
}

// Layer is the padded privacy layer. The zero value is not usable; call New.
type Layer struct {
	// Embedded so that the layer keeps compiling, answering Unimplemented,
	// if the privacy control API gains methods in a later SDK.
	privacyv1.UnimplementedControlServer

	// buckets and env are set by Configure, address by Start; the SDK
	// orders these before any other call that reads them.
	buckets buckets
	env     sdk.Env
	address atomic.Pointer[[]byte]

	stats   stats
	metrics *sdk.Counters
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer {
	l := &Layer{}
	l.metrics = sdk.NewCounters(&l.stats)
	return l
}

// Describe implements sdk.Layer. MaxPayload is the limit of the default
// buckets: PluginInfo cannot depend on configuration, so a config with a
// different largest bucket changes the real limit without changing the
// declared one.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "direct delivery to the contact's overlay peer, padded to fixed size buckets; hides message length, not who talks to whom",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{"direct", "length-padding"},
		Requires:    []string{"unicast"},
		MaxPayload:  uint32(maxPayload(defaultLargestBucket)),
	}
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

// Configure implements sdk.Layer. It checks the bucket list; the layer has
// no storage.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	l.buckets, l.env = cfg.buckets, env
	env.Logger.Debug("configured", "buckets", []int(cfg.buckets))
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol()}}, nil
}

// Start implements sdk.Layer. The privacy address is the overlay address
// given in req.BelowAddress.
func (l *Layer) Start(_ context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	below := req.GetBelowAddress()
	if len(below) == 0 {
		return nil, fmt.Errorf("padded: start: the p2p layer reported no local address")
	}
	addr := append([]byte(nil), below...)
	l.address.Store(&addr)
	return &commonv1.StartResponse{
		LocalAddress:   addr,
		ContactSection: addr,
		DisplayAddress: displayAddress(addr),
	}, nil
}

func displayAddress(addr []byte) string { return fmt.Sprintf("padded:%x", addr) }

// HandleBatch implements sdk.Layer. DOWN frames are padded and sent to the
// overlay peer named by Frame.peer; UP frames on the padded protocol are
// unpadded and passed up. Peer events are ignored: the layer sends to
// whatever overlay id it is given.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	bs, env := l.buckets, l.env
	frames := make([]*commonv1.Frame, 0, len(b.GetFrames()))
	for _, f := range b.GetFrames() {
		var o *commonv1.Frame
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			o = l.down(f, bs)
		case commonv1.Direction_DIRECTION_UP:
			o = l.up(f)
		default:
			l.stats.DroppedWrongDirection.Inc()
		}
		if o != nil {
			frames = append(frames, o)
		}
	}
	if len(frames) == 0 {
		return
	}
	if err := env.Out.Emit(ctx, frames...); err != nil {
		l.stats.DroppedEmitFailed.Add(uint64(len(frames)))
		env.Logger.Debug("emit failed", "frames", len(frames), "error", err)
	}
}

// down pads a frame from above for the overlay, or returns nil when the
// frame is dropped.
func (l *Layer) down(f *commonv1.Frame, bs buckets) *commonv1.Frame {
	if len(f.GetPeer()) == 0 {
		l.stats.DroppedUnaddressed.Inc()
		return nil
	}
	if len(f.GetConversation()) > maxConversation {
		l.stats.DroppedLongConversation.Inc()
		return nil
	}
	n := unpaddedLen(len(f.GetConversation()), len(f.GetPayload()))
	size, ok := bs.fit(n)
	if !ok {
		l.stats.DroppedOversize.Inc()
		return nil
	}
	wire, err := appendMessage(make([]byte, 0, size), f.GetConversation(), f.GetPayload(), size)
	if err != nil {
		// fit chose a size that holds the message; this is unreachable
		// unless the two disagree.
		l.stats.DroppedOversize.Inc()
		return nil
	}
	l.stats.Sent.Inc()
	l.stats.PaddingBytes.Add(uint64(size - n))
	return &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		TraceId:   f.GetTraceId(),
		Peer:      f.GetPeer(),
		Protocol:  ProtocolName,
		Hints:     f.GetHints(),
		Payload:   wire,
	}
}

// up unpads a frame from the overlay for the layer above, or returns nil
// when the frame is dropped.
func (l *Layer) up(f *commonv1.Frame) *commonv1.Frame {
	if f.GetProtocol() != ProtocolName {
		l.stats.DroppedWrongProtocol.Inc()
		return nil
	}
	conversation, payload, err := decodeMessage(f.GetPayload())
	if err != nil {
		l.stats.DroppedMalformed.Inc()
		return nil
	}
	l.stats.Received.Inc()
	return &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Peer:         f.GetPeer(),
		Conversation: conversation,
		Hints:        f.GetHints(),
		Payload:      payload,
	}
}

// Health implements sdk.Layer. The SDK adds the layer's phase.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	return &commonv1.HealthResponse{Serving: true, Counters: l.metrics.Snapshot()}
}

// Stop implements sdk.Layer. The layer holds no state worth flushing.
func (l *Layer) Stop(context.Context) error { return nil }

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	addr := l.address.Load()
	if addr == nil {
		return nil, status.Error(codes.FailedPrecondition, "padded: not started")
	}
	return &privacyv1.OwnAddressResponse{Address: *addr, DisplayAddress: displayAddress(*addr)}, nil
}

// Subscribe implements privacyv1.ControlServer. Direct delivery has no
// shared addresses: a group over padded is pairwise fan-out by the layers
// above, so the call is refused with Unimplemented.
func (l *Layer) Subscribe(context.Context, *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "padded: direct delivery has no shared addresses; send to each member")
}

// Unsubscribe implements privacyv1.ControlServer; see Subscribe.
func (l *Layer) Unsubscribe(context.Context, *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "padded: direct delivery has no shared addresses; there is nothing to unsubscribe from")
}
