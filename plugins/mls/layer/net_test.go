package layer

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// A deterministic in-process network of mls layers: the test plays the
// host and a privacy layer, with a manual clock; frames move only when the
// test runs the network, and timers fire only when it ticks.

const testConfigJSON = `{"settle_window": "1h", "branch_retention": "2h", "retransmit_initial": "1s", "retransmit_max": "4s", "takeover_timeout": "10s", "key_packages": 3}`

// statusModes are the two routes of status messages, for the tests of
// forks and losses: to the whole group (the default for groups as small
// as the tests') and to the committer only (larger groups).
var statusModes = []struct{ name, cfg string }{
	{"status-to-group", testConfigJSON},
	{"status-to-committer", strings.Replace(testConfigJSON, "{", `{"status_to_group_max": 0, `, 1)},
}

type tnode struct {
	name   string
	id     []byte
	dir    string
	l      *Layer
	ups    []*commonv1.Frame
	events []*commonv1.Event
}

type qitem struct {
	from *tnode
	f    *commonv1.Frame
}

type tnet struct {
	t      testing.TB
	ctx    context.Context
	clock  time.Time
	mu     sync.Mutex
	nodes  []*tnode
	queue  []qitem
	hosts  map[string][][]byte // conversation → members, as the hosts know them
	drop   func(from, to *tnode, f *commonv1.Frame) bool
	onEmit func(from *tnode, frames []*commonv1.Frame) bool // false: the frames are lost (a crash)
	// onDeliver sees every UP frame handed to a layer.
	onDeliver func(to *tnode, f *commonv1.Frame)
	cfg       string
}

type temitter struct {
	n    *tnet
	node *tnode
}

func (e temitter) Emit(_ context.Context, frames ...*commonv1.Frame) error {
	if hook := e.n.onEmit; hook != nil && !hook(e.node, frames) {
		return nil
	}
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	for _, f := range frames {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			e.n.queue = append(e.n.queue, qitem{e.node, f})
		case commonv1.Direction_DIRECTION_UP:
			e.node.ups = append(e.node.ups, f)
		}
	}
	return nil
}

func (e temitter) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	e.node.events = append(e.node.events, ev)
	return nil
}

func newNet(t testing.TB, names ...string) *tnet {
	return newNetConfig(t, testConfigJSON, names...)
}

// newNetConfig is newNet with another config section.
func newNetConfig(t testing.TB, cfg string, names ...string) *tnet {
	n := &tnet{t: t, ctx: context.Background(), clock: time.Now(), hosts: map[string][][]byte{}, cfg: cfg}
	for i, name := range names {
		id := make([]byte, identitySize)
		rand.Read(id)
		id[0] = byte(i + 1) // the commit order is the order of names
		node := &tnode{name: name, id: id, dir: t.TempDir()}
		n.open(node)
		n.nodes = append(n.nodes, node)
	}
	for _, a := range n.nodes {
		for _, b := range n.nodes {
			if a != b {
				n.addContact(a, b)
			}
		}
	}
	t.Cleanup(func() {
		for _, node := range n.nodes {
			node.l.Stop(context.Background())
		}
	})
	return n
}

func (n *tnet) now() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clock
}

// open starts a layer on node's directory (not Start: the test ticks).
func (n *tnet) open(node *tnode) {
	n.t.Helper()
	l := New()
	l.now = n.now
	env := sdk.Env{Logger: hclog.NewNullLogger(), Out: temitter{n, node}, Run: n.ctx}
	if _, err := l.Configure(n.ctx, &commonv1.ConfigureRequest{ConfigJson: n.cfg, DataDir: node.dir, NodeIdentity: node.id}, env); err != nil {
		n.t.Fatalf("%s: Configure: %v", node.name, err)
	}
	node.l = l
}

// restart stops node's layer and opens a new one on dir, then gives it
// contacts and conversations again, as a host does.
func (n *tnet) restart(node *tnode, dir string) {
	n.t.Helper()
	if err := node.l.Stop(n.ctx); err != nil {
		n.t.Fatal(err)
	}
	node.dir = dir
	n.open(node)
	for _, o := range n.nodes {
		if o != node {
			n.addContact(node, o)
		}
	}
	for conv, members := range n.hosts {
		if slices.ContainsFunc(members, func(m []byte) bool { return bytes.Equal(m, node.id) }) {
			n.setConv(node, []byte(conv), members)
		}
	}
}

func (n *tnet) addContact(to, of *tnode) {
	n.t.Helper()
	b, err := of.l.Bundle(n.ctx, &securev1.BundleRequest{})
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := to.l.AddContact(n.ctx, &securev1.AddContactRequest{Identity: of.id, ContactSection: b.GetContactSection()}); err != nil {
		n.t.Fatalf("%s adds %s: %v", to.name, of.name, err)
	}
}

func (n *tnet) setConv(node *tnode, conv []byte, members [][]byte) {
	n.t.Helper()
	if _, err := node.l.SetConversation(n.ctx, &securev1.ConversationRequest{Id: conv, Members: members}); err != nil {
		n.t.Fatalf("%s: SetConversation: %v", node.name, err)
	}
}

// converse tells the hosts of members that conv has them as members. A
// conversation of two is then formed at once, as if its lowest member had
// a frame for it (lazy.go), which the tests of groups expect.
func (n *tnet) converse(conv string, members ...*tnode) {
	n.t.Helper()
	n.converseLazy(conv, members...)
	if len(members) != 2 {
		return
	}
	low := members[0]
	if bytes.Compare(members[1].id, low.id) < 0 {
		low = members[1]
	}
	low.l.mu.Lock()
	defer low.l.mu.Unlock()
	low.l.need(low.l.convs[conv])
	low.l.flush(n.ctx)
}

// converseLazy is converse without forming a conversation of two.
func (n *tnet) converseLazy(conv string, members ...*tnode) {
	n.t.Helper()
	ids := n.route(conv, members...)
	for _, m := range members {
		n.setConv(m, []byte(conv), ids)
	}
}

// route makes members the conversation's members for the network's group
// frames (as the hosts' group fan-out would) without giving it to any
// layer, and returns their identities.
func (n *tnet) route(conv string, members ...*tnode) [][]byte {
	var ids [][]byte
	for _, m := range members {
		ids = append(ids, m.id)
	}
	n.mu.Lock()
	n.hosts[conv] = ids
	n.mu.Unlock()
	return ids
}

// run delivers frames until none is left.
func (n *tnet) run() {
	n.t.Helper()
	for range 10000 {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		n.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, it := range q {
			for _, to := range n.targets(it) {
				if n.drop != nil && n.drop(it.from, to, it.f) {
					continue
				}
				up := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, TraceId: it.f.GetTraceId(), Conversation: it.f.GetConversation(),
					Peer: bytes.Clone(it.from.id), Payload: bytes.Clone(it.f.GetPayload()), Hints: it.f.GetHints()}
				if n.onDeliver != nil {
					n.onDeliver(to, up)
				}
				to.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{up}})
			}
		}
	}
	n.t.Fatal("the network never went quiet")
}

// targets are where a DOWN frame goes: its peer, or every other member
// the sender's host knows for the conversation.
func (n *tnet) targets(it qitem) []*tnode {
	var out []*tnode
	n.mu.Lock()
	members := n.hosts[string(it.f.GetConversation())]
	n.mu.Unlock()
	for _, o := range n.nodes {
		if o == it.from {
			continue
		}
		if len(it.f.GetPeer()) > 0 {
			if bytes.Equal(it.f.GetPeer(), o.id) {
				out = append(out, o)
			}
		} else if slices.ContainsFunc(members, func(m []byte) bool { return bytes.Equal(m, o.id) }) {
			out = append(out, o)
		}
	}
	return out
}

// tick advances the clock and runs every layer's timers, then the network.
func (n *tnet) tick(d time.Duration) {
	n.mu.Lock()
	n.clock = n.clock.Add(d)
	now := n.clock
	n.mu.Unlock()
	for _, node := range n.nodes {
		l := node.l
		l.mu.Lock()
		l.tick(now)
		l.flush(n.ctx)
		l.mu.Unlock()
	}
	n.run()
}

var traceSeq uint64

// send hands from a message for conv (peer nil: the group) and returns it.
func (n *tnet) send(from *tnode, conv string, peer []byte) []byte {
	n.t.Helper()
	traceSeq++
	msg := []byte(fmt.Sprintf("message %d from %s", traceSeq, from.name))
	from.l.HandleBatch(n.ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{
		Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: traceSeq, Conversation: []byte(conv), Peer: peer, Payload: msg,
	}}})
	return msg
}

// delivered counts how often node delivered msg from sender in conv.
func (n *tnet) delivered(node *tnode, conv string, sender *tnode, msg []byte) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, f := range node.ups {
		if bytes.Equal(f.GetPayload(), msg) {
			if !bytes.Equal(f.GetPeer(), sender.id) || string(f.GetConversation()) != conv {
				n.t.Errorf("%s delivered %q with peer %x conversation %q, want %s in %q", node.name, msg, f.GetPeer(), f.GetConversation(), sender.name, conv)
			}
			k++
		}
	}
	return k
}

// expectOnce checks that each of to delivered msg exactly once, and no
// one else did.
func (n *tnet) expectOnce(conv string, from *tnode, msg []byte, to ...*tnode) {
	n.t.Helper()
	for _, node := range n.nodes {
		want := 0
		if slices.Contains(to, node) {
			want = 1
		}
		if got := n.delivered(node, conv, from, msg); got != want {
			n.t.Errorf("%s delivered %q %d times, want %d", node.name, msg, got, want)
		}
	}
}

// group returns node's group state of conv: epoch and authenticator.
func (n *tnet) state(node *tnode, conv string) (uint64, []byte, bool) {
	node.l.mu.Lock()
	defer node.l.mu.Unlock()
	c := node.l.convs[conv]
	if c == nil || !c.live() {
		return 0, nil, false
	}
	return c.g.Epoch(), c.g.EpochAuthenticator(), true
}

// agree checks that members are in one epoch with one authenticator and
// have exactly these members.
func (n *tnet) agree(conv string, members ...*tnode) uint64 {
	n.t.Helper()
	return n.agreeN(conv, len(members), members...)
}

// agreeN checks that nodes are in one epoch with one authenticator, in a
// group of size members.
func (n *tnet) agreeN(conv string, size int, members ...*tnode) uint64 {
	n.t.Helper()
	var epoch uint64
	var auth []byte
	for i, m := range members {
		e, a, ok := n.state(m, conv)
		if !ok {
			n.t.Fatalf("%s is not in %q", m.name, conv)
		}
		if i == 0 {
			epoch, auth = e, a
		} else if e != epoch || !bytes.Equal(a, auth) {
			n.t.Fatalf("%s is in epoch %d (%x), %s in %d (%x)", m.name, e, a[:4], members[0].name, epoch, auth[:4])
		}
		m.l.mu.Lock()
		got := m.l.convs[conv].memberList()
		m.l.mu.Unlock()
		if len(got) != size {
			n.t.Fatalf("%s sees %d members, want %d", m.name, len(got), size)
		}
	}
	return epoch
}

// counter returns a Health counter of node.
func (n *tnet) counter(node *tnode, name string) uint64 {
	return node.l.Health(n.ctx).GetCounters()[name]
}

// learned returns the ConversationLearned events node emitted for conv.
func (n *tnet) learned(node *tnode, conv string) []*commonv1.ConversationLearned {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*commonv1.ConversationLearned
	for _, ev := range node.events {
		if cl := ev.GetConversation(); cl != nil && string(cl.GetId()) == conv {
			out = append(out, cl)
		}
	}
	return out
}

func (n *tnet) sectionChanges(node *tnode) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, ev := range node.events {
		if ev.GetSectionChanged() != nil {
			k++
		}
	}
	return k
}
