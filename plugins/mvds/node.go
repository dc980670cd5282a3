package mvds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// Errors of the node's control operations; the layer maps them to gRPC
// codes.
var (
	// errInvalid: a request the node refuses as it stands.
	errInvalid = errors.New("invalid")
	// errNoGroup: a group that was never set.
	errNoGroup = errors.New("no such group")
	// errPrecondition: a parent that is not a delivered persistent message
	// of the group, or a node without an identity.
	errPrecondition = errors.New("failed precondition")
	// errUnavailable: the node failed (its storage did) or is closed.
	errUnavailable = errors.New("unavailable")
	// errBusy: a member's queue of ephemeral messages is full.
	errBusy = errors.New("resource exhausted")
)

// queueFactor bounds the in-memory queues of each member: at most
// queueFactor·max_ids acks and as many ephemeral messages wait for the
// next epochs. An ack beyond it is not queued (the sender retransmits and
// is acked then); an ephemeral Send beyond it fails.
const queueFactor = 8

// maxRequestTries is how many times a REQUEST record is sent before it is
// given up. A missing message that its holder keeps retransmitting still
// arrives; the request only hastens it.
const maxRequestTries = 16

// node is the MVDS state machine of one Strata node: its groups, their
// messages and per-member records, the epoch clock and the causal
// delivery buffer. It knows nothing of the SDK: the layer feeds it
// inbound payloads (receive), drives its epochs (tick) and emits what they
// return. Every method is safe for concurrent use; one mutex serializes
// them, and each runs its writes in one store transaction.
type node struct {
	cfg  Config
	self []byte
	st   *store
	now  func() time.Time
	c    *counters
	log  hclog.Logger

	mu     sync.Mutex
	epoch  uint64
	lastTS int64 // the last timestamp this node stamped
	groups map[string]*group
	// unacked is the number of deliveries the host has not acknowledged
	// (the rows of the store's unacked table).
	unacked int
	// failed is a storage error after which memory may be ahead of disk:
	// the node refuses to go on.
	failed error
	closed bool
	// traces are the host's trace ids of this node's own messages, so
	// that every frame carrying one (retransmissions too) carries its send's
	// trace id. In memory and bounded: after a restart, or for the oldest of
	// more than maxTraces, frames go with trace id 0.
	traces map[ID]uint64
	// fresh says that some group has a fresh member (group.fresh).
	fresh bool
	// rejected are messages the host rejected (verdict.go).
	rejected rejectedSet

	// The commit loop (commit.go): Send and SendBatch calls wait in queue,
	// and one of them at a time (leading) commits what has gathered.
	cmu     sync.Mutex
	queue   []*commitReq
	leading bool
}

// markFresh notes that peer has something never sent waiting for it.
// Called with n.mu.
func (n *node) markFresh(g *group, peer []byte) {
	g.fresh[string(peer)] = true
	n.fresh = true
}

// maxTraces bounds the trace ids a node remembers.
const maxTraces = 1 << 16

// noteTrace remembers the trace id of an own message. Called with n.mu.
func (n *node) noteTrace(id ID, trace uint64) {
	if trace == 0 {
		return
	}
	if n.traces == nil {
		n.traces = map[ID]uint64{}
	}
	if len(n.traces) >= maxTraces {
		for old := range n.traces { // any one: a trace id is advisory
			delete(n.traces, old)
			break
		}
	}
	n.traces[id] = trace
}

// group is the in-memory state of one sync group. Messages and records
// live in the store; the group keeps what is transient (acks to send,
// ephemeral messages to send once) or bounded (messages waiting for a
// parent).
type group struct {
	id        []byte
	members   [][]byte
	memberSet map[string]bool
	// pending holds messages waiting for a parent, at most max_pending.
	pending map[ID]*pendingMsg
	// waiting maps a parent that is not delivered to its pending children.
	waiting map[ID][]ID
	// acks are the ids to acknowledge to each member at the next epoch (or
	// in an eager flush's payload to it, if one goes first).
	acks map[string]*idQueue
	// once are the ephemeral messages to send each member at the next epoch
	// (or at once, eager).
	once map[string][]outMessage
	// fresh holds the members with something never sent waiting for them:
	// a record with send count 0 or an ephemeral message. The eager flush
	// (flush.go) looks at them only; an epoch clears them all.
	fresh map[string]bool
	// heard is the epoch of each member's last valid payload.
	heard map[string]uint64
	// requests counts the REQUEST records for each member.
	requests map[string]int
	// wireWarned holds the members whose messages of the other wire mode
	// were logged, so that the log says it once per member and run.
	wireWarned map[string]bool
}

func newGroup(id []byte) *group {
	return &group{
		id:         id,
		memberSet:  make(map[string]bool),
		pending:    make(map[ID]*pendingMsg),
		waiting:    make(map[ID][]ID),
		acks:       make(map[string]*idQueue),
		once:       make(map[string][]outMessage),
		fresh:      make(map[string]bool),
		heard:      make(map[string]uint64),
		requests:   make(map[string]int),
		wireWarned: make(map[string]bool),
	}
}

func (g *group) setMembers(members [][]byte) {
	g.members = members
	g.memberSet = make(map[string]bool, len(members))
	for _, m := range members {
		g.memberSet[string(m)] = true
	}
}

func (g *group) isMember(peer []byte) bool { return g.memberSet[string(peer)] }

// queueAck acknowledges id to peer at the next epoch (or with an eager
// flush's payload to peer, if one goes first), unless peer's queue
// is full; trace is the trace id of the frame that brought what is acked,
// so that the ack can be followed back to it.
func (n *node) queueAck(g *group, peer []byte, id ID, trace uint64) {
	q := g.acks[string(peer)]
	if q == nil {
		q = &idQueue{set: make(map[ID]bool)}
		g.acks[string(peer)] = q
	}
	if len(q.ids) < queueFactor*n.cfg.MaxIDs {
		if len(q.ids) == 0 {
			q.since = n.epoch
		}
		q.push(id)
		if q.trace == 0 {
			q.trace = trace
		}
	}
}

// acksDue says whether the acks owed to peer must go at this epoch even
// without a payload to ride on: the oldest has waited ack_delay epochs.
func (n *node) acksDue(g *group, peer []byte) bool {
	q := g.acks[string(peer)]
	return q != nil && len(q.ids) > 0 && n.epoch >= q.since+max(n.cfg.AckDelay, 1)
}

// idQueue is a queue of distinct ids.
type idQueue struct {
	ids []ID
	set map[ID]bool
	// trace is the trace id of the frame that brought the first id queued
	// since the queue was last emptied, or 0.
	trace uint64
	// since is the epoch in which that first id was queued.
	since uint64
}

func (q *idQueue) push(id ID) {
	if !q.set[id] {
		q.set[id] = true
		q.ids = append(q.ids, id)
	}
}

// pendingMsg is a message waiting for a parent. A persistent one is also
// in the store (delivered = 0); an ephemeral one lives only here.
type pendingMsg struct {
	id        ID
	author    []byte
	parents   []ID
	from      []byte // the member it came from
	received  time.Time
	trace     uint64
	ephemeral bool
	timestamp int64
	payload   []byte // ephemeral only; a persistent one is read back from the store
	// silent marks a persistent copy of a message that went up as
	// ephemeral (spec wire: the id does not cover the flag): delivered
	// here, its children released, no second UP frame.
	silent bool
}

// delivery is a message the node has decided to deliver, its delivered
// mark committed (and, for a persistent one, its unacknowledged delivery
// recorded): the layer emits it as an UP frame. The same type carries a
// redelivery of a message delivered in an earlier run.
type delivery struct {
	group     []byte
	id        ID
	author    []byte
	payload   []byte
	ephemeral bool
	trace     uint64
}

// inbound is one payload from below.
type inbound struct {
	group   []byte
	from    []byte
	payload []byte
	trace   uint64
}

// outbound is one payload for one member, built at an epoch.
type outbound struct {
	group, peer []byte
	payload     []byte
	// ephemeral says the payload holds ephemeral messages only.
	ephemeral bool
	// trace is the host's trace id of the first own message in the
	// payload that has one, or 0.
	trace uint64
}

// openNode opens the store in dir and rebuilds the node's memory from it.
// self is the node's identity key (empty: the node stores and relays
// nothing, since it cannot be a member).
func openNode(ctx context.Context, dir string, self []byte, cfg Config, c *counters, log hclog.Logger, now func() time.Time) (*node, error) {
	st, err := openStore(ctx, dir, cfg.Durability)
	if err != nil {
		return nil, err
	}
	n := &node{cfg: cfg, self: bytes.Clone(self), st: st, now: now, c: c, log: log, groups: make(map[string]*group)}
	if err := n.load(ctx); err != nil {
		st.close()
		return nil, err
	}
	return n, nil
}

// load reads the groups, the epoch and the pending messages.
func (n *node) load(ctx context.Context) error {
	tx, err := n.st.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback()
	epoch, err := tx.meta(metaEpoch)
	if err != nil {
		return err
	}
	n.epoch = uint64(epoch)
	if n.lastTS, err = tx.meta(metaTimestamp); err != nil {
		return err
	}
	// A record can be due no later than backoff_max epochs after the epoch
	// it was last sent in; the epochs of idle ticks are not stored, so this
	// also bounds how much later than planned a record goes out after a
	// restart.
	if err := tx.clampStates(n.epoch + n.cfg.BackoffMax); err != nil {
		return err
	}
	rows, err := tx.groups()
	if err != nil {
		return err
	}
	for _, r := range rows {
		g := newGroup(r.id)
		g.setMembers(r.members)
		n.groups[string(r.id)] = g
	}
	counts, err := tx.requestCounts()
	if err != nil {
		return err
	}
	for gid, peers := range counts {
		if g := n.groups[gid]; g != nil {
			g.requests = peers
		}
	}
	if n.unacked, _, err = tx.unackedCount(); err != nil {
		return err
	}
	pending, err := tx.pendingMessages()
	if err != nil {
		return err
	}
	for _, m := range pending {
		g := n.groups[string(m.group)]
		if g == nil {
			continue
		}
		c, err := m.content()
		if err != nil {
			return fmt.Errorf("mvds: stored message %s: %w", m.id, err)
		}
		g.pending[m.id] = &pendingMsg{id: m.id, author: c.author, parents: c.parents, from: m.sender, received: time.UnixMilli(m.receivedMs), timestamp: m.timestamp}
	}
	for _, g := range n.groups {
		for _, pm := range g.pending {
			for _, p := range pm.parents {
				info, found, err := tx.message(g.id, p)
				if err != nil {
					return err
				}
				if !found || !info.done() {
					g.waiting[p] = append(g.waiting[p], pm.id)
				}
			}
		}
	}
	return tx.commit()
}

// usable is the precondition of every operation; n.mu is held.
func (n *node) usable() error {
	switch {
	case n.failed != nil:
		return fmt.Errorf("%w: storage failed: %v", errUnavailable, n.failed)
	case n.closed:
		return fmt.Errorf("%w: closed", errUnavailable)
	}
	return nil
}

// fail records a storage error that left memory ahead of disk; n.mu is
// held. The node serves nothing more, and the layer reports it unhealthy:
// a restart rebuilds the node from what was committed.
func (n *node) fail(err error) {
	if n.failed == nil {
		n.failed = err
		n.log.Error("storage failed; the sync layer stops", "error", err)
	}
}

// close persists the epoch and closes the store.
func (n *node) close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var err error
	if n.failed == nil {
		var tx *txn
		if tx, err = n.st.begin(ctx); err == nil {
			if err = tx.setMeta(metaEpoch, int64(n.epoch)); err == nil {
				err = tx.commit()
			} else {
				tx.rollback()
			}
		}
	}
	if cerr := n.st.close(); err == nil {
		err = cerr
	}
	return err
}

// nodeHealth is the node's part of Health.
type nodeHealth struct {
	// pending counts the messages waiting for a parent, all groups.
	pending int
	// groups counts the groups.
	groups int
	// unacked counts the deliveries the host has not acknowledged.
	unacked int
	// failed is the storage failure, if any.
	failed error
}

// health returns the node's levels and its storage failure, if any.
func (n *node) health() nodeHealth {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := nodeHealth{groups: len(n.groups), unacked: n.unacked, failed: n.failed}
	for _, g := range n.groups {
		h.pending += len(g.pending)
	}
	return h
}

// setGroup creates a group or changes its members. members are 32-byte
// identity keys and include this node. A member that leaves loses every
// record for it; one that joins gets the messages sent from then on.
func (n *node) setGroup(ctx context.Context, id []byte, members [][]byte) error {
	if len(id) == 0 || len(id) > MaxGroupID {
		return fmt.Errorf("%w: group id of %d bytes, want 1 to %d", errInvalid, len(id), MaxGroupID)
	}
	if len(members) > MaxMembers {
		return fmt.Errorf("%w: %d members, at most %d", errInvalid, len(members), MaxMembers)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return err
	}
	if len(n.self) == 0 {
		return fmt.Errorf("%w: the node has no identity key", errPrecondition)
	}
	var list [][]byte
	set := make(map[string]bool)
	for _, m := range members {
		if len(m) != IdentitySize {
			return fmt.Errorf("%w: member %s is %d bytes, want %d", errInvalid, short(m), len(m), IdentitySize)
		}
		if !set[string(m)] {
			set[string(m)] = true
			list = append(list, bytes.Clone(m))
		}
	}
	if !set[string(n.self)] {
		return fmt.Errorf("%w: the members do not include this node", errInvalid)
	}
	g := n.groups[string(id)]
	if g != nil && sameMembers(g.memberSet, set) {
		return nil // what the host sends after every start
	}
	tx, err := n.st.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback()
	if err := tx.putGroup(id, list); err != nil {
		return err
	}
	var gone [][]byte
	if g != nil {
		for _, m := range g.members {
			if !set[string(m)] {
				gone = append(gone, m)
				if err := tx.deletePeer(id, m); err != nil {
					return err
				}
			}
		}
	}
	if err := tx.commit(); err != nil {
		return err
	}
	if g == nil {
		g = newGroup(bytes.Clone(id))
		n.groups[string(g.id)] = g
	}
	g.setMembers(list)
	for _, m := range gone {
		delete(g.acks, string(m))
		delete(g.once, string(m))
		delete(g.fresh, string(m))
		delete(g.heard, string(m))
		delete(g.requests, string(m))
		delete(g.wireWarned, string(m))
	}
	return nil
}

func sameMembers(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// encode makes an own message in the node's wire mode: its wire form and
// what the store keeps of it. The caller computes the id from the body.
func (n *node) encode(group []byte, ts int64, payload []byte, parents []ID, ephemeral bool) (outMessage, stored, error) {
	if n.cfg.bound() {
		b, err := encodeBody(n.self, parents, payload, ephemeral)
		if err != nil {
			return outMessage{}, stored{}, err
		}
		m := &wirepb.Message{GroupId: group, Timestamp: ts, Body: b}
		return outMessage{m: m, format: formatBound}, stored{format: formatBound, body: b}, nil
	}
	payload = bytes.Clone(payload)
	m := specMessage(group, ts, payload, parents, ephemeral)
	st := stored{format: formatSpec, body: payload, author: n.self}
	if m.Metadata != nil {
		md, err := proto.Marshal(m.Metadata)
		if err != nil {
			return outMessage{}, stored{}, fmt.Errorf("mvds: encode metadata: %w", err)
		}
		st.metadata = md
	}
	return outMessage{m: m, format: formatSpec}, st, nil
}

// groupState is a group's State.
type groupState struct {
	groupCounts
	pending uint64
}

// state reports a group's figures: messages stored (sent here or
// received), received messages delivered, messages waiting for a parent,
// and stored messages some member has not acknowledged to this node.
func (n *node) state(ctx context.Context, groupID []byte) (groupState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return groupState{}, err
	}
	g := n.groups[string(groupID)]
	if g == nil {
		return groupState{}, fmt.Errorf("%w: %s", errNoGroup, short(groupID))
	}
	tx, err := n.st.begin(ctx)
	if err != nil {
		return groupState{}, err
	}
	defer tx.rollback()
	c, err := tx.counts(g.id)
	if err != nil {
		return groupState{}, err
	}
	return groupState{groupCounts: c, pending: uint64(len(g.pending))}, nil
}
