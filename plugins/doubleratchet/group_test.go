package doubleratchet

import (
	"bytes"
	"context"
	"slices"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

var senderKeys = map[string]any{"group_messages": "sender_keys"}

// mesh starts nodes that all know each other, with their bundle requests
// answered.
func mesh(t testing.TB, cfg map[string]any, n int) []*node {
	t.Helper()
	var nodes []*node
	for i := range n {
		nodes = append(nodes, startNode(t, t.TempDir(), identity(byte(0xA0+i)), cfg))
	}
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				x.add(y)
			}
		}
	}
	for _, x := range nodes {
		route(nodes, x, x.out.Take())
	}
	return nodes
}

// route delivers the DOWN frames that from emitted, as the host and a
// perfect privacy layer do (a frame without a peer reaches every other
// node), and whatever they make the others emit, until nothing is left.
// It returns the UP frames each node delivered.
func route(nodes []*node, from *node, frames []*commonv1.Frame) map[*node][]*commonv1.Frame {
	up := map[*node][]*commonv1.Frame{}
	type hop struct {
		from *node
		f    *commonv1.Frame
	}
	var queue []hop
	for _, f := range frames {
		queue = append(queue, hop{from, f})
	}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h.f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
			up[h.from] = append(up[h.from], h.f)
			continue
		}
		for _, to := range nodes {
			if to == h.from || (len(h.f.GetPeer()) > 0 && !bytes.Equal(h.f.GetPeer(), to.id)) {
				continue
			}
			for _, o := range to.handle(arrive(h.from, h.f)) {
				queue = append(queue, hop{to, o})
			}
		}
	}
	return up
}

func setGroup(t testing.TB, group []byte, at *node, members ...*node) {
	t.Helper()
	var ids [][]byte
	for _, m := range members {
		ids = append(ids, m.id)
	}
	if _, err := at.l.SetConversation(context.Background(), &securev1.ConversationRequest{Id: group, Members: ids}); err != nil {
		t.Fatal(err)
	}
}

// split separates a node's output into the group frame (no peer) and the
// pairwise ones.
func split(t *testing.T, out []*commonv1.Frame) (group *commonv1.Frame, pairwise []*commonv1.Frame) {
	t.Helper()
	for _, f := range out {
		if len(f.GetPeer()) == 0 {
			if group != nil {
				t.Fatal("two group frames for one message")
			}
			group = f
		} else {
			pairwise = append(pairwise, f)
		}
	}
	if group == nil {
		t.Fatalf("no group frame among %d", len(out))
	}
	return group, pairwise
}

func payloads(frames []*commonv1.Frame) []string {
	var out []string
	for _, f := range frames {
		out = append(out, string(f.GetPayload()))
	}
	return out
}

func TestSenderKeysSealOnceForTheGroup(t *testing.T) {
	nodes := mesh(t, senderKeys, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}

	out := a.handle(down(nil, group, []byte("first group message")))
	g, dists := split(t, out)
	if len(dists) != 3 {
		t.Fatalf("%d distributions, want one per other member", len(dists))
	}
	if !bytes.Equal(g.GetConversation(), group) || bytes.Contains(g.GetPayload(), []byte("first group message")) {
		t.Fatal("the group frame lacks its conversation, or carries the plaintext")
	}
	up := route(nodes, a, out)
	for _, n := range []*node{b, c, d} {
		if got := payloads(up[n]); len(got) != 1 || got[0] != "first group message" || !bytes.Equal(up[n][0].GetPeer(), a.id) {
			t.Fatalf("node %x delivered %q", n.id[0], got)
		}
	}
	if a.counter(cGroupSealed) != 1 || b.counter(cGroupOpened) != 1 || b.counter(cDistributionsRecv) != 1 {
		t.Fatal("group counters")
	}

	// The second message is one frame.
	out = a.handle(down(nil, group, []byte("second")))
	if len(out) != 1 || len(out[0].GetPeer()) != 0 {
		t.Fatalf("second message: %d frames", len(out))
	}
	second := out[0]
	up = route(nodes, a, out)
	for _, n := range []*node{b, c, d} {
		if got := payloads(up[n]); len(got) != 1 || got[0] != "second" {
			t.Fatalf("node %x delivered %q", n.id[0], got)
		}
	}

	// A replay, an echo to the sender, a tampered copy, and a copy that
	// the privacy layer says came from someone else.
	if got := deliver(a, b, second); len(got) != 0 || b.counter("dropped_replay") != 1 {
		t.Fatal("a replayed group message was not refused")
	}
	if got := deliver(a, a, second); len(got) != 0 || a.counter(cGroupOwn) != 1 {
		t.Fatal("the sender's own group message came back up")
	}
	env := envelopeOf(t, a.handle(down(nil, group, []byte("third")))[0])
	sk := env.GetSenderKeyMessage()
	sk.Ciphertext[0] ^= 1
	if got := deliver(a, c, withPayload(second, marshalEnvelope(t, env))); len(got) != 0 || c.counter("dropped_bad_signature") != 1 {
		t.Fatal("a tampered group message was not refused")
	}
	sk.Ciphertext[0] ^= 1
	third := withPayload(second, marshalEnvelope(t, env))
	if got := deliver(c, d, third); len(got) != 0 || d.counter("dropped_sender_mismatch") != 1 {
		t.Fatal("a group message under a's key, said to be from c, was taken")
	}
	if got := deliver(a, d, third); len(got) != 1 || string(got[0]) != "third" {
		t.Fatalf("the genuine third message after the refusals: %q", got)
	}
}

func TestSenderKeysWaitForTheirDistribution(t *testing.T) {
	nodes := mesh(t, senderKeys, 3)
	a, b := nodes[0], nodes[1]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	g, dists := split(t, a.handle(down(nil, group, []byte("overtook its key"))))
	if got := deliver(a, b, g); len(got) != 0 || b.counter(cGroupPending) != 1 {
		t.Fatal("a group message before its key was not kept waiting")
	}
	for _, f := range dists {
		if bytes.Equal(f.GetPeer(), b.id) {
			if got := deliver(a, b, f); len(got) != 1 || string(got[0]) != "overtook its key" {
				t.Fatalf("the waiting message, once its key came: %q", got)
			}
		}
	}
	if b.counter(cGroupPending) != 0 {
		t.Fatal("the waiting room is not empty")
	}
}

// TestSenderKeysLostDistribution: a member whose distribution was lost
// asks the sender for its chain when a group message comes, once per
// interval; the answer opens the sender's later group messages.
func TestSenderKeysLostDistribution(t *testing.T) {
	nodes := mesh(t, senderKeys, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	g, dists := split(t, a.handle(down(nil, group, []byte("lost key"))))
	for _, f := range dists {
		if bytes.Equal(f.GetPeer(), c.id) {
			deliver(a, c, f)
		}
	}
	if got := deliver(a, c, g); len(got) != 1 {
		t.Fatal("c, which got the key, did not open the message")
	}
	out := b.handle(arrive(a, g)) // b's distribution was lost
	if len(out) != 1 || !bytes.Equal(out[0].GetPeer(), a.id) || b.counter(cKeyRequestsSent) != 1 {
		t.Fatalf("b sent %d frames, %d requests; want one request to a", len(out), b.counter(cKeyRequestsSent))
	}
	request := out[0]
	g2 := a.handle(down(nil, group, []byte("second")))[0]
	if out := b.handle(arrive(a, g2)); len(out) != 0 {
		t.Fatal("b asked again within the interval")
	}
	answer := a.handle(arrive(b, request))
	if len(answer) != 1 || !bytes.Equal(answer[0].GetPeer(), b.id) || a.counter(cKeyRequestsRecv) != 1 {
		t.Fatalf("a answered with %d frames", len(answer))
	}
	if out := a.handle(arrive(b, request)); len(out) != 0 {
		t.Fatal("a answered the same request twice within the interval")
	}
	// The answer is the chain's current position: the two waiting messages
	// are before it, and the sync layer resends them pairwise.
	if got := deliver(a, b, answer[0]); len(got) != 0 || b.counter("dropped_unknown_sender_key") != 2 || b.counter(cGroupPending) != 0 {
		t.Fatalf("after the answer: %q delivered, %d dropped as before the chain", got, b.counter("dropped_unknown_sender_key"))
	}
	g3 := a.handle(down(nil, group, []byte("third")))
	if len(g3) != 1 {
		t.Fatalf("a handed its chain out again (%d frames)", len(g3))
	}
	if got := deliver(a, b, g3[0]); len(got) != 1 || string(got[0]) != "third" {
		t.Fatalf("b after the answer: %q", got)
	}
	// A request from a member who left is not answered.
	setGroup(t, group, a, a, c)
	if out := a.handle(arrive(b, request)); len(out) != 0 {
		t.Fatal("a answered a request from a member who left")
	}
}

func TestSenderKeysRotateWhenAMemberLeaves(t *testing.T) {
	nodes := mesh(t, senderKeys, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	route(nodes, a, a.handle(down(nil, group, []byte("all four"))))
	for _, n := range []*node{a, b, c} {
		setGroup(t, group, n, a, b, c)
	}
	out := a.handle(down(nil, group, []byte("without d")))
	g, dists := split(t, out)
	if len(dists) != 2 || a.counter(cChainsStarted) != 2 {
		t.Fatalf("after d left: %d distributions, %d chains", len(dists), a.counter(cChainsStarted))
	}
	for _, f := range dists {
		if bytes.Equal(f.GetPeer(), d.id) {
			t.Fatal("the new chain went to the member who left")
		}
	}
	up := route(nodes[:3], a, out)
	if got := payloads(up[b]); len(got) != 1 || got[0] != "without d" {
		t.Fatalf("b delivered %q", got)
	}
	if got := deliver(a, d, g); len(got) != 0 {
		t.Fatal("the member who left read a message sealed after it left")
	}
}

func TestSenderKeysSurviveRestart(t *testing.T) {
	nodes := mesh(t, senderKeys, 3)
	a, b := nodes[0], nodes[1]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	first := a.handle(down(nil, group, []byte("before the crash")))
	route(nodes, a, first)
	g1, _ := split(t, first)

	a = a.crash()
	b = b.crash()
	nodes[0], nodes[1] = a, b
	for _, n := range nodes[:2] {
		setGroup(t, group, n, nodes...) // the host sets conversations again at every start
	}
	out := a.handle(down(nil, group, []byte("after the crash")))
	if len(out) != 1 {
		t.Fatalf("after a restart the chain was handed out again (%d frames)", len(out))
	}
	i1 := envelopeOf(t, g1).GetSenderKeyMessage().GetIteration()
	i2 := envelopeOf(t, out[0]).GetSenderKeyMessage().GetIteration()
	if i2 <= i1 {
		t.Fatalf("iteration %d after %d: a message key would be used twice", i2, i1)
	}
	if got := deliver(a, b, out[0]); len(got) != 1 || string(got[0]) != "after the crash" {
		t.Fatalf("b after its restart: %q", got)
	}
	if got := deliver(a, b, g1); len(got) != 0 {
		t.Fatal("a message from before the restart opened twice")
	}
}

func TestPairwiseIsTheDefault(t *testing.T) {
	nodes := mesh(t, nil, 3)
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	out := nodes[0].handle(down(nil, group, []byte("x")))
	if len(out) != 2 || len(out[0].GetPeer()) == 0 || len(out[1].GetPeer()) == 0 {
		t.Fatal("without sender_keys a group message is not pairwise")
	}
	// A two-member conversation stays pairwise with sender keys too.
	two := mesh(t, senderKeys, 2)
	for _, n := range two {
		setGroup(t, group, n, two...)
	}
	if out := two[0].handle(down(nil, group, []byte("x"))); len(out) != 1 || len(out[0].GetPeer()) == 0 {
		t.Fatal("a two-member conversation used a sender key")
	}
}

func TestSenderKeyDistributionWithPayloadRefused(t *testing.T) {
	nodes := mesh(t, senderKeys, 3)
	a, b := nodes[0], nodes[1]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(t, group, n, nodes...)
	}
	a.l.mu.Lock()
	bt, err := newBatch(context.Background(), a.l.db)
	if err != nil {
		t.Fatal(err)
	}
	env, err := a.l.sealPlaintext(context.Background(), bt, a.l.contacts[string(b.id)], &wirepb.Plaintext{Conversation: group, Payload: []byte("smuggled"),
		SenderKey: &wirepb.SenderKeyDistribution{KeyId: 1, ChainKey: make([]byte, 32), SigningKey: make([]byte, 32)}})
	if err == nil {
		err = a.l.commit(bt)
	}
	a.l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	f := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: b.id, Payload: env}
	if got := deliver(a, b, f); len(got) != 0 || b.counter("dropped_malformed") != 1 {
		t.Fatal("a distribution that carried a payload was taken")
	}
}

// chainStates is every sender key chain of the node, marshalled, in one
// string.
func (n *node) chainStates() string {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	var keys []string
	for k := range n.l.chains {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []byte
	for _, k := range keys {
		ch := n.l.chains[k]
		var raw []byte
		if ch.own != nil {
			raw, _ = ch.own.MarshalBinary()
		} else {
			raw, _ = ch.recv.MarshalBinary()
		}
		out = append(out, raw...)
	}
	return string(out)
}
