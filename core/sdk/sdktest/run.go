package sdktest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Plugin names a layer under test: how to make it in process and where the
// main package of its plugin binary is.
type Plugin struct {
	// Kind is the layer's kind, as the host launches it.
	Kind commonv1.LayerKind
	// New returns a fresh, unconfigured instance, for the in-process mode.
	New func() sdk.Layer
	// Main is the plugin's main package, for the out-of-process mode: an
	// import path, or a path relative to the test's package directory such
	// as "./cmd/strata-plugin-rot13". It is built with `go build` in the
	// test's working directory, so it resolves in the test's own module.
	Main string
	// Name is the implementation name; the binary is strata-plugin-<Name>.
	Name string
	// Modes restricts the modes Run runs; nil means both, InProcess first.
	Modes []Mode
}

// Run runs body once per mode, as the subtests "inproc" and "process",
// each with an Opener for that mode. Out of process it builds p.Main first,
// once per test binary whatever the number of tests that ask (later calls
// reuse the binary), so a plugin's whole conformance test is
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
//			New: func() sdk.Layer { return rot13.New() }, Main: "./cmd/strata-plugin-rot13", Name: "rot13"},
//			func(t *testing.T, open sdktest.Opener) { conformance.Privacy(t, open, conformance.Options{}) })
//	}
//
// No TestMain is needed. A build that fails fails the "process" subtest with
// the compiler's output; the "inproc" subtest still runs. body may call
// t.Parallel: the modes share nothing.
func Run(t *testing.T, p Plugin, body func(t *testing.T, open Opener)) {
	t.Helper()
	modes := p.Modes
	if modes == nil {
		modes = []Mode{InProcess, OutOfProcess}
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			var path string
			if mode == OutOfProcess {
				var err error
				if path, err = p.binary(); err != nil {
					t.Fatalf("sdktest.Run: %v", err)
				}
			}
			body(t, Open(mode, p.Kind, p.New, path))
		})
	}
}

// binary returns the path of p's plugin binary, building it the first time
// this test binary asks for it.
func (p Plugin) binary() (string, error) {
	if p.Main == "" || p.Name == "" {
		return "", fmt.Errorf("plugin %q: Main and Name are needed to run it as a process", p.Name)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", p.Main, err)
	}
	key := wd + "\x00" + p.Main + "\x00" + p.Name
	builtMu.Lock()
	b, ok := built[key]
	if !ok {
		b = &build{}
		built[key] = b
	}
	builtMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildCached(key, p.Main, p.Name) })
	return b.path, b.err
}

// build is one plugin binary built, or not, by this test binary.
type build struct {
	once sync.Once
	path string
	err  error
}

var (
	builtMu sync.Mutex
	built   = map[string]*build{} // working dir, main package and name → build
)

// buildCached builds pkg as strata-plugin-<name> into a directory of the
// user's cache named after key, where the next test run finds it again (go
// build then relinks only what changed), and returns its path. The build
// goes to a temporary name first and is renamed into place, so two test
// binaries that build the same plugin at once do not see a half-written
// file.
func buildCached(key, pkg, name string) (string, error) {
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(root, "strata-sdktest", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	defer os.RemoveAll(tmp)
	out, err := Build(tmp, pkg, name)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, filepath.Base(out))
	if err := os.Rename(out, final); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return final, nil
}
