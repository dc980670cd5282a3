package whisper_test

import (
	"fmt"
	"os"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "whisper-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = sdktest.Build(dir, "github.com/strata-msg/strata/plugins/whisper/cmd/strata-plugin-whisper", "whisper")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestConformance runs the privacy-layer suite in both modes.
func TestConformance(t *testing.T) {
	for _, mode := range []sdktest.Mode{sdktest.InProcess, sdktest.OutOfProcess} {
		t.Run(string(mode), func(t *testing.T) {
			open := sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_PRIVACY, func() sdk.Layer { return whisper.New() }, binary)
			conformance.Privacy(t, open, conformance.Options{})
		})
	}
}
