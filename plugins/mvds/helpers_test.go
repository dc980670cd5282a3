package mvds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// clock is a manual wall clock for the node.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func identity(name string) []byte {
	h := sha256.Sum256([]byte("mvds test identity " + name))
	return h[:]
}

var testGroupID = []byte("mvds-unit-test-group-0123456789!")

// testSettings is the default config with a short backoff (2 to 16
// epochs) and every limit small enough to reach in a test.
func testSettings() Config {
	s, err := sdk.LoadConfig[Config](`{"backoff_base": 2, "backoff_max": 16}`)
	if err != nil {
		panic(err)
	}
	return s
}

// tnode is one node under test with what it delivered.
type tnode struct {
	t    testing.TB
	name string
	id   []byte
	dir  string
	cfg  Config
	clk  *clock
	n    *node
	c    *counters
	// got counts the deliveries per id, across restarts (redeliveries
	// included); order lists them all.
	got   map[ID]int
	order []delivery
	// sent lists the persistent messages sent here.
	sent []ID
	// manualAck leaves the host's acknowledgements to the test (ack);
	// otherwise every persistent delivery is acknowledged as it is taken.
	manualAck bool
	// acked holds what must never be delivered again: the acknowledged
	// deliveries and the ephemeral ones.
	acked map[ID]bool
	// thisRun holds what was delivered since the last (re)open.
	thisRun map[ID]bool
	// redelivered lists what the last reopen delivered again, in order;
	// redeliveredTotal counts the redeliveries of every reopen.
	redelivered      []ID
	redeliveredTotal int
}

// sentHere says whether the node sent the message.
func (tn *tnode) sentHere(id ID) bool { return slices.Contains(tn.sent, id) }

// deliveredPersistent lists the persistent messages delivered here.
func (tn *tnode) deliveredPersistent() []ID {
	var out []ID
	for _, d := range tn.order {
		if !d.ephemeral {
			out = append(out, d.id)
		}
	}
	return out
}

func newTNode(t testing.TB, name string, cfg Config, clk *clock) *tnode {
	t.Helper()
	tn := &tnode{t: t, name: name, id: identity(name), dir: t.TempDir(), cfg: cfg, clk: clk, c: newCounters(), got: make(map[ID]int), acked: make(map[ID]bool), thisRun: make(map[ID]bool)}
	tn.open()
	t.Cleanup(func() { tn.n.close(context.Background()) })
	return tn
}

func (tn *tnode) open() {
	tn.t.Helper()
	n, err := openNode(context.Background(), tn.dir, tn.id, tn.cfg, tn.c, hclog.NewNullLogger(), tn.clk.now)
	if err != nil {
		tn.t.Fatalf("%s: open: %v", tn.name, err)
	}
	tn.n = n
}

// restart closes the node and opens a new one on the same directory.
func (tn *tnode) restart() {
	tn.t.Helper()
	if err := tn.n.close(context.Background()); err != nil {
		tn.t.Fatalf("%s: close: %v", tn.name, err)
	}
	tn.reopen()
}

// crash abandons the node without its clean close (which stores the
// epoch), as a kill does, and opens a new one on the same directory.
func (tn *tnode) crash() {
	tn.t.Helper()
	if err := tn.n.st.close(); err != nil {
		tn.t.Fatalf("%s: close the store: %v", tn.name, err)
	}
	tn.reopen()
}

// reopen opens the node again and, as Start does, delivers again the
// unacknowledged deliveries (in pages of testPage, to exercise the
// paging), then what its store holds ready.
func (tn *tnode) reopen() {
	tn.t.Helper()
	tn.open()
	tn.thisRun = make(map[ID]bool)
	tn.redelivered = nil
	upto, ds, err := tn.n.start(context.Background())
	if err != nil {
		tn.t.Fatalf("%s: start: %v", tn.name, err)
	}
	for after := int64(0); after < upto; {
		page, last, err := tn.n.redeliver(context.Background(), after, upto, testPage)
		if err != nil {
			tn.t.Fatalf("%s: redeliver: %v", tn.name, err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > testPage || last <= after {
			tn.t.Fatalf("%s: a page of %d redeliveries, from %d to %d", tn.name, len(page), after, last)
		}
		for _, d := range page {
			tn.redelivered = append(tn.redelivered, d.id)
		}
		tn.redeliveredTotal += len(page)
		tn.take(page)
		after = last
	}
	tn.take(ds)
}

// testPage is the page size of redeliveries in tests.
const testPage = 3

// ack acknowledges deliveries to the node as the host does, and returns
// how many it took and ignored.
func (tn *tnode) ack(ids ...ID) (acked, ignored int) {
	tn.t.Helper()
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = bytes.Clone(id[:])
	}
	acked, ignored, err := tn.n.ack(context.Background(), testGroupID, raw)
	if err != nil {
		tn.t.Fatalf("%s: ack: %v", tn.name, err)
	}
	for _, id := range ids {
		if tn.got[id] > 0 {
			tn.acked[id] = true
		}
	}
	return acked, ignored
}

// unacked lists the persistent deliveries not acknowledged, in the order
// they were first delivered.
func (tn *tnode) unacked() []ID {
	var out []ID
	seen := make(map[ID]bool)
	for _, d := range tn.order {
		if !d.ephemeral && !tn.acked[d.id] && !seen[d.id] {
			seen[d.id] = true
			out = append(out, d.id)
		}
	}
	return out
}

func (tn *tnode) setGroup(members ...[]byte) {
	tn.t.Helper()
	if err := tn.n.setGroup(context.Background(), testGroupID, members); err != nil {
		tn.t.Fatalf("%s: setGroup: %v", tn.name, err)
	}
}

func (tn *tnode) send(payload string, parents ...ID) ID {
	tn.t.Helper()
	return tn.sendOpt(payload, false, parents...)
}

func (tn *tnode) sendOpt(payload string, ephemeral bool, parents ...ID) ID {
	tn.t.Helper()
	raw := make([][]byte, len(parents))
	for i, p := range parents {
		raw[i] = bytes.Clone(p[:])
	}
	id, err := tn.n.send(context.Background(), testGroupID, []byte(payload), raw, ephemeral, 0)
	if err != nil {
		tn.t.Fatalf("%s: send %q: %v", tn.name, payload, err)
	}
	if !ephemeral {
		tn.sent = append(tn.sent, id)
	}
	return id
}

func (tn *tnode) state() groupState {
	tn.t.Helper()
	st, err := tn.n.state(context.Background(), testGroupID)
	if err != nil {
		tn.t.Fatalf("%s: state: %v", tn.name, err)
	}
	return st
}

// take records deliveries and checks the delivery invariants: once per
// run, and never again once acknowledged (an ephemeral message: never
// again at all). Unless manualAck is set it then acknowledges the
// persistent ones, which must all be unacknowledged deliveries.
func (tn *tnode) take(ds []delivery) {
	tn.t.Helper()
	var persistent []ID
	for _, d := range ds {
		tn.got[d.id]++
		switch {
		case tn.acked[d.id]:
			tn.t.Errorf("%s delivered %s again (%d times), after it was acknowledged", tn.name, d.id, tn.got[d.id])
		case tn.thisRun[d.id]:
			tn.t.Errorf("%s delivered %s twice in one run", tn.name, d.id)
		}
		tn.thisRun[d.id] = true
		tn.order = append(tn.order, d)
		if d.ephemeral {
			tn.acked[d.id] = true
		} else {
			persistent = append(persistent, d.id)
		}
	}
	if !tn.manualAck && len(persistent) > 0 {
		if acked, ignored := tn.ack(persistent...); acked != len(persistent) || ignored != 0 {
			tn.t.Errorf("%s: acknowledging %d deliveries took %d and ignored %d", tn.name, len(persistent), acked, ignored)
		}
	}
}

// receive hands payloads from peer to the node.
func (tn *tnode) receive(from []byte, payloads ...[]byte) {
	tn.t.Helper()
	var in []inbound
	for _, p := range payloads {
		in = append(in, inbound{group: testGroupID, from: from, payload: p})
	}
	ds, err := tn.n.receive(context.Background(), in, nil)
	if err != nil {
		tn.t.Fatalf("%s: receive: %v", tn.name, err)
	}
	tn.take(ds)
}

// tick runs one epoch and returns its payloads by recipient name.
func (tn *tnode) tick() []outbound {
	tn.t.Helper()
	out, err := tn.n.tick(context.Background())
	if err != nil {
		tn.t.Fatalf("%s: tick: %v", tn.name, err)
	}
	return out
}

func (tn *tnode) counter(name string) uint64 { return tn.c.set.Snapshot()[name] }

func (tn *tnode) delivered(id ID) bool { return tn.got[id] > 0 }

// tnet is an in-memory network of nodes stepped one epoch at a time.
type tnet struct {
	t     testing.TB
	clk   *clock
	nodes []*tnode
	// drop, if set, decides whether a payload is lost.
	drop func(from, to *tnode, payload []byte) bool
	// bytes counts the payload bytes put on the wire.
	bytes int
	// sent records every payload, for inspection.
	sent []sentPayload
	keep bool
	// steps counts the epochs stepped.
	steps int
}

// sentPayload is one payload as it left its sender.
type sentPayload struct {
	step     int
	from, to string
	group    bool // a payload for every member, copied to each
	raw      []byte
	p        *wirepb.Payload
}

func newTNet(t testing.TB, cfg Config, names ...string) *tnet {
	t.Helper()
	nt := &tnet{t: t, clk: newClock()}
	var members [][]byte
	for _, name := range names {
		nt.nodes = append(nt.nodes, newTNode(t, name, cfg, nt.clk))
		members = append(members, identity(name))
	}
	for _, n := range nt.nodes {
		n.setGroup(members...)
	}
	return nt
}

func (nt *tnet) node(name string) *tnode {
	for _, n := range nt.nodes {
		if n.name == name {
			return n
		}
	}
	nt.t.Fatalf("no node %s", name)
	return nil
}

func (nt *tnet) byID(id []byte) *tnode {
	for _, n := range nt.nodes {
		if bytes.Equal(n.id, id) {
			return n
		}
	}
	return nil
}

// step runs one epoch on every node (the clock advancing by one epoch),
// then delivers what they sent, each recipient's payloads in one batch.
func (nt *tnet) step() {
	nt.t.Helper()
	nt.steps++
	nt.clk.advance(nt.nodes[0].cfg.Epoch)
	nt.deliver(func(from *tnode) []outbound { return from.tick() })
}

// flush runs the eager flushes of every node, as the layer does after a
// Send or a batch of input, and delivers what they send, until no node
// has anything new to send; it returns the payloads sent. The epoch does
// not advance.
func (nt *tnet) flush() int {
	nt.t.Helper()
	total := 0
	for range 1000 {
		sent := nt.deliver(func(from *tnode) []outbound {
			out, _, err := from.n.flush(context.Background())
			if err != nil {
				nt.t.Fatalf("%s: flush: %v", from.name, err)
			}
			return out
		})
		if sent == 0 {
			return total
		}
		total += sent
	}
	nt.t.Fatal("flushes never end")
	return total
}

// deliver takes the payloads that emit returns for each node, then hands
// each recipient its payloads in one batch; it returns how many were sent.
func (nt *tnet) deliver(emit func(from *tnode) []outbound) int {
	nt.t.Helper()
	sent := 0
	inboxes := make(map[*tnode][]inbound)
	for _, from := range nt.nodes {
		for _, o := range emit(from) {
			sent++
			// A payload without a peer is for every other member.
			var tos []*tnode
			if len(o.peer) == 0 {
				g := from.n.groups[string(o.group)]
				if g == nil {
					nt.t.Fatalf("%s sent a group payload to a group it is not in", from.name)
				}
				for _, m := range g.members {
					if !bytes.Equal(m, from.id) {
						tos = append(tos, nt.byID(m))
					}
				}
			} else {
				tos = append(tos, nt.byID(o.peer))
			}
			for _, to := range tos {
				if to == nil {
					nt.t.Fatalf("%s sent a payload to a non-member %x", from.name, o.peer)
				}
				nt.bytes += len(o.payload)
				if nt.keep {
					var p wirepb.Payload
					if err := proto.Unmarshal(o.payload, &p); err != nil {
						nt.t.Fatalf("%s sent an undecodable payload: %v", from.name, err)
					}
					nt.sent = append(nt.sent, sentPayload{step: nt.steps, from: from.name, to: to.name, group: len(o.peer) == 0, raw: o.payload, p: &p})
				}
				if nt.drop != nil && nt.drop(from, to, o.payload) {
					continue
				}
				inboxes[to] = append(inboxes[to], inbound{group: o.group, from: from.id, payload: o.payload})
			}
		}
	}
	for _, to := range nt.nodes {
		if in := inboxes[to]; len(in) > 0 {
			ds, err := to.n.receive(context.Background(), in, nil)
			if err != nil {
				nt.t.Fatalf("%s: receive: %v", to.name, err)
			}
			to.take(ds)
		}
	}
	return sent
}

// run steps until done returns true or max epochs pass; it returns the
// epochs stepped.
func (nt *tnet) run(max int, done func() bool) int {
	nt.t.Helper()
	for i := 1; i <= max; i++ {
		nt.step()
		if done() {
			return i
		}
	}
	nt.t.Fatalf("not done after %d epochs", max)
	return max
}

// lossy returns a drop function losing each payload with probability p,
// from a seeded generator.
func lossy(seed uint64, p float64) func(from, to *tnode, payload []byte) bool {
	rng := rand.New(rand.NewPCG(seed, 0xd00d))
	return func(*tnode, *tnode, []byte) bool { return rng.Float64() < p }
}

// encode encodes a Payload.
func encode(t testing.TB, p *wirepb.Payload) []byte {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// messageFrom builds a spec Message (of Payload.messages) authored by
// author, who it names (Message.author) whoever sends it.
func messageFrom(t testing.TB, group, author []byte, ts int64, payload string, ephemeral bool, parents ...ID) (*wirepb.Message, ID) {
	t.Helper()
	m := specMessage(group, ts, []byte(payload), parents, ephemeral)
	m.Author = author
	return m, MessageID(group, ts, m.Body)
}

// boundFrom builds a bound Message (of Payload.bound_messages) authored by
// author.
func boundFrom(t testing.TB, group, author []byte, ts int64, payload string, ephemeral bool, parents ...ID) (*wirepb.Message, ID) {
	t.Helper()
	b, err := encodeBody(author, parents, []byte(payload), ephemeral)
	if err != nil {
		t.Fatal(err)
	}
	return &wirepb.Message{GroupId: group, Timestamp: ts, Body: b}, MessageID(group, ts, b)
}

// sentAt returns the payloads sent at step from one node to another.
func (nt *tnet) sentAt(step int, from, to string) []*wirepb.Payload {
	var out []*wirepb.Payload
	for _, s := range nt.sent {
		if s.step == step && s.from == from && s.to == to {
			out = append(out, s.p)
		}
	}
	return out
}

// wireIDs converts wire ids for comparisons.
func wireIDs(raw [][]byte) []ID {
	out := make([]ID, len(raw))
	for i, r := range raw {
		out[i] = ID(r)
	}
	return out
}

// modeFor is the mode key's value for interactive or batch sending.
func modeFor(interactive bool) string {
	if interactive {
		return ModeInteractive
	}
	return ModeBatch
}

// managed is a Layer run by the SDK's lifecycle, as sdk.Serve and
// sdk.InProcess run it: its lifecycle methods go through sdk.Lifecycle,
// the rest (control calls, fields) to the Layer.
type managed struct {
	*Layer
	lc *sdk.Lifecycle
}

func manage(l *Layer) *managed { return &managed{Layer: l, lc: sdk.NewLifecycle(l)} }

func (m *managed) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	return m.lc.Configure(ctx, req, env)
}

func (m *managed) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	return m.lc.Start(ctx, req)
}

func (m *managed) HandleBatch(ctx context.Context, b *commonv1.Batch) { m.lc.HandleBatch(ctx, b) }

func (m *managed) Health(ctx context.Context) *commonv1.HealthResponse { return m.lc.Health(ctx) }

func (m *managed) Stop(ctx context.Context) error { return m.lc.Stop(ctx) }
