package loopix_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
)

// capturedPackets are real packet frames for one mix, captured on their
// way from the providers in a simulated network, with their senders.
type capturedPackets struct {
	s      *sim
	at     time.Time
	from   []loopix.PeerID
	frames [][]byte
}

// capturePackets runs a network with one client sending drop cover until
// n packets have reached to.
func capturePackets(t testing.TB, to loopix.PeerID, n int) *capturedPackets {
	t.Helper()
	s := newSim(t, simOptions{seed: 41, user: 2000, rates: loopix.Rates{LambdaP: 15, Mu: 50}})
	c := &capturedPackets{s: s}
	s.tap = func(from, dst loopix.PeerID, frame []byte) {
		if dst == to && len(c.frames) < n && frame[0] == 1 {
			c.from = append(c.from, from)
			c.frames = append(c.frames, append([]byte(nil), frame...))
		}
	}
	s.addClient("alice", "provider-0")
	if !s.runUntil(s.now.Add(10*time.Minute), func() bool { return len(c.frames) >= n }) {
		t.Fatalf("%d of %d packets for %s captured", len(c.frames), n, to)
	}
	s.tap = nil
	c.at = s.now
	return c
}

// batch returns the captured packets i… as a batch (copies: the mix owns
// what it is given).
func (c *capturedPackets) batch(i ...int) []loopix.Inbound {
	out := make([]loopix.Inbound, len(i))
	for k, j := range i {
		out[k] = loopix.Inbound{From: c.from[j], Frame: append([]byte(nil), c.frames[j]...)}
	}
	return out
}

// checkedFilter is a replay filter that checks, when the mix asks it,
// that the mix has queued nothing yet, and can fail every tag.
type checkedFilter struct {
	t     *testing.T
	inner loopix.ReplayFilter
	mix   **loopix.Mix
	fail  bool
	calls int
}

func (f *checkedFilter) SeenBatch(ctx context.Context, checks []replay.Check, dst []replay.Verdict) []replay.Verdict {
	f.calls++
	if m := *f.mix; m != nil && m.Counters().QueueLength.Load() != 0 {
		f.t.Errorf("the mix queued %d packets before their replay tags were checked", m.Counters().QueueLength.Load())
	}
	if f.fail {
		for range checks {
			dst = append(dst, replay.Verdict{Seen: true, Err: replay.ErrFailed})
		}
		return dst
	}
	return f.inner.SeenBatch(ctx, checks, dst)
}

func (f *checkedFilter) Rotate(ctx context.Context, current uint64) error {
	return f.inner.Rotate(ctx, current)
}

// TestMixBatchReplay: a mix checks a batch's replay tags in one call
// before it queues any of its packets, forwards one of two copies of a
// packet in one batch, forwards none of a batch whose tags could not be
// made durable, and, after a crash (its replay store abandoned, not
// closed), forwards none of the packets it had accepted again.
func TestMixBatchReplay(t *testing.T) {
	c := capturePackets(t, "mix-0-0", 3)
	s := c.s
	m := s.member("mix-0-0")
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		d    replay.Durability
	}{
		{"durability full", replay.SyncFull},
		{"durability normal", replay.SyncWrite},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			start := func(fail bool) (*loopix.Mix, *checkedFilter) {
				st, err := replay.Open(ctx, dir, simEpoch, replay.Options{ExpectedTags: 10000, Durability: tt.d})
				if err != nil {
					t.Fatal(err)
				}
				keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
				if err != nil {
					t.Fatal(err)
				}
				var mx *loopix.Mix
				f := &checkedFilter{t: t, inner: st, mix: &mx, fail: fail}
				rc := loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: f, MaxQueue: 100, MaxDelay: time.Minute}
				rc.Rates.LambdaM = 0
				if mx, err = loopix.NewMix(ctx, rc, s.dir, c.at); err != nil {
					t.Fatal(err)
				}
				return mx, f
			}
			forwarded := func(mx *loopix.Mix) int {
				mx.Tick(ctx, c.at.Add(time.Minute))
				return len(mx.Ready().Out)
			}
			var mx *loopix.Mix
			var f *checkedFilter
			for _, step := range []struct {
				name      string
				fail      bool // the replay store fails every tag
				restart   bool // a new mix on the store's files, the old one abandoned
				batch     []int
				forwarded int
				replayed  uint64 // the mix's counts so far
				errors    uint64
			}{
				{name: "store fails", fail: true, restart: true, batch: []int{0, 1}, errors: 2},
				{name: "two copies in one batch", restart: true, batch: []int{0, 1, 0, 2}, forwarded: 3, replayed: 1},
				{name: "the same batch again", batch: []int{2, 1, 0}, replayed: 1 + 3},
				{name: "after a crash", restart: true, batch: []int{1, 0, 2, 2}, replayed: 4},
			} {
				if step.restart || mx == nil {
					mx, f = start(step.fail)
				}
				calls := f.calls
				mx.HandleBatch(ctx, c.at, c.batch(step.batch...))
				if f.calls != calls+1 {
					t.Fatalf("%s: the mix asked the replay filter %d times for one batch", step.name, f.calls)
				}
				got, cs := forwarded(mx), mx.Counters()
				if got != step.forwarded || cs.Replayed.Load() != step.replayed || cs.ReplayError.Load() != step.errors {
					t.Fatalf("%s: %d forwarded, %d replayed, %d replay errors; want %d, %d, %d",
						step.name, got, cs.Replayed.Load(), cs.ReplayError.Load(), step.forwarded, step.replayed, step.errors)
				}
			}
		})
	}
}
