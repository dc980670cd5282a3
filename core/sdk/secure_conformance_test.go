package sdk_test

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/internal/boxlayer"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestSecureConformance runs the secure-layer suite on the box fixture in
// both modes, which is what proves the suite: a real (if minimal) secure
// layer passes it in process and as a plugin binary.
func TestSecureConformance(t *testing.T) {
	bin, err := sdktest.Build(t.TempDir(), "github.com/strata-msg/strata/core/sdk/internal/boxlayer/cmd/strata-plugin-box", "box")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			open := sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_SECURE, func() sdk.Layer { return boxlayer.New() }, bin)
			conformance.Secure(t, open, conformance.Options{})
		})
	}
}
