package p2pkit_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// host is an Emitter that records what it is handed, in order, as
// "peer/number" for frames and "peer:STATE" for events. With steps set,
// each call first waits for a token, so the test decides when the host
// takes a batch.
type host struct {
	steps chan struct{}
	mu    sync.Mutex
	got   []string
	calls chan int // the frames of each Emit, as it returns
}

func newHost(stepped bool) *host {
	h := &host{calls: make(chan int, 1024)}
	if stepped {
		h.steps = make(chan struct{})
	}
	return h
}

func (h *host) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	if h.steps != nil {
		select {
		case <-h.steps:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.mu.Lock()
	for _, f := range frames {
		h.got = append(h.got, string(f.GetPeer())+"/"+itoa(binary.BigEndian.Uint32(f.GetPayload())))
	}
	h.mu.Unlock()
	h.calls <- len(frames)
	return nil
}

func (h *host) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, string(ev.GetPeer().GetPeer())+":"+ev.GetPeer().GetState().String()[len("PEER_STATE_"):])
	return nil
}

func (h *host) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// waitSeen waits until the host has n entries.
func (h *host) waitSeen(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s := h.seen(); len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host has %v, want %d entries", h.seen(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// frame is an UP frame from peer carrying i in a payload of size bytes.
func frame(peer string, i, size int) *commonv1.Frame {
	p := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(p, uint32(i))
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte(peer), Payload: p}
}

func peerEvent(peer string, state commonv1.PeerState) *commonv1.Event {
	return &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(peer), State: state}}}
}

// run starts q's pump until the test ends.
func run(t *testing.T, q *p2pkit.Inbox) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestInboxTurns: a flooder with 1,000 frames waiting and a quiet peer
// with 3: the quiet peer's frames go up in the first batch, one per turn,
// between the flooder's, not after the flood.
func TestInboxTurns(t *testing.T) {
	h := newHost(false)
	q := p2pkit.NewInbox(p2pkit.InboxConfig{Out: h, PeerBytes: 16 << 20})
	flood, quiet := q.Open("f"), q.Open("q")
	ctx := context.Background()
	for i := range 1000 {
		if err := flood.Put(ctx, frame("f", i, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := quiet.Put(ctx, frame("q", i, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, q)
	got := h.waitSeen(t, 1003)
	// A turn is 8 KiB: 7 frames of 1 KiB and their overhead.
	turn := p2pkit.DefaultQuantum / (1024 + p2pkit.FrameOverhead)
	next, floods := 0, 0
	for i, s := range got {
		if s[0] == 'f' {
			if want := "f/" + itoa(uint32(floods)); s != want {
				t.Fatalf("entry %d is %s, want %s: the flooder's order is lost", i, s, want)
			}
			floods++
			continue
		}
		if want := "q/" + itoa(uint32(next)); s != want {
			t.Fatalf("entry %d is %s, want %s", i, s, want)
		}
		next++
		if floods > next*(turn+1) {
			t.Fatalf("quiet frame %d went up after %d flood frames; a turn is %d", next-1, floods, turn)
		}
	}
}

// TestInboxBackPressure: a peer with PeerBytes waiting is not read until
// the host takes some (Put waits), and other peers are not held up by it.
func TestInboxBackPressure(t *testing.T) {
	h := newHost(true)
	var fullWaits sdk.Counter
	q := p2pkit.NewInbox(p2pkit.InboxConfig{Out: h, PeerBytes: 4 * (1000 + p2pkit.FrameOverhead), FullWaits: &fullWaits})
	run(t, q)
	flood, quiet := q.Open("f"), q.Open("q")
	ctx := context.Background()
	// The pump takes f/0 and waits on the host; f/1 to f/4 fill the queue.
	if err := flood.Put(ctx, frame("f", 0, 1000)); err != nil {
		t.Fatal(err)
	}
	for q.Frames() > 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 4; i++ {
		if err := flood.Put(ctx, frame("f", i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// f/5 finds no room: the flooder's reader waits.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := flood.Put(short, frame("f", 5, 1000)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put into a full queue = %v, want to wait", err)
	}
	if fullWaits.Load() != 1 {
		t.Fatalf("FullWaits = %d, want 1", fullWaits.Load())
	}
	// The quiet peer is not held up.
	if err := quiet.Put(short, frame("q", 0, 1000)); err != nil {
		t.Fatalf("the quiet peer waits for the flooder's room: %v", err)
	}
	put := make(chan error, 1)
	go func() { put <- flood.Put(ctx, frame("f", 5, 1000)) }()
	// The host takes f/0; the pump then takes the next batch, which makes
	// room for f/5.
	h.steps <- struct{}{}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	h.steps <- struct{}{} // f/1 to f/4, q/0
	h.steps <- struct{}{} // f/5
	got := h.waitSeen(t, 7)
	want := []string{"f/0", "f/1", "f/2", "f/3", "f/4", "q/0", "f/5"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("the host got %v, want %v", got, want)
		}
	}
}

// TestInboxEvents: a peer's events keep their place among its frames; a
// flood of frames does not make room for events any smaller; past the
// event bound, an event is refused.
func TestInboxEvents(t *testing.T) {
	h := newHost(false)
	q := p2pkit.NewInbox(p2pkit.InboxConfig{Out: h, PeerBytes: 4 * (100 + p2pkit.FrameOverhead), Events: 3})
	ctx := context.Background()
	a := q.Open("a")
	if !q.Event("a", peerEvent("a", commonv1.PeerState_PEER_STATE_CONNECTED)) {
		t.Fatal("CONNECTED refused")
	}
	for i := range 4 {
		if err := a.Put(ctx, frame("a", i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// a's queue of frames is full; events still have room.
	if !q.Event("a", peerEvent("a", commonv1.PeerState_PEER_STATE_DISCONNECTED)) ||
		!q.Event("b", peerEvent("b", commonv1.PeerState_PEER_STATE_CONNECTED)) {
		t.Fatal("an event refused while only frames fill the inbox")
	}
	if q.Event("c", peerEvent("c", commonv1.PeerState_PEER_STATE_CONNECTED)) {
		t.Fatal("a fourth event taken with a bound of three")
	}
	a.Close()
	run(t, q)
	got := h.waitSeen(t, 7)
	var as []string
	bAt := -1
	for i, s := range got {
		if s[0] == 'a' {
			as = append(as, s)
		} else {
			bAt = i
		}
	}
	want := []string{"a:CONNECTED", "a/0", "a/1", "a/2", "a/3", "a:DISCONNECTED"}
	if len(as) != len(want) {
		t.Fatalf("a's entries %v, want %v", as, want)
	}
	for i := range want {
		if as[i] != want[i] {
			t.Fatalf("a's entries %v, want %v", as, want)
		}
	}
	if got[bAt] != "b:CONNECTED" || bAt > 2 {
		t.Fatalf("b's event is entry %d of %v: it waited behind a's frames", bAt, got)
	}
	// Taken events free their places.
	if !q.Event("c", peerEvent("c", commonv1.PeerState_PEER_STATE_CONNECTED)) {
		t.Fatal("no room for an event once the others went up")
	}
}

// TestInboxRate: a peer's bucket makes its reader wait once the burst is
// spent, and keeps its debt when the reader closes and another opens.
func TestInboxRate(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var rateWaits sdk.Counter
	h := newHost(false)
	q := p2pkit.NewInbox(p2pkit.InboxConfig{Out: h, Rate: 1000, Burst: 1000, RateWaits: &rateWaits, Now: clock})
	run(t, q)
	ctx := context.Background()
	r := q.Open("f")
	if err := r.Put(ctx, frame("f", 0, 1000)); err != nil || rateWaits.Load() != 0 {
		t.Fatalf("the burst waited: %v, %d waits", err, rateWaits.Load())
	}
	// The next frame puts the bucket 1 s in debt: the reader waits, the
	// frame itself goes up.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := r.Put(short, frame("f", 1, 1000)); !errors.Is(err, context.DeadlineExceeded) || rateWaits.Load() != 1 {
		t.Fatalf("Put in debt = %v with %d waits, want a wait", err, rateWaits.Load())
	}
	h.waitSeen(t, 2)
	// Closing the stream and opening another does not refill the bucket.
	r.Close()
	r = q.Open("f")
	if q.TryPut("f", frame("f", 2, 10)) != p2pkit.ErrRateLimited {
		t.Fatal("a reopened peer got a fresh bucket")
	}
	// A second later the debt is repaid, two seconds later it is full.
	advance(2 * time.Second)
	if err := q.TryPut("f", frame("f", 2, 1000)); err != nil {
		t.Fatalf("TryPut after the debt: %v", err)
	}
	r.Close()
	// Other peers have their own bucket.
	if err := q.TryPut("g", frame("g", 0, 1000)); err != nil {
		t.Fatalf("another peer: %v", err)
	}
	h.waitSeen(t, 4)
}
