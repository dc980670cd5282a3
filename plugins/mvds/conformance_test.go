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

// opener opens the layer in mode; out of process it builds the plugin
// binary into the test's directory first (the build cache makes repeats
// cheap).
func opener(t *testing.T, mode sdktest.Mode) sdktest.Opener {
	t.Helper()
	var path string
	if mode == sdktest.OutOfProcess {
		var err error
		path, err = sdktest.Build(t.TempDir(), "github.com/strata-msg/strata/plugins/mvds/cmd/strata-plugin-mvds", mvds.Name)
		if err != nil {
			t.Fatal(err)
		}
	}
	return sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_SYNC, func() sdk.Layer { return mvds.New() }, path)
}

// TestConformance runs the sync suite in both modes, with batch and
// interactive sending, and once (in process) without relaying. The runs
// are parallel: each has its own instances and directories.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		mode     sdktest.Mode
		sendMode string
		relay    bool
	}{
		{sdktest.InProcess, mvds.ModeBatch, true},
		{sdktest.OutOfProcess, mvds.ModeBatch, true},
		{sdktest.InProcess, mvds.ModeInteractive, true},
		{sdktest.OutOfProcess, mvds.ModeInteractive, true},
		{sdktest.InProcess, mvds.ModeBatch, false},
	} {
		name := string(tc.mode) + "/" + tc.sendMode
		if !tc.relay {
			name += "/norelay"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conformance.Sync(t, opener(t, tc.mode), conformance.Options{Config: testConfig(tc.sendMode, tc.relay), Timeout: 15 * time.Second})
		})
	}
}
