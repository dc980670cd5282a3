package layer

import (
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// traffic is what the layers of a tnet sent: DOWN frames (a frame for the
// group counts once, as on a privacy layer with shared addresses),
// deliveries (UP frames handed to a layer: a group frame counts once per
// receiver, as on a privacy layer without them), and bytes of both.
type traffic struct {
	frames, deliveries  int
	bytes, deliveredLen int
	byKind              map[uint8]int
}

func (t traffic) String() string {
	return fmt.Sprintf("%d frames (%d bytes), %d deliveries (%d bytes), by kind %v", t.frames, t.bytes, t.deliveries, t.deliveredLen, t.byKind)
}

// countTraffic counts what n's layers send from now on; the returned
// function gives the count so far and starts a new one.
func countTraffic(n *tnet) func() traffic {
	cur := traffic{byKind: map[uint8]int{}}
	n.onEmit = func(from *tnode, frames []*commonv1.Frame) bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, f := range frames {
			if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
				continue
			}
			cur.frames++
			cur.bytes += len(f.GetPayload())
			if p := f.GetPayload(); len(p) > 1 {
				cur.byKind[p[1]]++
			}
		}
		return true
	}
	n.onDeliver = func(to *tnode, f *commonv1.Frame) {
		cur.deliveries++
		cur.deliveredLen += len(f.GetPayload())
	}
	return func() traffic {
		n.mu.Lock()
		defer n.mu.Unlock()
		t := cur
		cur = traffic{byKind: map[uint8]int{}}
		return t
	}
}

// TestGroupTrafficPerGroup counts the mls layers' own traffic for forming
// a group of 20 and for one message from every member: it must grow as
// O(n), not O(n²). One Welcome for all new members (not one per member,
// each with the whole ratchet tree), status messages to the committer
// (not to every member), no retransmission once every member has shown
// the epoch.
func TestGroupTrafficPerGroup(t *testing.T) {
	size := 20
	var names []string
	for i := range size {
		names = append(names, fmt.Sprintf("n%02d", i))
	}
	n := newNet(t, append(names, "late")...)
	all := n.nodes
	first := all[:size]
	const conv = "team"
	count := countTraffic(n)
	n.converse(conv, first...)
	n.run()
	n.tick(time.Second) // the creator waits retransmit_initial for a Welcome
	n.agree(conv, first...)
	for range 4 { // every retransmission timer runs out
		n.tick(4 * time.Second)
	}
	form := count()
	t.Logf("forming a group of %d: %v", size, form)
	// The creator's Welcome, one ask from each other member (whose host
	// knows the conversation: lazy.go), one status from each new member,
	// nothing else.
	if limit := 1 + 2*(size-1); form.frames > limit {
		t.Errorf("forming a group of %d sent %d frames, want at most %d (O(n))", size, form.frames, limit)
	}
	// Each frame for the group reaches the other members once: the
	// Commit and the Welcome reach size-1 each, a status one member.
	if limit := 3 * size; form.deliveries > limit {
		t.Errorf("forming a group of %d took %d deliveries, want at most %d (O(n))", size, form.deliveries, limit)
	}
	if w := form.byKind[kindWelcome] + form.byKind[kindGroupWelcome]; w != 1 {
		t.Errorf("%d Welcome frames for one Commit, want 1", w)
	}
	// The Commit that creates the group adds everyone but its creator:
	// every other member joins from the Welcome, so it is not sent.
	if k := form.byKind[kindCommit]; k != 0 {
		t.Errorf("the creating Commit was sent %d times, want 0", k)
	}

	for _, x := range first {
		n.send(x, conv, nil)
	}
	n.run()
	for range 4 {
		n.tick(4 * time.Second)
	}
	round := count()
	t.Logf("one message from each of %d members: %v", size, round)
	if round.frames != size {
		t.Errorf("one message from each of %d members sent %d frames, want %d: the layer's own traffic is not zero", size, round.frames, size)
	}
	if round.deliveries != size*(size-1) {
		t.Errorf("%d deliveries, want %d", round.deliveries, size*(size-1))
	}

	// One member is added: one Commit for the group, one Welcome for the
	// new member, a status from each member to the committer.
	n.converse(conv, all...)
	n.run()
	n.agree(conv, all...)
	for range 4 {
		n.tick(4 * time.Second)
	}
	add := count()
	t.Logf("adding one member to %d: %v", size, add)
	// (and the new member's ask: its host knows the conversation)
	if limit := 3 + size; add.frames > limit {
		t.Errorf("adding a member to a group of %d sent %d frames, want at most %d", size, add.frames, limit)
	}
	if limit := 3 * size; add.deliveries > limit {
		t.Errorf("adding a member to a group of %d took %d deliveries, want at most %d (O(n))", size, add.deliveries, limit)
	}
}

// TestUnresolvedForkDetected splits a group in two halves for longer
// than the settling window, each half moving on with a Commit of its own;
// when the halves meet again, the committers' retransmissions make the
// members of the other half answer with their status, and the fork is
// counted as one no member can resolve, whichever route status messages
// take.
func TestUnresolvedForkDetected(t *testing.T) {
	for _, mode := range statusModes {
		t.Run(mode.name, func(t *testing.T) {
			n := newNetConfig(t, mode.cfg, "a", "b", "c", "d")
			a, b, c, d := n.nodes[0], n.nodes[1], n.nodes[2], n.nodes[3]
			const conv = "split"
			n.converse(conv, a, b, c, d)
			n.run()
			n.tick(time.Second)
			n.agree(conv, a, b, c, d)
			left := map[*tnode]bool{a: true, b: true}
			cut := true
			n.drop = func(from, to *tnode, f *commonv1.Frame) bool { return cut && left[from] != left[to] }
			for _, x := range []*tnode{b, c} {
				x.l.mu.Lock()
				x.l.commit(x.l.convs[conv], nil, nil, false)
				x.l.flush(n.ctx)
				x.l.mu.Unlock()
			}
			n.run()
			n.tick(2 * time.Hour) // beyond every settling window
			n.agreeN(conv, 4, a, b)
			n.agreeN(conv, 4, c, d)
			var before uint64
			for _, x := range n.nodes {
				before += n.counter(x, "forks_unresolved")
			}
			if before != 0 {
				t.Fatalf("%d unresolved forks counted before the halves met", before)
			}
			cut = false
			for range 4 {
				n.tick(time.Second)
			}
			var unresolved uint64
			for _, x := range n.nodes {
				unresolved += n.counter(x, "forks_unresolved")
			}
			if unresolved == 0 {
				t.Fatal("the fork was not detected when the halves met")
			}
		})
	}
}

// TestWelcomeToUnsubscribedJoiner has a new member whose host does not
// receive the group's frames (it has not subscribed to the group's shared
// address: it learns the conversation from the Welcome): the Welcome sent
// to the group misses it, and the retransmissions address it directly.
func TestWelcomeToUnsubscribedJoiner(t *testing.T) {
	n := newNet(t, "a", "b", "c")
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	const conv = "unsubscribed"
	n.drop = func(from, to *tnode, f *commonv1.Frame) bool { return to == c && len(f.GetPeer()) == 0 }
	n.converse(conv, a, b, c)
	n.run()
	n.tick(time.Second) // a creates the group: the Welcome goes to the group
	if _, _, ok := n.state(c, conv); ok {
		t.Fatal("c joined from a frame for the group")
	}
	n.tick(time.Second) // the first retransmission: to the group again
	n.tick(2 * time.Second)
	n.agree(conv, a, b, c)
	if ls := n.learned(c, conv); len(ls) != 1 || len(ls[0].GetMembers()) != 3 {
		t.Fatalf("c: ConversationLearned events %v, want one with 3 members", ls)
	}
	n.tick(10 * time.Second)
	a.l.mu.Lock()
	pending := len(a.l.convs[conv].outbox)
	a.l.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d Commits still being retransmitted after every member showed the epoch", pending)
	}
}

// TestGroupWelcomeToAskers: members whose hosts know a conversation ask
// its lowest member for the group when no Welcome came in time, and the
// Welcome's retransmissions then go once to the whole group for them; a
// member that did not ask (its host learns the conversation from the
// Welcome) is sent its own copy.
func TestGroupWelcomeToAskers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		allKnow  bool
		group    int // Welcome frames of the second round, to the group
		alone    int // and to one joiner each
		asksSeen uint64
	}{
		{name: "every host knows it", allKnow: true, group: 1, alone: 0, asksSeen: 4},
		{name: "only the creator's host knows it", allKnow: false, group: 0, alone: 4, asksSeen: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, "a", "b", "c", "d", "e")
			a := n.nodes[0]
			const conv = "team"
			lost := true
			n.drop = func(from, _ *tnode, f *commonv1.Frame) bool {
				p := f.GetPayload()
				return lost && from == a && len(p) > 1 && p[1] == kindGroupWelcome
			}
			if tc.allKnow {
				n.converseLazy(conv, n.nodes...)
			} else {
				n.setConv(a, []byte(conv), n.route(conv, n.nodes...))
			}
			n.run()
			var group, alone int
			n.onEmit = func(from *tnode, frames []*commonv1.Frame) bool {
				for _, f := range frames {
					if p := f.GetPayload(); from == a && len(p) > 1 && p[1] == kindGroupWelcome {
						if len(f.GetPeer()) == 0 {
							group++
						} else {
							alone++
						}
					}
				}
				return true
			}
			n.tick(time.Second) // a creates the group (create_wait = retransmit_initial, 1 s); its Welcome is lost
			n.tick(time.Second) // the first round, to the group; the joiners that know the conversation ask
			if got := n.counter(a, "group_asks_received"); got < tc.asksSeen || tc.asksSeen == 0 && got != 0 {
				t.Fatalf("a took %d asks, want at least %d", got, tc.asksSeen)
			}
			group, alone = 0, 0
			n.tick(2 * time.Second) // the second round
			if group != tc.group || alone != tc.alone {
				t.Fatalf("second round: %d Welcomes to the group, %d to one joiner; want %d and %d", group, alone, tc.group, tc.alone)
			}
			lost = false
			for range 3 {
				n.tick(4 * time.Second)
			}
			n.agree(conv, n.nodes...)
		})
	}
}
