package mvds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

func TestBackoffInterval(t *testing.T) {
	for _, tc := range []struct {
		base, max uint64
		want      []uint64 // intervals after transmissions 1, 2, 3, ...
	}{
		{2, 16, []uint64{2, 4, 8, 16, 2, 4, 8, 16, 2}},
		{1, 1, []uint64{1, 1, 1}},
		{3, 20, []uint64{3, 6, 12, 3, 6, 12}}, // 24 would pass the bound
		{2, 1024, []uint64{2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2, 4}},
		{5, 5, []uint64{5, 5}},
	} {
		t.Run(fmt.Sprintf("%d-%d", tc.base, tc.max), func(t *testing.T) {
			for i, want := range tc.want {
				count := uint64(i + 1)
				if got := backoffInterval(count, tc.base, tc.max); got != want {
					t.Errorf("interval after transmission %d = %d, want %d", count, got, want)
				}
				if got := nextEpoch(count, 100, tc.base, tc.max); got != 100+want {
					t.Errorf("nextEpoch(%d, 100) = %d, want %d", count, got, 100+want)
				}
			}
		})
	}
}

// TestRetransmissionSchedule checks the epochs at which an unacknowledged
// message goes out again: the backoff's sawtooth, from the epoch after
// Send.
func TestRetransmissionSchedule(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	nt.keep = true
	nt.drop = func(from, _ *tnode, _ []byte) bool { return from.name == "a" }
	a := nt.node("a")
	a.send("m")
	for range 64 {
		nt.step()
	}
	var epochs []int
	for _, s := range nt.sent {
		if s.from == "a" && len(s.p.Messages) == 1 {
			epochs = append(epochs, s.step)
		}
	}
	want := []int{1, 3, 7, 15, 31, 33, 37, 45, 61, 63}
	if !slices.Equal(epochs, want) {
		t.Fatalf("a sent the message at epochs %v, want %v", epochs, want)
	}
	if got := a.counter("retransmissions"); got != uint64(len(want)-1) {
		t.Errorf("retransmissions = %d, want %d", got, len(want)-1)
	}
	if got := a.counter("sent"); got != 1 {
		t.Errorf("sent = %d, want 1", got)
	}
}

func TestBatchFlow(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	m1 := a.send("m1")
	m2 := a.send("m2", m1)
	if st := a.state(); st.messages != 2 || st.unacknowledged != 2 {
		t.Fatalf("a's state after two Sends: %+v", st)
	}
	nt.step()
	if p := nt.sentAt(1, "a", "b"); len(p) != 1 || len(p[0].Messages) != 2 {
		t.Fatalf("epoch 1: a sent %v, want one payload with both messages", p)
	}
	if len(b.order) != 2 || b.order[0].id != m1 || b.order[1].id != m2 {
		t.Fatalf("b delivered %v, want m1 then m2", b.order)
	}
	d := b.order[1]
	if !bytes.Equal(d.author, a.id) || !bytes.Equal(d.group, testGroupID) || string(d.payload) != "m2" || d.ephemeral {
		t.Fatalf("m2 delivered as %+v", d)
	}
	nt.step()
	if p := nt.sentAt(2, "b", "a"); len(p) != 1 || !slices.Equal(wireIDs(p[0].Acks), []ID{m1, m2}) || len(p[0].Messages) != 0 {
		t.Fatalf("epoch 2: b sent %v, want one payload acking m1 and m2", p)
	}
	if st := a.state(); st.unacknowledged != 0 {
		t.Fatalf("a's state after the acks: %+v", st)
	}
	if st := b.state(); st.messages != 2 || st.delivered != 2 || st.pending != 0 || st.unacknowledged != 0 {
		t.Fatalf("b's state: %+v", st)
	}
	nt.sent = nil
	for range 40 {
		nt.step()
	}
	if len(nt.sent) != 0 {
		t.Fatalf("%d payloads after everything was acked; want silence", len(nt.sent))
	}
}

// TestInteractiveFlow follows 2/MVDS interactive mode epoch by epoch:
// OFFER, REQUEST, MESSAGE, ACK.
func TestInteractiveFlow(t *testing.T) {
	cfg := testSettings()
	cfg.Mode = ModeInteractive
	nt := newTNet(t, cfg, "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	m := a.send("m")
	steps := []struct {
		from, to string
		check    func(p *wirepb.Payload) bool
		what     string
	}{
		{"a", "b", func(p *wirepb.Payload) bool { return slices.Equal(wireIDs(p.Offers), []ID{m}) && len(p.Messages) == 0 }, "an offer of m"},
		{"b", "a", func(p *wirepb.Payload) bool { return slices.Equal(wireIDs(p.Requests), []ID{m}) }, "a request for m"},
		{"a", "b", func(p *wirepb.Payload) bool { return len(p.Messages) == 1 && len(p.Offers) == 0 }, "m itself"},
		{"b", "a", func(p *wirepb.Payload) bool { return slices.Equal(wireIDs(p.Acks), []ID{m}) }, "an ack of m"},
	}
	for i, s := range steps {
		nt.step()
		p := nt.sentAt(i+1, s.from, s.to)
		if len(p) != 1 || !s.check(p[0]) {
			t.Fatalf("epoch %d: %s sent %s %v, want %s", i+1, s.from, s.to, p, s.what)
		}
		if other := nt.sentAt(i+1, s.to, s.from); len(other) != 0 {
			t.Fatalf("epoch %d: %s also sent %v", i+1, s.to, other)
		}
	}
	if !b.delivered(m) || a.state().unacknowledged != 0 {
		t.Fatalf("b delivered m: %v; a's state %+v", b.delivered(m), a.state())
	}
}

// TestCausalRequestsMissingParent: a child that arrives before its parent
// waits, the parent is requested from the member it came from, and both go
// up in order once the parent arrives.
func TestCausalRequestsMissingParent(t *testing.T) {
	cfg := testSettings()
	cfg.BackoffBase, cfg.BackoffMax = 100, 100 // no retransmission in this test
	nt := newTNet(t, cfg, "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	dropped := false
	nt.drop = func(from, _ *tnode, _ []byte) bool {
		if from.name == "a" && !dropped {
			dropped = true
			return true
		}
		return false
	}
	m1 := a.send("m1")
	nt.step() // m1 is lost
	m2 := a.send("m2", m1)
	nt.step()
	if b.delivered(m2) {
		t.Fatal("m2 went up before its parent")
	}
	if st := b.state(); st.pending != 1 || st.messages != 1 {
		t.Fatalf("b's state with m2 waiting: %+v", st)
	}
	nt.step()
	if p := nt.sentAt(3, "b", "a"); len(p) != 1 || !slices.Equal(wireIDs(p[0].Requests), []ID{m1}) || !slices.Equal(wireIDs(p[0].Acks), []ID{m2}) {
		t.Fatalf("epoch 3: b sent %v, want a request for m1 and an ack of m2", p)
	}
	nt.step()
	if len(b.order) != 2 || b.order[0].id != m1 || b.order[1].id != m2 {
		t.Fatalf("b delivered %v, want m1 then m2", b.order)
	}
	if st := b.state(); st.pending != 0 || st.delivered != 2 {
		t.Fatalf("b's state: %+v", st)
	}
	nt.run(5, func() bool { return a.state().unacknowledged == 0 })
}

// TestCausalChainReversed delivers a chain of messages last first: nothing
// goes up until the root arrives, then all of them, in order.
func TestCausalChainReversed(t *testing.T) {
	clk := newClock()
	b := newTNode(t, "b", testSettings(), clk)
	a := identity("a")
	b.setGroup(a, b.id)
	var msgs []*wirepb.Message
	var ids []ID
	for i := range 20 {
		var parents []ID
		if i > 0 {
			parents = []ID{ids[i-1]}
		}
		m, id := messageFrom(t, testGroupID, a, int64(1000+i), fmt.Sprintf("m%d", i), false, parents...)
		msgs, ids = append(msgs, m), append(ids, id)
	}
	for i := len(msgs) - 1; i >= 1; i-- {
		b.receive(a, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{msgs[i]}}))
	}
	if len(b.order) != 0 || b.state().pending != 19 {
		t.Fatalf("delivered %d before the root; state %+v", len(b.order), b.state())
	}
	b.receive(a, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{msgs[0]}}))
	if len(b.order) != 20 {
		t.Fatalf("delivered %d of 20 after the root", len(b.order))
	}
	for i, d := range b.order {
		if d.id != ids[i] {
			t.Fatalf("delivery %d is %s, want %s", i, d.id, ids[i])
		}
	}
	// Only the root's parent-less arrival was missing: one request, for
	// the root, to a.
	if got := b.counter("requests_capped"); got != 0 {
		t.Errorf("requests_capped = %d", got)
	}
}

func TestEphemeral(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	e := a.sendOpt("e", true)
	if st := a.state(); st.messages != 0 || st.unacknowledged != 0 {
		t.Fatalf("a's state after an ephemeral Send: %+v", st)
	}
	nt.step()
	if len(b.order) != 1 || b.order[0].id != e || !b.order[0].ephemeral {
		t.Fatalf("b delivered %v, want e, ephemeral", b.order)
	}
	if st := b.state(); st.messages != 0 {
		t.Fatalf("b stored the ephemeral message: %+v", st)
	}
	raw := nt.sent[0].raw
	for range 40 {
		nt.step()
	}
	if len(nt.sent) != 1 {
		t.Fatalf("%d payloads in all; an ephemeral message goes once and is not acked", len(nt.sent))
	}
	b.receive(a.id, raw)
	b.restart()
	b.receive(a.id, raw)
	if b.got[e] != 1 || b.counter("duplicates") != 2 {
		t.Fatalf("after two replays (one across a restart): delivered %d times, duplicates %d", b.got[e], b.counter("duplicates"))
	}
	if _, err := a.n.send(context.Background(), testGroupID, []byte("child of e"), [][]byte{e[:]}, false, 0); !errors.Is(err, errPrecondition) {
		t.Fatalf("an ephemeral parent: %v, want errPrecondition", err)
	}
	// Older than the window: stale.
	old, _ := messageFrom(t, testGroupID, a.id, nt.clk.now().Add(-b.cfg.EphemeralWindow).UnixMilli()-1, "late", true)
	b.receive(a.id, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{old}}))
	if b.counter("dropped_stale") != 1 || len(b.order) != 1 {
		t.Fatalf("a stale ephemeral message: dropped_stale %d, delivered %d", b.counter("dropped_stale"), len(b.order))
	}
}

// TestDuplicates: a message that arrives again is acked again, not
// delivered again, also after a restart of the receiver.
func TestDuplicates(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	m := a.send("m")
	nt.step()
	raw := nt.sent[0].raw
	nt.step()
	b.receive(a.id, raw, raw)
	b.restart()
	b.receive(a.id, raw)
	if b.got[m] != 1 || b.counter("duplicates") != 3 {
		t.Fatalf("delivered %d times, duplicates %d; want 1 and 3", b.got[m], b.counter("duplicates"))
	}
	out := b.tick()
	if len(out) != 1 {
		t.Fatalf("b sent %d payloads, want one ack", len(out))
	}
	p, err := decodePayload(out[0].payload, 10)
	if err != nil || !slices.Equal(wireIDs(p.Acks), []ID{m}) {
		t.Fatalf("b sent %v (%v), want an ack of m", p, err)
	}
}

// TestRestart: the store keeps messages, records, pending messages and
// delivered marks across a restart.
func TestRestart(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	nt.keep = true
	a, b := nt.node("a"), nt.node("b")
	nt.drop = func(*tnode, *tnode, []byte) bool { return true }
	m1 := a.send("m1")
	m2 := a.send("m2", m1)
	nt.step()
	epoch := a.n.epoch
	a.restart()
	if a.n.epoch < epoch-1 || a.n.epoch > epoch {
		t.Fatalf("epoch %d after a restart, was %d", a.n.epoch, epoch)
	}
	if st := a.state(); st.messages != 2 || st.unacknowledged != 2 {
		t.Fatalf("a's state after a restart: %+v", st)
	}
	// b gets m2 alone, restarts with it pending, then gets m1.
	var m1raw, m2raw []byte
	for _, s := range nt.sent {
		for _, m := range s.p.Messages {
			one := encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})
			if MessageID(m.GroupId, m.Timestamp, m.Body) == m1 {
				m1raw = one
			} else {
				m2raw = one
			}
		}
	}
	b.receive(a.id, m2raw)
	b.restart()
	if st := b.state(); st.pending != 1 || st.messages != 1 {
		t.Fatalf("b's state after a restart with m2 pending: %+v", st)
	}
	b.receive(a.id, m1raw)
	if len(b.order) != 2 || b.order[0].id != m1 || b.order[1].id != m2 {
		t.Fatalf("b delivered %v, want m1 then m2", b.order)
	}
	b.restart()
	b.receive(a.id, m1raw, m2raw)
	if b.got[m1] != 1 || b.got[m2] != 1 {
		t.Fatal("delivered again after a restart")
	}
	nt.drop = nil
	nt.run(60, func() bool { return a.state().unacknowledged == 0 })
}

// TestRelayCatchUp: a member that missed a message gets it from another
// member once the author is gone.
func TestRelayCatchUp(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b", "c")
	a, b, c := nt.node("a"), nt.node("b"), nt.node("c")
	cOnline, aOnline := false, true
	nt.drop = func(from, to *tnode, _ []byte) bool {
		return (to == c && !cOnline) || (from == a && !aOnline) || (to == a && !aOnline)
	}
	m := a.send("m")
	nt.run(5, func() bool { return b.delivered(m) })
	aOnline, cOnline = false, true
	nt.run(60, func() bool { return c.delivered(m) })
	if b.counter("relayed") == 0 {
		t.Fatal("b relayed nothing")
	}
	if got := c.order[0]; !bytes.Equal(got.author, a.id) {
		t.Fatalf("c delivered m with author %x, want a", got.author)
	}
	nt.run(60, func() bool { return b.state().unacknowledged == 0 })
}

// TestOnlineReset: a member heard from after a silence gets what waits
// for it at the next epoch, not at the end of a long backoff.
func TestOnlineReset(t *testing.T) {
	for _, tc := range []struct {
		reset  int
		within int
	}{{100, 23}, {0, 31}} {
		t.Run(fmt.Sprint(tc.reset), func(t *testing.T) {
			cfg := testSettings()
			cfg.OnlineReset = tc.reset
			nt := newTNet(t, cfg, "a", "b")
			a, b := nt.node("a"), nt.node("b")
			nt.drop = func(from, _ *tnode, _ []byte) bool { return from == a && nt.steps <= 20 }
			m := a.send("m") // sent at 1, 3, 7, 15, then 31
			for nt.steps < 20 {
				nt.step()
			}
			b.send("hello") // b is back: a hears from it at epoch 21
			at := nt.run(40, func() bool { return b.delivered(m) }) + 20
			if at > tc.within || (tc.reset == 0 && at < tc.within) {
				t.Fatalf("b got m at epoch %d; want by %d", at, tc.within)
			}
			if tc.reset > 0 && a.counter("online_resets") == 0 {
				t.Fatal("online_resets = 0")
			}
		})
	}
}

// TestSetGroupRemovesMember: a member that leaves gets nothing more and is
// a stranger from then on.
func TestSetGroupRemovesMember(t *testing.T) {
	clk := newClock()
	a := newTNode(t, "a", testSettings(), clk)
	b, c := identity("b"), identity("c")
	a.setGroup(a.id, b, c)
	m := a.send("m")
	if st := a.state(); st.unacknowledged != 1 {
		t.Fatalf("state %+v", st)
	}
	a.setGroup(a.id, b)
	for range 3 {
		for _, o := range a.tick() {
			if !bytes.Equal(o.peer, b) {
				t.Fatalf("a sent a payload to %x, not a member", o.peer)
			}
		}
	}
	a.receive(b, encode(t, &wirepb.Payload{Acks: [][]byte{m[:]}}))
	if st := a.state(); st.unacknowledged != 0 {
		t.Fatalf("after b's ack: %+v, want nothing unacknowledged (c left)", st)
	}
	a.receive(c, encode(t, &wirepb.Payload{Requests: [][]byte{m[:]}}))
	if a.counter("dropped_non_member") != 1 {
		t.Fatal("a request from a member that left was not dropped")
	}
}

func TestSendChecks(t *testing.T) {
	clk := newClock()
	cfg := testSettings()
	cfg.MaxParents = 2
	a := newTNode(t, "a", cfg, clk)
	b := identity("b")
	a.setGroup(a.id, b)
	root := a.send("root")
	// A message of b's waiting for a parent is not a valid parent.
	waiting, waitingID := messageFrom(t, testGroupID, b, 5, "waits", false, ID{0xee})
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{waiting}}))
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		group   []byte
		payload []byte
		parents [][]byte
		want    error
	}{
		{"unknown group", []byte("nope"), []byte("x"), nil, errNoGroup},
		{"payload too large", testGroupID, make([]byte, MaxPayload+1), nil, errInvalid},
		{"too many parents", testGroupID, nil, [][]byte{root[:], {1}, {2}}, errInvalid},
		{"short parent", testGroupID, nil, [][]byte{{1}}, errInvalid},
		{"parent twice", testGroupID, nil, [][]byte{root[:], root[:]}, errInvalid},
		{"unknown parent", testGroupID, nil, [][]byte{make([]byte, 32)}, errPrecondition},
		{"pending parent", testGroupID, nil, [][]byte{waitingID[:]}, errPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.n.send(ctx, tc.group, tc.payload, tc.parents, false, 0); !errors.Is(err, tc.want) {
				t.Fatalf("send: %v, want %v", err, tc.want)
			}
		})
	}
	// Equal content makes a new message every time.
	if x, y := a.send("same"), a.send("same"); x == y {
		t.Fatal("two Sends of the same content got the same id")
	}
	// A node without an identity sends nothing.
	anon, err := openNode(ctx, t.TempDir(), nil, cfg, newCounters(), a.n.log, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.close(ctx)
	if err := anon.setGroup(ctx, testGroupID, [][]byte{b}); !errors.Is(err, errPrecondition) {
		t.Fatalf("setGroup without an identity: %v", err)
	}
}

func TestSetGroupChecks(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	ctx := context.Background()
	many := make([][]byte, MaxMembers+1)
	for i := range many {
		many[i] = identity(fmt.Sprint(i))
	}
	for _, tc := range []struct {
		name    string
		id      []byte
		members [][]byte
	}{
		{"empty id", nil, [][]byte{a.id}},
		{"long id", make([]byte, MaxGroupID+1), [][]byte{a.id}},
		{"without self", testGroupID, [][]byte{identity("b")}},
		{"short member", testGroupID, [][]byte{a.id, {1, 2}}},
		{"too many", testGroupID, append(many, a.id)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.n.setGroup(ctx, tc.id, tc.members); !errors.Is(err, errInvalid) {
				t.Fatalf("setGroup: %v, want errInvalid", err)
			}
		})
	}
}

// TestLossyConvergence: three members, 30% of payloads lost, each sending
// a chain; everything arrives, in causal order, once, and every record is
// acked in the end.
func TestLossyConvergence(t *testing.T) {
	for _, interactive := range []bool{false, true} {
		t.Run(fmt.Sprintf("interactive=%v", interactive), func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode = modeFor(interactive)
			nt := newTNet(t, cfg, "a", "b", "c")
			nt.drop = lossy(42, 0.3)
			sent := map[string][]ID{}
			for i := range 20 {
				for _, n := range nt.nodes {
					var parents []ID
					if i > 0 {
						parents = []ID{sent[n.name][i-1]}
					}
					sent[n.name] = append(sent[n.name], n.send(fmt.Sprintf("%s#%d", n.name, i), parents...))
				}
				nt.step()
			}
			nt.run(2000, func() bool {
				for _, n := range nt.nodes {
					if n.state().unacknowledged != 0 {
						return false
					}
					for author, ids := range sent {
						if author == n.name {
							continue
						}
						for _, id := range ids {
							if !n.delivered(id) {
								return false
							}
						}
					}
				}
				return true
			})
			for _, n := range nt.nodes {
				// Chains arrive in order: each author's messages go up in
				// the order they were sent.
				next := map[string]int{}
				for _, d := range n.order {
					author := nt.byID(d.author).name
					if want := sent[author][next[author]]; d.id != want {
						t.Fatalf("%s delivered %s of %s out of order", n.name, d.id, author)
					}
					next[author]++
				}
			}
		})
	}
}

// TestQueueBounds: the in-memory queues of a member are bounded.
func TestQueueBounds(t *testing.T) {
	cfg := testSettings()
	cfg.MaxIDs = 2
	a := newTNode(t, "a", cfg, newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	for i := range queueFactor * cfg.MaxIDs {
		a.sendOpt(fmt.Sprint("e", i), true)
	}
	if _, err := a.n.send(context.Background(), testGroupID, []byte("one more"), nil, true, 0); !errors.Is(err, errBusy) {
		t.Fatalf("an ephemeral Send beyond the queue: %v, want errBusy", err)
	}
	var msgs []*wirepb.Message
	for i := range queueFactor*cfg.MaxIDs + 5 {
		m, _ := messageFrom(t, testGroupID, b, int64(i), "m", false)
		msgs = append(msgs, m)
	}
	for i := 0; i < len(msgs); i += cfg.MaxIDs {
		a.receive(b, encode(t, &wirepb.Payload{Messages: msgs[i:min(i+cfg.MaxIDs, len(msgs))]}))
	}
	if got := len(a.n.groups[string(testGroupID)].acks[string(b)].ids); got != queueFactor*cfg.MaxIDs {
		t.Fatalf("%d acks queued, want the bound %d", got, queueFactor*cfg.MaxIDs)
	}
}

// TestCancelledContext: a cancelled context refuses the work before it
// begins and leaves the node healthy.
func TestCancelledContext(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, _ := messageFrom(t, testGroupID, b, 1, "m", false)
	if _, err := a.n.receive(ctx, []inbound{{group: testGroupID, from: b, payload: encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})}}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("receive: %v, want context.Canceled", err)
	}
	if _, err := a.n.tick(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("tick: %v, want context.Canceled", err)
	}
	if a.n.failed != nil {
		t.Fatalf("the node failed: %v", a.n.failed)
	}
	a.send("still works")
}

// TestStorageFailure: a storage error in a batch fails the node, which
// then refuses everything rather than run with memory ahead of disk.
func TestStorageFailure(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	a.n.st.db.Close()
	m, _ := messageFrom(t, testGroupID, b, 1, "m", false)
	if _, err := a.n.receive(context.Background(), []inbound{{group: testGroupID, from: b, payload: encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})}}, nil); err == nil {
		t.Fatal("receive on a closed store succeeded")
	}
	if a.n.health().failed == nil {
		t.Fatal("the node did not fail")
	}
	if _, err := a.n.send(context.Background(), testGroupID, []byte("x"), nil, false, 0); !errors.Is(err, errUnavailable) {
		t.Fatalf("send after the failure: %v, want errUnavailable", err)
	}
}

// TestNoSpuriousRetransmission: on a perfect network nothing is sent
// twice, the first contact's online reset included.
func TestNoSpuriousRetransmission(t *testing.T) {
	for _, interactive := range []bool{false, true} {
		t.Run(fmt.Sprintf("interactive=%v", interactive), func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode = modeFor(interactive)
			nt := newTNet(t, cfg, "a", "b")
			a, b := nt.node("a"), nt.node("b")
			for range 20 {
				for range 10 {
					a.send("m")
				}
				nt.step()
			}
			nt.run(10, func() bool { return len(b.order) == 200 && a.state().unacknowledged == 0 })
			for _, n := range nt.nodes {
				if got := n.counter("retransmissions"); got != 0 {
					t.Errorf("%s: %d retransmissions", n.name, got)
				}
			}
		})
	}
}

// TestTamperedAnswer: a message carries no id; the receiver computes it.
// An answer to a request whose content was changed on the way has another
// id, so it does not satisfy the request (which stays outstanding), and a
// node that takes only what it asked for drops it.
func TestTamperedAnswer(t *testing.T) {
	for _, accept := range []bool{true, false} {
		t.Run(fmt.Sprintf("accept_unsolicited=%v", accept), func(t *testing.T) {
			cfg := testSettings()
			cfg.AcceptUnsolicited = accept
			a := newTNode(t, "a", cfg, newClock())
			b := identity("b")
			a.setGroup(a.id, b)
			real, realID := messageFrom(t, testGroupID, b, 1, "real", false)
			a.receive(b, encode(t, &wirepb.Payload{Offers: [][]byte{realID[:]}}))
			forged := &wirepb.Message{GroupId: real.GroupId, Timestamp: real.Timestamp, Body: bytes.Clone(real.Body)}
			forged.Body[len(forged.Body)-1] ^= 1 // "reaX"
			a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{forged}}))
			if a.delivered(realID) {
				t.Fatal("the forged answer counted as the message requested")
			}
			if got := a.counter("dropped_unrequested"); (got == 1) == accept {
				t.Fatalf("dropped_unrequested = %d", got)
			}
			tx, err := a.n.st.begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.rollback()
			if asked, err := tx.requested(testGroupID, realID); err != nil || !asked {
				t.Fatalf("the request for the real message is gone (%v)", err)
			}
		})
	}
}

// TestTraceFollowsSend: every frame that carries an own message (its first
// send and its retransmissions) carries the trace id the host gave the
// send; frames with nothing traced carry 0.
func TestTraceFollowsSend(t *testing.T) {
	clk := newClock()
	a := newTNode(t, "a", testSettings(), clk)
	a.setGroup(a.id, identity("b"))
	if _, err := a.n.send(context.Background(), testGroupID, []byte("traced"), nil, false, 77); err != nil {
		t.Fatal(err)
	}
	var traces []uint64
	for range 6 { // b never acknowledges: a retransmits on its backoff
		for _, o := range a.tick() {
			traces = append(traces, o.trace)
		}
		clk.advance(a.cfg.Epoch)
	}
	if len(traces) < 2 {
		t.Fatalf("a sent %d payloads in 6 epochs, want the message and a retransmission", len(traces))
	}
	for i, tr := range traces {
		if tr != 77 {
			t.Fatalf("payload %d went with trace %d, want 77 (all: %v)", i, tr, traces)
		}
	}
	if frames := downFrames([]outbound{{group: testGroupID, peer: identity("b"), trace: 77}}); frames[0].GetTraceId() != 77 {
		t.Fatalf("the DOWN frame has trace %d, want 77", frames[0].GetTraceId())
	}
}

// TestAckCarriesTrace: the payload that acknowledges a message carries the
// trace id of the frame that brought the message (the ack path).
func TestAckCarriesTrace(t *testing.T) {
	clk := newClock()
	a := newTNode(t, "a", testSettings(), clk)
	b := newTNode(t, "b", testSettings(), clk)
	a.setGroup(a.id, b.id)
	b.setGroup(a.id, b.id)
	a.send("hello")
	out := a.tick()
	if len(out) != 1 {
		t.Fatalf("a sent %d payloads, want 1", len(out))
	}
	if _, err := b.n.receive(context.Background(), []inbound{{group: testGroupID, from: a.id, payload: out[0].payload, trace: 99}}, nil); err != nil {
		t.Fatal(err)
	}
	acks := b.tick()
	if len(acks) != 1 || acks[0].trace != 99 {
		t.Fatalf("b's ack payloads %+v, want one with trace 99", acks)
	}
}

// TestAckDelay: with ack_delay an owed ack waits up to that many epochs for
// a payload to ride on, then an epoch sends it alone; a payload going to
// the member anyway takes it sooner.
func TestAckDelay(t *testing.T) {
	cfg := testSettings()
	cfg.BackoffBase, cfg.AckDelay = 4, 3
	a := newTNode(t, "a", cfg, newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	acksTo := func(out []outbound) map[ID]bool {
		t.Helper()
		got := map[ID]bool{}
		for _, o := range out {
			if !bytes.Equal(o.peer, b) {
				continue
			}
			var p wirepb.Payload
			if err := proto.Unmarshal(o.payload, &p); err != nil {
				t.Fatal(err)
			}
			for _, raw := range p.Acks {
				got[ID(raw)] = true
			}
		}
		return got
	}
	m1, id1 := messageFrom(t, testGroupID, b, 1, "first", false)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m1}}))
	for epoch := 1; epoch <= 3; epoch++ {
		if got, want := acksTo(a.tick())[id1], epoch == 3; got != want {
			t.Fatalf("epoch %d: ack sent %v, want %v", epoch, got, want)
		}
	}
	// A younger ack rides on a message going to the member.
	m2, id2 := messageFrom(t, testGroupID, b, 2, "second", false)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m2}}))
	a.send("from a")
	if !acksTo(a.tick())[id2] {
		t.Fatal("the ack did not ride on the payload to its member")
	}
}
