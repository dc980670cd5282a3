package loopix_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestClientRestartResumesMailbox: a client that restarts loses its ack
// position (it is not stored), while its provider has deleted every entry
// it acked before. Its first pulls are answered from the provider's oldest
// entry, far past 0; the client must take that as where its mailbox
// resumes, not wait forever for entries that are gone, and a message sent
// after the restart must arrive.
func TestClientRestartResumesMailbox(t *testing.T) {
	s := newSim(t, simOptions{seed: 21})
	_, ca := s.addClient("alice", "provider-0")
	var token [loopix.TokenLength]byte
	s.rnd.Read(token[:])
	keys, err := loopix.NewKeyPair(s.rnd)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.dir.ByName("provider-1")
	start := func() (*simNode, *loopix.Client) {
		c, err := loopix.NewClient(loopix.ClientConfig{
			Common: s.common(), Provider: p.ID, Token: token, Keys: keys,
			PullInterval: 2 * time.Second, MaxQueue: 256, MaxMessage: 64 << 10, MaxPending: 16, ReassemblyTimeout: 10 * time.Minute,
			AckTimeout: s.ackTimeout, MaxRetransmissions: 3,
		}, s.dir, s.now)
		if err != nil {
			t.Fatal(err)
		}
		n := &simNode{name: "bob", eng: c, tick: func(_ context.Context, now time.Time) { c.Tick(now) }, counters: c.Counters()}
		s.add(n)
		return n, c
	}
	b, cb := start()
	// Long enough for bob's loops to fill his mailbox and his acks to
	// empty it: his provider's next entry is far past 1.
	first := message("before the restart", 900)
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: first}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return delivered(b, first) != nil }) {
		t.Fatalf("bob did not get the first message: %s", counters(b))
	}
	s.run(2 * time.Minute)
	if in := b.counters.EntriesIn.Load(); in < 20 {
		t.Fatalf("bob took only %d mailbox entries before the restart; the test needs his provider far past its first", in)
	}

	b, _ = start() // the same token and keys; the ack position is lost
	second := message("after the restart", 900)
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: second}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return delivered(b, second) != nil }) {
		t.Fatalf("bob did not get a message sent after his restart: %s", counters(b))
	}
}
