package sdktest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Recorder keeps what a layer emits, for tests. It is an sdk.Emitter, for
// tests that drive a layer's methods directly (Configure with
// sdk.Env{Out: r}, then HandleBatch); its Handle method is the callback of
// sdk.Conn.Open, for tests that go through Open; its Keep method is the App
// of a Stack. A test that needs a host that misbehaves (one that holds or
// loses frames) embeds a Recorder in an Emitter of its own. It is safe for
// concurrent use; the zero value is ready.
type Recorder struct {
	mu      sync.Mutex
	frames  []*commonv1.Frame
	events  []*commonv1.Event
	changed chan struct{} // closed and replaced whenever something arrives
}

// Emit implements sdk.Emitter: it keeps the frames.
func (r *Recorder) Emit(_ context.Context, frames ...*commonv1.Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, frames...)
	r.wake()
	return nil
}

// EmitEvent implements sdk.Emitter: it keeps the event.
func (r *Recorder) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.wake()
	return nil
}

// Handle keeps a batch's frames and events; pass it to sdk.Conn.Open.
func (r *Recorder) Handle(b *commonv1.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, b.GetFrames()...)
	r.events = append(r.events, b.GetEvents()...)
	r.wake()
}

// Keep keeps frames; it is the App of a StackConfig, so that a test of a
// Stack records what reaches the application as it records a layer's
// output.
func (r *Recorder) Keep(frames []*commonv1.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, frames...)
	r.wake()
}

// wake tells waiters that something arrived; r.mu is held.
func (r *Recorder) wake() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Take returns the frames emitted since the last Take and forgets them.
func (r *Recorder) Take() []*commonv1.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.frames
	r.frames = nil
	return out
}

// TakeEvents returns the events emitted since the last TakeEvents and
// forgets them.
func (r *Recorder) TakeEvents() []*commonv1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// TakeDirection returns the frames kept that travel in dir, in order, and
// forgets them; frames in the other direction stay.
func (r *Recorder) TakeDirection(dir commonv1.Direction) []*commonv1.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []*commonv1.Frame
	r.frames = slices.DeleteFunc(r.frames, func(f *commonv1.Frame) bool {
		if f.GetDirection() == dir {
			got = append(got, f)
			return true
		}
		return false
	})
	return got
}

// Next waits up to timeout for a frame that match accepts (nil accepts
// every frame), removes it and returns it; frames it skips stay, in order.
// On timeout it fails the test, naming what it waited for.
func (r *Recorder) Next(t testing.TB, timeout time.Duration, what string, match func(*commonv1.Frame) bool) *commonv1.Frame {
	t.Helper()
	f := r.TryNext(timeout, match)
	if f == nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return f
}

// NextEvent waits up to timeout for an event that match accepts (nil
// accepts every event), removes it and returns it. On timeout it fails the
// test.
func (r *Recorder) NextEvent(t testing.TB, timeout time.Duration, what string, match func(*commonv1.Event) bool) *commonv1.Event {
	t.Helper()
	e := r.TryNextEvent(timeout, match)
	if e == nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return e
}

// TryNext is Next that returns nil on timeout instead of failing: for a
// test that checks that nothing arrives, or that retries until something
// does.
func (r *Recorder) TryNext(timeout time.Duration, match func(*commonv1.Frame) bool) *commonv1.Frame {
	return next(r, &r.frames, timeout, match)
}

// TryNextEvent is NextEvent that returns nil on timeout instead of
// failing.
func (r *Recorder) TryNextEvent(timeout time.Duration, match func(*commonv1.Event) bool) *commonv1.Event {
	return next(r, &r.events, timeout, match)
}

// next waits up to timeout for an element of *list that match accepts
// (nil accepts every one), removes it and returns it, or returns nil.
func next[T any](r *Recorder, list *[]*T, timeout time.Duration, match func(*T) bool) *T {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if i := slices.IndexFunc(*list, func(x *T) bool { return match == nil || match(x) }); i >= 0 {
			x := (*list)[i]
			*list = slices.Delete(*list, i, i+1)
			r.mu.Unlock()
			return x
		}
		changed := r.waitChan()
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil
		}
	}
}

// waitChan returns a channel closed when something next arrives; r.mu is
// held.
func (r *Recorder) waitChan() chan struct{} {
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}
