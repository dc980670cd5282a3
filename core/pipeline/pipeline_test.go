package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// manualClock is a Clock that moves only when the test says so.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// advance moves the clock and runs the timers that fall due, in order.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// pending reports how many timers wait.
func (c *manualClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// inlet records what it is given; with block set, Emit blocks until ctx
// ends.
type inlet struct {
	mu    sync.Mutex
	got   []string
	block bool
}

func (in *inlet) Emit(ctx context.Context, fs ...*commonv1.Frame) error {
	in.mu.Lock()
	block := in.block
	in.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range fs {
		in.got = append(in.got, "f"+string(f.GetPayload()))
	}
	return nil
}

func (in *inlet) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.got = append(in.got, "e"+string(ev.GetPeer().GetPeer()))
	return nil
}

func (in *inlet) items() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got)
}

func up(payload string) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Payload: []byte(payload)}
}

func down(payload string) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Payload: []byte(payload)}
}

func peerEvent(id string) *commonv1.Event {
	return &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(id)}}}
}

// TestRouteByDirection: UP frames go to the layer above (or the app), DOWN
// frames to the layer below, events up; every crossing is counted on its
// boundary, and frames from the wire get trace ids.
func TestRouteByDirection(t *testing.T) {
	var app []*commonv1.Frame
	r, err := New(Config{Layers: []string{"p2p", "privacy"}, App: AppFunc(func(_ context.Context, fs []*commonv1.Frame) error {
		app = append(app, fs...)
		return nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p2p, privacy := &inlet{}, &inlet{}
	r.Door(0).Open(ctx, p2p)
	r.Door(1).Open(ctx, privacy)

	wire := up("from the wire")
	r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{wire}, Events: []*commonv1.Event{peerEvent("x")}})
	r.Route(ctx, 1, &commonv1.Batch{Frames: []*commonv1.Frame{down("to the wire"), up("to the app")}})
	r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{down("nowhere"), {Payload: []byte("no direction")}}})

	if got, want := privacy.items(), []string{"ffrom the wire", "ex"}; !slices.Equal(got, want) {
		t.Errorf("privacy got %v, want %v", got, want)
	}
	if got, want := p2p.items(), []string{"fto the wire"}; !slices.Equal(got, want) {
		t.Errorf("p2p got %v, want %v", got, want)
	}
	if len(app) != 1 || string(app[0].GetPayload()) != "to the app" {
		t.Errorf("app got %v", app)
	}
	if wire.GetTraceId() == 0 {
		t.Error("a frame from the wire got no trace id")
	}
	b0, b1 := r.Boundary(0), r.Boundary(1)
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"p2p|privacy up", b0.Frames(Up), 1},
		{"p2p|privacy down", b0.Frames(Down), 1},
		{"privacy|app up", b1.Frames(Up), 1},
		{"p2p|privacy invalid", b0.Dropped(DropInvalid), 2},
		{"p2p|privacy bytes up", b0.Bytes(Up), uint64(len("from the wire"))},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestDoorHoldsInOrder: a shut door holds frames and events in the order
// they came, drops and counts what does not fit, and on opening hands the
// held items over, in order, before anything newer.
func TestDoorHoldsInOrder(t *testing.T) {
	r, err := New(Config{Layers: []string{"p2p", "privacy"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.Route(ctx, 0, &commonv1.Batch{Events: []*commonv1.Event{peerEvent("0")}})
	r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{up("1"), up("2")}, Events: []*commonv1.Event{peerEvent("3")}})
	r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{up("4")}})
	filler := make([]*commonv1.Frame, MaxHeld-5+2)
	for i := range filler {
		filler[i] = up("x")
	}
	r.Route(ctx, 0, &commonv1.Batch{Frames: filler})
	if got := r.Boundary(0).Dropped(DropLayerDown); got != 2 {
		t.Errorf("dropped %d frames beyond the bound, want 2", got)
	}
	privacy := &inlet{}
	r.Door(1).Open(ctx, privacy)
	r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{up("new")}})
	got := privacy.items()
	if want := []string{"e0", "f1", "f2", "e3", "f4"}; !slices.Equal(got[:5], want) {
		t.Errorf("first items %v, want %v", got[:5], want)
	}
	if len(got) != MaxHeld+1 || got[len(got)-1] != "fnew" {
		t.Errorf("got %d items ending %q, want %d ending fnew", len(got), got[len(got)-1], MaxHeld+1)
	}
	if c := r.Boundary(0).Frames(Up); c != uint64(MaxHeld-2+1) {
		t.Errorf("counted %d frames across, want %d", c, MaxHeld-1)
	}
}

// TestStallDropsAfterTimeout: a hand to a layer that takes nothing blocks
// (flow control) until the stall timeout passes with no progress, then its
// frames are dropped and counted as stalled.
func TestStallDropsAfterTimeout(t *testing.T) {
	clock := &manualClock{now: time.Unix(0, 0)}
	r, err := New(Config{Layers: []string{"p2p", "privacy"}, Clock: clock, StallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	privacy := &inlet{block: true}
	r.Door(1).Open(ctx, privacy)
	done := make(chan struct{})
	go func() {
		r.Route(ctx, 0, &commonv1.Batch{Frames: []*commonv1.Frame{up("a"), up("b")}})
		close(done)
	}()
	for clock.pending() == 0 {
		time.Sleep(time.Millisecond) // wait for the hand to arm its watchdog
	}
	clock.advance(9 * time.Second)
	select {
	case <-done:
		t.Fatal("the hand gave up before the stall timeout")
	default:
	}
	clock.advance(time.Second)
	<-done
	if got := r.Boundary(0).Dropped(DropStalled); got != 2 {
		t.Errorf("stalled drops = %d, want 2", got)
	}
	if got := r.Boundary(0).Frames(Up); got != 0 {
		t.Errorf("frames counted across = %d, want 0", got)
	}
}

// TestStagesRunInOrder: stages wrap the hand in the order configured, on
// every boundary and direction, and Send enters a boundary from above.
func TestStagesRunInOrder(t *testing.T) {
	var trail []string
	mark := func(name string) Stage {
		return func(b *Boundary, dir Dir, next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, fs []*commonv1.Frame) error {
				trail = append(trail, fmt.Sprintf("%s@%s/%s", name, b.Name, dir))
				return next.Handle(ctx, fs)
			})
		}
	}
	r, err := New(Config{Layers: []string{"p2p", "privacy"}, Stages: []Stage{mark("first"), mark("second")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p2p, privacy := &inlet{}, &inlet{}
	r.Door(0).Open(ctx, p2p)
	r.Door(1).Open(ctx, privacy)
	f := &commonv1.Frame{Payload: []byte("hi")}
	if err := r.Send(ctx, 1, []*commonv1.Frame{f}); err != nil {
		t.Fatal(err)
	}
	if f.GetTraceId() == 0 || f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
		t.Errorf("Send left trace %d, direction %v", f.GetTraceId(), f.GetDirection())
	}
	want := []string{"first@privacy|app/down", "second@privacy|app/down"}
	if !slices.Equal(trail, want) {
		t.Errorf("trail %v, want %v", trail, want)
	}
	if got := privacy.items(); !slices.Equal(got, []string{"fhi"}) {
		t.Errorf("privacy got %v", got)
	}
}

// TestContractWarnsOnce: a frame that breaks its layer's contract is
// reported once per layer and problem, and goes on.
func TestContractWarnsOnce(t *testing.T) {
	var warnings []string
	r, err := New(Config{
		Layers: []string{"p2p", "privacy"},
		Check: func(layer int, f *commonv1.Frame) string {
			if layer == 1 && f.GetDirection() == commonv1.Direction_DIRECTION_UP && len(f.GetPeer()) == 0 {
				return "an UP frame without a sender"
			}
			return ""
		},
		Warn: func(layer int, problem string, f *commonv1.Frame) {
			warnings = append(warnings, fmt.Sprintf("%d:%s:%s", layer, problem, f.GetPayload()))
		},
		App: AppFunc(func(context.Context, []*commonv1.Frame) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.Door(1).Open(ctx, &inlet{})
	r.Route(ctx, 1, &commonv1.Batch{Frames: []*commonv1.Frame{up("a"), up("b")}})
	r.Route(ctx, 1, &commonv1.Batch{Frames: []*commonv1.Frame{up("c")}})
	if want := []string{"1:an UP frame without a sender:a"}; !slices.Equal(warnings, want) {
		t.Errorf("warnings %v, want %v", warnings, want)
	}
	if got := r.Boundary(1).Frames(Up); got != 3 {
		t.Errorf("%d frames reached the app, want 3", got)
	}
}

// TestConsumeKeepsHostEvents: events that Consume takes for the host do not
// go up; the others do, in order; the top layer's events reach Consume too.
func TestConsumeKeepsHostEvents(t *testing.T) {
	var consumed []string
	r, err := New(Config{
		Layers: []string{"p2p", "privacy", "secure"},
		Consume: func(layer int, ev *commonv1.Event) bool {
			if ev.GetSectionChanged() == nil {
				return false
			}
			consumed = append(consumed, fmt.Sprintf("%d", layer))
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	privacy, secure := &inlet{}, &inlet{}
	r.Door(1).Open(ctx, privacy)
	r.Door(2).Open(ctx, secure)
	changed := &commonv1.Event{Kind: &commonv1.Event_SectionChanged{SectionChanged: &commonv1.SectionChanged{}}}
	r.Route(ctx, 0, &commonv1.Batch{Events: []*commonv1.Event{peerEvent("a"), changed, peerEvent("b")}})
	r.Route(ctx, 1, &commonv1.Batch{Events: []*commonv1.Event{changed, peerEvent("c")}})
	r.Route(ctx, 2, &commonv1.Batch{Events: []*commonv1.Event{changed}})
	if got, want := privacy.items(), []string{"ea", "eb"}; !slices.Equal(got, want) {
		t.Errorf("privacy got %v, want %v", got, want)
	}
	if got, want := secure.items(), []string{"ec"}; !slices.Equal(got, want) {
		t.Errorf("secure got %v, want %v", got, want)
	}
	if want := []string{"0", "1", "2"}; !slices.Equal(consumed, want) {
		t.Errorf("consumed from layers %v, want %v", consumed, want)
	}
}
