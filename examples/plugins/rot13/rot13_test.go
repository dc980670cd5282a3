package rot13_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"

	"example.com/strata-rot13"
)

func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, New: func() sdk.Layer { return rot13.New() }, Main: "./cmd/strata-plugin-rot13", Name: rot13.Name},
		func(t *testing.T, open sdktest.Opener) { conformance.Privacy(t, open, conformance.Options{}) })
}
