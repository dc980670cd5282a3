package devp2p_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/devp2p"
)

// pluginBinary builds the plugin into the test's temp dir (go's build
// cache makes repeats cheap).
func pluginBinary(t *testing.T) string {
	path, err := sdktest.Build(t.TempDir(), "github.com/strata-msg/strata/plugins/devp2p/cmd/strata-plugin-devp2p", "devp2p")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConformance runs the p2p-layer suite in both modes.
func TestConformance(t *testing.T) {
	for _, mode := range []sdktest.Mode{sdktest.InProcess, sdktest.OutOfProcess} {
		t.Run(string(mode), func(t *testing.T) {
			path := ""
			if mode == sdktest.OutOfProcess {
				path = pluginBinary(t)
			}
			open := sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_P2P, func() sdk.Layer { return devp2p.New() }, path)
			conformance.P2P(t, open, conformance.Options{Config: func(int) map[string]any {
				return map[string]any{"listen": "127.0.0.1:0"}
			}})
		})
	}
}
