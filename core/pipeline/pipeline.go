// Package pipeline is the routing core of a Strata stack: it moves what one
// layer emits across the boundary to the adjacent layer (or the
// application), as a chain of small stages built once per boundary and
// direction.
//
// A stack of n layers has n boundaries. Boundary k lies between layer k and
// layer k+1; boundary n-1 lies between the top layer and the application.
// A DOWN frame emitted by layer k+1 (or sent by the application) crosses
// boundary k to layer k; an UP frame emitted by layer k crosses boundary k
// to layer k+1 (or to the application). Each crossing runs the boundary's
// stages for that direction, in order, then the hand that gives the frames
// to the receiving side:
//
//	stage → stage → … → hand (count, tap, door of the receiving layer)
//
// Stages are supplied by whoever builds the router (the host supplies
// address translation, public-chat diversion and fault injection). The
// package knows nothing about layer kinds: what a kind needs lives in the
// stages and in the host's per-kind adapters. It does no I/O of its own and
// takes its time from an injected Clock, so tests drive it step by step.
//
// Flow control: handing frames to a layer blocks while the layer's input is
// full, so a slow layer slows the layer that feeds it, down to the p2p
// layer's reads from its peers. A hand that stays blocked for StallTimeout
// is taken for a stall (two layers each waiting for the other) and its
// frames are dropped and counted as "stalled"; see docs/architecture.md.
package pipeline

import (
	"context"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Dir is the direction frames cross a boundary in.
type Dir uint8

// The two directions.
const (
	// Down is toward the wire.
	Down Dir = 0
	// Up is toward the application.
	Up Dir = 1
)

// String returns "down" or "up".
func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Handler takes frames that cross one boundary in one direction. It returns
// once the frames are handed on, held, or dropped and counted; the error
// says why the frames were not all handed on. The frames are the handler's
// once passed.
type Handler interface {
	Handle(ctx context.Context, frames []*commonv1.Frame) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, frames []*commonv1.Frame) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, frames []*commonv1.Frame) error {
	return f(ctx, frames)
}

// Stage is one step of a boundary's chain: given the boundary, the
// direction and the next handler, it returns the handler that runs the
// step and then calls next with what goes on. A stage that has nothing to
// do on a boundary returns next.
type Stage func(b *Boundary, dir Dir, next Handler) Handler

// Clock is the router's source of time. Tests pass a manual clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned stop function is called first; stop reports whether it
	// prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the Clock of the real world.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Inlet is where a boundary hands frames and events to the layer on its
// receiving side: the layer's data link. sdk.Link satisfies it.
type Inlet interface {
	// Emit gives frames to the layer, blocking while its input is full.
	Emit(ctx context.Context, frames ...*commonv1.Frame) error
	// EmitEvent gives an event to the layer, with Emit's blocking rules.
	EmitEvent(ctx context.Context, ev *commonv1.Event) error
}

// App receives the UP frames that cross the top boundary: the messages
// that reached the application. It is called from the routing goroutine of
// the top layer and may block (that slows the top layer).
type App interface {
	Deliver(ctx context.Context, frames []*commonv1.Frame) error
}

// AppFunc adapts a function to App.
type AppFunc func(ctx context.Context, frames []*commonv1.Frame) error

// Deliver implements App.
func (f AppFunc) Deliver(ctx context.Context, frames []*commonv1.Frame) error {
	return f(ctx, frames)
}
