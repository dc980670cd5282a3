// Package probe runs a test suite against a fake test that records failure
// instead of failing the real test: how the conformance suites are shown to
// fail on a layer that breaks its contract.
package probe

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// T is a fake test with the methods of testing.TB that a suite uses, and
// Run for subtests. Fatal and Skip end the calling goroutine, as in the
// testing package, so call them from the goroutine Run started. Once any
// test of a probe has failed, Run starts no further subtests: a probe
// answers one question, does the suite fail, as soon as it can.
//
// Methods it does not fake (Setenv, Chdir, Output, ...) are the real
// test's.
type T struct {
	testing.TB // the real test

	name   string
	root   *root
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	failed   bool
	skipped  bool
	cleanups []func()
}

// root is what the tests of one probe share.
type root struct {
	mu       sync.Mutex
	failures []string
	failed   bool
}

// Result is what a probe saw.
type Result struct {
	// Failed reports whether the suite failed.
	Failed bool
	// Failures are the failure messages, each prefixed with the name of
	// the test that reported it.
	Failures []string
}

// String prints the failures, one a line.
func (r Result) String() string {
	if !r.Failed {
		return "passed"
	}
	return strings.Join(r.Failures, "\n")
}

// Check runs suite against a fresh probe named after real, in its own
// goroutine, waits for it and its cleanups, and returns what it saw.
func Check(real testing.TB, suite func(t *T)) Result {
	rt := &root{}
	t := newT(real, real.Name()+"/probe", rt)
	t.run(suite)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return Result{Failed: rt.failed, Failures: append([]string(nil), rt.failures...)}
}

func newT(real testing.TB, name string, rt *root) *T {
	ctx, cancel := context.WithCancel(context.Background())
	return &T{TB: real, name: name, root: rt, ctx: ctx, cancel: cancel}
}

// run calls f in a new goroutine, then the test's cleanups, last
// registered first; a panic in f is a failure.
func (t *T) run(f func(*T)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.finish()
		defer func() {
			if r := recover(); r != nil {
				t.record(fmt.Sprintf("panic: %v", r))
			}
		}()
		f(t)
	}()
	<-done
}

// finish cancels the test's context and runs its cleanups.
func (t *T) finish() {
	t.cancel()
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.record(fmt.Sprintf("panic in cleanup: %v", r))
				}
			}()
			f()
		}()
	}
}

// Run runs f as a subtest named name and reports whether it passed. It
// runs nothing and returns false once the probe has seen a failure.
func (t *T) Run(name string, f func(*T)) bool {
	t.root.mu.Lock()
	stop := t.root.failed
	t.root.mu.Unlock()
	if stop {
		return false
	}
	c := newT(t.TB, t.name+"/"+name, t.root)
	c.run(f)
	if c.Failed() {
		t.mu.Lock()
		t.failed = true
		t.mu.Unlock()
		return false
	}
	return true
}

// record marks the test failed with msg.
func (t *T) record(msg string) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.root.mu.Lock()
	t.root.failed = true
	t.root.failures = append(t.root.failures, t.name+": "+msg)
	t.root.mu.Unlock()
}

// Name returns the probe test's name.
func (t *T) Name() string { return t.name }

// Context is canceled when the test ends, before its cleanups.
func (t *T) Context() context.Context { return t.ctx }

// Helper does nothing.
func (t *T) Helper() {}

// Cleanup registers f to run when the test ends.
func (t *T) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// TempDir returns a new directory removed when the test ends.
func (t *T) TempDir() string {
	dir, err := os.MkdirTemp("", "probe-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Log does nothing: a probe keeps failures only.
func (t *T) Log(...any) {}

// Logf does nothing.
func (t *T) Logf(string, ...any) {}

// Error records a failure.
func (t *T) Error(args ...any) { t.record(fmt.Sprint(args...)) }

// Errorf records a failure.
func (t *T) Errorf(format string, args ...any) { t.record(fmt.Sprintf(format, args...)) }

// Fail marks the test failed.
func (t *T) Fail() { t.record("Fail called") }

// FailNow marks the test failed and ends its goroutine.
func (t *T) FailNow() {
	t.record("FailNow called")
	runtime.Goexit()
}

// Fatal records a failure and ends the test's goroutine.
func (t *T) Fatal(args ...any) {
	t.record(fmt.Sprint(args...))
	runtime.Goexit()
}

// Fatalf records a failure and ends the test's goroutine.
func (t *T) Fatalf(format string, args ...any) {
	t.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Failed reports whether the test or one of its subtests failed.
func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// Skip marks the test skipped and ends its goroutine.
func (t *T) Skip(...any) { t.SkipNow() }

// Skipf marks the test skipped and ends its goroutine.
func (t *T) Skipf(string, ...any) { t.SkipNow() }

// SkipNow marks the test skipped and ends its goroutine.
func (t *T) SkipNow() {
	t.mu.Lock()
	t.skipped = true
	t.mu.Unlock()
	runtime.Goexit()
}

// Skipped reports whether the test was skipped.
func (t *T) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}
