package whisper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// testNet wires layers directly: a DOWN frame for an overlay peer arrives
// at that peer as an UP frame from the sender; UP frames go to the node's
// app channel. Each node has one inbox goroutine, so batches arrive in
// order, one at a time.
type testNet struct {
	t     *testing.T
	mu    sync.Mutex
	nodes map[string]*netNode
	links map[[2]string]bool
	wg    sync.WaitGroup
	done  chan struct{}
}

// netNode is a node's host in a testNet; not a Recorder, because it
// delivers its layer's DOWN frames to the other nodes rather than keeping
// them.
type netNode struct {
	id    string
	net   *testNet
	l     *Layer
	inbox chan *commonv1.Batch
	app   chan *commonv1.Frame
}

func (n *netNode) Emit(_ context.Context, fs ...*commonv1.Frame) error {
	for _, f := range fs {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_UP:
			n.app <- f
		case commonv1.Direction_DIRECTION_DOWN:
			n.net.deliver(n.id, f)
		}
	}
	return nil
}

func (n *netNode) EmitEvent(context.Context, *commonv1.Event) error { return nil }

func newTestNet(t *testing.T) *testNet {
	nt := &testNet{t: t, nodes: map[string]*netNode{}, links: map[[2]string]bool{}, done: make(chan struct{})}
	t.Cleanup(func() {
		for _, n := range nt.nodes {
			n.l.Stop(context.Background())
		}
		close(nt.done)
		nt.wg.Wait()
	})
	return nt
}

func (nt *testNet) add(id string, cfg map[string]any) *netNode {
	n := &netNode{id: id, net: nt, l: New(), inbox: make(chan *commonv1.Batch, 4096), app: make(chan *commonv1.Frame, 1024)}
	js, _ := json.Marshal(cfg)
	if _, err := n.l.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(js), DataDir: nt.t.TempDir()}, sdk.Env{Out: n}); err != nil {
		nt.t.Fatal(err)
	}
	if _, err := n.l.Start(context.Background(), &commonv1.StartRequest{BelowAddress: []byte(id)}); err != nil {
		nt.t.Fatal(err)
	}
	nt.mu.Lock()
	nt.nodes[id] = n
	nt.mu.Unlock()
	nt.wg.Add(1)
	go func() {
		defer nt.wg.Done()
		for {
			select {
			case b := <-n.inbox:
				n.l.HandleBatch(context.Background(), b)
			case <-nt.done:
				return
			}
		}
	}()
	return n
}

func (nt *testNet) link(a, b string) {
	nt.mu.Lock()
	nt.links[[2]string{a, b}], nt.links[[2]string{b, a}] = true, true
	na, nb := nt.nodes[a], nt.nodes[b]
	nt.mu.Unlock()
	ev := func(p string) *commonv1.Batch {
		return &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(p), State: commonv1.PeerState_PEER_STATE_CONNECTED}}}}}
	}
	na.inbox <- ev(b)
	nb.inbox <- ev(a)
}

func (nt *testNet) deliver(from string, f *commonv1.Frame) {
	to := string(f.GetPeer())
	nt.mu.Lock()
	n, ok := nt.nodes[to]
	linked := nt.links[[2]string{from, to}]
	nt.mu.Unlock()
	if !ok || !linked {
		return
	}
	n.inbox <- &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte(from), Protocol: f.GetProtocol(), Payload: f.GetPayload()}}}
}

func (n *netNode) send(peer, conv, payload []byte) {
	n.inbox <- &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Conversation: conv, Payload: payload}}}
}

func (n *netNode) expect(t *testing.T, payload []byte) *commonv1.Frame {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-n.app:
			if bytes.Equal(f.GetPayload(), payload) {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: timed out waiting for %q", n.id, payload)
			return nil
		}
	}
}

func (n *netNode) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case f := <-n.app:
		t.Fatalf("%s: unexpected delivery %q", n.id, f.GetPayload())
	default:
	}
}

func (n *netNode) subscribe(t *testing.T, name string) []byte {
	t.Helper()
	r, err := n.l.Subscribe(context.Background(), &privacyv1.SubscribeRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetAddress()
}

func (n *netNode) own() []byte {
	r, _ := n.l.OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
	return r.GetAddress()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPublicChatTwoNodes(t *testing.T) {
	nt := newTestNet(t)
	a, b := nt.add("a", nil), nt.add("b", nil)
	nt.link("a", "b")
	addrA, addrB := a.subscribe(t, "strata-test"), b.subscribe(t, "strata-test")
	if !bytes.Equal(addrA, addrB) {
		t.Fatal("the same chat name gave different addresses")
	}
	a.send(addrA, []byte("room"), []byte("hello room"))
	f := b.expect(t, []byte("hello room"))
	if !bytes.Equal(f.GetPeer(), a.own()) || string(f.GetConversation()) != "room" {
		t.Fatalf("from %x conv %q, want %x", f.GetPeer(), f.GetConversation(), a.own())
	}
	a.expectNothing(t) // own message is not delivered back

	// 1:1 the other way, then unsubscribe stops delivery of the chat.
	b.send(a.own(), []byte("dm"), []byte("private"))
	if f := a.expect(t, []byte("private")); !bytes.Equal(f.GetPeer(), b.own()) {
		t.Fatalf("1:1 from %x", f.GetPeer())
	}
	if _, err := b.l.Unsubscribe(context.Background(), &privacyv1.UnsubscribeRequest{Address: addrB}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.l.Unsubscribe(context.Background(), &privacyv1.UnsubscribeRequest{Address: addrB}); err == nil {
		t.Fatal("second unsubscribe succeeded")
	}
	a.send(addrA, nil, []byte("after unsubscribe"))
	waitFor(t, "b to receive the envelope", func() bool { return counter(b.l, "envelopes_received") >= 2 })
	b.expectNothing(t)
}

// TestFiveNodes: a line n0-n1-n2-n3-n4 plus a leaf n5 on n2 (a star at
// n2). n0 posts to a public chat n4 subscribed to and to n4's own address;
// relays without the key forward but do not open.
func TestFiveNodes(t *testing.T) {
	nt := newTestNet(t)
	var ns []*netNode
	for i := range 6 {
		cfg := map[string]any(nil)
		if i == 5 {
			cfg = map[string]any{"light": true}
		}
		ns = append(ns, nt.add(fmt.Sprintf("n%d", i), cfg))
	}
	for i := range 4 {
		nt.link(ns[i].id, ns[i+1].id)
	}
	nt.link("n2", "n5")
	chat := ns[4].subscribe(t, "five-nodes")
	ns[5].subscribe(t, "some-other-chat")
	ns[0].send(chat, []byte("c"), []byte("across the line"))
	f := ns[4].expect(t, []byte("across the line"))
	if !bytes.Equal(f.GetPeer(), ns[0].own()) {
		t.Fatal("wrong sender")
	}
	ns[0].send(ns[4].own(), nil, []byte("direct through relays"))
	ns[4].expect(t, []byte("direct through relays"))
	for _, i := range []int{1, 2, 3} {
		waitFor(t, "relay forwarding", func() bool { return counter(ns[i].l, "envelopes_forwarded") >= 2 })
		ns[i].expectNothing(t)
		if c := counter(ns[i].l, "envelopes_opened"); c != 0 {
			t.Fatalf("relay %d opened %d", i, c)
		}
	}
	// The light leaf advertises a bloom of its own topics: the relay n2
	// does not send it the chat envelope (unless the blooms collide).
	ns[5].expectNothing(t)
	if c := counter(ns[5].l, "dropped_bloom"); c != 0 {
		t.Fatalf("light leaf got envelopes outside its bloom: %d", c)
	}
	// A node that joins the chat later with the key opens the next message;
	// one on the line without the key (n3) does not.
	ns[1].subscribe(t, "five-nodes")
	ns[0].send(chat, nil, []byte("second"))
	ns[1].expect(t, []byte("second"))
	ns[4].expect(t, []byte("second"))
	ns[3].expectNothing(t)
	for _, n := range ns {
		if c := counter(n.l, "peers_penalised"); c != 0 {
			t.Fatalf("%s penalised %d peers: %v", n.id, c, n.l.Health(context.Background()).GetCounters())
		}
	}
}
