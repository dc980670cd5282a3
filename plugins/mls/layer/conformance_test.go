package layer_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mls/layer"
)

// TestConformance runs the secure-layer suite on the plugin, in process
// and as a plugin binary, with cipher suites 1 and 3.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SECURE, New: func() sdk.Layer { return layer.New() }, Main: "./../cmd/strata-plugin-mls", Name: layer.Name},
		func(t *testing.T, open sdktest.Opener) {
			for _, cs := range []struct {
				name string
				id   int
			}{{"suite1", 1}, {"suite3", 3}} {
				t.Run(cs.name, func(t *testing.T) {
					if testing.Short() && cs.id != 1 {
						t.Skip("suite 3 only without -short")
					}
					conformance.Secure(t, open, conformance.Options{Config: func(int) map[string]any {
						return map[string]any{"cipher_suite": cs.id, "key_packages": 3}
					}})
				})
			}
		})
}
