package loopix_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// TestAcrossEpochs: with 20-second epochs, messages keep flowing while the
// relays rotate their keys (and replay filters) at least three times;
// packets that reach a hop after a boundary their sender did not expect
// are opened with the neighbouring epoch's key, so nothing is dropped.
func TestAcrossEpochs(t *testing.T) {
	s := newSim(t, simOptions{seed: 12, epoch: 20 * time.Second, rates: loopix.Rates{LambdaP: 2, Mu: 5}})
	a, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	start := s.epochs.At(s.now)
	for i := range 6 {
		toB, toA := message("epoch b", 700+i), message("epoch a", 300+i)
		if err := ca.Send(cb.Address(), &loopix.Message{Payload: toB}); err != nil {
			t.Fatal(err)
		}
		if err := cb.Send(ca.Address(), &loopix.Message{Payload: toA}); err != nil {
			t.Fatal(err)
		}
		if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, toB) != nil && delivered(a, toA) != nil }) {
			t.Fatalf("round %d (epoch %d) not delivered: alice %s; bob %s", i, s.epochs.At(s.now), counters(a), counters(b))
		}
		s.run(7 * time.Second)
	}
	if end := s.epochs.At(s.now); end < start+3 {
		t.Fatalf("the test spans epochs %d..%d, want 3 boundaries", start, end)
	}
	for _, n := range append(s.relays(-1), s.relays(1)...) {
		if n.counters.EpochRotations.Load() < 3 {
			t.Errorf("%s rotated %d times", n.name, n.counters.EpochRotations.Load())
		}
		if d := drops(n.counters); d != "" {
			t.Errorf("%s dropped: %s", n.name, d)
		}
	}
}

// TestReplayStateSurvivesRestart: a mix backed by package replay's durable
// store, restarted on the same directory, still drops a packet it
// forwarded before the restart.
func TestReplayStateSurvivesRestart(t *testing.T) {
	s := newSim(t, simOptions{seed: 13, rates: loopix.Rates{LambdaP: 1, Mu: 10}})
	dir := t.TempDir()
	m := s.member("mix-0-0")
	pkt := s.rawPacket(simEpoch, []string{"mix-0-0", "mix-1-0"}, []sphinx.Commands{delay(5), {sphinx.Recipient{}}})
	ctx := context.Background()
	for run := range 2 {
		store, err := replay.Open(ctx, dir, simEpoch, replay.Options{ExpectedTags: 1000, Durability: replay.SyncWrite})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
		if err != nil {
			t.Fatal(err)
		}
		mix, err := loopix.NewMix(ctx, loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: store, MaxQueue: 10, MaxDelay: time.Minute}, s.dir, s.now)
		if err != nil {
			t.Fatal(err)
		}
		mix.Handle(ctx, s.now, "provider-0", bytes.Clone(pkt))
		c := mix.Counters()
		if run == 0 && (c.QueueLength.Load() != 1 || c.Replayed.Load() != 0) {
			t.Fatalf("first run: queued %d, replayed %d", c.QueueLength.Load(), c.Replayed.Load())
		}
		if run == 1 && (c.QueueLength.Load() != 0 || c.Replayed.Load() != 1) {
			t.Fatalf("after the restart: queued %d, replayed %d; want the replay dropped", c.QueueLength.Load(), c.Replayed.Load())
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMixQueueBound: a mix holds at most MaxQueue packets for their
// delays, and sends none more than MaxLateness after its due time; the
// rest is dropped and counted.
func TestMixQueueBound(t *testing.T) {
	s := newSim(t, simOptions{seed: 15, rates: loopix.Rates{LambdaP: 1, Mu: 10}})
	m := s.member("mix-0-0")
	keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mix, err := loopix.NewMix(ctx, loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: &memReplay{}, MaxQueue: 3, MaxDelay: time.Minute}, s.dir, s.now)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mix.Handle(ctx, s.now, "provider-0", s.rawPacket(simEpoch, []string{"mix-0-0", "mix-1-0"}, []sphinx.Commands{delay(1000), {sphinx.Recipient{}}}))
	}
	if c := mix.Counters(); c.QueueLength.Load() != 3 || c.QueueFull.Load() != 2 {
		t.Fatalf("queue %d, dropped %d; want 3 and 2", c.QueueLength.Load(), c.QueueFull.Load())
	}
	mix.Tick(ctx, s.now.Add(time.Second))
	if out := mix.Ready().Out; len(out) != 3 || out[0].To != "mix-1-0" {
		t.Fatalf("%d packets out after the delay", len(out))
	}

	// A relay that ticks too late drops what overstayed.
	late, err := loopix.NewMix(ctx, loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: &memReplay{}, MaxQueue: 3, MaxDelay: time.Minute, MaxLateness: time.Second}, s.dir, s.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []uint32{100, 5000} {
		late.Handle(ctx, s.now, "provider-0", s.rawPacket(simEpoch, []string{"mix-0-0", "mix-1-0"}, []sphinx.Commands{delay(d), {sphinx.Recipient{}}}))
	}
	late.Tick(ctx, s.now.Add(5500*time.Millisecond)) // 5.4 s late for the first, 0.5 s for the second
	if out, c := late.Ready().Out, late.Counters(); len(out) != 1 || c.Late.Load() != 1 {
		t.Fatalf("%d sent, %d dropped late; want 1 and 1", len(out), c.Late.Load())
	}
}
