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
// epochs (100 ms to 800 ms), the send mode given, relay on or off, and
// the wire mode given.
func testConfig(mode string, relay bool, wire string) func(int) map[string]any {
	return func(int) map[string]any {
		return map[string]any{"epoch": "50ms", "backoff_base": 2, "backoff_max": 16, "mode": mode, "relay": relay, "wire": wire}
	}
}

// plugin is the mvds layer under test.
var plugin = sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SYNC, New: func() sdk.Layer { return mvds.New() }, Main: "./cmd/strata-plugin-mvds", Name: mvds.Name}

// TestConformance runs the sync suite in both modes, with batch and
// interactive sending on the spec's wire, and in process once without
// relaying and once in the bound wire mode. The runs are parallel: each
// has its own instances and directories.
func TestConformance(t *testing.T) {
	t.Run("relay", func(t *testing.T) {
		sdktest.Run(t, plugin, func(t *testing.T, open sdktest.Opener) {
			for _, sendMode := range []string{mvds.ModeBatch, mvds.ModeInteractive} {
				t.Run(sendMode, func(t *testing.T) {
					t.Parallel()
					conformance.Sync(t, open, conformance.Options{Config: testConfig(sendMode, true, mvds.WireSpec), Timeout: 15 * time.Second})
				})
			}
		})
	})
	t.Run("norelay", func(t *testing.T) {
		t.Parallel()
		inproc := plugin
		inproc.Modes = []sdktest.Mode{sdktest.InProcess}
		sdktest.Run(t, inproc, func(t *testing.T, open sdktest.Opener) {
			conformance.Sync(t, open, conformance.Options{Config: testConfig(mvds.ModeBatch, false, mvds.WireSpec), Timeout: 15 * time.Second})
		})
	})
	t.Run("bound", func(t *testing.T) {
		t.Parallel()
		inproc := plugin
		inproc.Modes = []sdktest.Mode{sdktest.InProcess}
		sdktest.Run(t, inproc, func(t *testing.T, open sdktest.Opener) {
			conformance.Sync(t, open, conformance.Options{Config: testConfig(mvds.ModeInteractive, true, mvds.WireBound), Timeout: 15 * time.Second})
		})
	})
}
