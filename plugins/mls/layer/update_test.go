package layer

import (
	"bytes"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// updateConfigJSON is testConfigJSON with leaf refreshes every two hours.
const updateConfigJSON = `{"settle_window": "1h", "branch_retention": "2h", "retransmit_initial": "1s", "retransmit_max": "4s", "takeover_timeout": "10s", "key_packages": 3, "update_interval": "2h"}`

// leafKeys returns the leaf encryption key of every member of conv as
// node sees them, by identity.
func (n *tnet) leafKeys(node *tnode, conv string) map[string][]byte {
	node.l.mu.Lock()
	defer node.l.mu.Unlock()
	out := map[string][]byte{}
	for _, leaf := range node.l.convs[conv].g.Members() {
		out[string(leaf.Credential.Identity)] = bytes.Clone(leaf.EncryptionKey)
	}
	return out
}

// sum adds a counter over every node.
func (n *tnet) sum(name string) uint64 {
	var k uint64
	for _, node := range n.nodes {
		k += n.counter(node, name)
	}
	return k
}

// TestLeafUpdates: over a day every member refreshes its leaf several
// times, one Commit at a time in the rotation, while every member sends;
// all stay on one epoch authenticator and every message arrives once.
func TestLeafUpdates(t *testing.T) {
	n := newNetConfig(t, `{"settle_window": "5m", "branch_retention": "10m", "retransmit_initial": "2m", "retransmit_max": "4m", "takeover_timeout": "10m", "key_packages": 3, "update_interval": "2h"}`,
		"a", "b", "c", "d", "e")
	// A slot of the rotation (retransmit_initial) is longer than a step
	// of the test's clock, as it is longer than a tick of a real one.
	const conv = "refresh"
	n.converse(conv, n.nodes...)
	n.tick(2 * time.Minute)
	start := n.agree(conv, n.nodes...)
	first := n.leafKeys(n.nodes[0], conv)
	changes := map[string]int{}
	last := first
	type sent struct {
		from *tnode
		msg  []byte
	}
	var msgs []sent
	// A day in one-minute steps (eight hours with -short).
	minutes, want := 24*60, 8
	if testing.Short() {
		minutes, want = 5*60, 2
	}
	for i := range minutes {
		if i%10 == 0 {
			from := n.nodes[i/10%len(n.nodes)]
			msgs = append(msgs, sent{from, n.send(from, conv, nil)})
			n.run()
		}
		n.tick(time.Minute)
		n.agree(conv, n.nodes...)
		now := n.leafKeys(n.nodes[1], conv)
		for id, k := range now {
			if !bytes.Equal(k, last[id]) {
				changes[id]++
			}
		}
		last = now
		for _, node := range n.nodes {
			if s := n.counter(node, "stale_leaves"); s != 0 {
				t.Fatalf("after %v %s counts %d stale leaves", time.Duration(i+1)*time.Minute, node.name, s)
			}
		}
	}
	end := n.agree(conv, n.nodes...)
	for _, node := range n.nodes {
		// Every two hours and a bit.
		if changes[string(node.id)] < want {
			t.Errorf("%s's leaf changed %d times in %v, want at least %d", node.name, changes[string(node.id)], time.Duration(minutes)*time.Minute, want)
		}
	}
	if got, want := n.sum("leaf_updates"), end-start; got != want {
		t.Errorf("leaf_updates %d, epochs gone by %d: every epoch should be one refresh", got, want)
	}
	if f := n.sum("forks_detected"); f != 0 {
		t.Errorf("%d forks detected: the rotation should leave one committer per epoch", f)
	}
	for _, m := range msgs {
		var to []*tnode
		for _, node := range n.nodes {
			if node != m.from {
				to = append(to, node)
			}
		}
		n.expectOnce(conv, m.from, m.msg, to...)
	}
}

// TestLeafAgeSurvivesRestart: a member restarted before its leaf is due
// refreshes it when it is due, not update_interval after the restart.
func TestLeafAgeSurvivesRestart(t *testing.T) {
	n := newNetConfig(t, `{"settle_window": "5m", "branch_retention": "10m", "retransmit_initial": "2m", "retransmit_max": "4m", "takeover_timeout": "10m", "update_interval": "2h"}`, "a", "b", "c")
	const conv = "restart"
	n.converse(conv, n.nodes...)
	n.tick(2 * time.Minute)
	n.agree(conv, n.nodes...)
	first := n.leafKeys(n.nodes[0], conv)
	for range 90 {
		n.tick(time.Minute)
	}
	b := n.nodes[1]
	n.restart(b, b.dir)
	for range 60 {
		n.tick(time.Minute)
	}
	n.agree(conv, n.nodes...)
	now := n.leafKeys(n.nodes[0], conv)
	for _, node := range n.nodes {
		if bytes.Equal(now[string(node.id)], first[string(node.id)]) {
			t.Errorf("%s's leaf did not change within 2 h 30 min", node.name)
		}
	}
}

// TestStaleLeafCounted: a member that never refreshes (its refreshes
// turned off) shows in the others' stale_leaves once its leaf is twice
// update_interval old, and leaves it when it refreshes.
func TestStaleLeafCounted(t *testing.T) {
	n := newNetConfig(t, `{"settle_window": "5m", "branch_retention": "10m", "retransmit_initial": "2m", "retransmit_max": "4m", "takeover_timeout": "10m", "update_interval": "2h"}`, "a", "b", "c")
	const conv = "stale"
	n.converse(conv, n.nodes...)
	n.tick(2 * time.Minute)
	a, c := n.nodes[0], n.nodes[2]
	c.l.mu.Lock()
	c.l.cfg.UpdateInterval = 0
	c.l.mu.Unlock()
	for range 3*60 + 50 {
		n.tick(time.Minute)
	}
	if s := n.counter(a, "stale_leaves"); s != 0 {
		t.Fatalf("stale_leaves %d before 4 h", s)
	}
	for range 20 {
		n.tick(time.Minute)
	}
	if s := n.counter(a, "stale_leaves"); s != 1 {
		t.Fatalf("stale_leaves %d after 4 h, want 1 (c)", s)
	}
	c.l.mu.Lock()
	c.l.cfg.UpdateInterval = 2 * time.Hour
	c.l.mu.Unlock()
	for range 30 {
		n.tick(time.Minute)
	}
	n.agree(conv, n.nodes...)
	if s := n.counter(a, "stale_leaves"); s != 0 {
		t.Fatalf("stale_leaves %d after c refreshed", s)
	}
}

// TestLeafUpdatesOff: update_interval 0 refreshes nothing.
func TestLeafUpdatesOff(t *testing.T) {
	n := newNetConfig(t, `{"settle_window": "1h", "branch_retention": "2h", "update_interval": "0s"}`, "a", "b", "c")
	const conv = "off"
	n.converse(conv, n.nodes...)
	n.tick(2 * time.Second)
	e := n.agree(conv, n.nodes...)
	for range 12 {
		n.tick(2 * time.Hour)
	}
	if got := n.agree(conv, n.nodes...); got != e {
		t.Errorf("epoch %d, want %d: no refreshes", got, e)
	}
	if s := n.sum("stale_leaves"); s != 0 {
		t.Errorf("stale_leaves %d with refreshes off", s)
	}
}

// TestLeafUpdateRace: the member whose turn it is refreshes while cut
// off, so the next in the rotation refreshes in the same epoch; both send
// on their branches. When the cut heals the fork choice picks one
// Commit, every message arrives once, the loser refreshes again later,
// and every member ends on one epoch authenticator with a fresh leaf.
func TestLeafUpdateRace(t *testing.T) {
	runs := 3
	if testing.Short() {
		runs = 1
	}
	for run := range runs {
		t.Run("", func(t *testing.T) {
			n := newNetConfig(t, updateConfigJSON, "a", "b", "c", "d")
			const conv = "race"
			n.converse(conv, n.nodes...)
			n.tick(2 * time.Second)
			// Due at 2 h; the first in the rotation commits a settling window
			// (1 h) later: cut it off just before.
			n.tick(3*time.Hour - time.Duration(run+1)*time.Minute)
			e := n.agree(conv, n.nodes...)
			first := n.leafKeys(n.nodes[0], conv)
			// Whose turn is it first? Members are in the order of names.
			cut := n.nodes[int(e%uint64(len(n.nodes)))]
			var delayed []qitem
			n.drop = func(from, to *tnode, f *commonv1.Frame) bool {
				if from == cut || to == cut {
					if f.GetPeer() == nil || bytes.Equal(f.GetPeer(), to.id) {
						delayed = append(delayed, qitem{from, &commonv1.Frame{Direction: f.GetDirection(), TraceId: f.GetTraceId(),
							Conversation: f.GetConversation(), Peer: bytes.Clone(to.id), Payload: f.GetPayload(), Hints: f.GetHints()}})
					}
					return true
				}
				return false
			}
			for range 10 * 60 / 5 {
				n.tick(5 * time.Second)
			}
			if n.counter(cut, "leaf_updates") == 0 {
				t.Fatalf("%s did not refresh while cut off", cut.name)
			}
			others := 0
			for _, node := range n.nodes {
				if node != cut {
					others += int(n.counter(node, "leaf_updates"))
				}
			}
			if others == 0 {
				t.Fatal("nobody else refreshed")
			}
			var other *tnode
			for _, node := range n.nodes {
				if node != cut {
					other = node
					break
				}
			}
			m1 := n.send(cut, conv, nil)
			m2 := n.send(other, conv, nil)
			n.run()
			n.drop = nil
			n.mu.Lock()
			n.queue = append(n.queue, delayed...)
			n.mu.Unlock()
			n.run()
			for range 10 {
				n.tick(time.Second)
			}
			n.agree(conv, n.nodes...)
			if n.sum("forks_resolved") == 0 {
				t.Error("no fork resolved")
			}
			for i := range 6 * 6 {
				n.tick(10 * time.Minute)
				n.send(n.nodes[i%len(n.nodes)], conv, nil)
				n.run()
			}
			n.agree(conv, n.nodes...)
			now := n.leafKeys(n.nodes[0], conv)
			for _, node := range n.nodes {
				if bytes.Equal(now[string(node.id)], first[string(node.id)]) {
					t.Errorf("%s's leaf never changed", node.name)
				}
			}
			var to1, to2 []*tnode
			for _, node := range n.nodes {
				if node != cut {
					to1 = append(to1, node)
				}
				if node != other {
					to2 = append(to2, node)
				}
			}
			n.expectOnce(conv, cut, m1, to1...)
			n.expectOnce(conv, other, m2, to2...)
		})
	}
}
