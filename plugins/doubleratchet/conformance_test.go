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
	bin, err := sdktest.Build(t.TempDir(), "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet", doubleratchet.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []sdktest.Mode{sdktest.InProcess, sdktest.OutOfProcess} {
		for _, pq := range []bool{true, false} {
			name := string(mode) + "/pqxdh"
			if !pq {
				name = string(mode) + "/x3dh"
			}
			t.Run(name, func(t *testing.T) {
				open := sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_SECURE, func() sdk.Layer { return doubleratchet.New() }, bin)
				conformance.Secure(t, open, conformance.Options{Config: func(int) map[string]any {
					return map[string]any{"post_quantum": pq, "one_time_prekeys": 4, "one_time_kem_prekeys": 2}
				}})
			})
		}
	}
}
