package mvds_test

import (
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mvds"
)

// testConfig is a test-sized config: 50 ms epochs, a backoff from 2 to 16
// epochs (100 ms to 800 ms), the send mode given, and relay on or off.
func testConfig(mode string, relay bool) func(int) map[string]any {
	return func(int) map[string]any {
		return map[string]any{"epoch": "50ms", "backoff_base": 2, "backoff_max": 16, "mode": mode, "relay": relay}
	}
}

// plugin is the mvds layer under test.
var plugin = sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SYNC, New: func() sdk.Layer { return mvds.New() }, Main: "./cmd/strata-plugin-mvds", Name: mvds.Name}

// TestConformance runs the sync suite in both modes, with batch and
// interactive sending, and once (in process) without relaying. The runs
// are parallel: each has its own instances and directories.
func TestConformance(t *testing.T) {
	t.Run("relay", func(t *testing.T) {
		sdktest.Run(t, plugin, func(t *testing.T, open sdktest.Opener) {
			for _, sendMode := range []string{mvds.ModeBatch, mvds.ModeInteractive} {
				t.Run(sendMode, func(t *testing.T) {
					t.Parallel()
					conformance.Sync(t, open, conformance.Options{Config: testConfig(sendMode, true), Timeout: 15 * time.Second})
				})
			}
		})
	})
	t.Run("norelay", func(t *testing.T) {
		t.Parallel()
		inproc := plugin
		inproc.Modes = []sdktest.Mode{sdktest.InProcess}
		sdktest.Run(t, inproc, func(t *testing.T, open sdktest.Opener) {
			conformance.Sync(t, open, conformance.Options{Config: testConfig(mvds.ModeBatch, false), Timeout: 15 * time.Second})
		})
	})
}
