package layer

import (
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestGroupLifecycle runs a group of up to four members through the host's
// SetConversation: creation, messages both ways, an add, a remove, the
// events the host consumes, and a restart of every member from its
// database.
func TestGroupLifecycle(t *testing.T) {
	n := newNet(t, "a", "b", "c", "d")
	a, b, c, d := n.nodes[0], n.nodes[1], n.nodes[2], n.nodes[3]
	const conv = "group-1"
	n.converse(conv, a, b, c)
	n.run()
	n.tick(time.Second) // a group of three waits retransmit_initial for a Welcome before it is created
	if e := n.agree(conv, a, b, c); e != 1 {
		t.Fatalf("epoch %d after creation, want 1 (one Commit adding both)", e)
	}
	if n.counter(a, "commits_made") != 1 || n.counter(b, "commits_made") != 0 || n.counter(c, "commits_made") != 0 {
		t.Fatal("someone other than the lowest member committed")
	}
	for _, x := range []*tnode{b, c} {
		ls := n.learned(x, conv)
		if len(ls) != 1 || len(ls[0].GetMembers()) != 3 || ls[0].GetRemoved() {
			t.Fatalf("%s: ConversationLearned events %v, want one with 3 members", x.name, ls)
		}
		if n.sectionChanges(x) != 1 {
			t.Fatalf("%s: %d SectionChanged events after its one-time KeyPackage was used, want 1", x.name, n.sectionChanges(x))
		}
	}
	for _, from := range []*tnode{a, b, c} {
		m := n.send(from, conv, nil)
		n.run()
		var others []*tnode
		for _, x := range []*tnode{a, b, c} {
			if x != from {
				others = append(others, x)
			}
		}
		n.expectOnce(conv, from, m, others...)
	}
	// A frame for one member goes to that member only.
	m := n.send(c, conv, b.id)
	n.run()
	n.expectOnce(conv, c, m, b)

	// b's card changed after its KeyPackage was used: a host republishes
	// it; the others take the new one.
	n.addContact(a, b)
	n.addContact(c, b)

	// d joins.
	n.converse(conv, a, b, c, d)
	n.run()
	n.agree(conv, a, b, c, d)
	if ls := n.learned(d, conv); len(ls) != 1 || len(ls[0].GetMembers()) != 4 {
		t.Fatalf("d: ConversationLearned events %v, want one with 4 members", ls)
	}
	if ls := n.learned(b, conv); len(ls) != 1 {
		t.Fatalf("b: %d ConversationLearned events, want still 1: its host asked for the addition it saw", len(ls))
	}
	m = n.send(d, conv, nil)
	n.run()
	n.expectOnce(conv, d, m, a, b, c)

	// b leaves: a removes it; b learns it is out. d's host has not heard
	// of it yet: d's layer tells it.
	n.mu.Lock()
	n.hosts[conv] = [][]byte{a.id, c.id, d.id}
	n.mu.Unlock()
	for _, x := range []*tnode{a, b, c} {
		n.setConv(x, []byte(conv), [][]byte{a.id, c.id, d.id})
	}
	n.run()
	n.agree(conv, a, c, d)
	if ls := n.learned(d, conv); len(ls) != 2 || len(ls[1].GetMembers()) != 3 || ls[1].GetRemoved() {
		t.Fatalf("d: ConversationLearned events %v, want a second one with 3 members", ls)
	}
	if ls := n.learned(c, conv); len(ls) != 1 {
		t.Fatalf("c: %d ConversationLearned events, want still 1", len(ls))
	}
	n.setConv(d, []byte(conv), [][]byte{a.id, c.id, d.id})
	if ls := n.learned(b, conv); len(ls) == 0 || !ls[len(ls)-1].GetRemoved() {
		t.Fatalf("b: no ConversationLearned with removed set: %v", ls)
	}
	m = n.send(c, conv, nil)
	n.run()
	n.expectOnce(conv, c, m, a, d)

	// Every remaining member restarts from its database.
	for _, x := range []*tnode{a, c, d} {
		n.restart(x, x.dir)
		n.run()
	}
	n.agree(conv, a, c, d)
	for _, from := range []*tnode{a, c, d} {
		m := n.send(from, conv, nil)
		n.run()
		var others []*tnode
		for _, x := range []*tnode{a, c, d} {
			if x != from {
				others = append(others, x)
			}
		}
		n.expectOnce(conv, from, m, others...)
	}
}

// TestHeldUntilWelcome checks that a member's DOWN frames wait for its
// Welcome and then go out, and that a message sealed in an epoch the
// member has not reached yet waits for it.
func TestHeldUntilWelcome(t *testing.T) {
	n := newNet(t, "a", "b")
	a, b := n.nodes[0], n.nodes[1]
	const conv = "dm"
	// b learns the conversation first; its message waits.
	n.mu.Lock()
	n.hosts[conv] = [][]byte{a.id, b.id}
	n.mu.Unlock()
	n.setConv(b, []byte(conv), [][]byte{a.id, b.id})
	early := n.send(b, conv, a.id)
	// The layer above sends the same frame again while it waits (a sync
	// layer's retransmission): it is held once, and goes out once.
	b.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{
		Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: traceSeq, Conversation: []byte(conv), Peer: a.id, Payload: early,
	}}})
	n.run()
	if n.counter(b, "held_down") != 1 || n.counter(b, "held_duplicates") != 1 {
		t.Fatalf("held_down %d, held_duplicates %d; want 1 and 1", n.counter(b, "held_down"), n.counter(b, "held_duplicates"))
	}
	// b asked a for the group (lazy.go) before a knew the conversation:
	// a dropped the ask, and b asks again after retransmit_initial.
	n.setConv(a, []byte(conv), [][]byte{a.id, b.id})
	n.run()
	if _, _, ok := n.state(a, conv); ok {
		t.Fatal("a formed a conversation of two that no one needed")
	}
	n.tick(time.Second)
	n.expectOnce(conv, b, early, a)
	n.agree(conv, a, b)
	if got := n.counter(b, "group_asks_sent"); got != 2 {
		t.Fatalf("b sent %d asks, want 2", got)
	}
}

// TestConcurrentCommits has two members commit in the same epoch; every
// member converges on the Commit with the lower hash, and application
// messages sealed on the losing branch are delivered.
func TestConcurrentCommits(t *testing.T) {
	for _, mode := range statusModes {
		t.Run(mode.name, func(t *testing.T) {
			n := newNetConfig(t, mode.cfg, "a", "b", "c", "d")
			a, b, c, d := n.nodes[0], n.nodes[1], n.nodes[2], n.nodes[3]
			const conv = "race"
			n.converse(conv, a, b, c, d)
			n.run()
			n.tick(time.Second)
			start := n.agree(conv, a, b, c, d)
			for round := range 3 {
				// b and d each commit (an empty Commit with a path) before either
				// hears of the other, and each sends a message at once.
				for _, x := range []*tnode{b, d} {
					x.l.mu.Lock()
					x.l.commit(x.l.convs[conv], nil, nil, false)
					x.l.flush(n.ctx)
					x.l.mu.Unlock()
				}
				mb := n.send(b, conv, nil)
				md := n.send(d, conv, nil)
				n.run()
				n.tick(time.Second)
				e := n.agree(conv, a, b, c, d)
				if e != start+uint64(round)+1 {
					t.Fatalf("round %d: epoch %d, want %d: one of the two Commits wins", round, e, start+uint64(round)+1)
				}
				n.expectOnce(conv, b, mb, a, c, d)
				n.expectOnce(conv, d, md, a, b, c)
			}
			var rollbacks, forks uint64
			for _, x := range n.nodes {
				rollbacks += n.counter(x, "rollbacks")
				forks += n.counter(x, "forks_detected")
			}
			if rollbacks == 0 || forks == 0 {
				t.Fatalf("rollbacks %d, forks detected %d: the race was not seen", rollbacks, forks)
			}
			// The group goes on.
			m := n.send(c, conv, nil)
			n.run()
			n.expectOnce(conv, c, m, a, b, d)
		})
	}
}

// TestLossHealedByRetransmission drops every first copy of the Commit and
// the Welcome; the committer sends them again until every member shows
// the new epoch.
func TestLossHealedByRetransmission(t *testing.T) {
	for _, mode := range statusModes {
		t.Run(mode.name, func(t *testing.T) {
			n := newNetConfig(t, mode.cfg, "a", "b", "c")
			a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
			const conv = "lossy"
			seen := map[string]bool{}
			n.drop = func(from, to *tnode, f *commonv1.Frame) bool {
				e, err := decodeEnvelope(f.GetPayload())
				if err != nil || (e.kind != kindCommit && e.kind != kindGroupWelcome) {
					return false
				}
				key := string(to.id) + string(f.GetPayload())
				if seen[key] {
					return false
				}
				seen[key] = true
				return true
			}
			n.converse(conv, a, b)
			n.run()
			if _, _, ok := n.state(b, conv); ok {
				t.Fatal("b joined although its Welcome was lost")
			}
			n.tick(1500 * time.Millisecond)
			n.agree(conv, a, b)
			n.converse(conv, a, b, c)
			n.run()
			n.tick(1500 * time.Millisecond)
			n.agree(conv, a, b, c)
			if n.counter(a, "retransmitted") < 3 {
				t.Fatalf("retransmitted %d, want at least 3 (Welcome to b, Welcome to c, Commit to b)", n.counter(a, "retransmitted"))
			}
			n.tick(10 * time.Second)
			a.l.mu.Lock()
			pending := len(a.l.convs[conv].outbox)
			a.l.mu.Unlock()
			if pending != 0 {
				t.Fatalf("%d Commits still being retransmitted after every member showed the epoch", pending)
			}
			m := n.send(b, conv, nil)
			n.run()
			n.expectOnce(conv, b, m, a, c)
		})
	}
}

// TestCrashMidHandOver restarts the committer from the files as a kill -9
// leaves them while its Commit and Welcome are being handed on: the state
// with the Commit is on disk, the frames are lost, and the restarted
// layer sends them again from its outbox.
func TestCrashMidHandOver(t *testing.T) {
	n := newNet(t, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	const conv = "crash"
	n.converse(conv, a, b)
	n.run()
	n.agree(conv, a, b)
	image := t.TempDir()
	crashed := false
	n.onEmit = func(from *tnode, frames []*commonv1.Frame) bool {
		if from != a || crashed {
			return true
		}
		for _, f := range frames {
			if e, err := decodeEnvelope(f.GetPayload()); err == nil && e.kind == kindCommit {
				sdktest.CrashImage(t, a.dir, image)
				crashed = true
				return false
			}
		}
		return true
	}
	n.converse(conv, a, b, c)
	n.run()
	if !crashed {
		t.Fatal("a sent no Commit")
	}
	n.onEmit = nil
	if _, _, ok := n.state(c, conv); ok {
		t.Fatal("c joined from a Welcome that was lost in the crash")
	}
	n.restart(a, image)
	n.run()
	n.tick(time.Second)
	n.agree(conv, a, b, c)
	m := n.send(c, conv, nil)
	n.run()
	n.expectOnce(conv, c, m, a, b)
}

// TestTakeoverAfterPartition cuts the first member in commit order off;
// the next one takes over after the takeover timeout and commits the same
// addition. When the partition heals, the two Commits for one epoch meet
// and every member, the new one included, converges on the one with the
// lower hash.
func TestTakeoverAfterPartition(t *testing.T) {
	for _, seed := range []int{0, 1, 2} {
		t.Run(string(rune('A'+seed)), func(t *testing.T) {
			// Both routes of status messages, across the subtests.
			n := newNetConfig(t, statusModes[seed%2].cfg, "a", "b", "c", "d")
			a, b, c, d := n.nodes[0], n.nodes[1], n.nodes[2], n.nodes[3]
			conv := "takeover"
			n.converse(conv, a, b, c)
			n.run()
			n.tick(time.Second)
			n.agree(conv, a, b, c)
			cut := true
			n.drop = func(from, to *tnode, f *commonv1.Frame) bool { return cut && (from == a || to == a) }
			// Extra empty Commits by a make the race come out differently
			// across the subtests.
			for range seed {
				a.l.mu.Lock()
				a.l.commit(a.l.convs[conv], nil, nil, false)
				a.l.flush(n.ctx)
				a.l.mu.Unlock()
			}
			n.run()
			n.converse(conv, a, b, c, d)
			n.run()
			if _, _, ok := n.state(d, conv); ok {
				t.Fatal("d joined before anyone could add it")
			}
			n.tick(11 * time.Second)
			if n.counter(b, "takeovers") != 1 {
				t.Fatalf("b: takeovers %d, want 1", n.counter(b, "takeovers"))
			}
			n.agreeN(conv, 4, b, c, d)
			m := n.send(d, conv, nil)
			n.run()
			n.expectOnce(conv, d, m, b, c)
			cut = false
			for range 6 {
				n.tick(5 * time.Second)
			}
			n.agree(conv, a, b, c, d)
			for _, x := range n.nodes {
				t.Logf("%s: rollbacks %d, forks detected %d, opened in a losing branch %d", x.name, n.counter(x, "rollbacks"), n.counter(x, "forks_detected"), n.counter(x, "opened_in_losing_branch"))
			}
			for _, from := range []*tnode{a, b, c, d} {
				m := n.send(from, conv, nil)
				n.run()
				var others []*tnode
				for _, x := range []*tnode{a, b, c, d} {
					if x != from {
						others = append(others, x)
					}
				}
				n.expectOnce(conv, from, m, others...)
			}
		})
	}
}

// TestKeyPackageOffer has two members add the same contact with the same
// one-time KeyPackage of its card (a card goes to many contacts): the
// second Welcome names a KeyPackage the contact has used, so it answers
// with a fresh one, and the committer adds it again with that.
func TestKeyPackageOffer(t *testing.T) {
	cfg := `{"settle_window": "1m", "branch_retention": "2m", "retransmit_initial": "1s", "retransmit_max": "4s", "takeover_timeout": "10s", "key_packages": 1}`
	n := newNetConfig(t, cfg, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	n.converse("one", a, c)
	n.run()
	n.agree("one", a, c)
	n.tick(2 * time.Minute) // c no longer keeps the used KeyPackage's keys
	n.converse("two", b, c) // b still holds c's first card
	n.run()
	if n.counter(c, "keypackages_offered") != 1 || n.counter(b, "keypackage_offers_taken") != 1 {
		t.Fatalf("offered %d, taken %d, want 1 and 1", n.counter(c, "keypackages_offered"), n.counter(b, "keypackage_offers_taken"))
	}
	n.agree("two", b, c)
	m := n.send(c, "two", nil)
	n.run()
	n.expectOnce("two", c, m, b)
	n.tick(10 * time.Second)
	b.l.mu.Lock()
	pending := len(b.l.convs["two"].outbox)
	b.l.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d Commits still retransmitted", pending)
	}
}

// TestManyContacts makes every node a contact of every other, as a host
// does, so that each pair has its 1:1 group (made from the same cards,
// whose few one-time KeyPackages many committers then share), and puts
// all of them in one group: every group forms and carries a message.
func TestManyContacts(t *testing.T) {
	size := 12
	if testing.Short() {
		size = 6
	}
	var names []string
	for i := range size {
		names = append(names, fmt.Sprintf("n%02d", i))
	}
	n := newNet(t, names...)
	for i, x := range n.nodes {
		for _, y := range n.nodes[i+1:] {
			n.converse("dm "+x.name+" "+y.name, x, y)
		}
	}
	n.converse("all", n.nodes...)
	n.run()
	n.tick(time.Second)
	n.tick(2 * time.Second)
	n.tick(5 * time.Second)
	n.agree("all", n.nodes...)
	for i, x := range n.nodes {
		for _, y := range n.nodes[i+1:] {
			n.agree("dm "+x.name+" "+y.name, x, y)
		}
	}
	var offered uint64
	for _, x := range n.nodes {
		offered += n.counter(x, "keypackages_offered")
	}
	t.Logf("%d groups, %d KeyPackage offers", size*(size-1)/2+1, offered)
	m := n.send(n.nodes[size-1], "all", nil)
	n.run()
	n.expectOnce("all", n.nodes[size-1], m, n.nodes[:size-1]...)
}

// TestAddedLowest adds to an existing group a member whose identity is
// the lowest of all: its host gives it the conversation at the same time
// as the others', and it joins the existing group instead of creating
// another.
func TestAddedLowest(t *testing.T) {
	n := newNet(t, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	const conv = "existing"
	n.converse(conv, b, c)
	n.run()
	n.agree(conv, b, c)
	n.converse(conv, a, b, c)
	n.run()
	n.tick(3 * time.Second)
	n.agree(conv, a, b, c)
	if n.counter(a, "commits_made") != 0 {
		t.Fatalf("a made %d Commits: it created a second group", n.counter(a, "commits_made"))
	}
	m := n.send(a, conv, nil)
	n.run()
	n.expectOnce(conv, a, m, b, c)
}

// TestAddedLowestLate is TestAddedLowest when the existing group's
// Welcome comes too late: the new member has created a group of its own,
// the existing members refuse its Welcome, and it gives its group up for
// theirs.
func TestAddedLowestLate(t *testing.T) {
	n := newNet(t, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	const conv = "existing"
	n.converse(conv, b, c)
	n.run()
	n.agree(conv, b, c)
	for range 2 { // the existing group moves on
		b.l.mu.Lock()
		b.l.commit(b.l.convs[conv], nil, nil, false)
		b.l.flush(n.ctx)
		b.l.mu.Unlock()
		n.run()
	}
	n.tick(2 * time.Hour) // beyond every settling window
	n.mu.Lock()
	n.hosts[conv] = [][]byte{a.id, b.id, c.id}
	n.mu.Unlock()
	n.setConv(a, []byte(conv), [][]byte{a.id, b.id, c.id})
	n.tick(time.Second) // a creates its own group; b and c refuse it
	if n.counter(a, "commits_made") != 1 {
		t.Fatalf("a made %d Commits, want 1 (its own group)", n.counter(a, "commits_made"))
	}
	n.setConv(b, []byte(conv), [][]byte{a.id, b.id, c.id})
	n.setConv(c, []byte(conv), [][]byte{a.id, b.id, c.id})
	n.run()
	n.tick(time.Second)
	n.agree(conv, a, b, c)
	if e, _, _ := n.state(a, conv); e != 4 {
		t.Fatalf("a is in epoch %d, want 4: the existing group's", e)
	}
	m := n.send(a, conv, nil)
	n.run()
	n.expectOnce(conv, a, m, b, c)
}
