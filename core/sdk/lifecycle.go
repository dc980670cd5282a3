package sdk

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// phase is where a layer is in its life.
type phase int32

const (
	phaseNew        phase = iota // not configured
	phaseConfigured              // configured, not started
	phaseStarted                 // live
	phaseStopping                // Stop has begun
	phaseStopped                 // Stop has returned
)

func (p phase) String() string {
	switch p {
	case phaseNew:
		return "not configured"
	case phaseConfigured:
		return "not started"
	case phaseStarted:
		return "running"
	}
	return "stopped"
}

// NotRunningCounter is the Health counter, kept by the SDK for every layer,
// of input frames and events that arrived when the layer could not take
// them: after Stop began, or before Start and then never started.
const NotRunningCounter = DroppedPrefix + "not_running"

// Lifecycle runs a Layer in the order its contract promises, so that no
// layer writes its own phase machine. Both the plugin process (Serve) and
// InProcess drive every layer through one; a test that calls a layer's
// methods itself wraps it in one too. The rules:
//
//   - Configure once, successfully: a Configure that fails may be tried
//     again; one after a success or after Stop is refused.
//   - Start once, after a successful Configure: as Configure, a failed
//     Start may be tried again; Start before Configure, a second Start or
//     Start after Stop is refused.
//   - HandleBatch before Start is held, not refused: it waits until Start
//     succeeds (the input queue then fills and its senders block, as for a
//     slow layer), and is dropped, counted as NotRunningCounter, if Stop
//     begins first. After Stop began every batch is dropped and counted.
//     A held batch is not lost to the order in which the host starts
//     layers, and a layer never sees input before it is live.
//   - Stop any time, any number of times: the first call stops, the others
//     wait for it and return its result. Stop first ends Env.Run (a layer's
//     goroutines and the context of a HandleBatch in progress end with it)
//     and refuses new batches, then waits for the HandleBatch in flight,
//     then calls the layer's Stop, only if Configure succeeded. The layer's
//     Configure, Start and Stop never run at the same time, and its Stop
//     never runs with its HandleBatch.
//   - Nothing is emitted once Stop has returned: Emit then returns
//     ErrClosed, and an Emit still blocked is ended first. During the
//     layer's Stop it may still Emit, to flush what it holds (with a
//     context other than Env.Run, which has ended).
//   - Health reports Serving only while the layer runs (and the layer says
//     it serves), the phase as Detail when the layer gives none, and adds
//     NotRunningCounter to the layer's counters. Before Configure the layer
//     is not asked.
//
// A call out of order returns a gRPC status error with code
// FailedPrecondition, in process as across the process boundary.
type Lifecycle struct {
	impl Layer

	// ctrl serialises Configure, Start and the layer's Stop.
	ctrl sync.Mutex
	// mu guards phase; it is held for reading while a call enters.
	mu    sync.RWMutex
	phase phase
	// started is closed when Start succeeds, stopping when Stop begins.
	started, stopping chan struct{}
	// run ends when Stop begins, closed when the layer's Stop returns.
	run, closed   context.Context
	endRun, close context.CancelFunc
	// batches and emits count the HandleBatch and Emit calls in flight.
	batches, emits sync.WaitGroup

	// configured is set once the layer's Configure succeeded: it then
	// holds state that its Stop releases.
	configured bool
	stopOnce   sync.Once
	stopErr    error
	logger     hclog.Logger

	notRunning atomic.Uint64

	// batch caches the context HandleBatch hands the layer: the caller's,
	// ended also by Stop. The caller's is the same batch after batch.
	batchMu     sync.Mutex
	batchParent context.Context
	batchCtx    context.Context
	batchEnd    func()
}

var _ Layer = (*Lifecycle)(nil)

// NewLifecycle wraps impl.
func NewLifecycle(impl Layer) *Lifecycle {
	run, end := context.WithCancel(context.Background())
	closed, closeFn := context.WithCancel(context.Background())
	return &Lifecycle{
		impl:     impl,
		started:  make(chan struct{}),
		stopping: make(chan struct{}),
		run:      run,
		endRun:   end,
		closed:   closed,
		close:    closeFn,
		logger:   hclog.NewNullLogger(),
	}
}

// Layer returns the wrapped layer.
func (l *Lifecycle) Layer() Layer { return l.impl }

func (l *Lifecycle) current() phase {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.phase
}

func (l *Lifecycle) set(p phase) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func (l *Lifecycle) outOfOrder(call string, p phase) error {
	name := l.impl.Describe().GetName()
	return status.Errorf(codes.FailedPrecondition, "%s: %s called out of order: the layer is %s", name, call, p)
}

// Describe implements Layer.
func (l *Lifecycle) Describe() *commonv1.PluginInfo { return l.impl.Describe() }

// Configure implements Layer. The layer gets env with Out refusing Emit
// once Stop has begun, Run set and a null Logger if env has none.
func (l *Lifecycle) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env Env) (*commonv1.ConfigureResponse, error) {
	l.ctrl.Lock()
	defer l.ctrl.Unlock()
	if p := l.current(); p != phaseNew {
		return nil, l.outOfOrder("Configure", p)
	}
	if env.Logger == nil {
		env.Logger = hclog.NewNullLogger()
	}
	l.logger = env.Logger
	env.Out = &lifeEmitter{l: l, out: env.Out}
	env.Run = l.run
	resp, err := l.impl.Configure(ctx, req, env)
	if err != nil {
		return nil, err
	}
	l.configured = true
	if resp == nil {
		resp = &commonv1.ConfigureResponse{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase != phaseNew { // Stop began meanwhile
		return nil, status.Errorf(codes.FailedPrecondition, "%s: stopped during Configure", l.impl.Describe().GetName())
	}
	l.phase = phaseConfigured
	return resp, nil
}

// Start implements Layer.
func (l *Lifecycle) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.ctrl.Lock()
	defer l.ctrl.Unlock()
	if p := l.current(); p != phaseConfigured {
		return nil, l.outOfOrder("Start", p)
	}
	resp, err := l.impl.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &commonv1.StartResponse{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase != phaseConfigured {
		return nil, status.Errorf(codes.FailedPrecondition, "%s: stopped during Start", l.impl.Describe().GetName())
	}
	l.phase = phaseStarted
	close(l.started)
	return resp, nil
}

// enter waits until the layer runs and counts a call in flight; false when
// Stop began or ctx ended first.
func (l *Lifecycle) enter(ctx context.Context) bool {
	for {
		l.mu.RLock()
		p := l.phase
		if p == phaseStarted {
			l.batches.Add(1)
		}
		l.mu.RUnlock()
		switch p {
		case phaseStarted:
			return true
		case phaseStopping, phaseStopped:
			return false
		}
		select {
		case <-l.started:
		case <-l.stopping:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// HandleBatch implements Layer: see the rules on Lifecycle.
func (l *Lifecycle) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	if !l.enter(ctx) {
		l.notRunning.Add(uint64(len(b.GetFrames()) + len(b.GetEvents())))
		return
	}
	defer l.batches.Done()
	l.impl.HandleBatch(l.batchContext(ctx), b)
}

// batchContext returns parent, ended also when Stop begins.
func (l *Lifecycle) batchContext(parent context.Context) context.Context {
	l.batchMu.Lock()
	defer l.batchMu.Unlock()
	if parent == l.batchParent {
		return l.batchCtx
	}
	if l.batchEnd != nil {
		l.batchEnd()
	}
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(l.run, cancel)
	l.batchParent, l.batchCtx = parent, ctx
	l.batchEnd = func() { stop(); cancel() }
	return ctx
}

// Health implements Layer.
func (l *Lifecycle) Health(ctx context.Context) *commonv1.HealthResponse {
	p := l.current()
	var h *commonv1.HealthResponse
	if p == phaseNew {
		h = &commonv1.HealthResponse{}
	} else if h = l.impl.Health(ctx); h == nil {
		h = &commonv1.HealthResponse{}
	}
	h.Serving = h.GetServing() && p == phaseStarted
	if h.GetDetail() == "" && p != phaseStarted {
		h.Detail = p.String()
	}
	if h.Counters == nil {
		h.Counters = map[string]uint64{}
	}
	h.Counters[NotRunningCounter] += l.notRunning.Load()
	return h
}

// Stop implements Layer: see the rules on Lifecycle.
func (l *Lifecycle) Stop(ctx context.Context) error {
	l.stopOnce.Do(func() { l.stopErr = l.stop(ctx) })
	return l.stopErr
}

func (l *Lifecycle) stop(ctx context.Context) error {
	l.mu.Lock()
	l.phase = phaseStopping
	close(l.stopping)
	l.mu.Unlock()
	l.endRun()

	l.ctrl.Lock() // a Configure or Start in progress returns first
	defer l.ctrl.Unlock()
	l.wait(ctx, &l.batches, "a HandleBatch")
	l.batchMu.Lock()
	if l.batchEnd != nil {
		l.batchEnd()
	}
	l.batchMu.Unlock()
	var err error
	if l.configured {
		if err = l.impl.Stop(ctx); err != nil {
			err = fmt.Errorf("%s: stop: %w", l.impl.Describe().GetName(), err)
		}
	}
	l.set(phaseStopped)
	l.close()
	l.wait(ctx, &l.emits, "an Emit")
	return err
}

// wait waits for the calls wg counts, or for ctx.
func (l *Lifecycle) wait(ctx context.Context, wg *sync.WaitGroup, what string) {
	idle := make(chan struct{})
	go func() {
		wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		l.logger.Warn("stopping while " + what + " is still in progress: it ignores the end of its context")
	}
}

// lifeEmitter is the Env.Out a layer gets: it refuses Emit once Stop has
// returned, and Stop ends and waits for those in flight.
type lifeEmitter struct {
	l   *Lifecycle
	out Emitter
}

// enterEmit counts an Emit in flight unless Stop has returned.
func (e *lifeEmitter) enterEmit() bool {
	e.l.mu.RLock()
	defer e.l.mu.RUnlock()
	if e.l.phase == phaseStopped {
		return false
	}
	e.l.emits.Add(1)
	return true
}

// Emit implements Emitter.
func (e *lifeEmitter) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	if !e.enterEmit() {
		return ErrClosed
	}
	defer e.l.emits.Done()
	ctx, done := e.l.bound(ctx)
	defer done()
	return e.out.Emit(ctx, frames...)
}

// EmitEvent implements Emitter.
func (e *lifeEmitter) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	if !e.enterEmit() {
		return ErrClosed
	}
	defer e.l.emits.Done()
	ctx, done := e.l.bound(ctx)
	defer done()
	return e.out.EmitEvent(ctx, ev)
}

// bound returns ctx, ended also when the layer's Stop has returned: an
// Emit blocked on a full queue then returns. Run and the context of the
// batch in progress end earlier already, and cost nothing.
func (l *Lifecycle) bound(ctx context.Context) (context.Context, func()) {
	if ctx == l.run {
		return ctx, func() {}
	}
	l.batchMu.Lock()
	same := ctx == l.batchCtx
	l.batchMu.Unlock()
	if same {
		return ctx, func() {}
	}
	bctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.closed, cancel)
	return bctx, func() { stop(); cancel() }
}
