package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/internal/echolayer"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// echoBinary is the echo layer built as a plugin binary by TestMain.
var echoBinary string

func TestMain(m *testing.M) {
	if sock := os.Getenv(bareServerEnv); sock != "" {
		serveBare(sock) // the reference process of BenchmarkBareGRPC
		return
	}
	dir, err := os.MkdirTemp("", "sdk-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoBinary, err = sdktest.Build(dir, "github.com/strata-msg/strata/core/sdk/internal/echolayer/cmd/strata-plugin-echo", "echo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var modes = []sdktest.Mode{sdktest.InProcess, sdktest.OutOfProcess}

func opener(mode sdktest.Mode) sdktest.Opener {
	return sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_PRIVACY, func() sdk.Layer { return echolayer.New() }, echoBinary)
}

// TestConformance runs the generic layer suite on the echo layer in both
// modes: the same suite, the same expectations.
func TestConformance(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) { conformance.Layer(t, opener(mode), conformance.Options{}) })
	}
}

// started opens an echo layer and returns its link and the recorder of
// the frames it echoes.
func started(t *testing.T, mode sdktest.Mode, configJSON string) (sdk.Conn, sdk.Link, *sdktest.Recorder) {
	t.Helper()
	conn := opener(mode)(t)
	ctx := context.Background()
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: configJSON, DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	got := &sdktest.Recorder{}
	link, err := conn.Open(ctx, got.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	return conn, link, got
}

func TestFramesCrossIntact(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			conn, link, got := started(t, mode, `{}`)
			const n = 5000
			ctx := context.Background()
			for i := range n {
				f := &commonv1.Frame{
					Direction:    commonv1.Direction_DIRECTION_DOWN,
					TraceId:      uint64(i),
					Conversation: []byte("c"),
					Peer:         []byte{byte(i)},
					Protocol:     "p",
					Hints:        &commonv1.Hints{Priority: uint32(i % 3), Ephemeral: i%2 == 0},
					Payload:      bytes.Repeat([]byte{byte(i)}, i%2000),
				}
				if err := link.Emit(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				f := got.Next(t, 10*time.Second, fmt.Sprintf("frame %d to come back", i), nil)
				if f.GetTraceId() != uint64(i) || f.GetDirection() != commonv1.Direction_DIRECTION_UP ||
					!bytes.Equal(f.GetPayload(), bytes.Repeat([]byte{byte(i)}, i%2000)) ||
					f.GetHints().GetPriority() != uint32(i%3) || f.GetHints().GetEphemeral() != (i%2 == 0) ||
					!bytes.Equal(f.GetPeer(), []byte{byte(i)}) || f.GetProtocol() != "p" {
					t.Fatalf("frame %d came back as %v", i, f)
				}
			}
			h, err := conn.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h.GetCounters()["echoed"] != n {
				t.Fatalf("layer counted %d frames, want %d", h.GetCounters()["echoed"], n)
			}
		})
	}
}

// TestConfigErrorCrossesBoundary checks that a layer's ConfigError reaches
// the host as a *sdk.ConfigError in both modes, key and all.
func TestConfigErrorCrossesBoundary(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			conn := opener(mode)(t)
			_, err := conn.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"tag":"forbidden"}`, DataDir: t.TempDir()})
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != "tag" || ce.Fix != "pick another tag" {
				t.Fatalf("got %v, want ConfigError for key tag", err)
			}
		})
	}
}

func TestLaunchRefusesTamperedBinary(t *testing.T) {
	sum, err := fileHash(echoBinary)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, Checksum: sum})
	if err != nil {
		t.Fatalf("the genuine binary with its checksum: %v", err)
	}
	conn.Close()

	tampered := filepath.Join(t.TempDir(), "strata-plugin-echo")
	b, err := os.ReadFile(echoBinary)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(tampered, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: tampered, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, Checksum: sum}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("tampered binary: got %v, want a checksum error", err)
	}
	if _, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY}); !errors.Is(err, sdk.ErrUnverified) {
		t.Fatalf("no checksum: got %v, want ErrUnverified", err)
	}
}

func TestLaunchRefusesWrongKind(t *testing.T) {
	_, err := sdk.Launch(context.Background(), sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_P2P, AllowUnverified: true, Logger: hclog.NewNullLogger()})
	if err == nil {
		t.Fatal("a privacy plugin was accepted as a p2p layer")
	}
}

// TestCrashIsDetected makes the plugin exit mid-stream and checks that the
// Conn and the Link report it.
func TestCrashIsDetected(t *testing.T) {
	conn, link, _ := started(t, sdktest.OutOfProcess, `{"crash_after": 10}`)
	for i := range 20 {
		_ = link.Emit(context.Background(), &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(i)})
	}
	select {
	case <-conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin's exit was not noticed")
	}
	select {
	case <-link.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the link did not end with the plugin")
	}
}

func TestApplySchema(t *testing.T) {
	fields := []*commonv1.ConfigField{
		sdk.String("name", "a name", "x"),
		sdk.Int("count", "a count", 3, 1, 10),
		sdk.Bool("on", "a switch", false),
		sdk.Duration("every", "a period", time.Second),
		sdk.StringList("peers", "some peers", nil),
		sdk.OneOf(sdk.String("mode", "a mode", "a"), "a", "b"),
		sdk.Required(sdk.String("must", "a required key", "")),
		sdk.Int("big", "a large count", 1, 1, 16<<20),
	}
	tests := []struct {
		name    string
		in      map[string]any
		wantKey string
	}{
		{"defaults", map[string]any{"must": "y"}, ""},
		{"unknown key", map[string]any{"must": "y", "cuont": 3}, "cuont"},
		{"missing required", map[string]any{}, "must"},
		{"wrong type", map[string]any{"must": "y", "count": "many"}, "count"},
		{"out of range", map[string]any{"must": "y", "count": 11}, "count"},
		{"large bound", map[string]any{"must": "y", "big": 1 << 25}, "big"},
		{"not whole", map[string]any{"must": "y", "count": 2.5}, "count"},
		{"bad duration", map[string]any{"must": "y", "every": "soon"}, "every"},
		{"not allowed", map[string]any{"must": "y", "mode": "c"}, "mode"},
		{"list from env", map[string]any{"must": "y", "peers": "a,b"}, ""},
		{"bool from env", map[string]any{"must": "y", "on": "true"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := sdk.ApplySchema(fields, tt.in)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if out["count"] != int64(3) || out["name"] != "x" || out["every"] != "1s" {
					t.Fatalf("defaults not applied: %v", out)
				}
				return
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.wantKey {
				t.Fatalf("got %v, want a ConfigError for %q", err, tt.wantKey)
			}
			if strings.Contains(ce.Fix, "e+") {
				t.Fatalf("bounds in exponent form: %q", ce.Fix)
			}
		})
	}
}

func TestDecodeConfigStrict(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	err := sdk.DecodeConfig(`{"a":1,"b":2}`, &v)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "b" {
		t.Fatalf("got %v, want a ConfigError for b", err)
	}
	if err := sdk.DecodeConfig(`{"a":"x"}`, &v); !errors.As(err, &ce) || ce.Key != "a" {
		t.Fatalf("got %v, want a ConfigError for a", err)
	}
	if err := sdk.DecodeConfig(``, &v); err != nil {
		t.Fatalf("empty section: %v", err)
	}
}

// TestInvalidFrameDoesNotKillStream checks that a frame which cannot be
// marshalled is refused alone and the stream carries on.
func TestInvalidFrameDoesNotKillStream(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			_, link, got := started(t, mode, `{}`)
			ctx := context.Background()
			bad := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Protocol: "\xff"}
			if err := link.Emit(ctx, bad); !errors.Is(err, sdk.ErrInvalidFrame) {
				t.Fatalf("Emit of an invalid frame: %v, want ErrInvalidFrame", err)
			}
			if err := link.Emit(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Payload: []byte("still here")}); err != nil {
				t.Fatal(err)
			}
			if f := got.Next(t, 10*time.Second, "the frame after the invalid one (did the stream die with it?)", nil); string(f.GetPayload()) != "still here" {
				t.Fatalf("got %q", f.GetPayload())
			}
		})
	}
}

// TestControlCallsHaveADeadline checks that a Control call whose context has
// no deadline still ends when the plugin hangs.
func TestControlCallsHaveADeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			var (
				conn sdk.Conn
				err  error
			)
			if mode == sdktest.InProcess {
				conn, err = sdk.InProcess(echolayer.New(), sdk.InProcessConfig{CallTimeout: timeout})
			} else {
				conn, err = sdk.Launch(context.Background(), sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, AllowUnverified: true, CallTimeout: timeout})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"hang_control": true}`, DataDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			_, err = privacyv1.NewControlClient(conn.Control()).OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("hung call returned %v, want DeadlineExceeded", err)
			}
			if elapsed := time.Since(began); elapsed > 10*timeout {
				t.Fatalf("hung call took %v with a %v timeout", elapsed, timeout)
			}
		})
	}
}
