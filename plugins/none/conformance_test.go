package none_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/none"
)

// TestConformance runs the privacy-layer suite in both modes.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, New: func() sdk.Layer { return none.New() }, Main: "./cmd/strata-plugin-none", Name: none.Name},
		func(t *testing.T, open sdktest.Opener) { conformance.Privacy(t, open, conformance.Options{}) })
}
