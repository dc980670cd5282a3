package bsp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// counter reads a Health counter of name's node by its exposed name.
func (tn *testNet) counter(name, counter string) uint64 {
	tn.t.Helper()
	v, ok := tn.nodes[name].n.c.set.Snapshot()[counter]
	if !ok {
		tn.t.Fatalf("no counter %s", counter)
	}
	return v
}

// flushOf flushes name's node at the current time and commits, without
// delivering anything.
func (tn *testNet) flushOf(name string) []outbound {
	tn.t.Helper()
	nd := tn.nodes[name].n
	out, _, _, _ := nd.flush(tn.clk.ms())
	if err := nd.sync(context.Background()); err != nil {
		tn.t.Fatal(err)
	}
	return out
}

// deliverOut hands the frames of one flush of from to their recipients,
// a frame without a peer to every other member.
func (tn *testNet) deliverOut(from string, out []outbound) {
	tn.t.Helper()
	for _, o := range out {
		for _, to := range tn.recipients(from, o.peer) {
			tn.deliver(from, to, o.payload)
		}
	}
}

// ackIDs reads the ids of a frame's ACK records.
func ackIDs(t testing.TB, b []byte) []wire.ID {
	t.Helper()
	var ids []wire.ID
	for len(b) > 0 {
		r, n, err := wire.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		if r.Type == wire.Ack {
			got, err := wire.DecodeIDs(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got...)
		}
	}
	return ids
}

// groupFrames counts the frames without a peer.
func groupFrames(out []outbound) int {
	k := 0
	for _, o := range out {
		if len(o.peer) == 0 {
			k++
		}
	}
	return k
}

// TestMulticast: in a group of three or more, what is new for every other
// member goes out as one frame without a peer (multicast), and, with
// group_acks, the acks owed to two or more members go in one such frame;
// what is per member (retransmissions to a member that did not ack, a
// lone ack) stays per member, and a group of two gets no group frames.
func TestMulticast(t *testing.T) {
	four := []string{"a", "b", "c", "d"}
	tests := []struct {
		name    string
		members []string
		setup   func(*Config)
		check   func(t *testing.T, tn *testNet)
	}{{
		name: "message", members: four,
		check: func(t *testing.T, tn *testNet) {
			if out := tn.flushOf("a"); len(out) != 0 {
				t.Fatalf("a's start made %d frames in a group without messages", len(out))
			}
			id := tn.send("a", "to everyone")
			out := tn.flushOf("a")
			if len(out) != 1 || len(out[0].peer) != 0 {
				t.Fatalf("a's flush made %d frames (%d for the group), want one for the group", len(out), groupFrames(out))
			}
			if got := records(t, out[0].payload); !slices.Equal(got, []wire.Type{wire.Versions, wire.Message}) {
				t.Fatalf("records %v", got)
			}
			if tn.counter("a", "multicast_payloads") != 1 || tn.counter("a", "sent") != 3 {
				t.Fatalf("multicast_payloads %d (want the message's), sent %d", tn.counter("a", "multicast_payloads"), tn.counter("a", "sent"))
			}
			tn.deliverOut("a", out)
			for _, name := range four[1:] {
				if !tn.has(name, id) {
					t.Fatalf("%s did not deliver the group frame's message", name)
				}
			}
			tn.run(10*time.Millisecond, time.Second, func() bool { return tn.unacked("a") == 0 })
		},
	}, {
		name: "lost for one member", members: four,
		check: func(t *testing.T, tn *testNet) {
			// d misses the group frame and says nothing; b and c ack.
			tn.drop = func(from, to string, _ []byte) bool { return to == "d" || from == "d" }
			id := tn.send("a", "m")
			tn.runFor(10*time.Millisecond, 2*time.Second)
			if !tn.has("b", id) || !tn.has("c", id) || tn.has("d", id) {
				t.Fatal("the drop did not hold")
			}
			toD := 0
			for _, f := range tn.tape {
				if f.from != "a" || f.group || !carries(f, id) {
					continue
				}
				if f.to != "d" {
					t.Fatalf("a sent the message to %s alone, which had acked it", f.to)
				}
				toD++
			}
			if toD == 0 || tn.counter("a", "retransmissions") != uint64(toD) {
				t.Fatalf("%d frames to d alone, %d retransmissions", toD, tn.counter("a", "retransmissions"))
			}
			tn.drop = nil
			tn.run(10*time.Millisecond, 10*time.Second, func() bool { return tn.has("d", id) && tn.unacked("a") == 0 })
		},
	}, {
		name: "retransmission to the group", members: four,
		setup: func(c *Config) { c.GroupRetransmit = true },
		check: func(t *testing.T, tn *testNet) {
			// c and d miss the group frame and say nothing; b acks. Both
			// are due at once: one frame for the group, not one each.
			tn.drop = func(from, to string, _ []byte) bool {
				return to == "c" || to == "d" || from == "c" || from == "d"
			}
			id := tn.send("a", "m")
			tn.runFor(10*time.Millisecond, 2*time.Second)
			group, alone := 0, 0
			for _, f := range tn.tape {
				if f.from != "a" || f.copy || !carries(f, id) {
					continue
				}
				if f.group {
					group++
				} else {
					alone++
				}
			}
			if group < 2 || alone != 0 || tn.counter("a", "group_retransmissions") != uint64(group-1) {
				t.Fatalf("%d group frames, %d to one member, group_retransmissions %d", group, alone, tn.counter("a", "group_retransmissions"))
			}
			tn.drop = nil
			tn.run(10*time.Millisecond, 10*time.Second, func() bool { return tn.has("c", id) && tn.has("d", id) && tn.unacked("a") == 0 })
		},
	}, {
		name: "one member due: retransmission to it alone", members: four,
		setup: func(c *Config) { c.GroupRetransmit = true },
		check: func(t *testing.T, tn *testNet) {
			tn.drop = func(from, to string, _ []byte) bool { return to == "d" || from == "d" }
			id := tn.send("a", "m")
			tn.runFor(10*time.Millisecond, 2*time.Second)
			if tn.counter("a", "group_retransmissions") != 0 || tn.counter("a", "retransmissions") == 0 {
				t.Fatalf("group_retransmissions %d, retransmissions %d", tn.counter("a", "group_retransmissions"), tn.counter("a", "retransmissions"))
			}
			tn.drop = nil
			tn.run(10*time.Millisecond, 10*time.Second, func() bool { return tn.has("d", id) && tn.unacked("a") == 0 })
		},
	}, {
		name: "off", members: []string{"a", "b", "c"},
		setup: func(c *Config) { c.Multicast = false },
		check: func(t *testing.T, tn *testNet) {
			tn.send("a", "x")
			if out := tn.flushOf("a"); len(out) != 2 || groupFrames(out) != 0 {
				t.Fatalf("multicast off: %d frames, %d for the group", len(out), groupFrames(out))
			}
			if tn.counter("a", "multicast_payloads") != 0 {
				t.Fatal("multicast_payloads counted with multicast off")
			}
		},
	}, {
		name: "two members", members: []string{"a", "b"},
		check: func(t *testing.T, tn *testNet) {
			tn.send("a", "x")
			if out := tn.flushOf("a"); len(out) != 1 || groupFrames(out) != 0 {
				t.Fatalf("a group of two: %d frames, %d for the group", len(out), groupFrames(out))
			}
		},
	}, {
		name: "interactive offers", members: four,
		setup: func(c *Config) { c.Mode = ModeInteractive },
		check: func(t *testing.T, tn *testNet) {
			tn.flushOf("a")
			id := tn.send("a", "offered")
			out := tn.flushOf("a")
			if len(out) != 1 || len(out[0].peer) != 0 {
				t.Fatalf("%d frames, %d for the group", len(out), groupFrames(out))
			}
			if got := records(t, out[0].payload); !slices.Equal(got, []wire.Type{wire.Versions, wire.Offer}) {
				t.Fatalf("records %v", got)
			}
			tn.deliverOut("a", out)
			tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("b", id) && tn.has("c", id) && tn.has("d", id) })
		},
	}, {
		name: "ephemeral", members: four,
		check: func(t *testing.T, tn *testNet) {
			tn.flushOf("a")
			id, err := tn.nodes["a"].n.send(context.Background(), testGroup, []byte("typing"), nil, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			out := tn.flushOf("a")
			if len(out) != 1 || len(out[0].peer) != 0 {
				t.Fatalf("%d frames, %d for the group", len(out), groupFrames(out))
			}
			tn.deliverOut("a", out)
			for _, name := range four[1:] {
				if !tn.has(name, id) {
					t.Fatalf("%s did not get the ephemeral message", name)
				}
			}
			if out := tn.flushOf("a"); len(out) != 0 {
				t.Fatal("the ephemeral message went again")
			}
		},
	}, {
		name: "group acks", members: four,
		setup: func(c *Config) { c.GroupAcks = true },
		check: func(t *testing.T, tn *testNet) {
			for _, name := range four {
				tn.flushOf(name)
			}
			ma, mc := tn.send("a", "from a"), tn.send("c", "from c")
			tn.deliverOut("a", tn.flushOf("a"))
			tn.deliverOut("c", tn.flushOf("c"))
			// b owes acks to a and to c: one frame for every member, each
			// id once.
			out := tn.flushOf("b")
			if len(out) != 1 || len(out[0].peer) != 0 {
				t.Fatalf("b's flush made %d frames, %d for the group", len(out), groupFrames(out))
			}
			if got := ackIDs(t, out[0].payload); len(got) != 2 || !slices.Contains(got, ma) || !slices.Contains(got, mc) {
				t.Fatalf("the group frame acks %d ids", len(got))
			}
			if tn.counter("b", "group_ack_payloads") != 1 || tn.counter("b", "acks_sent") != 2 {
				t.Fatalf("group_ack_payloads %d, acks_sent %d", tn.counter("b", "group_ack_payloads"), tn.counter("b", "acks_sent"))
			}
			tn.deliverOut("b", out)
			// a and c know b holds their message: neither sends it to b
			// again, though b says nothing more.
			for _, s := range []struct {
				name string
				id   wire.ID
			}{{"a", ma}, {"c", mc}} {
				st := tn.nodes[s.name].n.groups[string(testGroup)].byKey[string(key("b"))].status[s.id]
				if st == nil || !st.seen {
					t.Fatalf("%s did not take b's group ack", s.name)
				}
			}
			// d holds both, and b's ack of them is no drop there.
			if tn.counter("d", "dropped_unknown_ack") != 0 {
				t.Fatal("d counted b's ack of a message it holds as unknown")
			}
		},
	}, {
		name: "group acks ride on a multicast", members: four,
		setup: func(c *Config) { c.GroupAcks = true },
		check: func(t *testing.T, tn *testNet) {
			for _, name := range four {
				tn.flushOf(name)
			}
			ma := tn.send("a", "from a")
			tn.deliverOut("a", tn.flushOf("a"))
			mb := tn.send("b", "from b")
			out := tn.flushOf("b")
			if len(out) != 1 || len(out[0].peer) != 0 {
				t.Fatalf("b's flush made %d frames, %d for the group", len(out), groupFrames(out))
			}
			if got := records(t, out[0].payload); !slices.Equal(got, []wire.Type{wire.Versions, wire.Message, wire.Ack}) {
				t.Fatalf("records %v", got)
			}
			if got := ackIDs(t, out[0].payload); !slices.Equal(got, []wire.ID{ma}) {
				t.Fatal("the multicast frame does not carry b's ack")
			}
			tn.deliverOut("b", out)
			if !tn.has("a", mb) || tn.unacked("a") != 2 {
				t.Fatalf("a: unacknowledged %d, want 2 (c and d have not acked)", tn.unacked("a"))
			}
		},
	}, {
		name: "a lone ack stays per member without relaying", members: four,
		setup: func(c *Config) { c.GroupAcks, c.Relay = true, false },
		check: func(t *testing.T, tn *testNet) {
			for _, name := range four {
				tn.flushOf(name)
			}
			ma := tn.send("a", "from a")
			tn.deliverOut("a", tn.flushOf("a"))
			out := tn.flushOf("b")
			if len(out) != 1 || groupFrames(out) != 0 || tn.nameOf(out[0].peer) != "a" || !slices.Equal(ackIDs(t, out[0].payload), []wire.ID{ma}) {
				t.Fatalf("b's flush made %d frames, %d for the group; want one ack to a", len(out), groupFrames(out))
			}
		},
	}, {
		name: "a lone ack cancels relayed offers", members: four,
		setup: func(c *Config) { c.GroupAcks = true },
		check: func(t *testing.T, tn *testNet) {
			for _, name := range four {
				tn.flushOf(name)
			}
			ma := tn.send("a", "from a")
			tn.deliverOut("a", tn.flushOf("a"))
			for _, name := range four[1:] {
				out := tn.flushOf(name)
				if len(out) != 1 || len(out[0].peer) != 0 || !slices.Equal(ackIDs(t, out[0].payload), []wire.ID{ma}) {
					t.Fatalf("%s's flush made %d frames, %d for the group; want one ack for the group", name, len(out), groupFrames(out))
				}
				tn.deliverOut(name, out)
			}
			// Every member knows every other holds the message: nothing is
			// relayed, and a's message compacts.
			tn.runFor(10*time.Millisecond, 2*time.Second)
			if n := tn.counter("b", "offers_sent") + tn.counter("c", "offers_sent") + tn.counter("d", "offers_sent"); n != 0 {
				t.Fatalf("%d relayed offers after the group acks", n)
			}
		},
	}, {
		name: "acks per member by default", members: four,
		check: func(t *testing.T, tn *testNet) {
			for _, name := range four {
				tn.flushOf(name)
			}
			tn.send("a", "from a")
			tn.send("c", "from c")
			tn.deliverOut("a", tn.flushOf("a"))
			tn.deliverOut("c", tn.flushOf("c"))
			if out := tn.flushOf("b"); len(out) != 2 || groupFrames(out) != 0 {
				t.Fatalf("group_acks off: b's flush made %d frames, %d for the group; want one per author", len(out), groupFrames(out))
			}
		},
	}, {
		name: "session for the group", members: four,
		setup: func(c *Config) { c.Keepalive = time.Second },
		check: func(t *testing.T, tn *testNet) {
			// A restart, and every member sent nothing for the keepalive:
			// one VERSIONS frame for the group.
			id := tn.send("a", "x")
			tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("d", id) && tn.unacked("a") == 0 })
			tn.crash("a")
			for range 2 {
				out := tn.flushOf("a")
				if len(out) != 1 || len(out[0].peer) != 0 || !slices.Equal(records(t, out[0].payload), []wire.Type{wire.Versions}) {
					t.Fatalf("%d frames, %d for the group", len(out), groupFrames(out))
				}
				if out := tn.flushOf("a"); len(out) != 0 {
					t.Fatal("a second session at once")
				}
				tn.clk.advance(time.Second)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg()
			if tc.setup != nil {
				tc.setup(&cfg)
			}
			tc.check(t, newNet(t, cfg, tc.members...))
		})
	}
}

// carries reports whether a taped frame carries a MESSAGE with id.
func carries(f tframe, id wire.ID) bool {
	for b := f.payload; len(b) > 0; {
		r, n, err := wire.Next(b)
		if err != nil {
			return false
		}
		b = b[n:]
		if r.Type == wire.Message {
			if m, err := wire.DecodeMessage(r.Payload); err == nil && m.ID() == id {
				return true
			}
		}
	}
	return false
}

// groupTraffic runs a group of members on the test network: after the
// sessions of the start, msgs messages from members drawn at random, burst
// of them at once every gap, each frame lost with probability loss (each
// member's copy of a group frame alone), until every member has every
// message and nothing is unacknowledged. It returns the frames and bytes
// that went to the layer below after the start (a frame for the whole
// group once), per delivered message (messages × receivers).
func groupTraffic(t testing.TB, cfg Config, members, msgs, burst int, gap time.Duration, loss float64, seed uint64) (frames, bytes float64) {
	var names []string
	for i := range members {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	tn := newNetSeeded(t, cfg, seed, names...)
	tn.step() // the sessions of the start
	tn.clk.advance(10 * time.Millisecond)
	mark := len(tn.tape)
	rng := rand.New(rand.NewPCG(seed, 20))
	tn.drop = func(string, string, []byte) bool { return loss > 0 && rng.Float64() < loss }
	var ids []wire.ID
	for len(ids) < msgs {
		for range min(burst, msgs-len(ids)) {
			ids = append(ids, tn.send(names[rng.IntN(members)], fmt.Sprintf("message %d", len(ids))))
		}
		for range gap / (10 * time.Millisecond) {
			tn.step()
			tn.clk.advance(10 * time.Millisecond)
		}
	}
	tn.run(10*time.Millisecond, 10*time.Minute, func() bool {
		for _, name := range names {
			if tn.unacked(name) != 0 {
				return false
			}
			for _, id := range ids {
				if m := tn.nodes[name].n.groups[string(testGroup)].msgs[id]; !(m != nil && m.own) && !tn.has(name, id) {
					return false
				}
			}
		}
		return true
	})
	var f, b int
	for _, fr := range tn.tape[mark:] {
		if !fr.copy {
			f++
			b += len(fr.payload)
		}
	}
	delivered := float64(msgs * (members - 1))
	return float64(f) / delivered, float64(b) / delivered
}

// TestGroupTraffic measures the frames a group of 20 sends per delivered
// message (group-20's shape: messages from every member, one every 100 ms
// of the test network, or four at once every 200 ms), with per-member
// frames only and with multicast and group acks, clean and with 10% loss
// of every frame, without relaying (the mixnet stack's setting) and with
// it. With group frames the author sends a message once and each member
// acks it once, so without relaying the frames per delivered message fall
// from about 2 (one copy and one ack per member) to about 1, and acks of
// a burst go together; with relaying the group acks also cancel the
// relayed offers, which are most of the frames without them.
func TestGroupTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("20 nodes")
	}
	for _, tc := range []struct {
		name  string
		relay bool
		burst int
		gap   time.Duration
		loss  float64
		max   float64 // the most frames with group frames, as a share of those without
	}{
		{"paced", false, 1, 100 * time.Millisecond, 0, 0.6},
		{"burst", false, 4, 200 * time.Millisecond, 0, 0.6},
		{"paced/loss=10%", false, 1, 100 * time.Millisecond, 0.1, 0.7},
		{"relay/paced", true, 1, 100 * time.Millisecond, 0, 0.2},
		{"relay/paced/loss=10%", true, 1, 100 * time.Millisecond, 0.1, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testCfg()
			before.Relay, before.Multicast, before.GroupAcks = tc.relay, false, false
			after := before
			after.Multicast, after.GroupAcks = true, true
			fb, bb := groupTraffic(t, before, 20, 40, tc.burst, tc.gap, tc.loss, 1)
			fa, ba := groupTraffic(t, after, 20, 40, tc.burst, tc.gap, tc.loss, 1)
			t.Logf("frames per delivered message: %.3f per member, %.3f with group frames (%.2fx); bytes %.0f, %.0f (%.2fx)", fb, fa, fa/fb, bb, ba, ba/bb)
			if fa > tc.max*fb {
				t.Fatalf("group frames: %.3f frames per delivered message, not below %.1f of %.3f", fa, tc.max, fb)
			}
		})
	}
}
