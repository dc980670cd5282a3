package mixnet_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mixnet"
)

// TestConformance runs the privacy suite's layer checks (self-description,
// config schema and errors, lifecycle, 500 frames of garbage) in both
// modes, for each role. The suite's SendToContact part does not apply: it
// joins two instances directly, and a mixnet client reaches another only
// through a provider, three mix layers and the other's provider, and only
// after the Poisson delays; TestNetwork checks the same promises (payload,
// conversation and the sender's address up, nothing else up) on a whole
// network of layers. The roles share one binary, so the client runs in
// both modes and the relays in process only.
func TestConformance(t *testing.T) {
	n := newNetwork(t)
	for _, role := range []struct {
		role, name string
		modes      []sdktest.Mode
	}{
		{mixnet.RoleClient, "provider-0", nil},
		{mixnet.RoleMix, "mix-1-0", []sdktest.Mode{sdktest.InProcess}},
		{mixnet.RoleProvider, "provider-1", []sdktest.Mode{sdktest.InProcess}},
	} {
		t.Run(role.role, func(t *testing.T) {
			sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, New: func() sdk.Layer { return mixnet.New() }, Main: "./cmd/strata-plugin-mixnet", Name: mixnet.Name, Modes: role.modes},
				func(t *testing.T, open sdktest.Opener) {
					conformance.Layer(t, open, conformance.Options{Config: func(int) map[string]any { return n.config(role.role, role.name, nil) }})
				})
		})
	}
}
