package sdk_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// lcLayer records the calls the Lifecycle lets through.
type lcLayer struct {
	mu        sync.Mutex
	calls     []string
	failNext  bool
	env       sdk.Env
	handled   chan struct{}
	stopErr   error
	blockUpTo time.Duration
}

func (l *lcLayer) record(c string) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

func (l *lcLayer) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

func (l *lcLayer) Describe() *commonv1.PluginInfo { return &commonv1.PluginInfo{Name: "lc"} }

func (l *lcLayer) Configure(_ context.Context, _ *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	l.record("configure")
	if l.failNext {
		l.failNext = false
		return nil, errors.New("bad")
	}
	l.env = env
	return nil, nil
}

func (l *lcLayer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.record("start")
	if l.failNext {
		l.failNext = false
		return nil, errors.New("bad")
	}
	return nil, nil
}

func (l *lcLayer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	l.record("batch")
	if l.handled != nil {
		l.handled <- struct{}{}
	}
	if l.blockUpTo > 0 {
		select {
		case <-ctx.Done():
			l.record("batch ended")
		case <-time.After(l.blockUpTo):
		}
	}
}

func (l *lcLayer) Health(context.Context) *commonv1.HealthResponse {
	return &commonv1.HealthResponse{Serving: true, Counters: map[string]uint64{"x": 1}}
}

func (l *lcLayer) Stop(context.Context) error {
	l.record("stop")
	return l.stopErr
}

type nullOut struct{}

func (nullOut) Emit(context.Context, ...*commonv1.Frame) error   { return nil }
func (nullOut) EmitEvent(context.Context, *commonv1.Event) error { return nil }

var oneFrame = &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN}}}

func TestLifecycleOrder(t *testing.T) {
	ctx := context.Background()
	type step struct {
		call string // configure, start, stop, batch
		fail bool   // the layer fails this call
		code codes.Code
	}
	tests := []struct {
		name  string
		steps []step
		calls []string // what reached the layer
	}{
		{"in order", []step{{call: "configure"}, {call: "start"}, {call: "batch"}, {call: "stop"}, {call: "stop"}},
			[]string{"configure", "start", "batch", "stop"}},
		{"start before configure", []step{{call: "start", code: codes.FailedPrecondition}, {call: "stop"}}, nil},
		{"configure twice", []step{{call: "configure"}, {call: "configure", code: codes.FailedPrecondition}, {call: "stop"}},
			[]string{"configure", "stop"}},
		{"configure again after a failure", []step{{call: "configure", fail: true, code: codes.Unknown}, {call: "configure"}, {call: "stop"}},
			[]string{"configure", "configure", "stop"}},
		{"start twice", []step{{call: "configure"}, {call: "start"}, {call: "start", code: codes.FailedPrecondition}, {call: "stop"}},
			[]string{"configure", "start", "stop"}},
		{"start again after a failure", []step{{call: "configure"}, {call: "start", fail: true, code: codes.Unknown}, {call: "start"}, {call: "stop"}},
			[]string{"configure", "start", "start", "stop"}},
		{"stop before configure", []step{{call: "stop"}, {call: "configure", code: codes.FailedPrecondition}}, nil},
		{"start after stop", []step{{call: "configure"}, {call: "stop"}, {call: "start", code: codes.FailedPrecondition}},
			[]string{"configure", "stop"}},
		{"batch after stop", []step{{call: "configure"}, {call: "start"}, {call: "stop"}, {call: "batch"}},
			[]string{"configure", "start", "stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			impl := &lcLayer{}
			l := sdk.NewLifecycle(impl)
			for _, s := range tt.steps {
				impl.failNext = s.fail
				var err error
				switch s.call {
				case "configure":
					_, err = l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: nullOut{}})
				case "start":
					_, err = l.Start(ctx, &commonv1.StartRequest{})
				case "stop":
					err = l.Stop(ctx)
				case "batch":
					l.HandleBatch(ctx, oneFrame)
				}
				if got := status.Code(err); got != s.code {
					t.Fatalf("%s: %v, want code %v", s.call, err, s.code)
				}
			}
			if got := impl.log(); !equal(got, tt.calls) {
				t.Fatalf("the layer saw %v, want %v", got, tt.calls)
			}
		})
	}
}

func TestLifecycleHoldsBatchUntilStart(t *testing.T) {
	ctx := context.Background()
	impl := &lcLayer{handled: make(chan struct{}, 1)}
	l := sdk.NewLifecycle(impl)
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: nullOut{}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		l.HandleBatch(ctx, oneFrame)
		close(done)
	}()
	select {
	case <-impl.handled:
		t.Fatal("a batch reached the layer before Start")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	<-impl.handled
	<-done

	// A batch held when Stop begins is dropped and counted.
	impl2 := &lcLayer{}
	l2 := sdk.NewLifecycle(impl2)
	if _, err := l2.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: nullOut{}}); err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	go func() {
		l2.HandleBatch(ctx, oneFrame)
		close(held)
	}()
	if err := l2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-held
	h := l2.Health(ctx)
	if h.GetCounters()[sdk.NotRunningCounter] != 1 || h.GetServing() || h.GetDetail() != "stopped" || h.GetCounters()["x"] != 1 {
		t.Fatalf("Health after Stop: %v", h)
	}
	if got := impl2.log(); !equal(got, []string{"configure", "stop"}) {
		t.Fatalf("the layer saw %v", got)
	}
}

func TestLifecycleStopEndsBatchAndEmit(t *testing.T) {
	ctx := context.Background()
	impl := &lcLayer{handled: make(chan struct{}, 1), blockUpTo: time.Minute}
	l := sdk.NewLifecycle(impl)
	blocked := &blockingOut{}
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: blocked}); err != nil {
		t.Fatal(err)
	}
	if h := l.Health(ctx); h.GetServing() || h.GetDetail() != "not started" {
		t.Fatalf("Health before Start: %v", h)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	if h := l.Health(ctx); !h.GetServing() || h.GetDetail() != "" {
		t.Fatalf("Health while running: %v", h)
	}
	go l.HandleBatch(ctx, oneFrame)
	<-impl.handled
	emitted := make(chan error, 1)
	go func() { emitted <- impl.env.Out.Emit(context.Background(), &commonv1.Frame{}) }()
	if impl.env.Run.Err() != nil {
		t.Fatal("Run ended early")
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := <-emitted; err == nil {
		t.Fatal("an Emit blocked at Stop succeeded")
	}
	if got := impl.log(); !equal(got, []string{"configure", "start", "batch", "batch ended", "stop"}) {
		t.Fatalf("the layer saw %v; the batch in progress must end before the layer's Stop", got)
	}
	if impl.env.Run.Err() == nil {
		t.Fatal("Run did not end at Stop")
	}
	if err := impl.env.Out.Emit(ctx, &commonv1.Frame{}); !errors.Is(err, sdk.ErrClosed) {
		t.Fatalf("Emit after Stop: %v, want ErrClosed", err)
	}
}

func TestLifecycleStopError(t *testing.T) {
	ctx := context.Background()
	impl := &lcLayer{stopErr: errors.New("disk gone")}
	l := sdk.NewLifecycle(impl)
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: nullOut{}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Stop(ctx); err == nil || !errors.Is(err, impl.stopErr) {
				t.Errorf("Stop: %v, want the layer's error", err)
			}
		}()
	}
	wg.Wait()
	if got := impl.log(); !equal(got, []string{"configure", "stop"}) {
		t.Fatalf("the layer saw %v", got)
	}
}

// blockingOut is an Emitter whose queue is always full.
type blockingOut struct{}

func (blockingOut) Emit(ctx context.Context, _ ...*commonv1.Frame) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blockingOut) EmitEvent(ctx context.Context, _ *commonv1.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

// flushLayer emits from its Stop, as a layer flushing its outbox does.
type flushLayer struct {
	lcLayer
	flushErr error
}

func (l *flushLayer) Stop(ctx context.Context) error {
	l.flushErr = l.env.Out.Emit(ctx, &commonv1.Frame{})
	return nil
}

func TestLifecycleFlushDuringStop(t *testing.T) {
	ctx := context.Background()
	impl := &flushLayer{}
	l := sdk.NewLifecycle(impl)
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Out: nullOut{}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if impl.flushErr != nil {
		t.Fatalf("an Emit from the layer's Stop: %v", impl.flushErr)
	}
	if err := impl.env.Out.Emit(ctx, &commonv1.Frame{}); !errors.Is(err, sdk.ErrClosed) {
		t.Fatalf("Emit after Stop: %v, want ErrClosed", err)
	}
}
