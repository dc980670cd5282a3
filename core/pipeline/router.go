package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// DefaultStallTimeout is how long a hand may stay blocked, with no frame
// taken, before it is taken for a stall.
const DefaultStallTimeout = 30 * time.Second

// Config describes a stack to route.
type Config struct {
	// Layers names the stack's layers, bottom up ("p2p", "privacy", ...).
	Layers []string
	// Stages run on every boundary and direction, in order, before the
	// hand. Each stage decides from the boundary and direction whether it
	// has work there.
	Stages []Stage
	// App receives the UP frames that cross the top boundary. Nil drops
	// them (a stack whose top is not an application's).
	App App
	// Clock is the source of time; nil is SystemClock.
	Clock Clock
	// StallTimeout bounds how long a hand stays blocked with no frame
	// taken; default DefaultStallTimeout.
	StallTimeout time.Duration
	// Tap, if set, sees every frame as it is handed across a boundary. It
	// must be quick and must neither change nor keep the frame.
	Tap func(boundary string, f *commonv1.Frame)
	// Check, if set, returns what is wrong with a frame that layer i
	// emitted under its kind's contract, or "". The router reports each
	// problem of a layer once, through Warn; the frame goes on.
	Check func(layer int, f *commonv1.Frame) string
	// Warn receives the first frame of each contract problem of a layer.
	Warn func(layer int, problem string, f *commonv1.Frame)
	// Consume, if set, sees every event layer i emits before it goes one
	// layer up, and keeps those that are for the host (it returns true for
	// them); the others go up. It is called from layer i's routing
	// goroutine and must not block for long.
	Consume func(layer int, ev *commonv1.Event) bool
}

// Router routes the output of a stack's layers. It is safe for concurrent
// use: each layer's output is routed from that layer's own goroutine.
type Router struct {
	cfg    Config
	clock  Clock
	stall  time.Duration
	bounds []*Boundary
	doors  []*Door
	chains [][2]Handler
	trace  atomic.Uint64
	warned sync.Map // "layer\x00problem" → struct{}
}

// New builds the router of a stack: one door per layer, and for each
// boundary and direction the chain of cfg.Stages ending in the hand.
func New(cfg Config) (*Router, error) {
	n := len(cfg.Layers)
	if n == 0 {
		return nil, errors.New("pipeline: a stack has at least one layer")
	}
	r := &Router{cfg: cfg, clock: cfg.Clock, stall: cfg.StallTimeout}
	if r.clock == nil {
		r.clock = SystemClock{}
	}
	if r.stall <= 0 {
		r.stall = DefaultStallTimeout
	}
	for k := range n {
		upper := "app"
		if k+1 < n {
			upper = cfg.Layers[k+1]
		}
		r.bounds = append(r.bounds, &Boundary{Index: k, Name: cfg.Layers[k] + "|" + upper})
		r.doors = append(r.doors, &Door{r: r})
	}
	r.chains = make([][2]Handler, n)
	for k, b := range r.bounds {
		for _, dir := range []Dir{Down, Up} {
			h := r.hand(b, dir)
			for i := len(cfg.Stages) - 1; i >= 0; i-- {
				h = cfg.Stages[i](b, dir, h)
			}
			r.chains[k][dir] = h
		}
	}
	return r, nil
}

// hand is the end of boundary b's chain in dir: the receiving layer's door,
// or for UP frames across the top boundary the application.
func (r *Router) hand(b *Boundary, dir Dir) Handler {
	if dir == Down {
		door := r.doors[b.Index]
		return HandlerFunc(func(ctx context.Context, frames []*commonv1.Frame) error {
			return door.frames(ctx, b, Down, frames)
		})
	}
	if b.Index+1 < len(r.doors) {
		door := r.doors[b.Index+1]
		return HandlerFunc(func(ctx context.Context, frames []*commonv1.Frame) error {
			return door.frames(ctx, b, Up, frames)
		})
	}
	return HandlerFunc(func(ctx context.Context, frames []*commonv1.Frame) error {
		if r.cfg.App == nil {
			return nil
		}
		for _, f := range frames {
			r.crossed(b, Up, f)
		}
		return r.cfg.App.Deliver(ctx, frames)
	})
}

// Layers returns the number of layers.
func (r *Router) Layers() int { return len(r.doors) }

// Door returns layer i's door, which the owner of the layer opens onto its
// link once the layer takes traffic and shuts while it does not.
func (r *Router) Door(i int) *Door { return r.doors[i] }

// Boundary returns boundary k.
func (r *Router) Boundary(k int) *Boundary { return r.bounds[k] }

// Boundaries returns every boundary, bottom up.
func (r *Router) Boundaries() []*Boundary { return r.bounds }

// NewTraceID returns a fresh trace id, never 0.
func (r *Router) NewTraceID() uint64 { return r.trace.Add(1) }

// Send hands frames from the application down across boundary k to layer
// k: boundary n-1 for the application's messages, a lower one for frames
// that bypass the layers above (a public chat's frames to the privacy
// layer). A frame without a trace id gets one. It returns once the frames
// are handed or held for a starting layer.
func (r *Router) Send(ctx context.Context, k int, frames []*commonv1.Frame) error {
	if k < 0 || k >= len(r.chains) {
		return fmt.Errorf("pipeline: no boundary %d", k)
	}
	for _, f := range frames {
		f.Direction = commonv1.Direction_DIRECTION_DOWN
		if f.GetTraceId() == 0 {
			f.TraceId = r.NewTraceID()
		}
	}
	return r.chains[k][Down].Handle(ctx, frames)
}

// Route routes one batch that layer i emitted: DOWN frames across boundary
// i-1 to layer i-1, UP frames across boundary i, events to layer i+1. A
// frame from the wire (UP from the bottom layer) gets its trace id here, so
// that it can be followed up the stack. Route blocks while the receiving
// side's input is full: that is the stack's flow control.
func (r *Router) Route(ctx context.Context, i int, b *commonv1.Batch) {
	var ups, downs []*commonv1.Frame
	for _, f := range b.GetFrames() {
		if r.cfg.Check != nil {
			if problem := r.cfg.Check(i, f); problem != "" {
				r.warn(i, problem, f)
			}
		}
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			downs = append(downs, f)
		case commonv1.Direction_DIRECTION_UP:
			if i == 0 && f.GetTraceId() == 0 {
				f.TraceId = r.NewTraceID()
			}
			ups = append(ups, f)
		default:
			r.bounds[i].Drop(DropInvalid, 1)
			r.warn(i, "a frame with no direction", f)
		}
	}
	if len(downs) > 0 {
		if i == 0 {
			// Nothing lies below the bottom layer.
			r.bounds[0].Drop(DropInvalid, uint64(len(downs)))
			r.warn(i, "a DOWN frame from the bottom layer", downs[0])
		} else {
			_ = r.chains[i-1][Down].Handle(ctx, downs)
		}
	}
	if len(ups) > 0 {
		_ = r.chains[i][Up].Handle(ctx, ups)
	}
	evs := b.GetEvents()
	if len(evs) > 0 && r.cfg.Consume != nil {
		kept := evs[:0:0]
		for _, ev := range evs {
			if !r.cfg.Consume(i, ev) {
				kept = append(kept, ev)
			}
		}
		evs = kept
	}
	if len(evs) > 0 && i+1 < len(r.doors) {
		r.doors[i+1].events(ctx, evs)
	}
}

// Deliverer returns the function that receives what layer i emits, for
// sdk.Conn.Open: each batch is routed with ctx.
func (r *Router) Deliverer(ctx context.Context, i int) func(*commonv1.Batch) {
	return func(b *commonv1.Batch) { r.Route(ctx, i, b) }
}

func (r *Router) warn(i int, problem string, f *commonv1.Frame) {
	if r.cfg.Warn == nil {
		return
	}
	if _, seen := r.warned.LoadOrStore(fmt.Sprintf("%d\x00%s", i, problem), struct{}{}); seen {
		return
	}
	r.cfg.Warn(i, problem, f)
}

func (r *Router) crossed(b *Boundary, dir Dir, f *commonv1.Frame) {
	if r.cfg.Tap != nil {
		r.cfg.Tap(b.Name, f)
	}
	b.Crossed(dir, 1, uint64(len(f.GetPayload())))
}

// emit hands frames that crossed boundary b in dir to in, one at a time,
// counting each one taken. It blocks while in is full; a hand during which
// in takes nothing for the stall timeout ends, and the frames not taken are
// dropped and counted as stalled.
func (r *Router) emit(ctx context.Context, b *Boundary, dir Dir, in Inlet, frames []*commonv1.Frame) error {
	ctx, w := r.watch(ctx)
	defer w.stop()
	for i, f := range frames {
		err := in.Emit(ctx, f)
		if err == nil {
			w.progress.Add(1)
			r.crossed(b, dir, f)
			continue
		}
		if errors.Is(err, sdk.ErrInvalidFrame) {
			b.Drop(DropInvalid, 1)
			continue
		}
		rest := uint64(len(frames) - i)
		if w.fired.Load() {
			b.Drop(DropStalled, rest)
			return ErrStalled
		}
		b.Drop(DropLayerDown, rest)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrLayerDown, err)
	}
	return nil
}

// emitEvents hands events to in; they are advisory, so a stall drops them.
func (r *Router) emitEvents(ctx context.Context, in Inlet, events []*commonv1.Event) error {
	ctx, w := r.watch(ctx)
	defer w.stop()
	for _, ev := range events {
		if err := in.EmitEvent(ctx, ev); err != nil {
			return err
		}
		w.progress.Add(1)
	}
	return nil
}

// watchdog cancels a hand that makes no progress for the stall timeout.
type watchdog struct {
	r        *Router
	cancel   context.CancelFunc
	progress atomic.Uint64
	fired    atomic.Bool
	mu       sync.Mutex
	done     bool
	disarm   func() bool
}

func (r *Router) watch(ctx context.Context) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchdog{r: r, cancel: cancel}
	w.arm(0)
	return ctx, w
}

// arm schedules a check one stall timeout from now: if no frame was taken
// since last, the hand is stalled.
func (w *watchdog) arm(last uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.disarm = w.r.clock.AfterFunc(w.r.stall, func() {
		if now := w.progress.Load(); now != last {
			w.arm(now)
			return
		}
		w.fired.Store(true)
		w.cancel()
	})
}

func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	if w.disarm != nil {
		w.disarm()
	}
	w.mu.Unlock()
	w.cancel()
}
