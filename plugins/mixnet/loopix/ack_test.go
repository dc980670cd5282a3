package loopix_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestAcknowledgementsAndRetransmission: the recipient acknowledges every
// fragment on the SURB it carried, without learning the sender's address
// (the message is sent anonymously here); fragments lost on the way are
// sent again after the ack timeout and the message is delivered once; a
// fragment that is never acknowledged is given up after the configured
// retransmissions and counted.
func TestAcknowledgementsAndRetransmission(t *testing.T) {
	s := newSim(t, simOptions{seed: 14, ackTimeout: 15 * time.Second, rates: loopix.Rates{LambdaP: 2, LambdaL: 0.5, LambdaD: 0.5, Mu: 10}})
	a, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	first := message("acked", 1500) // 3 fragments
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: first}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, first) != nil && ca.Counters().AcksReceived.Load() == 3 }) {
		t.Fatalf("not delivered and acknowledged: alice %s, acks %d; bob %s", counters(a), ca.Counters().AcksReceived.Load(), counters(b))
	}
	if delivered(b, first).From != nil || ca.Counters().Retransmitted.Load() != 0 || ca.Unacked() != 0 {
		t.Fatalf("from %x, retransmitted %d, unacked %d", delivered(b, first).From, ca.Counters().Retransmitted.Load(), ca.Unacked())
	}

	// provider-1 is unreachable for a while: what the last mix layer sends
	// it is lost, fragments included.
	s.nodes["provider-1"].offline = true
	second := message("resent", 1500)
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: second}); err != nil {
		t.Fatal(err)
	}
	s.run(12 * time.Second)
	if ca.Queued() != 0 || ca.Unacked() != 3 {
		t.Fatalf("%d queued, %d unacknowledged; want all 3 sent and waiting", ca.Queued(), ca.Unacked())
	}
	s.nodes["provider-1"].offline = false
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool {
		return delivered(b, second) != nil && ca.Counters().AcksReceived.Load() >= 6 && ca.Unacked() == 0
	}) {
		t.Fatalf("not delivered after the outage: alice %s, acks %d, unacked %d; bob %s", counters(a), ca.Counters().AcksReceived.Load(), ca.Unacked(), counters(b))
	}
	if ca.Counters().Retransmitted.Load() < 3 {
		t.Fatalf("retransmitted %d fragments, want the 3 lost", ca.Counters().Retransmitted.Load())
	}
	s.run(30 * time.Second)
	if n := len(b.delivered); n != 2 {
		t.Fatalf("bob got %d messages, want 2 (each once)", n)
	}

	// Now provider-1 is gone for good: after 1 + 3 tries the fragment is
	// given up.
	s.nodes["provider-1"].offline = true
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	s.run(2 * time.Minute)
	if got := ca.Counters().Unacked.Load(); got != 1 || ca.Unacked() != 0 {
		t.Fatalf("gave up on %d fragments, %d still waiting; want 1 and 0", got, ca.Unacked())
	}
	if cb.Counters().BadSURB.Load() != 0 || ca.Counters().UnknownSURB.Load() != 0 {
		t.Fatalf("bad SURBs %d, unknown SURB ids %d", cb.Counters().BadSURB.Load(), ca.Counters().UnknownSURB.Load())
	}
}

// TestMixRestartsLoseNoMessage: the layer-1 mixes restart every 1.5
// seconds while messages cross, each time losing the packets it held for
// their delays (as a killed mix does); the fragments lost are sent again
// on their missing acknowledgements, and every message arrives, once.
func TestMixRestartsLoseNoMessage(t *testing.T) {
	s := newSim(t, simOptions{seed: 16, ackTimeout: 10 * time.Second, rates: loopix.Rates{LambdaP: 4, LambdaL: 1, LambdaD: 1, Mu: 2}})
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	var sent [][]byte
	lost := uint64(0)
	for i := range 12 {
		p := message(fmt.Sprintf("restart %d", i), 900)
		sent = append(sent, p)
		if err := ca.Send(cb.Address(), &loopix.Message{Payload: p}); err != nil {
			t.Fatal(err)
		}
		s.run(1500 * time.Millisecond)
		for _, name := range []string{"mix-1-0", "mix-1-1"} {
			lost += s.nodes[loopix.PeerID(name)].counters.QueueLength.Load()
			s.startRelay(s.member(name), t.TempDir())
		}
	}
	if !s.runUntil(s.now.Add(3*time.Minute), func() bool {
		for _, p := range sent {
			if delivered(b, p) == nil {
				return false
			}
		}
		return ca.Unacked() == 0 && ca.Queued() == 0
	}) {
		t.Fatalf("not all delivered: bob has %d of %d; alice unacked %d", len(b.delivered), len(sent), ca.Unacked())
	}
	if lost == 0 {
		t.Fatal("the restarts lost no packet; the test shows nothing")
	}
	if len(b.delivered) != len(sent) || ca.Counters().Unacked.Load() != 0 {
		t.Fatalf("bob got %d messages for %d sent; %d fragments given up", len(b.delivered), len(sent), ca.Counters().Unacked.Load())
	}
	t.Logf("%d packets lost in restarts, %d fragments sent again", lost, ca.Counters().Retransmitted.Load())
}
