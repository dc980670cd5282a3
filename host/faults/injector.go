package faults

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// FlushInterval is the longest a frame is held for reordering: a reorder
// group that has not filled FlushInterval after its first frame arrived is
// released as it is, so a quiet boundary never strands a frame.
const FlushInterval = 20 * time.Millisecond

// Stats is what an injector did. Every frame passed to Apply counts in
// Seen; every copy a duplicate made counts in Duplicated. Once the injector
// is closed and no Apply is running,
//
//	delivered = Seen - Dropped + Duplicated - DroppedAtClose
//
// exactly; before that, the difference is the frames still held or
// delayed.
type Stats struct {
	// Seen counts the frames passed to Apply, including those after Close.
	Seen uint64
	// Dropped counts the frames the drop fault discarded.
	Dropped uint64
	// Duplicated counts the extra copies the duplicate fault made.
	Duplicated uint64
	// Delayed counts the frames (copies included) given a delay above 0.
	Delayed uint64
	// Reordered counts the frames released from a reorder group at a
	// different place in the group than the one they arrived at.
	Reordered uint64
	// DroppedAtClose counts the frames held, delayed or queued for delivery
	// when Close was called, and the frames passed to Apply after it.
	DroppedAtClose uint64
}

// Injector applies one boundary's Spec to the frames that cross it in one
// direction. Its methods are safe for concurrent use. Make one with New and
// Close it when done.
type Injector struct {
	deliver func([]*commonv1.Frame)
	spec    Spec // sanitised
	active  bool // spec.Active()
	clocked bool // reorders or delays: has a goroutine
	flush   time.Duration
	base    time.Time // the injector's clock: now() is the monotonic time since base

	wake   chan struct{} // pokes the goroutine (capacity 1)
	stop   chan struct{} // closed by Close
	exited chan struct{} // closed when the goroutine has returned

	mu     sync.Mutex
	rng    rand.PCG
	closed bool
	stats  Stats
	// held is the current reorder group, already in its release order (an
	// inside-out Fisher-Yates shuffle places each frame as it arrives).
	held         []heldFrame
	heldDeadline time.Duration // when held is released at the latest
	delayed      delayHeap
	seq          uint64 // heap tie-breaker: arrival order
	// outbox holds the frames that are ready, in order, while a delivery
	// is in progress (busy) or until the goroutine picks them up.
	outbox []*commonv1.Frame
	busy   bool
	// sleepUntil is when the sleeping goroutine will wake by itself;
	// math.MinInt64 while it is awake, math.MaxInt64 when it sleeps with
	// nothing to wait for.
	sleepUntil time.Duration
}

type heldFrame struct {
	f       *commonv1.Frame
	delay   time.Duration
	arrival int // place in the group at arrival
}

// New returns an injector for spec. seed and name (by convention the
// boundary and direction, e.g. "p2p|privacy/down") together seed its PRNG,
// so two boundaries or directions with one seed draw independent streams,
// and the same seed, name and input sequence give the same decisions.
//
// deliver receives the frames that pass. It is called synchronously from
// Apply for frames that are neither delayed nor held, and otherwise later
// from the injector's own goroutine, so it must be safe to call
// concurrently with Apply's caller; it may call Apply. deliver must not be
// nil.
//
// New does not check spec the way Parse does: it treats a probability
// outside 0..1 as the nearer end, a negative Reorder, Delay or Jitter as 0,
// and caps Reorder at MaxReorder and Delay and Jitter at MaxDelay. An
// injector that reorders or delays starts a goroutine, which Close stops.
func New(spec Spec, seed int64, name string, deliver func([]*commonv1.Frame)) *Injector {
	return newInjector(spec, seed, name, deliver, FlushInterval)
}

func newInjector(spec Spec, seed int64, name string, deliver func([]*commonv1.Frame), flush time.Duration) *Injector {
	if deliver == nil {
		panic("faults: New with a nil deliver func")
	}
	spec = sanitise(spec)
	s1, s2 := streamSeed(seed, name)
	in := &Injector{
		deliver:    deliver,
		spec:       spec,
		active:     spec.Active(),
		clocked:    spec.Reorder > 1 || spec.Delay > 0 || spec.Jitter > 0,
		flush:      flush,
		base:       time.Now(),
		sleepUntil: math.MinInt64,
	}
	in.rng.Seed(s1, s2)
	if in.clocked {
		in.wake = make(chan struct{}, 1)
		in.stop = make(chan struct{})
		in.exited = make(chan struct{})
		if spec.Reorder > 1 {
			in.held = make([]heldFrame, 0, spec.Reorder)
		}
		go in.run()
	}
	return in
}

func sanitise(s Spec) Spec {
	prob := func(p float64) float64 {
		if !(p > 0) { // also NaN
			return 0
		}
		return min(p, 1)
	}
	dur := func(d time.Duration) time.Duration { return min(max(d, 0), MaxDelay) }
	s.Drop = prob(s.Drop)
	s.Duplicate = prob(s.Duplicate)
	s.Reorder = min(max(s.Reorder, 0), MaxReorder)
	s.Delay = dur(s.Delay)
	s.Jitter = dur(s.Jitter)
	return s
}

// streamSeed derives the two PCG seed words from the configured seed and
// the injector's name (FNV-1a, then SplitMix64 to spread the bits).
func streamSeed(seed int64, name string) (uint64, uint64) {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	a := splitmix64(uint64(seed) ^ splitmix64(h))
	return a, splitmix64(a ^ h)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// chance draws one value and reports whether it falls below p; it draws
// nothing when p is 0, which is fixed for the injector's life.
func (in *Injector) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	return float64(in.rng.Uint64()>>11)/(1<<53) < p
}

// below draws one value and maps it to [0, n). It always draws exactly one
// value (unlike rejection sampling), so the stream stays aligned with the
// input whatever n is; the bias, n/2^64, is immaterial.
func (in *Injector) below(n uint64) uint64 {
	hi, _ := bits.Mul64(in.rng.Uint64(), n)
	return hi
}

func (in *Injector) now() time.Duration { return time.Since(in.base) }

// Apply passes frames through the faults: it drops, duplicates (with
// proto.Clone, so the two frames do not alias), holds frames for
// reordering and delays them. Frames that pass neither delayed nor held
// are delivered synchronously, before Apply returns, in one deliver call
// (for an injector that reorders or delays, unless another of its
// deliveries is in progress; see the package doc). An injector with no
// fault set hands the caller's slice to deliver as it is. Held reorder
// frames are released when their group fills, or FlushInterval after the
// group's first frame arrived. After Close, Apply delivers nothing and
// counts the frames as dropped at close.
//
// The injector does not modify frames or the slice, but it passes them on:
// the caller must not change them after Apply.
func (in *Injector) Apply(frames []*commonv1.Frame) {
	if len(frames) == 0 {
		return
	}
	if in.clocked {
		in.applyClocked(frames)
		return
	}
	in.mu.Lock()
	n := uint64(len(frames))
	in.stats.Seen += n
	if in.closed {
		in.stats.DroppedAtClose += n
		in.mu.Unlock()
		return
	}
	if !in.active {
		in.mu.Unlock()
		in.deliver(frames)
		return
	}
	out := frames // the caller's slice, until a frame is dropped or duplicated
	copied := false
	var dups []int // places in out whose frame is to be replaced by a clone
	for i, f := range frames {
		drop := in.chance(in.spec.Drop)
		dup := !drop && in.chance(in.spec.Duplicate)
		if (drop || dup) && !copied {
			out = make([]*commonv1.Frame, i, len(frames)+1)
			copy(out, frames[:i])
			copied = true
		}
		if drop {
			in.stats.Dropped++
			continue
		}
		if copied {
			out = append(out, f)
		}
		if dup {
			in.stats.Duplicated++
			dups = append(dups, len(out))
			out = append(out, f)
		}
	}
	in.mu.Unlock()
	// Cloning needs no lock: out is ours.
	for _, j := range dups {
		out[j] = clone(out[j])
	}
	if len(out) > 0 {
		in.deliver(out)
	}
}

func clone(f *commonv1.Frame) *commonv1.Frame {
	c, _ := proto.Clone(f).(*commonv1.Frame)
	return c
}

func (in *Injector) applyClocked(frames []*commonv1.Frame) {
	in.mu.Lock()
	n := uint64(len(frames))
	in.stats.Seen += n
	if in.closed {
		in.stats.DroppedAtClose += n
		in.mu.Unlock()
		return
	}
	now := in.now()
	in.release(now)
	for _, f := range frames {
		if in.chance(in.spec.Drop) {
			in.stats.Dropped++
			continue
		}
		dup := in.chance(in.spec.Duplicate)
		in.admit(f, now)
		if dup {
			in.stats.Duplicated++
			in.admit(clone(f), now)
		}
	}
	var batch []*commonv1.Frame
	if !in.busy && len(in.outbox) > 0 {
		batch = in.takeOutbox()
	}
	poke := in.nextDeadline() < in.sleepUntil
	in.mu.Unlock()
	if poke {
		in.poke()
	}
	if batch == nil {
		return
	}
	in.deliver(batch)
	in.mu.Lock()
	in.busy = false
	more := len(in.outbox) > 0 && !in.closed
	in.mu.Unlock()
	if more {
		in.poke() // frames queued while we delivered: the goroutine takes them
	}
}

// admit passes a frame that survived the drop stage to the reorder and
// delay stages. It draws the frame's jitter, then its place in the reorder
// group.
func (in *Injector) admit(f *commonv1.Frame, now time.Duration) {
	d := in.spec.Delay
	if j := in.spec.Jitter; j > 0 {
		d += time.Duration(in.below(2*uint64(j)+1)) - j
	}
	if d > 0 {
		in.stats.Delayed++
	}
	if in.spec.Reorder <= 1 {
		in.schedule(f, d, now)
		return
	}
	i := len(in.held)
	if i == 0 {
		in.heldDeadline = now + in.flush
	}
	j := int(in.below(uint64(i) + 1))
	in.held = append(in.held, heldFrame{})
	in.held[i] = in.held[j]
	in.held[j] = heldFrame{f: f, delay: d, arrival: i}
	if len(in.held) >= in.spec.Reorder {
		in.releaseHeld(now)
	}
}

// schedule passes a frame leaving the reorder stage at time at to the
// delay stage.
func (in *Injector) schedule(f *commonv1.Frame, d, at time.Duration) {
	if d <= 0 {
		in.queue(f)
		return
	}
	in.seq++
	in.delayed.push(delayedFrame{due: at + d, seq: in.seq, f: f})
}

// releaseHeld releases the current reorder group at time at.
func (in *Injector) releaseHeld(at time.Duration) {
	if in.spec.Delay == 0 && in.spec.Jitter == 0 {
		in.outbox = slices.Grow(in.outbox, len(in.held)) // all of it goes there
	}
	for p, h := range in.held {
		if h.arrival != p {
			in.stats.Reordered++
		}
		in.schedule(h.f, h.delay, at)
		in.held[p] = heldFrame{}
	}
	in.held = in.held[:0]
}

// release moves to the outbox what is due at time now, in time order: a
// reorder group whose flush interval has ended and the delayed frames
// whose due time has come.
func (in *Injector) release(now time.Duration) {
	if len(in.held) > 0 && in.heldDeadline <= now {
		in.releaseDelayed(in.heldDeadline)
		in.releaseHeld(in.heldDeadline)
	}
	in.releaseDelayed(now)
}

func (in *Injector) releaseDelayed(now time.Duration) {
	for len(in.delayed) > 0 && in.delayed[0].due <= now {
		in.queue(in.delayed.pop().f)
	}
}

// queue appends a ready frame to the outbox. Each outbox is a new slice,
// since deliver gets to keep the one it is given.
func (in *Injector) queue(f *commonv1.Frame) {
	in.outbox = append(in.outbox, f)
}

// takeOutbox hands the outbox over for delivery and marks a delivery in
// progress; the caller must call deliver with it and then clear busy.
func (in *Injector) takeOutbox() []*commonv1.Frame {
	batch := in.outbox
	in.outbox = nil
	in.busy = true
	return batch
}

// nextDeadline is the next time something is due, math.MaxInt64 if none.
func (in *Injector) nextDeadline() time.Duration {
	next := time.Duration(math.MaxInt64)
	if len(in.delayed) > 0 {
		next = in.delayed[0].due
	}
	if len(in.held) > 0 {
		next = min(next, in.heldDeadline)
	}
	return next
}

func (in *Injector) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// run is the goroutine of an injector that reorders or delays: it releases
// due frames and delivers the outbox, sleeping on one timer in between.
func (in *Injector) run() {
	defer close(in.exited)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		in.mu.Lock()
		in.sleepUntil = math.MinInt64
		if in.closed {
			in.mu.Unlock()
			return
		}
		now := in.now()
		in.release(now)
		if !in.busy && len(in.outbox) > 0 {
			batch := in.takeOutbox()
			in.mu.Unlock()
			in.deliver(batch)
			in.mu.Lock()
			in.busy = false
			in.mu.Unlock()
			continue
		}
		next := in.nextDeadline()
		in.sleepUntil = next
		in.mu.Unlock()
		if next != math.MaxInt64 {
			timer.Reset(next - now)
		}
		select {
		case <-in.wake:
		case <-timer.C:
		case <-in.stop:
			return
		}
		timer.Stop()
	}
}

// Close stops the injector's timer and goroutine. Frames still held,
// delayed or queued for delivery are dropped and counted in
// DroppedAtClose; Apply after Close delivers nothing. Close waits for a
// deliver call the goroutine has in progress, so it must not be called from
// deliver; it does not wait for deliver calls made by Apply calls still
// running. Close may be called more than once.
func (in *Injector) Close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		in.stats.DroppedAtClose += uint64(len(in.held) + len(in.delayed) + len(in.outbox))
		clear(in.held)
		in.held = in.held[:0]
		clear(in.delayed)
		in.delayed = nil
		in.outbox = nil
		if in.clocked {
			close(in.stop)
		}
	}
	in.mu.Unlock()
	if in.clocked {
		<-in.exited
	}
}

// Stats returns what the injector did so far.
func (in *Injector) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}

// delayedFrame is a frame in the delay stage.
type delayedFrame struct {
	due time.Duration
	seq uint64
	f   *commonv1.Frame
}

// delayHeap is a min-heap of delayed frames by due time, then arrival. It
// is typed (not container/heap) so that pushing does not allocate.
type delayHeap []delayedFrame

func (h delayHeap) less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].seq < h[j].seq
}

func (h *delayHeap) push(x delayedFrame) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *delayHeap) pop() delayedFrame {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = delayedFrame{}
	s = s[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
