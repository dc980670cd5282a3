package padded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"

	padded "example.com/strata-padded"
)

// plugin is the layer under test, for sdktest.Run: in process from New,
// and as the strata-plugin-padded binary, which Run builds once per test
// binary.
var plugin = sdktest.Plugin{
	Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
	New:  func() sdk.Layer { return padded.New() },
	Main: "./cmd/strata-plugin-padded",
	Name: padded.Name,
}

func TestConformance(t *testing.T) {
	sdktest.Run(t, plugin, func(t *testing.T, open sdktest.Opener) {
		t.Run("defaults", func(t *testing.T) { conformance.Privacy(t, open, conformance.Options{}) })
		t.Run("custom buckets", func(t *testing.T) {
			conformance.Privacy(t, open, conformance.Options{Config: func(int) map[string]any {
				return map[string]any{"buckets": []any{"64", "512", "2048"}}
			}})
		})
	})
}

// TestAcrossTheBoundary checks, in both modes, what the conformance suite
// does not: that Unimplemented and the drop counters survive the trip
// through the SDK, and that a frame on the wire is a bucket long.
func TestAcrossTheBoundary(t *testing.T) {
	sdktest.Run(t, plugin, func(t *testing.T, open sdktest.Opener) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn := open(t)
		if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: `{"buckets": ["128", "1024"]}`, DataDir: t.TempDir()}); err != nil {
			t.Fatalf("Configure: %v", err)
		}
		var got sdktest.Recorder
		link, err := conn.Open(ctx, got.Handle)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer link.Close()
		if _, err := conn.Start(ctx, &commonv1.StartRequest{BelowAddress: []byte("overlay-self")}); err != nil {
			t.Fatalf("Start: %v", err)
		}

		ctl := privacyv1.NewControlClient(conn.Control())
		if _, err := ctl.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "public"}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("Subscribe: %v, want Unimplemented", err)
		}
		if _, err := ctl.Unsubscribe(ctx, &privacyv1.UnsubscribeRequest{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("Unsubscribe: %v, want Unimplemented", err)
		}

		frame := func(n int) *commonv1.Frame {
			return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte("overlay-peer"), Payload: bytes.Repeat([]byte{1}, n)}
		}
		if err := link.Emit(ctx, frame(2000), frame(1), frame(200)); err != nil {
			t.Fatalf("send: %v", err)
		}
		for _, want := range []int{128, 1024} {
			f := got.Next(t, 30*time.Second, fmt.Sprintf("a %d-byte frame", want), nil)
			if len(f.GetPayload()) != want || f.GetProtocol() != padded.ProtocolName {
				t.Fatalf("frame on the wire: %s, want %d bytes on %q", sdktest.FormatFrame(f), want, padded.ProtocolName)
			}
		}
		h, err := conn.Health(ctx)
		if err != nil {
			t.Fatalf("Health: %v", err)
		}
		if c := h.GetCounters(); c["dropped_oversize"] != 1 || c["frames_sent"] != 2 {
			t.Fatalf("counters %v, want dropped_oversize 1 and frames_sent 2", c)
		}
	})
}

// TestConfigErrorCrossesTheBoundary checks that a bad bucket list comes back
// to the host as a ConfigError naming the key, in both modes.
func TestConfigErrorCrossesTheBoundary(t *testing.T) {
	sdktest.Run(t, plugin, func(t *testing.T, open sdktest.Opener) {
		conn := open(t)
		_, err := conn.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"buckets": ["1024", "256"]}`, DataDir: t.TempDir()})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != "buckets" {
			t.Fatalf("Configure with descending buckets: %v (%T), want a *sdk.ConfigError for key buckets", err, err)
		}
	})
}
