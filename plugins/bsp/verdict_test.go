package bsp

import (
	"bytes"
	"slices"
	"testing"
	"time"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// runFor steps for d, advancing the clock by dt each time.
func (tn *testNet) runFor(dt, d time.Duration) {
	tn.t.Helper()
	for end := tn.clk.t.Add(d); tn.clk.t.Before(end); tn.clk.advance(dt) {
		tn.step()
	}
}

// sentTo reports whether a frame from → to on the tape carried id (in a
// record of any kind, or as a parent in a body).
func (tn *testNet) sentTo(from, to string, id wire.ID) bool {
	for _, f := range tn.tape {
		if f.from == from && f.to == to && bytes.Contains(f.payload, id[:]) {
			return true
		}
	}
	return false
}

// TestHostReject: b's host rejects a's m1 as it is delivered. b never
// passes m1 on to c (which hears nothing from a directly), a child of m1
// is invalid at b and never delivered there, an accepted message is
// relayed to c as usual, and a copy of m1 that comes again is acked and
// not delivered. Then a rejection after a child was delivered makes the
// child invalid too: b stops passing it on.
func TestHostReject(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b", "c")
	tn.drop = func(from, to string, _ []byte) bool { return from == "a" && to == "c" }
	b := tn.nodes["b"]
	var bad wire.ID
	b.verdict = func(d delivery) (string, []wire.ID) {
		if d.id == bad {
			return "forged", nil
		}
		return "", nil
	}
	bad = tn.send("a", "m1")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", bad) })
	child := tn.send("a", "m2", bad)
	good := tn.send("a", "m3")
	tn.run(10*time.Millisecond, 10*time.Second, func() bool { return tn.has("c", good) })
	tn.runFor(100*time.Millisecond, 5*time.Second)
	if tn.has("c", bad) || tn.sentTo("b", "c", bad) {
		t.Fatal("b passed on the message its host rejected")
	}
	if tn.has("b", child) || tn.has("c", child) {
		t.Fatal("a child of a rejected message was delivered")
	}
	gb := b.n.groups[string(testGroup)]
	if st := gb.msgs[child].state; st != stInvalid {
		t.Fatalf("child in state %d at b, want invalid", st)
	}
	if gb.msgs[bad].state != stInvalid || gb.msgs[bad].raw != nil {
		t.Fatal("the rejected message is not invalid at b")
	}
	if got := b.n.c.hostRejected.Load(); got != 1 {
		t.Fatalf("host_rejected %d, want 1", got)
	}
	if st, _ := b.n.state(testGroup); st.pending != 0 {
		t.Fatalf("b pending %d", st.pending)
	}
	// A copy of m1 again: acknowledged, not delivered.
	ga := tn.nodes["a"].n.groups[string(testGroup)]
	rm := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[bad].ts, Body: ga.msgs[bad].raw}
	n := len(b.delivered)
	tn.deliver("a", "b", wire.AppendMessage(wire.AppendVersions(nil, 0), rm))
	if len(b.delivered) != n {
		t.Fatal("a rejected message delivered again")
	}

	// A rejection that comes after a child was delivered.
	b.holdAcks = true
	p := tn.send("a", "p")
	q := tn.send("a", "q", p)
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", p, q) })
	tn.hostAck("b", []wire.ID{q}, []wire.ID{p})
	for _, id := range []wire.ID{p, q} {
		if st := gb.msgs[id].state; st != stInvalid {
			t.Fatalf("%s in state %d at b after the rejection, want invalid", short(id), st)
		}
		for _, peer := range gb.peers {
			if peer.status[id] != nil {
				t.Fatalf("b still has a status of %s for a member", short(id))
			}
		}
	}
	mark := len(tn.tape)
	tn.runFor(100*time.Millisecond, 5*time.Second)
	for _, f := range tn.tape[mark:] {
		if f.from == "b" && f.to == "c" && (bytes.Contains(f.payload, p[:]) || bytes.Contains(f.payload, q[:])) {
			t.Fatal("b passed on a message after its host rejected it (or its parent)")
		}
	}
}

// TestHostDefer: b's host defers a's m1 until c's m2, which b has not got
// (c's frames to b are lost) but a has. m1 goes back to pending at b and
// is not passed on; b repairs m2 from a, which sent the deferred message;
// then m1 is delivered again and accepted. The deferral survives a crash.
// A deferral to an invalid message makes the message invalid.
func TestHostDefer(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b", "c")
	tn.drop = func(from, to string, _ []byte) bool { return (from == "c" || from == "a") && to == "b" }
	m2 := tn.send("c", "m2")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("a", m2) })
	b := tn.nodes["b"]
	var m1 wire.ID
	deferred := 0
	b.verdict = func(d delivery) (string, []wire.ID) {
		if d.id == m1 && !tn.has("b", m2) {
			deferred++
			return "", []wire.ID{m2}
		}
		return "", nil
	}
	m1 = tn.send("a", "m1")
	// Only m1 reaches b, in a frame of its own.
	ga := tn.nodes["a"].n.groups[string(testGroup)]
	rm := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[m1].ts, Body: ga.msgs[m1].raw}
	tn.deliver("a", "b", wire.AppendMessage(wire.AppendVersions(nil, 0), rm))
	if deferred != 1 {
		t.Fatalf("deferred %d times", deferred)
	}
	gb := b.n.groups[string(testGroup)]
	if st := gb.msgs[m1].state; st != stPending {
		t.Fatalf("m1 in state %d at b, want pending", st)
	}
	tn.crash("b")
	gb = b.n.groups[string(testGroup)]
	if st := gb.msgs[m1].state; st != stPending || len(gb.msgs[m1].waits) != 1 {
		t.Fatalf("after a crash m1 is in state %d waiting for %d, want pending on m2", st, len(gb.msgs[m1].waits))
	}
	if len(b.n.unackedDeliveries()) != 0 {
		t.Fatal("a deferred message is delivered again at a start")
	}
	tn.drop = func(from, to string, _ []byte) bool { return from == "c" && to == "b" }
	tn.run(10*time.Millisecond, 10*time.Second, func() bool { return b.acked[m1] })
	i, j := slices.Index(b.delivered, m2), slices.Index(b.delivered, m1)
	if i < 0 || j < 0 {
		t.Fatalf("b delivered %v; want m2 then m1 again", b.delivered)
	}
	if b.n.c.repairsSent.Load() == 0 || deferred != 1 {
		t.Fatalf("repair requests %d, deferrals %d", b.n.c.repairsSent.Load(), deferred)
	}

	// A deferral to a message that is invalid here.
	b.verdict = func(d delivery) (string, []wire.ID) { return "forged", nil }
	x := tn.send("a", "x")
	tn.drop = nil
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", x) })
	b.verdict = nil
	b.holdAcks = true
	y := tn.send("a", "y")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", y) })
	v := verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{y: {x}}}
	if ds, err := b.n.hostAck(t.Context(), testGroup, nil, v); err != nil || len(ds) != 0 {
		t.Fatalf("%v %v", ds, err)
	}
	if st := gb.msgs[y].state; st != stInvalid {
		t.Fatalf("a message deferred to an invalid one is in state %d, want invalid", st)
	}

	// A deferral to the message's own child, which comes later: a cycle.
	// Both are invalid when the child comes, and nothing stays pending.
	tn.drop = func(from, to string, _ []byte) bool { return to == "b" }
	p := tn.send("a", "p")
	c := tn.send("a", "c", p)
	tn.drop = nil
	rp := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[p].ts, Body: ga.msgs[p].raw}
	tn.deliver("a", "b", wire.AppendMessage(wire.AppendVersions(nil, 0), rp))
	if !tn.has("b", p) {
		t.Fatal("p not delivered")
	}
	v = verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{p: {c}}}
	if _, err := b.n.hostAck(t.Context(), testGroup, nil, v); err != nil {
		t.Fatal(err)
	}
	if st := gb.msgs[p].state; st != stPending {
		t.Fatalf("p in state %d, want pending on its child", st)
	}
	b.holdAcks = false
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return gb.msgs[c] != nil })
	if gb.msgs[p].state != stInvalid || gb.msgs[c].state != stInvalid || gb.pending != 0 {
		t.Fatalf("after the cycle closed: p %d, c %d, %d pending", gb.msgs[p].state, gb.msgs[c].state, gb.pending)
	}
	// A deferral to a message delivered already is met at once: the
	// message is delivered again.
	q := tn.send("a", "q")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", q) })
	b.holdAcks = true
	r := tn.send("a", "r")
	tn.run(10*time.Millisecond, 5*time.Second, func() bool { return tn.has("b", r) })
	v = verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{r: {q}}}
	if _, err := b.n.hostAck(t.Context(), testGroup, nil, v); err != nil {
		t.Fatal(err)
	}
	if st := gb.msgs[r].state; st != stDelivered {
		t.Fatalf("r deferred to a delivered message: state %d, want delivered again", st)
	}
}

// TestDecodeVerdicts: what an Ack's verdicts name that no message could
// be is ignored and counted, not an error that would cost the host the
// rest of its Ack.
func TestDecodeVerdicts(t *testing.T) {
	id := func(b byte) []byte { return bytes.Repeat([]byte{b}, wire.IDLen) }
	many := make([][]byte, syncv1.MaxDeferralDependencies+1)
	for i := range many {
		many[i] = id(byte(i + 10))
	}
	tests := []struct {
		name               string
		req                *syncv1.AckRequest
		rejected, deferred int
		deps               int // of the deferral of id(1), if any
		ignored            uint64
	}{
		{"nothing", &syncv1.AckRequest{}, 0, 0, 0, 0},
		{"a rejection", &syncv1.AckRequest{Rejected: []*syncv1.Rejection{{MessageId: id(1), Reason: "r"}}}, 1, 0, 0, 0},
		{"a short rejected id", &syncv1.AckRequest{Rejected: []*syncv1.Rejection{{MessageId: []byte{1}}}}, 0, 0, 0, 1},
		{"a deferral", &syncv1.AckRequest{Deferred: []*syncv1.Deferral{{MessageId: id(1), Dependencies: [][]byte{id(2), id(2), id(1), id(3)}}}}, 0, 1, 2, 0},
		{"a deferral without dependencies", &syncv1.AckRequest{Deferred: []*syncv1.Deferral{{MessageId: id(1)}}}, 0, 0, 0, 1},
		{"too many dependencies", &syncv1.AckRequest{Deferred: []*syncv1.Deferral{{MessageId: id(1), Dependencies: many}}}, 0, 0, 0, 1},
		{"a short dependency", &syncv1.AckRequest{Deferred: []*syncv1.Deferral{{MessageId: id(1), Dependencies: [][]byte{id(2), {7}}}}}, 0, 0, 0, 1},
		{"a short deferred id", &syncv1.AckRequest{Deferred: []*syncv1.Deferral{{MessageId: id(1)[:5], Dependencies: [][]byte{id(2)}}}}, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCounters()
			v := decodeVerdicts(tt.req, c)
			if len(v.rejected) != tt.rejected || len(v.deferred) != tt.deferred || c.hostAcksIgnored.Load() != tt.ignored {
				t.Fatalf("%d rejected, %d deferred, %d ignored; want %d, %d, %d", len(v.rejected), len(v.deferred), c.hostAcksIgnored.Load(), tt.rejected, tt.deferred, tt.ignored)
			}
			if deps, ok := v.deferred[wire.ID(id(1))]; ok && len(deps) != tt.deps {
				t.Fatalf("%d dependencies, want %d (own id and repeats dropped)", len(deps), tt.deps)
			}
		})
	}
}
