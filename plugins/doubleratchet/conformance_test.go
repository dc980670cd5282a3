package doubleratchet_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/doubleratchet"
)

// TestConformance runs the secure-layer suite on the plugin, in process
// and as a plugin binary, with post-quantum agreement on (the default) and
// off, so both X3DH and PQXDH sessions go through it.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_SECURE, New: func() sdk.Layer { return doubleratchet.New() }, Main: "./cmd/strata-plugin-doubleratchet", Name: doubleratchet.Name},
		func(t *testing.T, open sdktest.Opener) {
			for _, pq := range []struct {
				name string
				on   bool
			}{{"pqxdh", true}, {"x3dh", false}} {
				t.Run(pq.name, func(t *testing.T) {
					conformance.Secure(t, open, conformance.Options{Config: func(int) map[string]any {
						return map[string]any{"post_quantum": pq.on, "one_time_prekeys": 4, "one_time_kem_prekeys": 2}
					}})
				})
			}
		})
}
