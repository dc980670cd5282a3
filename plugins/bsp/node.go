package bsp

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// msgState is a message's state (§2.10), persisted as this number. Briar
// has the first four; compacted is Strata's.
type msgState uint8

const (
	// stUnknown: received, not validated. Validation runs as a message
	// arrives, so no message stays in it; the value is Briar's.
	stUnknown msgState = 0
	// stInvalid: refused by the validator, or a dependency is invalid.
	// The id is kept (so that the message is acknowledged and not taken
	// again), the body dropped.
	stInvalid msgState = 1
	// stPending: valid, waiting for a dependency.
	stPending msgState = 2
	// stDelivered: sent here, or valid with every dependency delivered and
	// handed to the host.
	stDelivered msgState = 3
	// stCompacted: delivered and held by every member; it has left the
	// sync state (the host's history keeps it). The id is kept so that a
	// replay is recognised.
	stCompacted msgState = 4
)

// Errors of the control API, mapped to gRPC codes by toStatus.
var (
	errInvalid = errors.New("invalid argument")
	errNoGroup = errors.New("no such group")
	errFailed  = errors.New("storage failed")
)

// status is Briar's per-message, per-member state (§2.6).
type status struct {
	// ack: an ACK of the message is owed to the member.
	ack bool
	// seen: the member has the message (it acked, offered or sent it).
	seen bool
	// requested: the member asked for it.
	requested bool
	// expiry is when it may next be sent (ms since the epoch).
	expiry int64
	// tx counts transmissions since the last request.
	tx uint32
	// maxLatency is the latency (ms) the last transmission was timed for;
	// 0: never sent.
	maxLatency int64
}

// message is a message this node holds, or the id of one it held.
type message struct {
	id    wire.ID
	ts    uint64
	raw   []byte // the body; nil once invalid or compacted
	b     body   // raw decoded
	state msgState
	own   bool
	// sender is the member it came from (this node for own messages).
	sender     []byte
	trace      uint64
	receivedMS int64
	deliverSeq int64
	hostAcked  bool
	// waits are the dependencies the host named when it deferred the
	// message (AckRequest.deferred), besides its parents.
	waits []wire.ID
	// missing counts the dependencies not yet delivered (pending only).
	missing int
	// gone: forgotten (forget); its row is deleted.
	gone bool
}

// peer is another member of a group, as this node tracks it.
type peer struct {
	key    []byte
	status map[wire.ID]*status
	// heard says a frame from it in this group came since this node
	// started (heard). In memory only.
	heard bool
	// owed are ids whose ACK is owed and that have no status (compacted
	// or invalid messages, offered again): not persisted.
	owed map[wire.ID]struct{}
	// offered are ids it offered that this node lacks (≤ max_offered).
	offered map[wire.ID]struct{}
	// sentAt is when a message was first sent to it, for latency samples.
	sentAt map[wire.ID]int64
	srtt   int64 // smoothed round trip (ms) from acks; 0: none yet
	// lazySince is when a flush first held back lazy records for it
	// (holdLazy); 0: none held.
	lazySince int64
	// ackNow: an ACK owed to it answers a MESSAGE (owe), so the next
	// flush sends what is owed at once. In memory only.
	ackNow bool
}

// want is a missing dependency this node asks for (gap repair).
type want struct {
	// from are the members that announced it (sent a dependant, offered
	// or acked it).
	from  map[*peer]bool
	next  int64 // ms
	tries uint32
	// asked are the members a repair request went to: once the message
	// is here they are sent an ACK of it, which cancels the answers they
	// hold back (Config.AnswerBackoff).
	asked map[*peer]bool
}

// group is a sync group.
type group struct {
	id      []byte
	bsp     wire.ID
	members [][]byte // identity keys, this node's included
	peers   []*peer  // the other members, in members' order
	byKey   map[string]*peer
	msgs    map[wire.ID]*message
	// waiting maps a dependency to the pending messages that wait for it.
	waiting map[wire.ID][]*message
	wants   map[wire.ID]*want
	// hints are ids this node lacks with the members that announced them
	// (bounded by maxHints).
	hints   map[wire.ID][]*peer
	pending int
	// ephOut are ephemeral messages to send once, at the next flush.
	ephOut  []outMsg
	ephSeen map[wire.ID]int64 // ephemeral ids delivered, until (ms)
	// check are messages whose compaction is to be checked at the next
	// flush.
	check map[wire.ID]struct{}
	// lastForget is when forget last ran (ms).
	lastForget int64
	// hello: members joined since the last flush; the next flush opens a
	// session with every member of g, as node.hello does for every group.
	hello bool
}

// active reports whether g holds messages, so that a session (VERSIONS
// alone: the start-of-session frame, the keepalive) is worth opening in
// it. A conversation that never carried a message opens none: a frame in
// it costs the layers below their own state (an MLS group for a 1:1
// conversation, a mixnet packet), and a member that has something for
// this node sends it on its own. Liveness is per member, not per group
// (heard), so a member is told this node is back through any active
// conversation the two share.
func (g *group) active() bool { return len(g.msgs) > 0 }

// outMsg is an ephemeral message waiting for the flush.
type outMsg struct {
	raw   wire.RawMessage
	trace uint64
}

// maxHints bounds group.hints.
const maxHints = 4096

// maxEphemeralSeen bounds group.ephSeen: a member that sends ephemeral
// messages faster than this many per ephemeral_window has the excess
// dropped.
const maxEphemeralSeen = 65536

// delivery is a message going up.
type delivery struct {
	group     []byte
	id        wire.ID
	author    []byte
	payload   []byte
	trace     uint64
	ephemeral bool
	seq       int64
}

// outbound is one DOWN frame.
type outbound struct {
	group   []byte
	peer    []byte
	payload []byte
	trace   uint64
}

// node is the layer's state machine. Its methods take the input (a send,
// frames from members, the time) and return what to emit; nothing leaves
// before the change it reflects is committed (sync). Time enters only as
// the now function and the arguments of flush.
type node struct {
	mu   sync.Mutex
	cfg  Config
	self []byte
	st   *store
	now  func() time.Time
	c    *counters
	log  hclog.Logger
	// rng draws the delays of repair answers (Config.AnswerBackoff);
	// under mu.
	rng    *rand.Rand
	groups map[string]*group
	byBSP  map[wire.ID]*group
	lastTS uint64
	seq    int64
	// hello: the next flush opens a session (a VERSIONS record) with
	// every member of every active group (group.active), even with
	// nothing else to say: set at open, so that a node that comes back
	// tells its members at once, and their records waiting on a backoff
	// come due (heard).
	hello bool
	// lastHeard is when each member (by key) was last heard from (ms).
	lastHeard map[string]int64
	// lastSent is when a frame last went to each member (ms), for the
	// keepalive; started (ms) stands in for a member sent nothing yet.
	lastSent map[string]int64
	started  int64

	// Changes not yet committed, and the commit generations: gen is the
	// generation the changes being made now belong to, durable the last
	// one committed. commitMu makes one committer at a time.
	dirtyMsgs    map[*message]*group
	dirtyStatus  map[statusKey]struct{}
	dirtyOffered map[statusKey]bool
	dirtyGroups  map[*group]struct{}
	dirtyMeta    map[string]int64
	gen          uint64
	commitMu     sync.Mutex
	durable      uint64
	failed       error
}

// statusKey names a status (or an offered id) of a member of a group.
type statusKey struct {
	g  *group
	p  *peer
	id wire.ID
}

// openNode opens the store in dir and rebuilds the state from it.
func openNode(ctx context.Context, dir string, self []byte, cfg Config, c *counters, log hclog.Logger, now func() time.Time) (*node, error) {
	st, err := openStore(ctx, dir, cfg.Durability)
	if err != nil {
		return nil, err
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+)
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	n := &node{cfg: cfg, self: bytes.Clone(self), st: st, now: now, c: c, log: log, rng: rng, groups: map[string]*group{}, byBSP: map[wire.ID]*group{}, gen: 1, hello: true, lastHeard: map[string]int64{}, lastSent: map[string]int64{}}
	n.started = n.nowMS()
	n.resetDirty()
	if err := n.rebuild(ctx); err != nil {
		st.close()
		return nil, err
	}
	return n, nil
}

func (n *node) resetDirty() {
	n.dirtyMsgs = map[*message]*group{}
	n.dirtyStatus = map[statusKey]struct{}{}
	n.dirtyOffered = map[statusKey]bool{}
	n.dirtyGroups = map[*group]struct{}{}
	n.dirtyMeta = map[string]int64{}
}

func (n *node) close() error { return n.st.close() }

func (n *node) nowMS() int64 { return n.now().UnixMilli() }

// rebuild loads the store.
func (n *node) rebuild(ctx context.Context) error {
	l, err := n.st.load(ctx)
	if err != nil {
		return err
	}
	n.lastTS = uint64(l.meta[metaTimestamp])
	for _, gr := range l.groups {
		members, err := splitMembers(gr.members)
		if err != nil {
			return fmt.Errorf("bsp: stored group: %w", err)
		}
		g := n.newGroup(gr.id)
		n.setMembers(g, members)
	}
	for _, mr := range l.messages {
		g := n.groups[string(mr.group)]
		if g == nil {
			continue
		}
		m := &message{id: mr.id, ts: mr.timestamp, raw: mr.body, state: mr.state, own: mr.own, sender: mr.sender, trace: mr.trace, receivedMS: mr.receivedMS, deliverSeq: mr.deliverSeq, hostAcked: mr.hostAcked}
		if m.raw != nil {
			if m.b, err = decodeBody(m.raw, MaxParentsLimit); err != nil {
				return fmt.Errorf("bsp: stored message %x: %w", m.id[:4], err)
			}
		}
		if m.waits, err = splitIDs(mr.waits); err != nil {
			return fmt.Errorf("bsp: stored message %x: waits: %w", m.id[:4], err)
		}
		if m.deliverSeq > n.seq {
			n.seq = m.deliverSeq
		}
		g.msgs[m.id] = m
	}
	for _, sr := range l.statuses {
		g := n.groups[string(sr.group)]
		if g == nil {
			continue
		}
		if p := g.byKey[string(sr.peer)]; p != nil {
			st := sr.st
			p.status[sr.id] = &st
		}
	}
	for _, or := range l.offered {
		g := n.groups[string(or.group)]
		if g == nil {
			continue
		}
		if p := g.byKey[string(or.peer)]; p != nil {
			p.offered[or.id] = struct{}{}
		}
	}
	// Pending messages wait for their dependencies again; the store is
	// consistent (one transaction per change), so none of them has all
	// its dependencies delivered.
	for _, g := range n.groups {
		for _, m := range g.msgs {
			if m.state != stPending {
				continue
			}
			g.pending++
			for _, d := range m.deps() {
				if pm := g.msgs[d]; pm == nil || pm.state == stPending || pm.state == stUnknown {
					m.missing++
					g.waiting[d] = append(g.waiting[d], m)
					if pm == nil {
						n.wantDep(g, d, g.byKey[string(m.sender)])
					}
				}
			}
		}
		for _, m := range g.msgs {
			n.markCheck(g, m)
		}
	}
	return nil
}

func (n *node) newGroup(id []byte) *group {
	g := &group{id: bytes.Clone(id), bsp: groupID(id), byKey: map[string]*peer{}, msgs: map[wire.ID]*message{},
		waiting: map[wire.ID][]*message{}, wants: map[wire.ID]*want{}, hints: map[wire.ID][]*peer{}, ephSeen: map[wire.ID]int64{}, check: map[wire.ID]struct{}{}}
	n.groups[string(id)] = g
	n.byBSP[g.bsp] = g
	return g
}

// setMembers sets g's members; a member that leaves takes its state
// along, one that joins gets a status for each message it is to be sent.
func (n *node) setMembers(g *group, members [][]byte) (joined []*peer) {
	g.members = members
	old := g.byKey
	g.byKey = map[string]*peer{}
	g.peers = nil
	for _, k := range members {
		if bytes.Equal(k, n.self) {
			continue
		}
		p := old[string(k)]
		if p == nil {
			p = &peer{key: bytes.Clone(k), status: map[wire.ID]*status{}, owed: map[wire.ID]struct{}{}, offered: map[wire.ID]struct{}{}, sentAt: map[wire.ID]int64{}}
			joined = append(joined, p)
		}
		g.byKey[string(k)] = p
		g.peers = append(g.peers, p)
	}
	for k, p := range old {
		if g.byKey[k] == nil {
			for id := range p.status {
				n.dirtyStatus[statusKey{g, p, id}] = struct{}{}
			}
			for id := range p.offered {
				n.dirtyOffered[statusKey{g, p, id}] = false
			}
			p.status, p.offered = map[wire.ID]*status{}, map[wire.ID]struct{}{}
		}
	}
	return joined
}

func splitMembers(b []byte) ([][]byte, error) {
	if len(b)%IdentitySize != 0 {
		return nil, fmt.Errorf("members of %d bytes", len(b))
	}
	var ms [][]byte
	for i := 0; i < len(b); i += IdentitySize {
		ms = append(ms, bytes.Clone(b[i:i+IdentitySize]))
	}
	return ms, nil
}

// setGroup creates a group or changes its members.
func (n *node) setGroup(ctx context.Context, id []byte, members [][]byte) error {
	if len(id) == 0 || len(id) > wire.MaxGroupDescriptor {
		return fmt.Errorf("%w: group id of %d bytes (1 to %d)", errInvalid, len(id), wire.MaxGroupDescriptor)
	}
	var self bool
	seen := map[string]bool{}
	var ms [][]byte
	for _, m := range members {
		if len(m) != IdentitySize {
			return fmt.Errorf("%w: member key of %d bytes, want %d", errInvalid, len(m), IdentitySize)
		}
		if seen[string(m)] {
			continue
		}
		seen[string(m)] = true
		self = self || bytes.Equal(m, n.self)
		ms = append(ms, bytes.Clone(m))
	}
	if !self {
		return fmt.Errorf("%w: the members do not include this node", errInvalid)
	}
	n.mu.Lock()
	if n.failed != nil {
		n.mu.Unlock()
		return n.failed
	}
	g := n.groups[string(id)]
	if g != nil && sameMembers(g.members, ms) {
		n.mu.Unlock()
		return nil
	}
	if g == nil {
		g = n.newGroup(id)
	}
	joined := n.setMembers(g, ms)
	g.hello = g.hello || len(joined) > 0
	n.dirtyGroups[g] = struct{}{}
	// A member who joins is sent what this node shares, back to the
	// history window (Config.History).
	cut := n.historyCut()
	for _, p := range joined {
		for _, m := range g.msgs {
			if m.state == stDelivered && m.raw != nil && uint64(max(cut, 0)) <= m.ts && n.shares(m) && !bytes.Equal(m.b.author, p.key) {
				p.status[m.id] = &status{}
				n.dirtyStatus[statusKey{g, p, m.id}] = struct{}{}
			}
		}
	}
	n.mu.Unlock()
	return n.sync(ctx)
}

func sameMembers(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	set := map[string]bool{}
	for _, k := range a {
		set[string(k)] = true
	}
	for _, k := range b {
		if !set[string(k)] {
			return false
		}
	}
	return true
}

// historyCut is the oldest timestamp (ms) within the history window, or 0.
func (n *node) historyCut() int64 {
	if n.cfg.History <= 0 {
		return 0
	}
	return n.nowMS() - n.cfg.History.Milliseconds()
}

// shares reports whether this node offers m to other members: its own
// messages always, others' when relaying.
func (n *node) shares(m *message) bool { return m.own || n.cfg.Relay }

// send adds a message of this node to group gid.
func (n *node) send(ctx context.Context, gid, payload []byte, parents [][]byte, ephemeral bool, trace uint64) (wire.ID, error) {
	ids, err := n.sendBatch(ctx, []outgoing{{group: gid, payload: payload, parents: parents, ephemeral: ephemeral, trace: trace}})
	if err != nil {
		return wire.ID{}, err
	}
	return ids[0], nil
}

// outgoing is one message of a sendBatch.
type outgoing struct {
	group, payload []byte
	parents        [][]byte
	ephemeral      bool
	trace          uint64
}

// sendBatch adds messages, in order, all or none: every one is checked
// before any is taken (a parent may be an earlier message of the batch),
// then all are committed together, durable when it returns.
func (n *node) sendBatch(ctx context.Context, msgs []outgoing) ([]wire.ID, error) {
	for i, o := range msgs {
		if len(o.payload) > MaxPayload {
			return nil, fmt.Errorf("%w: message %d: payload of %d bytes, at most %d", errInvalid, i, len(o.payload), MaxPayload)
		}
		if len(o.parents) > n.cfg.MaxParents {
			return nil, fmt.Errorf("%w: message %d: %d parents, at most %d (max_parents)", errInvalid, i, len(o.parents), n.cfg.MaxParents)
		}
	}
	type planned struct {
		g   *group
		raw []byte
		rm  wire.RawMessage
		id  wire.ID
		ts  uint64
		o   outgoing
	}
	n.mu.Lock()
	if n.failed != nil {
		n.mu.Unlock()
		return nil, n.failed
	}
	plan := make([]planned, len(msgs))
	inBatch := map[wire.ID]bool{} // persistent messages of the batch so far
	lastTS := n.lastTS
	for i, o := range msgs {
		g := n.groups[string(o.group)]
		if g == nil {
			n.mu.Unlock()
			return nil, fmt.Errorf("%w: message %d: %x", errNoGroup, i, o.group)
		}
		b := body{ephemeral: o.ephemeral, author: n.self, payload: o.payload}
		seen := map[wire.ID]bool{}
		for _, p := range o.parents {
			if len(p) != wire.IDLen {
				n.mu.Unlock()
				return nil, fmt.Errorf("%w: message %d: parent of %d bytes", errInvalid, i, len(p))
			}
			id := wire.ID(p)
			pm := g.msgs[id]
			// With a history window, a parent forgotten here is accepted:
			// the host keeps its history longer than the sync state.
			forgotten := pm == nil && n.cfg.History > 0
			ok := inBatch[id] || forgotten || (pm != nil && (pm.state == stDelivered || pm.state == stCompacted))
			if !ok {
				n.mu.Unlock()
				return nil, fmt.Errorf("%w: message %d: parent %x is not a delivered message of the group", errInvalid, i, id[:4])
			}
			if !seen[id] {
				seen[id] = true
				b.parents = append(b.parents, id)
			}
		}
		ts := uint64(max(n.nowMS(), 0))
		if ts <= lastTS {
			ts = lastTS + 1
		}
		lastTS = ts
		raw := encodeBody(b)
		rm := wire.RawMessage{Group: g.bsp, Timestamp: ts, Body: raw}
		plan[i] = planned{g: g, raw: raw, rm: rm, id: rm.ID(), ts: ts, o: o}
		if !o.ephemeral {
			inBatch[plan[i].id] = true
		}
	}
	n.lastTS = lastTS
	n.dirtyMeta[metaTimestamp] = int64(lastTS)
	ids := make([]wire.ID, len(plan))
	persistent := false
	for i, p := range plan {
		ids[i] = p.id
		if p.o.ephemeral {
			p.g.ephOut = append(p.g.ephOut, outMsg{raw: p.rm, trace: p.o.trace})
			continue
		}
		persistent = true
		m := &message{id: p.id, ts: p.ts, raw: p.raw, state: stDelivered, own: true, sender: n.self, trace: p.o.trace, receivedMS: n.nowMS()}
		m.b, _ = decodeBody(p.raw, MaxParentsLimit)
		p.g.msgs[p.id] = m
		n.dirtyMsgs[m] = p.g
		for _, peer := range p.g.peers {
			peer.status[p.id] = &status{}
			n.dirtyStatus[statusKey{p.g, peer, p.id}] = struct{}{}
		}
	}
	n.mu.Unlock()
	if !persistent {
		return ids, nil
	}
	return ids, n.sync(ctx)
}

// sync commits every change made so far (and any made meanwhile by
// others): group commit, one transaction and one fsync for all the
// changes that gathered while the previous commit ran.
func (n *node) sync(ctx context.Context) error {
	n.mu.Lock()
	mine := n.gen
	n.mu.Unlock()
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	n.mu.Lock()
	if n.durable >= mine || n.failed != nil {
		err := n.failed
		n.mu.Unlock()
		return err
	}
	ch := n.takeChanges()
	g := n.gen
	n.gen++
	n.mu.Unlock()
	var err error
	if !ch.empty() {
		// A commit is not cancelled with the call that asked for it: the
		// changes of others ride on it.
		err = n.st.write(context.WithoutCancel(ctx), ch)
		n.c.commits.Inc()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.failed = fmt.Errorf("%w: %v", errFailed, err)
		return n.failed
	}
	n.durable = g
	return nil
}

// takeChanges turns the dirty sets into rows; n.mu is held.
func (n *node) takeChanges() *changes {
	ch := &changes{meta: n.dirtyMeta}
	for g := range n.dirtyGroups {
		var b []byte
		for _, k := range g.members {
			b = append(b, k...)
		}
		ch.groups = append(ch.groups, groupRow{id: g.id, members: b})
	}
	for m, g := range n.dirtyMsgs {
		ch.messages = append(ch.messages, messageRow{group: g.id, id: m.id, timestamp: m.ts, body: m.raw, state: m.state, own: m.own,
			sender: m.sender, trace: m.trace, receivedMS: m.receivedMS, deliverSeq: m.deliverSeq, hostAcked: m.hostAcked, waits: joinIDs(m.waits), del: m.gone})
	}
	for k := range n.dirtyStatus {
		r := statusRow{group: k.g.id, peer: k.p.key, id: k.id}
		if st := k.p.status[k.id]; st != nil && k.g.byKey[string(k.p.key)] == k.p {
			r.st = *st
		} else {
			r.del = true
		}
		ch.statuses = append(ch.statuses, r)
	}
	for k, add := range n.dirtyOffered {
		ch.offered = append(ch.offered, offeredRow{group: k.g.id, peer: k.p.key, id: k.id, del: !add})
	}
	n.resetDirty()
	return ch
}

// markCheck queues m for the compaction check of the next flush.
func (n *node) markCheck(g *group, m *message) {
	if m.state == stDelivered && m.raw != nil {
		g.check[m.id] = struct{}{}
	}
}

// dirtyStatusOf marks a status changed.
func (n *node) dirtyStatusOf(g *group, p *peer, id wire.ID) {
	n.dirtyStatus[statusKey{g, p, id}] = struct{}{}
}

// owe records that an ACK of id is owed to p. An urgent one answers a
// MESSAGE record, whose sender's retransmission waits for it; the others
// (answers to offers, news of a repair) may wait for other records to p
// (Config.BatchRelays).
func (n *node) owe(g *group, p *peer, id wire.ID, urgent bool) {
	p.ackNow = p.ackNow || urgent
	if st := p.status[id]; st != nil {
		if !st.ack {
			st.ack = true
			n.dirtyStatusOf(g, p, id)
		}
		return
	}
	p.owed[id] = struct{}{}
}

// markSeen records that p has id.
func (n *node) markSeen(g *group, p *peer, m *message, nowMS int64) {
	st := p.status[m.id]
	if st == nil {
		return
	}
	if !st.seen || st.requested {
		if st.requested && st.expiry > nowMS {
			// A repair answer waiting on its random delay: the member
			// has the message (from another member), so it is not sent.
			n.c.answersSuppressed.Inc()
		}
		st.seen, st.requested = true, false
		n.dirtyStatusOf(g, p, m.id)
		if t, ok := p.sentAt[m.id]; ok && st.tx == 1 {
			n.sampleRTT(p, nowMS-t)
		}
		delete(p.sentAt, m.id)
		n.markCheck(g, m)
	}
}

// sampleRTT folds a round trip into p's estimate (RFC 6298's 1/8 gain).
func (n *node) sampleRTT(p *peer, rtt int64) {
	if rtt < 0 {
		return
	}
	if p.srtt == 0 {
		p.srtt = max(rtt, 1)
		return
	}
	p.srtt = max(p.srtt+(rtt-p.srtt)/8, 1)
}

// latency is the latency (ms) that p's retransmissions are timed for: the
// observed round trip, within min_latency and max_latency, or
// initial_latency before any is observed.
func (n *node) latency(p *peer) int64 {
	l := n.cfg.InitialLatency.Milliseconds()
	if p.srtt > 0 {
		l = p.srtt
	}
	return min(max(l, n.cfg.MinLatency.Milliseconds()), n.cfg.MaxLatency.Milliseconds())
}

// backoff is Briar's 2·latency·2^tx, saturating, capped at max_backoff.
func (n *node) backoff(lat int64, tx uint32) int64 {
	limit := n.cfg.MaxBackoff.Milliseconds()
	d := 2 * lat
	for i := uint32(0); i < tx && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// wantDep asks for the missing dependency d (gap repair), from p among
// others.
func (n *node) wantDep(g *group, d wire.ID, p *peer) {
	w := g.wants[d]
	if w == nil {
		w = &want{from: map[*peer]bool{}}
		g.wants[d] = w
	}
	if p != nil {
		w.from[p] = true
	}
	for _, h := range g.hints[d] {
		w.from[h] = true
	}
}

// hint records that p announced id, which this node lacks.
func (n *node) hint(g *group, id wire.ID, p *peer) {
	if w := g.wants[id]; w != nil {
		if !w.from[p] {
			w.from[p] = true
			w.next = 0 // a new source: ask it at once
		}
		return
	}
	hs := g.hints[id]
	if hs == nil && len(g.hints) >= maxHints {
		return
	}
	for _, h := range hs {
		if h == p {
			return
		}
	}
	g.hints[id] = append(hs, p)
}

// silenceFactor is the silence, in p's latencies (beyond the keepalive),
// after which a frame from p makes its records due at once.
const silenceFactor = 4

// silence is how long p must have said nothing for a frame from it to
// tell that it was away: silenceFactor latencies, plus the keepalive when
// there is one, since a member that is there but has nothing to say is
// silent that long (on a mixnet, whose latency is seconds, far longer
// than four latencies; taking each such frame as a return would send
// everything waiting for the member again at every frame from it).
func (n *node) silence(p *peer) int64 {
	return silenceFactor*n.latency(p) + n.cfg.Keepalive.Milliseconds()
}

// heard notes a frame from p's member in any group; the first since this
// node started, or one after a silence (above), makes what waits on a
// backoff for that member due at once, in every group (Briar resends on a
// faster transport; here the member coming back is the signal). Silence
// is per member, not per group: a member back in one conversation is back
// in all of them.
//
// A member's first frame in a group since this node started makes what
// waits for it there due at once too, however recently it was heard
// elsewhere: a member that could not take the group's frames before (its
// secure layer had not joined the group) is there now.
func (n *node) heard(g *group, p *peer, nowMS int64) {
	first := !p.heard
	p.heard = true
	last, ok := n.lastHeard[string(p.key)]
	n.lastHeard[string(p.key)] = nowMS
	if ok && nowMS-last <= n.silence(p) {
		if first {
			n.dueNow(g, p, nowMS)
		}
		return
	}
	for _, other := range n.groups {
		if q := other.byKey[string(p.key)]; q != nil {
			n.dueNow(other, q, nowMS)
		}
	}
}

// dueNow makes what waits on a backoff for p in g due at nowMS.
func (n *node) dueNow(g *group, p *peer, nowMS int64) {
	for id, st := range p.status {
		if !st.seen && st.tx > 0 && st.expiry > nowMS {
			st.expiry = nowMS
			n.dirtyStatusOf(g, p, id)
			n.c.onlineResets.Inc()
		}
	}
}
