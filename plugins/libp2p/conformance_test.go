package libp2pplugin_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	libp2pplugin "github.com/strata-msg/strata/plugins/libp2p"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// pluginBinary builds the plugin once per test binary.
func pluginBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "libp2p-conformance-")
		if err != nil {
			buildErr = err
			return
		}
		binary, buildErr = sdktest.Build(dir, "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p", "libp2p")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// TestConformance runs the p2p-layer suite in both modes.
func TestConformance(t *testing.T) {
	for _, mode := range []sdktest.Mode{sdktest.InProcess, sdktest.OutOfProcess} {
		t.Run(string(mode), func(t *testing.T) {
			path := ""
			if mode == sdktest.OutOfProcess {
				path = pluginBinary(t)
				defer os.RemoveAll(filepath.Dir(path))
			}
			open := sdktest.Open(mode, commonv1.LayerKind_LAYER_KIND_P2P, func() sdk.Layer { return libp2pplugin.New() }, path)
			conformance.P2P(t, open, conformance.Options{Config: func(int) map[string]any {
				return map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}}
			}})
		})
	}
}
