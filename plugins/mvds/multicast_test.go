package mvds

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestMulticast: in a group of three or more, a Send's message goes out
// as one payload for every member; retransmissions to a member that did
// not acknowledge go to that member alone; every message in a group of
// two goes per member.
func TestMulticast(t *testing.T) {
	flushOut := func(tn *tnode) []outbound {
		t.Helper()
		out, _, err := tn.n.flush(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Run("group", func(t *testing.T) {
		nt := newTNet(t, testSettings(), "a", "b", "c", "d")
		a := nt.node("a")
		id := a.send("to everyone")
		out := flushOut(a)
		if len(out) != 1 || len(out[0].peer) != 0 {
			t.Fatalf("flush made %d payloads, want one without a peer", len(out))
		}
		if a.counter("multicast_payloads") != 1 || a.counter("sent") != 3 {
			t.Fatalf("multicast_payloads %d, sent %d", a.counter("multicast_payloads"), a.counter("sent"))
		}
		// d misses it and acknowledges nothing; b and c get it.
		nt.drop = func(from, to *tnode, _ []byte) bool { return to.name == "d" || from.name == "d" }
		nt.deliver(func(from *tnode) []outbound {
			if from == a {
				return out
			}
			return nil
		})
		if !nt.node("b").delivered(id) || !nt.node("c").delivered(id) || nt.node("d").delivered(id) {
			t.Fatal("the group payload did not reach the members it was not dropped for")
		}
		nt.keep = true
		for range 8 {
			nt.step()
		}
		for _, s := range nt.sent {
			if s.from == "a" && len(s.p.GetMessages()) > 0 && s.to != "d" {
				t.Fatalf("a retransmitted to %s, which acknowledged", s.to)
			}
		}
		if a.counter("retransmissions") == 0 {
			t.Fatal("no retransmission to d")
		}
		nt.drop = nil
		nt.run(50, func() bool { return nt.node("d").delivered(id) })
		if !nt.node("d").delivered(id) {
			t.Fatal("d never got the message")
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := testSettings()
		cfg.Multicast = false
		nt := newTNet(t, cfg, "a", "b", "c")
		a := nt.node("a")
		a.send("x")
		if out := flushOut(a); len(out) != 2 || len(out[0].peer) == 0 || len(out[1].peer) == 0 {
			t.Fatalf("multicast off: %d payloads", len(out))
		}
	})
	t.Run("two members", func(t *testing.T) {
		nt := newTNet(t, testSettings(), "a", "b")
		a := nt.node("a")
		a.send("x")
		if out := flushOut(a); len(out) != 1 || len(out[0].peer) == 0 {
			t.Fatal("a two-member group got a group payload")
		}
	})
	t.Run("acks of messages not held", func(t *testing.T) {
		// Every member hears every member's acks with group_acks, also
		// of messages still on their way: they are not counted as
		// unknown. Without group_acks an ack is for this node's own
		// messages, and one of a message it does not hold is.
		unknown := ID{7}
		for _, groupAcks := range []bool{true, false} {
			cfg := testSettings()
			cfg.GroupAcks = groupAcks
			nt := newTNet(t, cfg, "a", "b", "c")
			a, b := nt.node("a"), nt.node("b")
			a.receive(b.id, encode(t, &wirepb.Payload{Acks: [][]byte{unknown[:]}}))
			want := uint64(0)
			if !groupAcks {
				want = 1
			}
			if got := a.counter("dropped_unknown_ack"); got != want {
				t.Errorf("group_acks %v: dropped_unknown_ack %d, want %d", groupAcks, got, want)
			}
		}
	})
	t.Run("acks", func(t *testing.T) {
		cfg := testSettings()
		cfg.GroupAcks = true
		nt := newTNet(t, cfg, "a", "b", "c", "d")
		a, b, c := nt.node("a"), nt.node("b"), nt.node("c")
		a.send("from a")
		c.send("from c")
		nt.flush()
		// b owes acks to a and to c: one payload for every member.
		out := b.tick()
		if len(out) != 1 || len(out[0].peer) != 0 {
			t.Fatalf("b's epoch made %d payloads, want one without a peer", len(out))
		}
		var p wirepb.Payload
		if err := proto.Unmarshal(out[0].payload, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.GetAcks()) != 2 {
			t.Fatalf("the group payload holds %d acks, want 2", len(p.GetAcks()))
		}
		// Delivered to every member: a and c stop retransmitting, and d
		// counts no drop for an ack of a message it holds.
		nt.deliver(func(from *tnode) []outbound {
			if from == b {
				return out
			}
			return nil
		})
		if d := nt.node("d"); d.counter("dropped_unknown_ack") != 0 {
			t.Fatal("a member counted another member's ack as unknown")
		}
		// b's acks reached a and c: neither sends its message to b again,
		// though b says nothing more.
		nt.keep = true
		nt.drop = func(from, _ *tnode, _ []byte) bool { return from == b }
		for range 10 {
			nt.step()
		}
		for _, s := range nt.sent {
			if s.to == "b" && len(s.p.GetMessages()) > 0 {
				t.Fatalf("%s sent its message to b again after b's group ack", s.from)
			}
		}
	})
	t.Run("acks per member by default", func(t *testing.T) {
		nt := newTNet(t, testSettings(), "a", "b", "c", "d")
		nt.node("a").send("from a")
		nt.node("c").send("from c")
		nt.flush()
		out := nt.node("b").tick()
		for _, o := range out {
			if len(o.peer) == 0 {
				t.Fatal("acks went to the whole group with group_acks off")
			}
		}
		if len(out) < 2 {
			t.Fatalf("b's epoch made %d payloads, want one per author", len(out))
		}
	})
	t.Run("retransmission to the group", func(t *testing.T) {
		cfg := testSettings()
		cfg.GroupRetransmit = true
		nt := newTNet(t, cfg, "a", "b", "c", "d", "e")
		a := nt.node("a")
		nt.keep = true
		// c, d and e miss the group payload and say nothing; b acks. The
		// three are due at once: one payload for the group, not three.
		away := func(n *tnode) bool { return n.name == "c" || n.name == "d" || n.name == "e" }
		nt.drop = func(from, to *tnode, _ []byte) bool { return away(from) || away(to) }
		id := a.send("m")
		nt.flush()
		for range 3 {
			nt.step()
		}
		group, alone := 0, 0
		for _, s := range nt.sent {
			if s.from != "a" || len(s.p.GetMessages()) == 0 {
				continue
			}
			if s.group {
				group++
			} else {
				alone++
			}
		}
		// The first send and one retransmission, each copied to 4 members.
		if alone != 0 || group != 8 {
			t.Fatalf("a sent %d group copies and %d payloads to one member, want 8 and 0", group, alone)
		}
		if got := a.counter("group_retransmissions"); got != 1 {
			t.Fatalf("group_retransmissions %d, want 1", got)
		}
		if a.counter("retransmissions") != 3 {
			t.Fatalf("retransmissions %d, want 3 (one per member due)", a.counter("retransmissions"))
		}
		// d and e come back and ack; c stays away. One member due of four
		// is not half: the next retransmissions go to c alone.
		nt.drop = func(from, to *tnode, _ []byte) bool { return from.name == "c" || to.name == "c" }
		nt.run(20, func() bool { return nt.node("d").delivered(id) && nt.node("e").delivered(id) })
		if !nt.node("d").delivered(id) || !nt.node("e").delivered(id) {
			t.Fatal("d or e never got the message")
		}
		for range 3 {
			nt.step() // their acks reach a
		}
		nt.sent = nil
		toC := 0
		for range 40 {
			nt.step()
		}
		for _, s := range nt.sent {
			if s.from != "a" || len(s.p.GetMessages()) == 0 {
				continue
			}
			if s.group {
				t.Fatalf("a sent the message to the group when only c lacked it (copy to %s)", s.to)
			}
			if s.to != "c" {
				t.Fatalf("a sent the message again to %s, which acked it", s.to)
			}
			toC++
		}
		if toC == 0 {
			t.Fatal("no retransmission to c alone")
		}
		nt.drop = nil
		nt.run(50, func() bool { return nt.node("c").delivered(id) })
		if !nt.node("c").delivered(id) {
			t.Fatal("c never got the message")
		}
	})
	t.Run("relay delay", func(t *testing.T) {
		cfg := testSettings()
		cfg.GroupAcks, cfg.RelayDelay = true, 3
		nt := newTNet(t, cfg, "a", "b", "c", "d")
		nt.keep = true
		// d is away: what goes to it is lost, and it says nothing.
		nt.drop = func(from, to *tnode, _ []byte) bool { return from.name == "d" || to.name == "d" }
		id := nt.node("a").send("m")
		nt.flush()
		for range 6 {
			nt.step()
		}
		offers := map[string]int{}
		for _, s := range nt.sent {
			if s.from != "a" && len(s.p.GetOffers()) > 0 {
				offers[s.to]++
			}
		}
		if offers["a"]+offers["b"]+offers["c"] != 0 {
			t.Fatalf("relay offers to members whose group acks said they hold the message: %v", offers)
		}
		if offers["d"] == 0 {
			t.Fatal("no relay offer to the member that was away")
		}
		// a leaves; d comes back and gets the message from b or c.
		nt.drop = func(from, to *tnode, _ []byte) bool { return from.name == "a" || to.name == "a" }
		nt.run(100, func() bool { return nt.node("d").delivered(id) })
		if !nt.node("d").delivered(id) {
			t.Fatal("d never got the message from the members that relay")
		}
	})
}
