// Package sdktest helps plugin authors test their layers: it builds plugin
// binaries for out-of-process tests and opens a layer in either mode behind
// the same sdk.Conn.
package sdktest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Build compiles the Go main package pkg (an import path or a ./relative
// path) into dir and returns the binary's path. Plugin binaries are named
// strata-plugin-<name>, so pass the name the host will look for.
func Build(dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, "strata-plugin-"+name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// Mode names how a test runs a layer.
type Mode string

// The two modes every layer must pass the same tests in.
const (
	InProcess    Mode = "inproc"
	OutOfProcess Mode = "process"
)

// Opener opens a fresh instance of the layer under test.
type Opener func(t testing.TB) sdk.Conn

// Open returns an Opener for a layer in the given mode: in process from
// factory, or out of process from the binary at path (unverified: tests
// build their own binaries). The Conn is closed when the test ends.
func Open(mode Mode, kind commonv1.LayerKind, factory func() sdk.Layer, path string) Opener {
	return func(t testing.TB) sdk.Conn {
		t.Helper()
		w := &testWriter{t: t}
		t.Cleanup(w.close)
		logger := hclog.New(&hclog.LoggerOptions{Name: string(mode), Level: hclog.Warn, Output: w})
		var (
			conn sdk.Conn
			err  error
		)
		switch mode {
		case InProcess:
			conn, err = sdk.InProcess(factory(), sdk.InProcessConfig{Logger: logger})
		case OutOfProcess:
			conn, err = sdk.Launch(context.Background(), sdk.LaunchConfig{Path: path, Kind: kind, AllowUnverified: true, Logger: logger})
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			t.Fatalf("open layer (%s): %v", mode, err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
}

// testWriter sends log lines to the test log (shown only on failure or
// -v) until the test's cleanup, after which plugin output that is still
// draining is dropped (logging after a test ends panics).
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
