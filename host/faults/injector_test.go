package faults

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// collector is a deliver func that records what it gets.
type collector struct {
	mu       sync.Mutex
	frames   []*commonv1.Frame
	at       []time.Time // when each frame arrived
	calls    int
	inFlight atomic.Int32
	overlap  atomic.Bool // two deliver calls ran at once
}

func (c *collector) deliver(fs []*commonv1.Frame) {
	if c.inFlight.Add(1) > 1 {
		c.overlap.Store(true)
	}
	defer c.inFlight.Add(-1)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, f := range fs {
		c.frames = append(c.frames, f)
		c.at = append(c.at, now)
	}
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

func (c *collector) traces() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint64, len(c.frames))
	for i, f := range c.frames {
		ids[i] = f.GetTraceId()
	}
	return ids
}

// waitFor waits until the collector has n frames, failing after a
// generous timeout.
func (c *collector) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames, want %d", c.len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// makeFrames returns n frames with trace ids first, first+1, ...
func makeFrames(n int, first uint64) []*commonv1.Frame {
	fs := make([]*commonv1.Frame, n)
	for i := range fs {
		fs[i] = &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_DOWN,
			TraceId:   first + uint64(i),
			Peer:      []byte("peer"),
			Protocol:  "/strata/test",
			Payload:   []byte("payload"),
		}
	}
	return fs
}

func expected(s Stats) int { return int(s.Seen - s.Dropped + s.Duplicated - s.DroppedAtClose) }

func TestNoFaultsIsSynchronousPassThrough(t *testing.T) {
	var got [][]*commonv1.Frame
	in := New(Spec{Reorder: 1, Direction: "down"}, 1, "p2p|privacy/down", func(fs []*commonv1.Frame) { got = append(got, fs) })
	defer in.Close()
	if in.clocked {
		t.Fatal("a fault-free injector has a goroutine")
	}
	fs := makeFrames(5, 1)
	in.Apply(fs)
	if len(got) != 1 || &got[0][0] != &fs[0] || len(got[0]) != 5 {
		t.Fatalf("deliver got %v, want the caller's slice in one call before Apply returned", got)
	}
	in.Apply(nil) // nothing to deliver: no call
	if len(got) != 1 {
		t.Fatalf("Apply(nil) called deliver")
	}
	if allocs := testing.AllocsPerRun(100, func() { in.Apply(fs) }); allocs != 0 {
		t.Errorf("fault-free Apply allocates %v times", allocs)
	}
	if s := in.Stats(); s.Seen != 5+101*5 || s.Dropped+s.Duplicated+s.Delayed+s.Reordered+s.DroppedAtClose != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestDropDuplicateIsSynchronous(t *testing.T) {
	var c collector
	in := New(Spec{Drop: 0.3, Duplicate: 0.3}, 1, "x", c.deliver)
	defer in.Close()
	in.Apply(makeFrames(100, 1))
	// No goroutine, so everything is there when Apply returns.
	if got, want := c.len(), expected(in.Stats()); got != want || c.calls != 1 {
		t.Fatalf("after Apply: %d frames in %d calls, want %d in 1", got, c.calls, want)
	}
}

// run feeds frames to a fresh injector in chunks and returns the trace ids
// delivered once everything has come out, and the stats.
func runInjector(t *testing.T, spec Spec, seed int64, name string, fs []*commonv1.Frame, chunks []int, flush time.Duration) ([]uint64, Stats) {
	t.Helper()
	var c collector
	in := newInjector(spec, seed, name, c.deliver, flush)
	for _, n := range chunks {
		in.Apply(fs[:n])
		fs = fs[n:]
	}
	in.Apply(fs)
	if flush < time.Minute {
		c.waitFor(t, expected(in.Stats()))
	}
	in.Close()
	s := in.Stats()
	if got := c.len(); got != expected(s) {
		t.Fatalf("delivered %d frames, stats %+v say %d", got, s, expected(s))
	}
	return c.traces(), s
}

func TestDeterminism(t *testing.T) {
	specs := map[string]Spec{
		"drop+dup":         {Drop: 0.2, Duplicate: 0.2},
		"drop+dup+reorder": {Drop: 0.2, Duplicate: 0.2, Reorder: 8},
	}
	fs := makeFrames(2000, 1)
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			a, sa := runInjector(t, spec, 42, "p2p|privacy/down", fs, nil, FlushInterval)
			b, sb := runInjector(t, spec, 42, "p2p|privacy/down", fs, nil, FlushInterval)
			if !slices.Equal(a, b) || sa != sb {
				t.Fatalf("same seed, name and input gave different results:\n%v\n%v", sa, sb)
			}
			if sa.Dropped == 0 || sa.Duplicated == 0 || (spec.Reorder > 1 && sa.Reordered == 0) {
				t.Fatalf("the faults did nothing: %+v", sa)
			}
			if c, _ := runInjector(t, spec, 43, "p2p|privacy/down", fs, nil, FlushInterval); slices.Equal(a, c) {
				t.Fatal("a different seed gave the same result")
			}
			if c, _ := runInjector(t, spec, 42, "p2p|privacy/up", fs, nil, FlushInterval); slices.Equal(a, c) {
				t.Fatal("a different name gave the same result")
			}
		})
	}
}

func TestDeterminismIgnoresBatching(t *testing.T) {
	// Decisions depend on the sequence of frames, not on how it is split
	// into Apply calls. A long flush interval keeps the clock out of it;
	// the last, incomplete reorder group stays held and is dropped at Close.
	spec := Spec{Drop: 0.2, Duplicate: 0.2, Reorder: 8}
	fs := makeFrames(2000, 1)
	r := rand.New(rand.NewPCG(1, 2))
	var chunks []int
	for left := len(fs); left > 0; {
		n := min(1+r.IntN(40), left)
		chunks = append(chunks, n)
		left -= n
	}
	whole, sw := runInjector(t, spec, 7, "n", fs, nil, time.Hour)
	split, ss := runInjector(t, spec, 7, "n", fs, chunks, time.Hour)
	if !slices.Equal(whole, split) || sw != ss {
		t.Fatalf("batching changed the result: %+v vs %+v", sw, ss)
	}
	if sw.DroppedAtClose >= 8 {
		t.Fatalf("more than one reorder group held at close: %+v", sw)
	}
}

func TestRates(t *testing.T) {
	const n = 20000
	tests := []struct {
		name string
		spec Spec
	}{
		{"drop", Spec{Drop: 0.3}},
		{"duplicate", Spec{Duplicate: 0.1}},
		{"drop+duplicate", Spec{Drop: 0.3, Duplicate: 0.1}},
		{"drop+duplicate+reorder", Spec{Drop: 0.3, Duplicate: 0.1, Reorder: 8}},
	}
	// within reports whether k out of trials is within 5 standard
	// deviations of p.
	within := func(k, trials uint64, p float64) bool {
		mean := float64(trials) * p
		sd := math.Sqrt(float64(trials) * p * (1 - p))
		return math.Abs(float64(k)-mean) <= 5*sd
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			in := New(tt.spec, 99, tt.name, c.deliver)
			fs := makeFrames(n, 1)
			for i := 0; i < n; i += 100 {
				in.Apply(fs[i : i+100])
			}
			c.waitFor(t, expected(in.Stats())) // the last reorder group, if any
			in.Close()
			s := in.Stats()
			if s.Seen != n || s.DroppedAtClose != 0 {
				t.Fatalf("Seen = %d, want %d", s.Seen, n)
			}
			if !within(s.Dropped, n, tt.spec.Drop) {
				t.Errorf("dropped %d of %d, want about %.0f%%", s.Dropped, n, 100*tt.spec.Drop)
			}
			if kept := n - s.Dropped; !within(s.Duplicated, kept, tt.spec.Duplicate) {
				t.Errorf("duplicated %d of %d, want about %.0f%%", s.Duplicated, kept, 100*tt.spec.Duplicate)
			}
			if got := c.len(); got != expected(s) {
				t.Errorf("delivered %d, stats %+v say %d", got, s, expected(s))
			}
			// Each input frame arrives at most twice, and twice exactly
			// Duplicated times; a duplicate is an equal frame, not the same one.
			seen := map[uint64]*commonv1.Frame{}
			twice := uint64(0)
			for _, f := range c.frames {
				if g, ok := seen[f.GetTraceId()]; ok {
					twice++
					if g == f || !proto.Equal(g, f) {
						t.Fatalf("duplicate of trace %d aliases or differs", f.GetTraceId())
					}
				}
				seen[f.GetTraceId()] = f
			}
			if twice != s.Duplicated || uint64(len(seen)) != n-s.Dropped {
				t.Errorf("%d duplicates and %d distinct frames delivered, stats %+v", twice, len(seen), s)
			}
		})
	}
}

func TestDuplicateDoesNotAlias(t *testing.T) {
	var c collector
	in := New(Spec{Duplicate: 1}, 1, "x", c.deliver)
	defer in.Close()
	in.Apply(makeFrames(3, 1))
	if c.len() != 6 {
		t.Fatalf("got %d frames, want 6", c.len())
	}
	for i := 0; i < 6; i += 2 {
		a, b := c.frames[i], c.frames[i+1]
		if a == b || !proto.Equal(a, b) || &a.Payload[0] == &b.Payload[0] {
			t.Fatalf("frames %d and %d: want equal frames that do not alias", i, i+1)
		}
	}
}

// checkGroups checks the reorder guarantee: the output is a permutation of
// the input, cut into consecutive groups of at most window frames, each a
// permutation of a contiguous run of the input. Equivalently: the prefix of
// the output at every group end is exactly a prefix of the input, and
// group ends are at most window apart. It returns the largest displacement.
func checkGroups(t *testing.T, out []uint64, first uint64, n, window int) int {
	t.Helper()
	if len(out) != n {
		t.Fatalf("got %d frames, want %d", len(out), n)
	}
	seen := make([]bool, n)
	maxMove, lastEnd, maxSeen := 0, 0, -1
	for p, id := range out {
		i := int(id - first)
		if i < 0 || i >= n || seen[i] {
			t.Fatalf("output %v is not a permutation of the input", out)
		}
		seen[i] = true
		maxSeen = max(maxSeen, i)
		maxMove = max(maxMove, p-i, i-p)
		if maxSeen == p { // out[:p+1] is exactly input[:p+1]: a possible group end
			if p+1-lastEnd > window {
				t.Fatalf("a group of %d frames ends at %d, window is %d", p+1-lastEnd, p, window)
			}
			lastEnd = p + 1
		}
	}
	if maxMove > window-1 {
		t.Fatalf("a frame moved %d places, window is %d", maxMove, window)
	}
	return maxMove
}

func TestReorder(t *testing.T) {
	const window, n = 8, 8 * 250
	t.Run("one call", func(t *testing.T) {
		var c collector
		in := New(Spec{Reorder: window}, 5, "x", c.deliver)
		defer in.Close()
		in.Apply(makeFrames(n, 1))
		// Every group filled during Apply, so all came out synchronously.
		if c.len() != n {
			t.Fatalf("after Apply: %d frames, want %d", c.len(), n)
		}
		out := c.traces()
		for g := 0; g < n; g += window {
			block := slices.Clone(out[g : g+window])
			slices.Sort(block)
			for k, id := range block {
				if id != uint64(g+k+1) {
					t.Fatalf("output group %d = %v, not a permutation of input %d..%d", g/window, out[g:g+window], g+1, g+window)
				}
			}
		}
		if moved := checkGroups(t, out, 1, n, window); moved == 0 {
			t.Fatal("nothing was reordered")
		}
		moved := 0
		for p, id := range out {
			if id != uint64(p+1) {
				moved++
			}
		}
		if s := in.Stats(); s.Reordered != uint64(moved) {
			t.Fatalf("Reordered = %d, but %d frames moved", s.Reordered, moved)
		}
	})
	t.Run("with flushes", func(t *testing.T) {
		// Chunks of random size with pauses around the flush interval: groups
		// are cut short by the clock, but the guarantee still holds.
		var c collector
		in := New(Spec{Reorder: window}, 5, "x", c.deliver)
		defer in.Close()
		r := rand.New(rand.NewPCG(3, 4))
		fs := makeFrames(600, 1)
		for rest := fs; len(rest) > 0; {
			k := min(1+r.IntN(12), len(rest))
			in.Apply(rest[:k])
			rest = rest[k:]
			if r.IntN(4) == 0 {
				time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
			}
		}
		c.waitFor(t, len(fs))
		checkGroups(t, c.traces(), 1, len(fs), window)
		if c.overlap.Load() {
			t.Fatal("deliver calls overlapped")
		}
	})
	t.Run("flush releases a lone frame", func(t *testing.T) {
		var c collector
		in := New(Spec{Reorder: window}, 5, "x", c.deliver)
		defer in.Close()
		start := time.Now()
		in.Apply(makeFrames(3, 1))
		if c.len() != 0 {
			t.Fatal("an incomplete group was delivered at once")
		}
		c.waitFor(t, 3)
		if d := c.at[0].Sub(start); d < FlushInterval {
			t.Fatalf("held frames released after %v, before the flush interval %v", d, FlushInterval)
		}
		checkGroups(t, c.traces(), 1, 3, window)
	})
}

func TestDelay(t *testing.T) {
	t.Run("jitter lower bound", func(t *testing.T) {
		const delay, jitter = 30 * time.Millisecond, 10 * time.Millisecond
		var c collector
		in := New(Spec{Delay: delay, Jitter: jitter}, 3, "x", c.deliver)
		defer in.Close()
		applied := map[uint64]time.Time{}
		for b := 0; b < 10; b++ {
			fs := makeFrames(20, uint64(1+20*b))
			now := time.Now()
			for _, f := range fs {
				applied[f.GetTraceId()] = now
			}
			in.Apply(fs)
			time.Sleep(2 * time.Millisecond)
		}
		c.waitFor(t, 200)
		var minD, maxD time.Duration = time.Hour, 0
		for i, f := range c.frames {
			d := c.at[i].Sub(applied[f.GetTraceId()])
			minD, maxD = min(minD, d), max(maxD, d)
			if d < delay-jitter {
				t.Fatalf("frame %d arrived %v after Apply, before Delay-Jitter = %v", f.GetTraceId(), d, delay-jitter)
			}
			if d > delay+jitter+2*time.Second {
				t.Fatalf("frame %d arrived %v after Apply", f.GetTraceId(), d)
			}
		}
		t.Logf("delays from %v to %v", minD, maxD)
		if s := in.Stats(); s.Delayed != 200 {
			t.Fatalf("Delayed = %d, want 200", s.Delayed)
		}
	})
	t.Run("order kept without jitter", func(t *testing.T) {
		const delay = 5 * time.Millisecond
		var c collector
		in := New(Spec{Delay: delay}, 3, "x", c.deliver)
		defer in.Close()
		start := time.Now()
		for b := 0; b < 50; b++ {
			in.Apply(makeFrames(10, uint64(1+10*b)))
			if b == 0 && c.len() != 0 {
				t.Fatal("a delayed frame was delivered synchronously")
			}
			if b%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		c.waitFor(t, 500)
		for i, id := range c.traces() {
			if id != uint64(i+1) {
				t.Fatalf("frame %d delivered at place %d: order not kept", id, i)
			}
		}
		if d := c.at[0].Sub(start); d < delay {
			t.Fatalf("first frame after %v, want at least %v", d, delay)
		}
	})
	t.Run("reorder and delay", func(t *testing.T) {
		var c collector
		in := New(Spec{Reorder: 4, Delay: 2 * time.Millisecond}, 3, "x", c.deliver)
		defer in.Close()
		for b := 0; b < 30; b++ {
			in.Apply(makeFrames(10, uint64(1+10*b)))
		}
		c.waitFor(t, 300)
		checkGroups(t, c.traces(), 1, 300, 4)
	})
	t.Run("jitter above delay", func(t *testing.T) {
		// Negative draws mean no delay: those frames come out synchronously.
		var c collector
		in := New(Spec{Delay: time.Millisecond, Jitter: 50 * time.Millisecond}, 3, "x", c.deliver)
		defer in.Close()
		in.Apply(makeFrames(200, 1))
		sync := c.len()
		c.waitFor(t, 200)
		s := in.Stats()
		if sync == 0 || s.Delayed == 0 || s.Delayed+uint64(sync) != 200 {
			t.Fatalf("%d delivered synchronously, stats %+v", sync, s)
		}
	})
}

func TestClose(t *testing.T) {
	var c collector
	in := New(Spec{Reorder: 8, Delay: time.Hour}, 1, "x", c.deliver)
	in.Apply(makeFrames(3, 1))  // held
	in.Apply(makeFrames(10, 4)) // 8 released into the delay, 5 held
	in.Close()
	s := in.Stats()
	if c.len() != 0 || s.Seen != 13 || s.DroppedAtClose != 13 || s.Delayed != 13 {
		t.Fatalf("after Close: %d delivered, stats %+v", c.len(), s)
	}
	in.Apply(makeFrames(5, 100))
	in.Close() // twice is fine
	s = in.Stats()
	if c.len() != 0 || s.Seen != 18 || s.DroppedAtClose != 18 {
		t.Fatalf("Apply after Close: %d delivered, stats %+v", c.len(), s)
	}

	// Without a goroutine, too.
	var d collector
	in = New(Spec{Drop: 0.5}, 1, "x", d.deliver)
	in.Close()
	in.Apply(makeFrames(5, 1))
	if d.len() != 0 || in.Stats().DroppedAtClose != 5 {
		t.Fatalf("Apply after Close: %d delivered, stats %+v", d.len(), in.Stats())
	}
}

func TestConcurrentApply(t *testing.T) {
	// Run with -race: Apply from several goroutines, the injector's
	// goroutine delivering delayed and flushed frames, Stats readers and
	// Close, all at once; the accounting must come out exact.
	specs := map[string]Spec{
		"drop+dup":      {Drop: 0.1, Duplicate: 0.1},
		"reorder+delay": {Drop: 0.1, Duplicate: 0.1, Reorder: 4, Delay: time.Millisecond, Jitter: time.Millisecond},
		"delay":         {Delay: 100 * time.Microsecond},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			var c collector
			in := New(spec, 1, name, c.deliver)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
						_ = in.Stats()
						time.Sleep(100 * time.Microsecond)
					}
				}
			}()
			for g := 0; g < 8; g++ {
				wg.Go(func() {
					fs := makeFrames(1000, uint64(g*1000+1))
					for i := 0; i < len(fs); i += 10 {
						in.Apply(fs[i : i+10])
						if i%200 == 0 {
							time.Sleep(time.Millisecond)
						}
					}
				})
			}
			wg.Wait()
			if name == "delay" {
				c.waitFor(t, 8000) // let it drain, then Close drops nothing
			}
			in.Close()
			close(stop)
			s := in.Stats()
			if s.Seen != 8000 || c.len() != expected(s) {
				t.Fatalf("delivered %d, stats %+v say %d", c.len(), s, expected(s))
			}
			if name == "delay" && s.DroppedAtClose != 0 {
				t.Fatalf("stats %+v", s)
			}
			if in.clocked && c.overlap.Load() {
				t.Fatal("deliver calls overlapped")
			}
		})
	}
}

func TestDeliverMayApply(t *testing.T) {
	// A deliver func that feeds frames back into the same injector (a
	// loopback) must not deadlock, from Apply's caller or the goroutine.
	var in *Injector
	var mu sync.Mutex
	var got []uint64
	deliver := func(fs []*commonv1.Frame) {
		var again []*commonv1.Frame
		mu.Lock()
		for _, f := range fs {
			got = append(got, f.GetTraceId())
			if f.GetTraceId() < 1000 {
				again = append(again, &commonv1.Frame{TraceId: f.GetTraceId() + 1000})
			}
		}
		mu.Unlock()
		in.Apply(again)
	}
	in = New(Spec{Reorder: 3, Delay: time.Millisecond}, 1, "x", deliver)
	defer in.Close()
	in.Apply(makeFrames(10, 1))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames, want 20", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSanitise(t *testing.T) {
	got := sanitise(Spec{Drop: math.NaN(), Duplicate: 7, Reorder: 1 << 30, Delay: -time.Second, Jitter: 1000 * time.Hour})
	want := Spec{Drop: 0, Duplicate: 1, Reorder: MaxReorder, Delay: 0, Jitter: MaxDelay}
	if got != want {
		t.Fatalf("sanitise = %+v, want %+v", got, want)
	}
}

func TestDelayHeap(t *testing.T) {
	var h delayHeap
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 1000 {
		h.push(delayedFrame{due: time.Duration(r.IntN(50)), seq: uint64(i)})
	}
	prev := delayedFrame{due: -1}
	for len(h) > 0 {
		x := h.pop()
		if x.due < prev.due || (x.due == prev.due && x.seq < prev.seq) {
			t.Fatalf("popped %+v after %+v", x, prev)
		}
		prev = x
	}
}
