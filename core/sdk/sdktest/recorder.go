package sdktest

import (
	"context"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Recorder is an sdk.Emitter that keeps what a layer emits, for tests that
// drive a layer's methods directly (Configure with sdk.Env{Out: r}, then
// HandleBatch) rather than through Open. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	frames []*commonv1.Frame
	events []*commonv1.Event
}

// Emit implements sdk.Emitter: it keeps the frames.
func (r *Recorder) Emit(_ context.Context, frames ...*commonv1.Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, frames...)
	return nil
}

// EmitEvent implements sdk.Emitter: it keeps the event.
func (r *Recorder) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
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
