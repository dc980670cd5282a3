package bsp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// records reads a frame's record types.
func records(t testing.TB, b []byte) []wire.Type {
	t.Helper()
	var ts []wire.Type
	for len(b) > 0 {
		r, n, err := wire.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, r.Type)
		b = b[n:]
	}
	return ts
}

// TestSendDeliver: an eager node sends its message whole at once; the
// frame is VERSIONS then MESSAGE; the receiver delivers and acks, and the
// sender's unacknowledged goes to 0.
func TestSendDeliver(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	id := tn.send("a", "hello")
	out, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	if got := records(t, out[0].payload); len(got) != 2 || got[0] != wire.Versions || got[1] != wire.Message {
		t.Fatalf("records %v", got)
	}
	tn.deliver("a", "b", out[0].payload)
	if !tn.has("b", id) || tn.nodes["b"].payloads[id] != "hello" {
		t.Fatalf("b delivered %v", tn.nodes["b"].delivered)
	}
	if tn.unacked("a") != 1 {
		t.Fatal("a's message acked before any ack")
	}
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.unacked("a") == 0 })
}

// TestRetransmissionTiming: a lost message is sent again after
// 2·latency·2^tx (Briar's expiry), timed by the injected clock, with the
// initial latency before any is observed.
func TestRetransmissionTiming(t *testing.T) {
	cfg := testCfg()
	tn := newNet(t, cfg, "a", "b")
	tn.send("a", "lost")
	a := tn.nodes["a"].n
	lat := cfg.InitialLatency
	sends := []time.Duration{0, 2 * lat, 2*lat + 4*lat, 2*lat + 4*lat + 8*lat}
	start := tn.clk.t
	for i, at := range sends {
		// Just before it is due: nothing.
		if i > 0 {
			tn.clk.t = start.Add(at - time.Millisecond)
			if out, _, _, _ := a.flush(tn.clk.ms()); len(out) != 0 {
				t.Fatalf("transmission %d sent %v early", i, at-time.Millisecond)
			}
		}
		tn.clk.t = start.Add(at)
		out, _, _, next := a.flush(tn.clk.ms())
		if len(out) != 1 {
			t.Fatalf("transmission %d at %v: %d frames", i, at, len(out))
		}
		if want := start.Add(at + 2*lat<<i).UnixMilli(); next != want {
			t.Fatalf("transmission %d: next due %d, want %d", i, next-start.UnixMilli(), want-start.UnixMilli())
		}
	}
	if a.c.retransmissions.Load() != 3 || a.c.sent.Load() != 1 {
		t.Fatalf("sent %d, retransmissions %d", a.c.sent.Load(), a.c.retransmissions.Load())
	}
}

// TestObservedLatency: the round trip of an ack sets the latency that
// the next retransmissions are timed for, within min and max latency.
func TestObservedLatency(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	tn.send("a", "m")
	a, b := tn.nodes["a"].n, tn.nodes["b"].n
	out, _, _, _ := a.flush(tn.clk.ms())
	tn.deliver("a", "b", out[0].payload)
	tn.clk.advance(30 * time.Millisecond)
	back, _, _, _ := b.flush(tn.clk.ms())
	tn.deliver("b", "a", back[0].payload)
	p := a.groups[string(testGroup)].byKey[string(key("b"))]
	if got := a.latency(p); got != 30 {
		t.Fatalf("latency %d ms, want 30", got)
	}
	p.srtt = 1
	if got := a.latency(p); got != tn.cfg.MinLatency.Milliseconds() {
		t.Fatalf("latency %d ms, want the minimum", got)
	}
}

// TestInteractive: an interactive node offers, the member requests, the
// message follows and is acked.
func TestInteractive(t *testing.T) {
	cfg := testCfg()
	cfg.Mode = ModeInteractive
	tn := newNet(t, cfg, "a", "b")
	id := tn.send("a", "offered")
	a, b := tn.nodes["a"].n, tn.nodes["b"].n
	out, _, _, _ := a.flush(tn.clk.ms())
	if got := records(t, out[0].payload); len(got) != 2 || got[1] != wire.Offer {
		t.Fatalf("records %v", got)
	}
	tn.deliver("a", "b", out[0].payload)
	req, _, _, _ := b.flush(tn.clk.ms())
	if got := records(t, req[0].payload); len(got) != 2 || got[1] != wire.Request {
		t.Fatalf("records %v", got)
	}
	tn.deliver("b", "a", req[0].payload)
	msg, _, _, _ := a.flush(tn.clk.ms())
	if got := records(t, msg[0].payload); len(got) != 2 || got[1] != wire.Message {
		t.Fatalf("records %v", got)
	}
	tn.deliver("a", "b", msg[0].payload)
	if !tn.has("b", id) {
		t.Fatal("not delivered")
	}
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.unacked("a") == 0 })
}

// TestCausal: children that arrive before their parent wait for it, and
// go up after it, in order.
func TestCausal(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	m1 := tn.send("a", "m1")
	first, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
	m2 := tn.send("a", "m2", m1)
	m3 := tn.send("a", "m3", m2)
	tn.clk.advance(time.Millisecond)
	second, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
	tn.deliver("a", "b", second[0].payload)
	if len(tn.nodes["b"].delivered) != 0 {
		t.Fatal("children delivered before their parent")
	}
	if st, _ := tn.nodes["b"].n.state(testGroup); st.pending != 2 {
		t.Fatalf("pending %d", st.pending)
	}
	tn.deliver("a", "b", first[0].payload)
	got := tn.nodes["b"].delivered
	if len(got) != 3 || got[0] != m1 || got[1] != m2 || got[2] != m3 {
		t.Fatalf("delivered %v", got)
	}
}

// TestInvalidPropagates: a message whose author is not a member is
// invalid, and so, transitively, is every message that depends on it;
// they are acked and never delivered (§2.10).
func TestInvalidPropagates(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	b := tn.nodes["b"].n
	g := b.groups[string(testGroup)]
	mk := func(author []byte, payload string, parents ...wire.ID) wire.RawMessage {
		return wire.RawMessage{Group: g.bsp, Timestamp: uint64(tn.clk.ms()), Body: encodeBody(body{author: author, parents: parents, payload: []byte(payload)})}
	}
	bad := mk(key("x"), "from an outsider")
	child := mk(key("a"), "child", bad.ID())
	grandchild := mk(key("a"), "grandchild", child.ID())
	// The descendants arrive first and wait; then the invalid root.
	frame := wire.AppendVersions(nil, 0)
	frame = wire.AppendMessage(frame, grandchild)
	frame = wire.AppendMessage(frame, child)
	tn.deliver("a", "b", frame)
	if g.pending != 2 {
		t.Fatalf("pending %d", g.pending)
	}
	tn.deliver("a", "b", wire.AppendMessage(wire.AppendVersions(nil, 0), bad))
	for _, m := range []wire.RawMessage{bad, child, grandchild} {
		if st := g.msgs[m.ID()].state; st != stInvalid {
			t.Errorf("%s: state %d", short(m.ID()), st)
		}
	}
	if g.pending != 0 || len(tn.nodes["b"].delivered) != 0 || b.c.invalid.Load() != 3 {
		t.Fatalf("pending %d, delivered %d, invalid %d", g.pending, len(tn.nodes["b"].delivered), b.c.invalid.Load())
	}
	// A child that arrives after its parent was found invalid is invalid
	// at once.
	late := mk(key("a"), "late", child.ID())
	tn.deliver("a", "b", wire.AppendMessage(wire.AppendVersions(nil, 0), late))
	if g.msgs[late.ID()].state != stInvalid {
		t.Fatal("late child not invalid")
	}
	// All four are acked to a.
	out, _, _, _ := b.flush(tn.clk.ms())
	r, _, _ := wire.Next(out[0].payload[wire.HeaderLen+1:])
	ids, _ := wire.DecodeIDs(r.Payload)
	if r.Type != wire.Ack || len(ids) != 4 {
		t.Fatalf("%v of %d ids", r.Type, len(ids))
	}
}

// TestBadInput: a record of another protocol version ends the frame's
// session; a record of an unknown type is skipped and the next one read;
// a MESSAGE of another group, a flood of offers beyond max_offered and
// requests for unknown ids are dropped and counted.
func TestBadInput(t *testing.T) {
	cfg := testCfg()
	cfg.MaxOffered = 3
	tn := newNet(t, cfg, "a", "b")
	b := tn.nodes["b"].n
	g := b.groups[string(testGroup)]
	msg := wire.RawMessage{Group: g.bsp, Timestamp: uint64(tn.clk.ms()), Body: encodeBody(body{author: key("a"), payload: []byte("x")})}

	// Version 1 before a MESSAGE: the MESSAGE is not read.
	frame := append(wire.AppendVersions(nil, 0), 1, byte(wire.Ack), 0, 32)
	frame = append(frame, make([]byte, 32)...)
	frame = wire.AppendMessage(frame, msg)
	tn.deliver("a", "b", frame)
	if b.c.version.Load() != 1 || len(tn.nodes["b"].delivered) != 0 {
		t.Fatalf("version drops %d, delivered %d", b.c.version.Load(), len(tn.nodes["b"].delivered))
	}
	// An unknown type, then the MESSAGE: skipped, then read.
	frame = append(wire.AppendVersions(nil, 0), 0, 77, 0, 3, 'n', 'e', 'w')
	frame = wire.AppendMessage(frame, msg)
	tn.deliver("a", "b", frame)
	if b.c.skipped.Load() != 1 || !tn.has("b", msg.ID()) {
		t.Fatalf("skipped %d, delivered %v", b.c.skipped.Load(), tn.nodes["b"].delivered)
	}
	// A bad record ends the session: the REQUEST after it is not read.
	frame = wire.AppendHeader(wire.AppendVersions(nil, 0), wire.Ack, 31)
	frame = append(frame, make([]byte, 31)...)
	frame = wire.AppendIDs(frame, wire.Request, []wire.ID{{1}})
	tn.deliver("a", "b", frame)
	if b.c.malformed.Load() != 1 || b.c.requests.Load() != 0 {
		t.Fatalf("malformed %d, requests %d", b.c.malformed.Load(), b.c.requests.Load())
	}
	// Another group's message.
	other := msg
	other.Group = wire.ID{9}
	tn.deliver("a", "b", wire.AppendMessage(nil, other))
	if b.c.wrongGroup.Load() != 1 {
		t.Fatal("wrong group not counted")
	}
	// Offers: 5 unknown ids, 3 kept.
	tn.deliver("a", "b", wire.AppendIDs(nil, wire.Offer, []wire.ID{{1}, {2}, {3}, {4}, {5}}))
	if p := g.byKey[string(key("a"))]; len(p.offered) != 3 || b.c.offerFlood.Load() != 2 {
		t.Fatalf("offered %d, flood %d", len(p.offered), b.c.offerFlood.Load())
	}
	// Requests of unknown ids.
	tn.deliver("a", "b", wire.AppendIDs(nil, wire.Request, []wire.ID{{7}, {8}}))
	if b.c.unknownReq.Load() != 2 {
		t.Fatal("unknown requests not counted")
	}
	// A frame from a non-member, and one above max_frame.
	if _, err := b.receive(context.Background(), []inbound{{group: testGroup, from: key("x"), payload: wire.AppendMessage(nil, msg)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.receive(context.Background(), []inbound{{group: testGroup, from: key("a"), payload: make([]byte, cfg.MaxFrame+1)}}, nil); err != nil {
		t.Fatal(err)
	}
	if b.c.nonMember.Load() != 1 || b.c.oversize.Load() != 1 {
		t.Fatalf("non-member %d, oversize %d", b.c.nonMember.Load(), b.c.oversize.Load())
	}
}

// TestOfferedIDMustMatch: an offered id is satisfied only by a message
// whose content hashes to it; a message sent in answer with other
// content is taken as the message it is, and the offered id stays
// wanted.
func TestOfferedIDMustMatch(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	b := tn.nodes["b"].n
	g := b.groups[string(testGroup)]
	real := wire.RawMessage{Group: g.bsp, Timestamp: uint64(tn.clk.ms()), Body: encodeBody(body{author: key("a"), payload: []byte("real")})}
	fake := real
	fake.Body = encodeBody(body{author: key("a"), payload: []byte("fake")})
	tn.deliver("a", "b", wire.AppendIDs(nil, wire.Offer, []wire.ID{real.ID()}))
	tn.deliver("a", "b", wire.AppendMessage(nil, fake))
	if tn.has("b", real.ID()) || !tn.has("b", fake.ID()) {
		t.Fatal("fake taken for the offered id")
	}
	if _, ok := g.byKey[string(key("a"))].offered[real.ID()]; !ok {
		t.Fatal("offered id forgotten")
	}
}

// TestGapRepair: c gets m2 from its author a, but not its parent m1; a
// goes offline for good. With relaying off, nobody offers m1 to c; c
// asks the members for it and b, which has it, sends it: both are
// delivered.
func TestGapRepair(t *testing.T) {
	cfg := testCfg()
	cfg.Relay = false
	tn := newNet(t, cfg, "a", "b", "c")
	tn.drop = func(from, to string, _ []byte) bool { return from == "a" && to == "c" }
	m1 := tn.send("a", "m1")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", m1) })
	m2 := tn.send("a", "m2", m1)
	// Only m2 reaches c, in a frame of its own, then a is gone.
	ga := tn.nodes["a"].n.groups[string(testGroup)]
	rm := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[m2].ts, Body: ga.msgs[m2].raw}
	tn.deliver("a", "c", wire.AppendMessage(wire.AppendVersions(nil, 0), rm))
	tn.nodes["a"].offline = true
	tn.drop = nil
	if tn.has("c", m2) {
		t.Fatal("m2 delivered before m1")
	}
	tn.run(50*time.Millisecond, 30*time.Second, func() bool { return tn.has("c", m1, m2) })
	c := tn.nodes["c"].n
	if c.c.repairsSent.Load() == 0 || c.c.repaired.Load() != 1 {
		t.Fatalf("repair requests %d, repaired %d", c.c.repairsSent.Load(), c.c.repaired.Load())
	}
	if d := tn.nodes["c"].delivered; d[0] != m1 || d[1] != m2 {
		t.Fatal("out of order")
	}
}

// TestRestart: a node that crashes after Send resends after restart; a
// receiver that crashes before the host acked delivers again, once.
func TestRestart(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	tn.nodes["b"].offline = true
	id := tn.send("a", "survives")
	tn.crash("a")
	if tn.unacked("a") != 1 {
		t.Fatal("lost at restart")
	}
	tn.nodes["b"].offline = false
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", id) && tn.unacked("a") == 0 })

	// b takes a message but its host does not ack it before a crash.
	id2 := tn.send("a", "unacked")
	out, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
	b := tn.nodes["b"]
	ds, err := b.n.receive(context.Background(), []inbound{{group: testGroup, from: key("a"), payload: out[0].payload}}, nil)
	if err != nil || len(ds) != 1 || ds[0].id != id2 {
		t.Fatalf("%v %v", ds, err)
	}
	tn.crash("b") // reopening delivers it again (testNet.open) and acks it
	if !tn.has("b", id2) {
		t.Fatal("not delivered again")
	}
	tn.crash("b")
	if n := len(tn.nodes["b"].delivered); n != 2 {
		t.Fatalf("%d deliveries", n)
	}
}

// TestCompaction: once every member has a message and the host acked it,
// it leaves the sync state; a replay of every frame delivers nothing
// again, and a later child of a compacted message is delivered.
func TestCompaction(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b", "c")
	var ids []wire.ID
	for i := range 20 {
		ids = append(ids, tn.send("a", string(rune('A'+i))))
	}
	tn.run(10*time.Millisecond, 10*time.Second, func() bool {
		for _, name := range tn.names {
			g := tn.nodes[name].n.groups[string(testGroup)]
			for _, id := range ids {
				if m := g.msgs[id]; m == nil || m.state != stCompacted {
					return false
				}
			}
		}
		return true
	})
	for _, name := range tn.names {
		nd := tn.nodes[name].n
		for _, p := range nd.groups[string(testGroup)].peers {
			if len(p.status) != 0 {
				t.Errorf("%s keeps %d statuses", name, len(p.status))
			}
		}
	}
	for _, f := range tn.tape {
		tn.deliver(f.from, f.to, f.payload) // take fails on a second delivery
	}
	child := tn.send("b", "child", ids[19])
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("a", child) && tn.has("c", child) })
	// Compacted state survives a restart.
	tn.crash("c")
	if m := tn.nodes["c"].n.groups[string(testGroup)].msgs[ids[0]]; m == nil || m.state != stCompacted {
		t.Fatal("compaction lost at restart")
	}
}

// TestGroupCommit: concurrent Sends share commits.
func TestGroupCommit(t *testing.T) {
	cfg := testCfg()
	cfg.Durability = DurabilityFull
	tn := newNet(t, cfg, "a", "b")
	a := tn.nodes["a"].n
	before := a.c.commits.Load()
	const senders, each = 16, 8
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := a.send(context.Background(), testGroup, []byte{byte(i), byte(j)}, nil, false, 0); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	commits := a.c.commits.Load() - before
	if commits >= senders*each {
		t.Fatalf("%d commits for %d sends", commits, senders*each)
	}
	t.Logf("%d sends in %d commits", senders*each, commits)
	tn.crash("a")
	if st, _ := tn.nodes["a"].n.state(testGroup); st.messages != senders*each {
		t.Fatalf("%d messages after restart", st.messages)
	}
}

// TestHistoryWindow: with a history window, a member who joins is not
// sent messages older than it, and a message older than it is acked and
// refused.
func TestHistoryWindow(t *testing.T) {
	cfg := testCfg()
	cfg.History = time.Minute
	tn := newNet(t, cfg, "a", "b")
	old := tn.send("a", "old")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", old) })
	g := tn.nodes["a"].n.groups[string(testGroup)]
	oldRaw := wire.RawMessage{Group: g.bsp, Timestamp: g.msgs[old].ts}
	if b := g.msgs[old].raw; b != nil {
		oldRaw.Body = bytes.Clone(b)
	} else {
		oldRaw.Body = encodeBody(body{author: key("a"), payload: []byte("old")})
	}
	if oldRaw.ID() != old {
		t.Fatal("rebuilt the wrong message")
	}
	tn.clk.advance(2 * time.Minute)
	recent := tn.send("a", "recent")
	// c joins.
	tn.names = append(tn.names, "c")
	c := &tnode{name: "c", dir: t.TempDir(), payloads: map[wire.ID]string{}, acked: map[wire.ID]bool{}}
	tn.nodes["c"] = c
	tn.open(c)
	for _, name := range []string{"a", "b"} {
		if err := tn.nodes[name].n.setGroup(context.Background(), testGroup, tn.members()); err != nil {
			t.Fatal(err)
		}
	}
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("c", recent) })
	if tn.has("c", old) {
		t.Fatal("c got a message beyond the history window")
	}
	// a and b forgot it: the state is bounded by the window.
	for _, name := range []string{"a", "b"} {
		if nd := tn.nodes[name].n; nd.groups[string(testGroup)].msgs[old] != nil || nd.c.forgotten.Load() == 0 {
			t.Errorf("%s still holds the old message", name)
		}
	}
	// A copy of the old one sent to c is refused as too old.
	tn.deliver("a", "c", wire.AppendMessage(nil, oldRaw))
	if tn.has("c", old) || c.n.c.tooOld.Load() != 1 {
		t.Fatal("old message taken")
	}
	// A child of the forgotten message reaches c, which cannot get the
	// parent from anyone: after the repair rounds it counts as beyond the
	// history window, and the child is delivered.
	child := tn.send("b", "child of old", old)
	tn.run(100*time.Millisecond, 5*time.Minute, func() bool { return tn.has("c", child) })
	if c.n.c.beyondHistory.Load() != 1 {
		t.Fatal("not delivered by the cut-off rule")
	}
}

// TestComeBack: a member that restarts opens a session with every member
// at once (VERSIONS alone), and what they held for it on a long backoff
// comes due at once.
func TestComeBack(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	before := tn.send("b", "before")
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("a", before) && tn.unacked("b") == 0 })
	tn.nodes["b"].offline = true
	id := tn.send("a", "while b was away")
	for range 8 { // a's backoff for b grows to the 10 s cap; 40 s: longer than the keepalive (silence)
		tn.clk.advance(5 * time.Second)
		tn.step()
	}
	a := tn.nodes["a"].n
	st := a.groups[string(testGroup)].byKey[string(key("b"))].status[id]
	if st.expiry-tn.clk.ms() < 2000 {
		t.Fatalf("backoff only %d ms", st.expiry-tn.clk.ms())
	}
	tn.nodes["b"].offline = false
	tn.crash("b")
	out, _, _, _ := tn.nodes["b"].n.flush(tn.clk.ms())
	if len(out) != 1 || len(out[0].payload) != wire.HeaderLen+1 {
		t.Fatalf("b's first flush: %d frames", len(out))
	}
	tn.deliver("b", "a", out[0].payload)
	if a.c.onlineResets.Load() != 1 {
		t.Fatal("a did not make b's record due")
	}
	tn.step()
	if !tn.has("b", id) {
		t.Fatal("not sent at once")
	}
}

// TestSilenceIsNotAbsence: a member that says nothing for less than the
// keepalive (plus four latencies) is not taken as back when it speaks: on
// a slow path (a mixnet) that is every frame, and each would send again
// everything waiting for it.
func TestSilenceIsNotAbsence(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	before := tn.send("b", "before")
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("a", before) && tn.unacked("b") == 0 })
	a := tn.nodes["a"].n
	resets := a.c.onlineResets.Load()
	// b's frames to a are lost for 20 s (its acks among them), well
	// beyond four latencies, within the keepalive.
	tn.drop = func(from, _ string, _ []byte) bool { return from == "b" }
	id := tn.send("a", "m")
	tn.runFor(100*time.Millisecond, 20*time.Second)
	tn.drop = nil
	tn.run(10*time.Millisecond, time.Minute, func() bool { return tn.unacked("a") == 0 })
	if !tn.has("b", id) {
		t.Fatal("not delivered")
	}
	if got := a.c.onlineResets.Load() - resets; got != 0 {
		t.Fatalf("%d records made due as if b had been away", got)
	}
}

// TestComeBackAcrossGroups: a member heard from in one group after a
// silence gets what waits for it in the others at once.
func TestComeBackAcrossGroups(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	a := tn.nodes["a"].n
	other := []byte("other group")
	if err := a.setGroup(t.Context(), other, tn.members()); err != nil {
		t.Fatal(err)
	}
	tn.nodes["b"].n.hello = false
	tn.step()
	id, err := a.send(t.Context(), other, []byte("in the other group"), nil, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		tn.clk.advance(5 * time.Second)
		a.flush(tn.clk.ms()) // lost: b's copy in the other group never leaves a
	}
	st := a.groups[string(other)].byKey[string(key("b"))].status[id]
	if st.expiry-tn.clk.ms() < 2000 {
		t.Fatalf("backoff only %d ms", st.expiry-tn.clk.ms())
	}
	// b says something in testGroup only.
	tn.send("b", "hello in the test group")
	out, _, _, _ := tn.nodes["b"].n.flush(tn.clk.ms())
	tn.deliver("b", "a", out[0].payload)
	if st.expiry != tn.clk.ms() {
		t.Fatal("the other group's record is not due")
	}
}

// TestFirstFrameInGroup: a member's first frame in a group makes what
// waits for it there due at once, though it was heard in another group
// just before (its secure layer may only now have joined this group).
func TestFirstFrameInGroup(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	a, b := tn.nodes["a"].n, tn.nodes["b"].n
	other := []byte("other group")
	for _, nd := range []*node{a, b} {
		if err := nd.setGroup(t.Context(), other, tn.members()); err != nil {
			t.Fatal(err)
		}
	}
	before := tn.send("b", "in the test group")
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("a", before) && tn.unacked("b") == 0 })
	id, err := a.send(t.Context(), other, []byte("in the other group"), nil, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		tn.clk.advance(time.Second)
		a.flush(tn.clk.ms()) // lost: b cannot take the other group's frames yet
	}
	st := a.groups[string(other)].byKey[string(key("b"))].status[id]
	if st.expiry <= tn.clk.ms() {
		t.Fatal("the record is not waiting on a backoff")
	}
	// b says something in the test group (heard, not a return), then its
	// first frame in the other group.
	tn.send("b", "again in the test group")
	out, _, _, _ := b.flush(tn.clk.ms())
	tn.deliverOut("b", out)
	if st.expiry == tn.clk.ms() {
		t.Fatal("a frame in the test group made the other group's record due")
	}
	if _, err := b.send(t.Context(), other, []byte("b in the other group"), nil, false, 0); err != nil {
		t.Fatal(err)
	}
	out, _, _, _ = b.flush(tn.clk.ms())
	for _, o := range out {
		if string(o.group) == string(other) {
			tn.deliverIn("b", "a", other, o.payload)
		}
	}
	if st.expiry != tn.clk.ms() {
		t.Fatal("b's first frame in the other group did not make the record due")
	}
}

// TestKeepalive: a member sent nothing for keepalive gets a VERSIONS
// frame; one sent something recently does not.
func TestKeepalive(t *testing.T) {
	cfg := testCfg()
	cfg.Keepalive = 30 * time.Second
	tn := newNet(t, cfg, "a", "b")
	a := tn.nodes["a"].n
	id := tn.send("a", "m")
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("b", id) && tn.unacked("a") == 0 })
	last := a.lastSent[string(key("b"))]
	_, _, _, next := a.flush(tn.clk.ms())
	if next != last+30_000 {
		t.Fatalf("next in %d ms, want the keepalive's 30 s after the last frame", next-last)
	}
	tn.clk.advance(time.Duration(last+29_000-tn.clk.ms()) * time.Millisecond)
	if out, _, _, _ := a.flush(tn.clk.ms()); len(out) != 0 {
		t.Fatal("keepalive before its time")
	}
	tn.clk.advance(time.Second)
	out, _, _, _ := a.flush(tn.clk.ms())
	if len(out) != 1 || len(out[0].payload) != wire.HeaderLen+1 {
		t.Fatalf("%d frames", len(out))
	}
}

// TestSessionOnJoin: when a member joins a group that holds messages,
// the next flush opens a session with every member of it, not only the
// new one (per member, without multicast).
func TestSessionOnJoin(t *testing.T) {
	cfg := testCfg()
	cfg.Multicast = false
	tn := newNet(t, cfg, "a", "b")
	a := tn.nodes["a"].n
	id := tn.send("a", "m")
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("b", id) && tn.unacked("a") == 0 })
	if out, _, _, _ := a.flush(tn.clk.ms()); len(out) != 0 {
		t.Fatalf("%d frames before anyone joined", len(out))
	}
	if err := a.setGroup(t.Context(), testGroup, [][]byte{key("a"), key("b"), key("c")}); err != nil {
		t.Fatal(err)
	}
	to := map[string]bool{}
	out, _, _, _ := a.flush(tn.clk.ms())
	for _, o := range out {
		to[string(o.peer)] = true
	}
	if !to[string(key("b"))] || !to[string(key("c"))] {
		t.Fatalf("frames to %v after c joined, want b and c", to)
	}
}

// TestAckDelay: with ack_delay an ack owed for a message waits that long
// for other records to its member, and goes at once with one (here b's own
// message); without, it goes at the next flush.
func TestAckDelay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"off", 0}, {"1s", time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg()
			cfg.AckDelay = tc.delay
			tn := newNet(t, cfg, "a", "b")
			b := tn.nodes["b"].n
			b.flush(tn.clk.ms()) // its start: nothing to open a session for
			id := tn.send("a", "m")
			out, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
			tn.deliverOut("a", out)
			if !tn.has("b", id) {
				t.Fatal("not delivered")
			}
			got, _, _, _ := b.flush(tn.clk.ms())
			if tc.delay == 0 {
				if len(got) != 1 || !slices.Equal(ackIDs(t, got[0].payload), []wire.ID{id}) {
					t.Fatalf("%d frames at once, want the ack", len(got))
				}
				return
			}
			if len(got) != 0 {
				t.Fatalf("%d frames at once, want the ack held", len(got))
			}
			tn.clk.advance(tc.delay / 2)
			if got, _, _, _ := b.flush(tn.clk.ms()); len(got) != 0 {
				t.Fatal("the ack went before its delay")
			}
			// b's own message takes the ack along at once.
			mine := tn.send("b", "mine")
			got, _, _, _ = b.flush(tn.clk.ms())
			if len(got) != 1 || !slices.Equal(ackIDs(t, got[0].payload), []wire.ID{id}) || !carries(tframe{payload: got[0].payload}, mine) {
				t.Fatalf("%d frames with b's message, want one carrying it and the ack", len(got))
			}
			// A second ack waits out the delay, then goes alone.
			id2 := tn.send("a", "m2")
			out, _, _, _ = tn.nodes["a"].n.flush(tn.clk.ms())
			tn.deliverOut("a", out)
			b.flush(tn.clk.ms())
			tn.clk.advance(tc.delay)
			got, _, _, _ = b.flush(tn.clk.ms())
			if len(got) != 1 || !slices.Contains(ackIDs(t, got[0].payload), id2) {
				t.Fatalf("%d frames after the delay, want the ack; acks %d", len(got), len(ackIDs(t, got[0].payload)))
			}
		})
	}
}

// TestSessionsWhereMessagesAre: session frames (VERSIONS alone, at start
// and for the keepalive) go only in conversations that hold messages, and
// one per member however many such conversations it shares: a conversation
// never used (a contact's 1:1 conversation, say) costs the layers below
// nothing.
func TestSessionsWhereMessagesAre(t *testing.T) {
	cfg := testCfg()
	cfg.Keepalive = 30 * time.Second
	tn := newNet(t, cfg, "a", "b")
	a := tn.nodes["a"].n
	unused, other := []byte("never used"), []byte("other used")
	for _, g := range [][]byte{unused, other} {
		for _, name := range []string{"a", "b"} {
			if err := tn.nodes[name].n.setGroup(t.Context(), g, tn.members()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, _, _, next := a.flush(tn.clk.ms()); len(out) != 0 || next != 0 {
		t.Fatalf("a fresh node made %d frames, next at %d", len(out), next)
	}
	tn.clk.advance(time.Minute)
	if out, _, _, _ := a.flush(tn.clk.ms()); len(out) != 0 {
		t.Fatalf("a keepalive in conversations without messages: %d frames", len(out))
	}
	id := tn.send("a", "in the test group")
	id2, err := a.send(t.Context(), other, []byte("in the other"), nil, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	tn.run(10*time.Millisecond, time.Second, func() bool { return tn.has("b", id, id2) && tn.unacked("a") == 0 })
	for _, f := range tn.tape {
		if string(f.gid) == string(unused) {
			t.Fatal("a frame in the unused conversation")
		}
	}
	// A restart: one session frame to b, in one of the two used
	// conversations; the same at the keepalive.
	tn.crash("a")
	a = tn.nodes["a"].n
	for _, when := range []string{"restart", "keepalive"} {
		out, _, _, _ := a.flush(tn.clk.ms())
		if len(out) != 1 || len(out[0].payload) != wire.HeaderLen+1 || string(out[0].group) == string(unused) {
			t.Fatalf("%s: %d frames", when, len(out))
		}
		tn.clk.advance(30 * time.Second)
	}
}

// TestSendBatch: a batch is taken all or none: a bad parent in its fourth
// message leaves nothing of it behind and commits nothing; a good batch is
// one commit, and what it took survives a crash and reaches the other
// member.
func TestSendBatch(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	a := tn.nodes["a"].n
	ctx := context.Background()
	commits := a.c.commits.Load()
	bogus := make([]byte, wire.IDLen)
	bad := []outgoing{
		{group: testGroup, payload: []byte("b0")},
		{group: testGroup, payload: []byte("b1")},
		{group: testGroup, payload: []byte("b2")},
		{group: testGroup, payload: []byte("b3"), parents: [][]byte{bogus}},
		{group: testGroup, payload: []byte("b4")},
	}
	if _, err := a.sendBatch(ctx, bad); !errors.Is(err, errInvalid) {
		t.Fatalf("a batch with an unknown parent: %v, want errInvalid", err)
	}
	if n := len(a.groups[string(testGroup)].msgs); n != 0 {
		t.Fatalf("a refused batch left %d messages behind", n)
	}
	if a.c.commits.Load() != commits {
		t.Fatal("a refused batch was committed")
	}
	if _, err := a.sendBatch(ctx, []outgoing{{group: []byte("nope"), payload: []byte("x")}}); !errors.Is(err, errNoGroup) {
		t.Fatalf("a batch to an unknown group: %v, want errNoGroup", err)
	}

	batch := make([]outgoing, 20)
	for i := range batch {
		batch[i] = outgoing{group: testGroup, payload: fmt.Appendf(nil, "g%d", i)}
	}
	ids, err := a.sendBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.c.commits.Load() - commits; got != 1 {
		t.Fatalf("a batch of %d took %d commits, want 1", len(batch), got)
	}
	tn.crash("a")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", ids...) })
	if !tn.has("b", ids...) {
		t.Fatalf("b has %d of %d messages", len(tn.nodes["b"].delivered), len(ids))
	}
}

// TestSendBatchParentInBatch: a message may name an earlier message of its
// own batch as a parent; it is delivered after it.
func TestSendBatchParentInBatch(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	a := tn.nodes["a"].n
	ctx := context.Background()
	// The test clock stands still between the calls, so the id the
	// batch's first message will get is known: its timestamp is the next
	// one after the last.
	raw := encodeBody(body{author: a.self, payload: []byte("p0")})
	first := wire.RawMessage{Group: a.groups[string(testGroup)].bsp, Timestamp: max(uint64(tn.clk.ms()), a.lastTS+1), Body: raw}.ID()
	got, err := a.sendBatch(ctx, []outgoing{
		{group: testGroup, payload: []byte("p0")},
		{group: testGroup, payload: []byte("p1"), parents: [][]byte{first[:]}},
	})
	if err != nil {
		t.Fatalf("a parent earlier in the batch: %v", err)
	}
	if got[0] != first {
		t.Fatalf("the first message's id is %x, want %x", got[0][:4], first[:4])
	}
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", got...) })
	if !tn.has("b", got...) {
		t.Fatal("b did not get the batch")
	}
	// A parent later in the batch is not a parent yet: refused.
	raw = encodeBody(body{author: a.self, payload: []byte("q1")})
	later := wire.RawMessage{Group: a.groups[string(testGroup)].bsp, Timestamp: a.lastTS + 2, Body: raw}.ID()
	if _, err := a.sendBatch(ctx, []outgoing{
		{group: testGroup, payload: []byte("q0"), parents: [][]byte{later[:]}},
		{group: testGroup, payload: []byte("q1")},
	}); !errors.Is(err, errInvalid) {
		t.Fatalf("a parent later in the batch: %v, want errInvalid", err)
	}
}
