package bsp_test

import (
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/bsp"
)

// testConfig is a test-sized config: latencies from 10 ms to 200 ms, an
// initial 50 ms, backoff capped at 1 s, the session mode given.
func testConfig(mode string) func(int) map[string]any {
	return func(int) map[string]any {
		return map[string]any{"mode": mode, "initial_latency": "50ms", "min_latency": "10ms", "max_latency": "200ms", "max_backoff": "1s"}
	}
}

// plugin is the bsp layer under test.
var plugin = sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SYNC, New: func() sdk.Layer { return bsp.New() }, Main: "./cmd/strata-plugin-bsp", Name: bsp.Name}

// TestConformance runs the sync suite in both modes (in process and as a
// process) with eager and with interactive sessions; under -short the
// interactive run is in process only.
func TestConformance(t *testing.T) {
	for _, mode := range []string{bsp.ModeEager, bsp.ModeInteractive} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := plugin
			if testing.Short() && mode == bsp.ModeInteractive {
				p.Modes = []sdktest.Mode{sdktest.InProcess}
			}
			sdktest.Run(t, p, func(t *testing.T, open sdktest.Opener) {
				conformance.Sync(t, open, conformance.Options{Config: testConfig(mode), Timeout: 15 * time.Second})
			})
		})
	}
}
