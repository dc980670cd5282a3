// Package echolayer is a privacy-kind layer that reflects every DOWN frame
// back up unchanged but for its direction. It exists to measure and test the
// plugin boundary itself: with it, everything a benchmark sees is the cost of
// the SDK, the batching and (out of process) gRPC between two processes.
package echolayer

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Layer is the echo layer.
type Layer struct {
	env      sdk.Env
	started  atomic.Bool
	echoed   atomic.Uint64
	dropped  atomic.Uint64
	crashAt  int64
	hang     atomic.Bool
	hangH    atomic.Bool
	received atomic.Int64
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an echo layer.
func New() *Layer { return &Layer{} }

type config struct {
	// Tag is echoed back in the address, to test config plumbing.
	Tag string `json:"tag"`
	// CrashAfter makes the process exit after that many frames (tests of
	// crash handling); 0 never.
	CrashAfter int64 `json:"crash_after"`
	// HangControl makes OwnAddress block until its caller gives up (tests
	// of call deadlines).
	HangControl bool `json:"hang_control"`
	// HangHealth makes Health block until its caller gives up (tests of
	// hung-plugin detection).
	HangHealth bool `json:"hang_health"`
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        "echo",
		Version:     "1.0.0",
		Description: "reflects DOWN frames up; a boundary test fixture",
		Config: []*commonv1.ConfigField{
			sdk.String("tag", "a label returned as the display address", "echo"),
			sdk.Int("crash_after", "exit the process after this many frames; 0 never", 0, 0, 1<<40),
			sdk.Bool("hang_control", "make OwnAddress block until the caller's deadline", false),
			sdk.Bool("hang_health", "make Health block until the caller's deadline", false),
		},
		Provides: []string{"echo"},
		Requires: []string{"unicast"},
	}
}

// Configure implements sdk.Layer.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	var c config
	if err := sdk.DecodeConfig(req.GetConfigJson(), &c); err != nil {
		return nil, err
	}
	if c.Tag == "forbidden" {
		return nil, &sdk.ConfigError{Key: "tag", Problem: `"forbidden" is not allowed`, Fix: "pick another tag"}
	}
	l.env, l.crashAt = env, c.CrashAfter
	l.hang.Store(c.HangControl)
	l.hangH.Store(c.HangHealth)
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{{Name: "echo", Version: 1}}}, nil
}

// Start implements sdk.Layer.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.started.Store(true)
	return &commonv1.StartResponse{LocalAddress: []byte("echo"), ContactSection: []byte("echo"), DisplayAddress: "echo"}, nil
}

// HandleBatch implements sdk.Layer: DOWN frames come back UP.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	if l.crashAt > 0 && l.received.Add(int64(len(b.GetFrames()))) >= l.crashAt {
		exit()
	}
	// A frame without a direction goes nowhere (a layer emits only UP and
	// DOWN frames) and is counted; out is a copy only once one is dropped,
	// since the batch's slice is the SDK's.
	frames, out, copied := b.GetFrames(), b.GetFrames(), false
	for i, f := range frames {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			f.Direction = commonv1.Direction_DIRECTION_UP
			l.echoed.Add(1)
		case commonv1.Direction_DIRECTION_UP:
		default:
			if !copied {
				out, copied = append([]*commonv1.Frame(nil), frames[:i]...), true
			}
			l.dropped.Add(1)
			continue
		}
		if copied {
			out = append(out, f)
		}
	}
	_ = l.env.Out.Emit(ctx, out...)
}

// Health implements sdk.Layer.
func (l *Layer) Health(ctx context.Context) *commonv1.HealthResponse {
	if l.hangH.Load() {
		<-ctx.Done()
	}
	return &commonv1.HealthResponse{Serving: l.started.Load(), Counters: map[string]uint64{"echoed": l.echoed.Load(), "dropped_wrong_direction": l.dropped.Load()}}
}

// Stop implements sdk.Layer.
func (l *Layer) Stop(context.Context) error {
	l.started.Store(false)
	return nil
}

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(ctx context.Context, _ *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	if l.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &privacyv1.OwnAddressResponse{Address: []byte("echo"), DisplayAddress: "echo"}, nil
}

// Subscribe implements privacyv1.ControlServer; echo has no shared addresses.
func (l *Layer) Subscribe(context.Context, *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "echo has no shared addresses")
}

// Unsubscribe implements privacyv1.ControlServer.
func (l *Layer) Unsubscribe(context.Context, *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "echo has no shared addresses")
}

// BindAddress implements privacyv1.ControlServer; echo's addresses carry
// no key.
func (l *Layer) BindAddress(context.Context, *privacyv1.BindAddressRequest) (*privacyv1.BindAddressResponse, error) {
	return nil, status.Error(codes.Unimplemented, "echo does not bind addresses")
}

// CheckBinding implements privacyv1.ControlServer.
func (l *Layer) CheckBinding(context.Context, *privacyv1.CheckBindingRequest) (*privacyv1.CheckBindingResponse, error) {
	return nil, status.Error(codes.Unimplemented, "echo does not bind addresses")
}
