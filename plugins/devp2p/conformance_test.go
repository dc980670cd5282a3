package devp2p_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/devp2p"
)

// TestConformance runs the p2p-layer suite in both modes, on loopback.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_P2P, New: func() sdk.Layer { return devp2p.New() }, Main: "./cmd/strata-plugin-devp2p", Name: "devp2p"},
		func(t *testing.T, open sdktest.Opener) {
			conformance.P2P(t, open, conformance.Options{Config: func(int) map[string]any { return map[string]any{"listen": "127.0.0.1:0"} }})
		})
}
