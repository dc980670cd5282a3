package layer

import (
	"slices"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// TestLazyPairs checks that a conversation of two forms its group only
// when a member has something to send in it: not on SetConversation, at
// once from the lowest member, on an ask from the higher one, from both
// at once, and across a restart of either member between the frame and
// the group.
func TestLazyPairs(t *testing.T) {
	const conv = "dm"
	type step int
	const (
		sendLow step = iota
		sendHigh
		sendBoth
		restartLow
		restartHigh
		lose // the network loses everything in flight
		tick
	)
	cases := []struct {
		name  string
		steps []step
		// asks is how many asks the higher member sends at least (since
		// its last restart: counters are in memory).
		asks uint64
	}{
		{"lower sends", []step{sendLow}, 0},
		{"higher sends", []step{sendHigh}, 1},
		{"both at once", []step{sendBoth}, 1},
		{"higher sends, its ask lost, asks again", []step{sendHigh, lose, tick}, 2},
		{"higher sends, restarts before the ask arrives", []step{sendHigh, lose, restartHigh, tick}, 1},
		{"lower takes the ask, restarts before its Welcome leaves", []step{sendHigh, restartLow, tick}, 1},
		{"lower sends, restarts before its Welcome leaves", []step{sendLow, restartLow, tick}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, "low", "high", "other")
			low, high := n.nodes[0], n.nodes[1]
			n.converseLazy(conv, low, high)
			n.converseLazy("dm2", low, n.nodes[2])
			n.run()
			n.tick(time.Second)
			for _, x := range n.nodes {
				if _, _, ok := n.state(x, conv); ok {
					t.Fatalf("%s has a group of two that no one needed", x.name)
				}
				if got := n.counter(x, "commits_made") + n.counter(x, "welcomes_sent"); got != 0 {
					t.Fatalf("%s: %d Commits and Welcomes before anyone sent anything", x.name, got)
				}
			}
			if n.counter(high, "keypackages_used") != 0 {
				t.Fatal("a KeyPackage was used before anyone sent anything")
			}
			// Frames sent before the group exists, by sender; a restart
			// loses the sender's held frames: the sync layer above sends
			// them again.
			sent := map[*tnode][][]byte{}
			for _, s := range tc.steps {
				switch s {
				case sendLow:
					sent[low] = append(sent[low], n.send(low, conv, nil))
				case sendHigh:
					sent[high] = append(sent[high], n.send(high, conv, low.id))
				case sendBoth:
					sent[low] = append(sent[low], n.send(low, conv, high.id))
					sent[high] = append(sent[high], n.send(high, conv, nil))
				case restartLow, restartHigh:
					// The restarted node's held frames (memory only)
					// and the frames it emitted are lost.
					x := low
					if s == restartHigh {
						x = high
					}
					sent[x] = nil
					n.mu.Lock()
					n.queue = nil // what it emitted before the restart is lost too
					n.mu.Unlock()
					n.restart(x, x.dir)
				case lose:
					n.mu.Lock()
					n.queue = nil
					n.mu.Unlock()
				case tick:
					n.tick(time.Second)
					n.tick(2 * time.Second)
				}
			}
			n.run()
			for range 4 {
				n.tick(time.Second)
			}
			if e := n.agree(conv, low, high); e != 1 {
				t.Fatalf("epoch %d, want 1: one Commit adding the other member", e)
			}
			for _, x := range []*tnode{low, high} {
				other := high
				if x == high {
					other = low
				}
				for _, m := range sent[x] {
					n.expectOnce(conv, x, m, other)
				}
			}
			if got := n.counter(high, "commits_made"); got != 0 {
				t.Fatalf("the higher member made %d Commits, want 0", got)
			}
			if got := n.counter(high, "group_asks_sent"); got < tc.asks {
				t.Fatalf("the higher member sent %d asks, want at least %d", got, tc.asks)
			}
			if tc.asks == 0 && n.counter(high, "group_asks_sent") != 0 {
				t.Fatal("the higher member asked for a group the lower one created")
			}
			// The other conversation of two is still not formed.
			if _, _, ok := n.state(low, "dm2"); ok {
				t.Fatal("a message in one conversation of two formed another")
			}
			// Both ways in the group now.
			for _, x := range []*tnode{low, high} {
				other := high
				if x == high {
					other = low
				}
				m := n.send(x, conv, nil)
				n.run()
				n.expectOnce(conv, x, m, other)
			}
		})
	}
}

// TestLazyPairAskRefused checks who may ask: an ask from a node outside
// the conversation, to a node that does not create it, or for a group of
// three, creates nothing.
func TestLazyPairAskRefused(t *testing.T) {
	n := newNet(t, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	n.converseLazy("ab", a, b)
	n.converseLazy("bc", b, c)
	n.run()
	ask := func(from *tnode, conv string) *commonv1.Frame {
		p, err := (&envelope{kind: kindStatus, groupID: []byte(conv), sender: from.id}).marshal()
		if err != nil {
			t.Fatal(err)
		}
		return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Conversation: []byte(conv), Peer: from.id, Payload: p}
	}
	cases := []struct {
		name string
		to   *tnode
		f    *commonv1.Frame
	}{
		{"from a non-member", a, ask(c, "ab")},
		{"to the higher member", b, ask(a, "ab")},
		{"for an unknown conversation", a, ask(b, "xy")},
		{"sender and frame disagree", a, func() *commonv1.Frame { f := ask(b, "ab"); f.Peer = c.id; return f }()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.to.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{tc.f}})
			n.run()
			for _, x := range n.nodes {
				for _, conv := range []string{"ab", "bc", "xy"} {
					if _, _, ok := n.state(x, conv); ok {
						t.Fatalf("%s formed %q", x.name, conv)
					}
				}
			}
		})
	}
	// The real ask forms it.
	a.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{ask(b, "ab")}})
	n.run()
	n.agree("ab", a, b)
	if got := n.counter(a, "group_asks_received"); got != 1 {
		t.Fatalf("a took %d asks, want 1 (the refused ones are not counted)", got)
	}
}

// TestGroupFromAsk: only one member's host knows a conversation of four
// (its user made it), and that member is not the lowest: its group ask
// gives the lowest member's layer the conversation, which tells its host
// and creates the group; every member joins, the ones whose hosts did not
// know it from the Welcome. An ask whose sender is not the frame's peer,
// or that lists a member who is no contact, gives nothing.
func TestGroupFromAsk(t *testing.T) {
	n := newNet(t, "a", "b", "c", "d")
	a, b := n.nodes[0], n.nodes[1]
	const conv = "made by b"
	ids := n.route(conv, n.nodes...)

	// Forged and unknown: refused, nothing learned.
	stranger := make([]byte, identitySize)
	stranger[0] = 0xff
	for _, bad := range []struct {
		name    string
		peer    []byte
		members [][]byte
	}{
		{"sender is not the frame's peer", n.nodes[2].id, ids},
		{"a member who is no contact", b.id, append(slices.Clone(ids), stranger)},
	} {
		payload, err := (&envelope{kind: kindGroupAsk, groupID: []byte("forged"), sender: b.id, listed: bad.members}).marshal()
		if err != nil {
			t.Fatal(err)
		}
		a.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{
			Direction: commonv1.Direction_DIRECTION_UP, Conversation: []byte("forged"), Peer: bad.peer, Payload: payload,
		}}})
		if got := n.counter(a, "learned_from_ask"); got != 0 {
			t.Fatalf("%s: learned %d conversations", bad.name, got)
		}
	}

	n.setConv(b, []byte(conv), ids)
	n.run()
	if got := n.counter(a, "learned_from_ask"); got != 1 {
		t.Fatalf("learned_from_ask %d, want 1", got)
	}
	if ev := n.learned(a, conv); len(ev) != 1 || len(ev[0].GetMembers()) != 4 {
		t.Fatalf("a's host was told %d times", len(ev))
	}
	n.tick(time.Second) // create_wait (= retransmit_initial): a creates the group
	n.tick(time.Second)
	n.agree(conv, n.nodes...)
	msg := n.send(b, conv, nil)
	n.run()
	n.expectOnce(conv, b, msg, a, n.nodes[2], n.nodes[3])
}
