package bsp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// clock is a manual clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *clock) ms() int64               { return c.t.UnixMilli() }

// key is the identity key of the member named name.
func key(name string) []byte {
	h := sha256.Sum256([]byte("bsp test member " + name))
	return h[:]
}

var testGroup = []byte("test-group")

// tnode is a node in a testNet.
type tnode struct {
	name string
	dir  string
	n    *node
	// delivered are the ids delivered up, in order, and their payloads.
	delivered []wire.ID
	payloads  map[wire.ID]string
	offline   bool
	// holdAcks: the host does not ack deliveries; acked are those it did.
	holdAcks bool
	acked    map[wire.ID]bool
	// verdict, if set, is the host's validator: a reason to reject the
	// delivery, or dependencies to defer it to; else it is accepted.
	verdict func(d delivery) (reject string, deps []wire.ID)
}

// testNet is a deterministic network of nodes over a manual clock: step
// flushes every node and hands each frame to its member, unless a filter
// drops it.
type testNet struct {
	t     testing.TB
	clk   *clock
	cfg   Config
	nodes map[string]*tnode
	names []string
	// drop decides whether a frame from → to is lost.
	drop func(from, to string, payload []byte) bool
	// tape records every frame, for replays.
	tape []tframe
	// seed seeds every node's randomness (with its name).
	seed uint64
}

// tframe is a frame on the tape, as one member received it: a frame for
// the whole group (no peer; group) is on it once for each other member,
// the copies after the first marked copy; gid is the conversation.
type tframe struct {
	from, to    string
	payload     []byte
	group, copy bool
	gid         []byte
}

func testCfg() Config {
	c, err := sdk.ConfigDefaults[Config]()
	if err != nil {
		panic(err)
	}
	c.InitialLatency = 100 * time.Millisecond
	c.MinLatency = 10 * time.Millisecond
	c.MaxLatency = time.Second
	c.MaxBackoff = 10 * time.Second
	c.Durability = DurabilityNormal
	return c
}

func newNet(t testing.TB, cfg Config, names ...string) *testNet {
	return newNetSeeded(t, cfg, 0, names...)
}

// newNetSeeded is newNet with the nodes' randomness drawn from seed.
func newNetSeeded(t testing.TB, cfg Config, seed uint64, names ...string) *testNet {
	tn := &testNet{t: t, clk: &clock{t: time.UnixMilli(1_800_000_000_000)}, cfg: cfg, nodes: map[string]*tnode{}, names: names, seed: seed}
	for _, name := range names {
		nd := &tnode{name: name, dir: t.TempDir(), payloads: map[wire.ID]string{}, acked: map[wire.ID]bool{}}
		tn.nodes[name] = nd
		tn.open(nd)
	}
	return tn
}

func (tn *testNet) members() [][]byte {
	var ms [][]byte
	for _, name := range tn.names {
		ms = append(ms, key(name))
	}
	return ms
}

// open opens (or reopens, after a crash) nd's node and sets the group.
func (tn *testNet) open(nd *tnode) {
	tn.t.Helper()
	n, err := openNode(context.Background(), nd.dir, key(nd.name), tn.cfg, newCounters(), nil, tn.clk.now)
	if err != nil {
		tn.t.Fatal(err)
	}
	h := sha256.Sum256([]byte(nd.name))
	n.rng = rand.New(rand.NewPCG(binary.BigEndian.Uint64(h[:8]), tn.seed))
	nd.n = n
	tn.t.Cleanup(func() { n.close() })
	if err := n.setGroup(context.Background(), testGroup, tn.members()); err != nil {
		tn.t.Fatal(err)
	}
	for _, d := range n.unackedDeliveries() {
		tn.take(nd, d)
	}
}

// crash drops nd's node without anything more being written, and opens
// it again on the same directory.
func (tn *testNet) crash(name string) {
	nd := tn.nodes[name]
	nd.n.close()
	tn.open(nd)
}

func (tn *testNet) take(nd *tnode, d delivery) {
	tn.t.Helper()
	if !d.ephemeral {
		if slices.Contains(nd.delivered, d.id) {
			if nd.acked[d.id] {
				tn.t.Fatalf("%s delivered %x again after the host's ack", nd.name, d.id[:4])
			}
		} else {
			// Causal order: every parent went up first (or is its own).
			if m := nd.n.groups[string(d.group)].msgs[d.id]; m != nil {
				for _, p := range m.b.parents {
					pm := nd.n.groups[string(d.group)].msgs[p]
					if !slices.Contains(nd.delivered, p) && !(pm != nil && pm.own) && tn.cfg.History == 0 {
						tn.t.Fatalf("%s delivered %x before its parent %x", nd.name, d.id[:4], p[:4])
					}
				}
			}
			nd.delivered = append(nd.delivered, d.id)
		}
	} else {
		nd.delivered = append(nd.delivered, d.id)
	}
	nd.payloads[d.id] = string(d.payload)
	if d.ephemeral || nd.holdAcks {
		return
	}
	var reject string
	var deps []wire.ID
	if nd.verdict != nil {
		reject, deps = nd.verdict(d)
	}
	ids := [][]byte{d.id[:]}
	v := verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{}}
	switch {
	case reject != "":
		v.rejected[d.id] = reject
	case len(deps) > 0:
		ids = nil
		v.deferred[d.id] = deps
	}
	again, err := nd.n.hostAck(context.Background(), d.group, ids, v)
	if err != nil {
		tn.t.Fatal(err)
	}
	if ids != nil {
		nd.acked[d.id] = true
	}
	for _, d := range again {
		tn.take(nd, d)
	}
}

// hostAck is the host's Ack with verdicts, outside take.
func (tn *testNet) hostAck(name string, accepted []wire.ID, rejected []wire.ID) []delivery {
	tn.t.Helper()
	nd := tn.nodes[name]
	var ids [][]byte
	v := verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{}}
	for _, id := range accepted {
		ids = append(ids, bytes.Clone(id[:]))
		nd.acked[id] = true
	}
	for _, id := range rejected {
		ids = append(ids, bytes.Clone(id[:]))
		v.rejected[id] = "test"
		nd.acked[id] = true
	}
	ds, err := nd.n.hostAck(context.Background(), testGroup, ids, v)
	if err != nil {
		tn.t.Fatal(err)
	}
	return ds
}

func (tn *testNet) send(from, payload string, parents ...wire.ID) wire.ID {
	tn.t.Helper()
	var ps [][]byte
	for _, p := range parents {
		ps = append(ps, bytes.Clone(p[:]))
	}
	id, err := tn.nodes[from].n.send(context.Background(), testGroup, []byte(payload), ps, false, 0)
	if err != nil {
		tn.t.Fatalf("send %s: %v", payload, err)
	}
	return id
}

// step flushes every online node at the current time and delivers the
// frames; it returns the number of frames that crossed.
func (tn *testNet) step() int {
	tn.t.Helper()
	crossed := 0
	for _, name := range tn.names {
		nd := tn.nodes[name]
		if nd.offline {
			continue
		}
		out, ups, _, _ := nd.n.flush(tn.clk.ms())
		if err := nd.n.sync(context.Background()); err != nil {
			tn.t.Fatal(err)
		}
		for _, d := range ups {
			tn.take(nd, d)
		}
		for _, o := range out {
			for i, to := range tn.recipients(name, o.peer) {
				tn.tape = append(tn.tape, tframe{name, to, o.payload, len(o.peer) == 0, i > 0, o.group})
				if tn.nodes[to].offline || (tn.drop != nil && tn.drop(name, to, o.payload)) {
					continue
				}
				tn.deliverIn(name, to, o.group, o.payload)
				crossed++
			}
		}
	}
	return crossed
}

// deliver hands a frame of testGroup from from to to.
func (tn *testNet) deliver(from, to string, payload []byte) {
	tn.t.Helper()
	tn.deliverIn(from, to, testGroup, payload)
}

// deliverIn hands a frame of the conversation group from from to to.
func (tn *testNet) deliverIn(from, to string, group, payload []byte) {
	tn.t.Helper()
	nd := tn.nodes[to]
	ds, err := nd.n.receive(context.Background(), []inbound{{group: group, from: key(from), payload: payload, trace: 1}}, nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	for _, d := range ds {
		tn.take(nd, d)
	}
}

// recipients are the members a frame from from goes to: the one its peer
// names, or, for a frame without a peer, every other member, as the host
// sends a frame for the whole group.
func (tn *testNet) recipients(from string, peer []byte) []string {
	if len(peer) > 0 {
		return []string{tn.nameOf(peer)}
	}
	var to []string
	for _, name := range tn.names {
		if name != from {
			to = append(to, name)
		}
	}
	return to
}

func (tn *testNet) nameOf(k []byte) string {
	for _, name := range tn.names {
		if bytes.Equal(key(name), k) {
			return name
		}
	}
	tn.t.Fatalf("frame to unknown key %x", k[:4])
	return ""
}

// run steps, advancing the clock by dt each time, until cond holds or
// the clock has advanced by limit.
func (tn *testNet) run(dt, limit time.Duration, cond func() bool) {
	tn.t.Helper()
	for end := tn.clk.t.Add(limit); !cond(); tn.clk.advance(dt) {
		if tn.clk.t.After(end) {
			tn.t.Fatalf("not done after %v", limit)
		}
		tn.step()
	}
}

func (tn *testNet) has(name string, ids ...wire.ID) bool {
	for _, id := range ids {
		if !slices.Contains(tn.nodes[name].delivered, id) {
			return false
		}
	}
	return true
}

func (tn *testNet) unacked(name string) uint64 {
	st, err := tn.nodes[name].n.state(testGroup)
	if err != nil {
		tn.t.Fatal(err)
	}
	return st.unacknowledged
}

func short(id wire.ID) string { return fmt.Sprintf("%x", id[:4]) }
