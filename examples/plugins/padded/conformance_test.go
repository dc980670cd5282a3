package padded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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

// pluginPath is the strata-plugin-padded binary that TestMain builds for the
// out-of-process tests.
var pluginPath string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-padded-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "padded tests: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginPath, err = sdktest.Build(dir, "example.com/strata-padded/cmd/strata-plugin-padded", padded.Name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "padded tests: build the plugin: %v\n", err)
		return 1
	}
	return m.Run()
}

func factory() sdk.Layer { return padded.New() }

// modes are the two ways the host runs a layer; the layer must pass the same
// tests in both.
func modes() []struct {
	mode sdktest.Mode
	path string
} {
	return []struct {
		mode sdktest.Mode
		path string
	}{{sdktest.InProcess, ""}, {sdktest.OutOfProcess, pluginPath}}
}

func TestConformance(t *testing.T) {
	configs := []struct {
		name string
		opts conformance.Options
	}{
		{"defaults", conformance.Options{}},
		{"custom buckets", conformance.Options{Config: func(int) map[string]any {
			return map[string]any{"buckets": []any{"64", "512", "2048"}}
		}}},
	}
	for _, m := range modes() {
		for _, c := range configs {
			t.Run(string(m.mode)+"/"+c.name, func(t *testing.T) {
				conformance.Privacy(t, sdktest.Open(m.mode, commonv1.LayerKind_LAYER_KIND_PRIVACY, factory, m.path), c.opts)
			})
		}
	}
}

// TestAcrossTheBoundary checks, in both modes, what the conformance suite
// does not: that Unimplemented and the drop counters survive the trip
// through the SDK, and that a frame on the wire is a bucket long.
func TestAcrossTheBoundary(t *testing.T) {
	for _, m := range modes() {
		t.Run(string(m.mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn := sdktest.Open(m.mode, commonv1.LayerKind_LAYER_KIND_PRIVACY, factory, m.path)(t)
			if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: `{"buckets": ["128", "1024"]}`, DataDir: t.TempDir()}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			got := make(chan *commonv1.Frame, 16)
			link, err := conn.Open(ctx, func(b *commonv1.Batch) {
				for _, f := range b.GetFrames() {
					got <- f
				}
			})
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
				select {
				case f := <-got:
					if len(f.GetPayload()) != want || f.GetProtocol() != padded.ProtocolName {
						t.Fatalf("frame on the wire: %d bytes on %q, want %d bytes on %q", len(f.GetPayload()), f.GetProtocol(), want, padded.ProtocolName)
					}
				case <-ctx.Done():
					t.Fatalf("timed out waiting for a %d-byte frame", want)
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
}

// TestConfigErrorCrossesTheBoundary checks that a bad bucket list comes back
// to the host as a ConfigError naming the key, in both modes.
func TestConfigErrorCrossesTheBoundary(t *testing.T) {
	for _, m := range modes() {
		t.Run(string(m.mode), func(t *testing.T) {
			conn := sdktest.Open(m.mode, commonv1.LayerKind_LAYER_KIND_PRIVACY, factory, m.path)(t)
			_, err := conn.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"buckets": ["1024", "256"]}`, DataDir: t.TempDir()})
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != "buckets" {
				t.Fatalf("Configure with descending buckets: %v (%T), want a *sdk.ConfigError for key buckets", err, err)
			}
		})
	}
}
