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
// initial 50 ms, backoff capped at 1 s, the session mode given, and acks
// for the whole group or not.
func testConfig(mode string, groupAcks bool) func(int) map[string]any {
	return func(int) map[string]any {
		return map[string]any{"mode": mode, "group_acks": groupAcks, "initial_latency": "50ms", "min_latency": "10ms", "max_latency": "200ms", "max_backoff": "1s"}
	}
}

// plugin is the bsp layer under test.
var plugin = sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SYNC, New: func() sdk.Layer { return bsp.New() }, Main: "./cmd/strata-plugin-bsp", Name: bsp.Name}

// TestConformance runs the sync suite in both modes (in process and as a
// process) with eager and with interactive sessions (multicast on, the
// default), and with eager sessions and group_acks in process; under
// -short the interactive run is in process only.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      string
		groupAcks bool
		process   bool
	}{
		{bsp.ModeEager, bsp.ModeEager, false, true},
		{bsp.ModeInteractive, bsp.ModeInteractive, false, !testing.Short()},
		{"eager+group_acks", bsp.ModeEager, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := plugin
			if !tc.process {
				p.Modes = []sdktest.Mode{sdktest.InProcess}
			}
			sdktest.Run(t, p, func(t *testing.T, open sdktest.Opener) {
				conformance.Sync(t, open, conformance.Options{Config: testConfig(tc.mode, tc.groupAcks), Timeout: 15 * time.Second})
			})
		})
	}
}
