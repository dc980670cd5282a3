// Package synclayer is "syncfix", a test fixture: a real but minimal sync
// layer that exists to prove the sync conformance suite
// (conformance.Sync) passes on an honest implementation. It is NOT a
// protocol to deploy: it has no relaying, no history sync for new members,
// no compaction and no flow control beyond fixed caps. Use mvds or bsp.
//
// What it does:
//
//   - Send computes the message id (MessageID: SHA-256 of group, author,
//     parents and payload), appends the message to an fsynced append-only
//     log in the data directory and only then returns the id. It then sends
//     the message (wire.go) to every other member of the group, in a DOWN
//     frame with Frame.peer = that member's identity key and
//     Frame.conversation = the group.
//   - Every retransmit_interval, give or take a third (100 to 200 ms by
//     default), it sends each message again to every member that has not
//     acked it, for as long as it is unacknowledged: tries are unbounded,
//     the number of unacknowledged messages per group is capped
//     (MaxUnacked; Send fails with ResourceExhausted beyond it).
//   - A receiver drops frames that are not from another member of the group
//     (dropped_non_member) or do not decode (dropped_malformed). It stores
//     a new message, fsyncs, and acks it to its author; it acks a duplicate
//     again (duplicates). A message goes up once all its parents are
//     delivered (or were authored here); until then it is pending, and
//     nothing is requested: a missing parent arrives by its author's
//     retransmission.
//   - Delivery to the host is exactly once with the host's help (the Ack
//     RPC). The delivered mark is fsynced before the UP frame is emitted;
//     the message is then "delivered, unacknowledged", and the layer keeps
//     its payload, until the host calls Ack with its id. Ack appends an
//     acknowledgement to the log and returns once that is fsynced. After
//     every Start the layer delivers again every message it delivered that
//     the host has not acknowledged, in the order it first delivered them
//     (so causal order holds) and before anything new; it emits them after
//     Start returns, from its own goroutine, so an Emit that blocks does not
//     block Start. A crash between the fsync of the delivered mark and the
//     emission, a frame lost across the plugin boundary or a host that dies
//     before it stores a delivery therefore loses nothing: the message goes
//     up again at the next Start. A message acknowledged is never delivered
//     again, restarts included. Within one run (one Start) a message goes
//     up once. Ack ignores ids that are unknown, not yet delivered, this
//     node's own messages or ephemeral, and ids of another group.
//   - An ephemeral message is sent once, never stored, never acked and never
//     retransmitted; it cannot be a parent. A receiver remembers the last
//     recentEphemeral ephemeral ids per group, in memory, to drop duplicates.
//     Its frames carry Hints.ephemeral. It is delivered up once and never
//     again: it is not redelivered at a Start and needs no Ack (Ack ignores
//     its id).
//   - DOWN frames from above are ignored (ignored_down): the application
//     sends through the Send RPC, which returns the id.
//
// Limits, which bound memory: MaxPayload bytes per message, MaxParents
// parents, MaxGroups groups of at most MaxMembers members, MaxMessages
// messages per group (then the group is full), MaxPending messages waiting
// for parents per group (then new ones are dropped unacked, dropped_full,
// and come back by retransmission) and MaxUnacked unacknowledged messages
// per group. Payloads stay in memory only while a message is pending,
// unacknowledged by a member (this node's messages) or delivered and not
// acknowledged by the host. A host that never calls Ack thus keeps every
// payload of its groups in memory, at most MaxMessages per group, and is
// handed all of them again at every Start.
//
// Health counters: dropped_malformed, dropped_non_member, dropped_full,
// duplicates (messages received again), retransmissions (frames sent
// again), delivered (first deliveries up), redelivered (UP frames sent
// again after a Start) and ignored_down only grow; pending, unacknowledged
// (this node's messages some member has not acked) and
// unacknowledged_deliveries (messages delivered up that the host has not
// acknowledged) are current levels summed over the groups.
package synclayer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name, Version and the layer's other fixed facts.
const (
	// Name is the plugin's name.
	Name = "syncfix"
	// Version is the plugin's version.
	Version = "1.1.0"
	// IdentitySize is the length of an identity key (Ed25519 public key).
	IdentitySize = 32
	// MaxGroupID is the longest group id, in bytes.
	MaxGroupID = 256
	// MaxGroups is the most groups a node keeps.
	MaxGroups = 16
	// MaxMembers is the most members of one group, the node included.
	MaxMembers = 64
	// MaxMessages is the most messages one group stores, ever.
	MaxMessages = 4096
	// MaxPending is the most messages per group waiting for a parent.
	MaxPending = 256
	// MaxUnacked is the most messages per group this node authored that
	// are not yet acked by every member.
	MaxUnacked = 256

	// recentEphemeral is how many delivered ephemeral ids a group remembers.
	recentEphemeral = 1024
	// defaultInterval is retransmit_interval's default.
	defaultInterval = 150 * time.Millisecond
)

// Layer is the syncfix layer. New makes one; the SDK drives it.
type Layer struct {
	env      sdk.Env
	identity []byte
	interval time.Duration

	// runCtx ends at Stop; it bounds every Emit and the retransmit loop.
	runCtx    context.Context
	runCancel context.CancelFunc
	loopDone  chan struct{}
	// redelivering counts the goroutines that emit what a Start delivers;
	// Stop waits for them. Add is called with mu held and stopped false.
	redelivering sync.WaitGroup

	// deliverMu orders the emission of UP frames as they were decided. A
	// Start hands it to the goroutine that emits its deliveries, which
	// unlocks it when done, so that nothing newer goes up before them.
	deliverMu sync.Mutex
	// emitMu is held (read) around every Emit; Stop takes it to wait for
	// emissions in flight, after which nothing is emitted.
	emitMu sync.RWMutex

	mu      sync.Mutex
	store   *store
	groups  map[string]*group
	started bool
	stopped bool
	failed  error // a storage error; the layer stops serving
	// seq numbers the deliveries up, in the order they were decided (the
	// order of the delivered records in the store).
	seq uint64

	droppedMalformed atomic.Uint64
	droppedNonMember atomic.Uint64
	droppedFull      atomic.Uint64
	duplicates       atomic.Uint64
	retransmissions  atomic.Uint64
	delivered        atomic.Uint64
	redelivered      atomic.Uint64
	ignoredDown      atomic.Uint64
}

var _ sdk.Sync = (*Layer)(nil)

// New returns an unconfigured syncfix layer.
func New() *Layer { return &Layer{groups: make(map[string]*group)} }

type config struct {
	RetransmitInterval string `json:"retransmit_interval"`
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SYNC,
		Name:        Name,
		Version:     Version,
		Description: "test fixture proving the sync conformance suite; not a protocol to deploy",
		Config: []*commonv1.ConfigField{
			sdk.Duration("retransmit_interval", "how often unacknowledged messages are sent again, give or take a third (10ms to 1m)", defaultInterval),
		},
		Provides:   []string{"sync"},
		Requires:   []string{"unicast"},
		MaxPayload: MaxPayload,
	}
}

// Configure implements sdk.Layer: it checks the config and the identity and
// opens the store in req.DataDir, rebuilding the state it holds.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	var c config
	if err := sdk.DecodeConfig(req.GetConfigJson(), &c); err != nil {
		return nil, err
	}
	interval := defaultInterval
	if c.RetransmitInterval != "" {
		d, err := time.ParseDuration(c.RetransmitInterval)
		if err != nil || d < 10*time.Millisecond || d > time.Minute {
			return nil, &sdk.ConfigError{Key: "retransmit_interval", Problem: fmt.Sprintf("is %q", c.RetransmitInterval), Fix: "use a duration from 10ms to 1m"}
		}
		interval = d
	}
	if n := len(req.GetNodeIdentity()); n != 0 && n != IdentitySize {
		return nil, fmt.Errorf("syncfix: node identity is %d bytes, want %d", n, IdentitySize)
	}
	if req.GetDataDir() == "" {
		return nil, fmt.Errorf("syncfix: no data dir")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return nil, fmt.Errorf("syncfix: configured twice")
	}
	l.identity = bytes.Clone(req.GetNodeIdentity())
	st, err := openStore(req.GetDataDir(), l.replay)
	if err != nil {
		l.groups = make(map[string]*group)
		return nil, err
	}
	for _, g := range l.groups {
		g.settleLoaded(l.identity)
	}
	l.env, l.interval, l.store = env, interval, st
	l.runCtx, l.runCancel = context.WithCancel(context.Background())
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer: it starts retransmitting, delivers again
// every message delivered before and not acknowledged by the host, in the
// order it first delivered them, then delivers what the store holds ready
// (a message stored just before a crash). The delivered marks are durable
// when Start returns; the UP frames are emitted after, by a goroutine of
// the layer, before any later delivery.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.deliverMu.Lock()
	l.mu.Lock()
	if l.store == nil || l.stopped {
		l.mu.Unlock()
		l.deliverMu.Unlock()
		return nil, fmt.Errorf("syncfix: Start before Configure or after Stop")
	}
	if !l.started {
		l.started = true
		l.loopDone = make(chan struct{})
		go l.retransmitLoop(l.loopDone)
	}
	before := l.seq
	for _, g := range l.groups {
		for _, m := range g.pending {
			if g.ready(m) {
				l.deliver(g, m, nil)
			}
		}
	}
	if err := l.commitLocked(); err != nil {
		l.mu.Unlock()
		l.deliverMu.Unlock()
		return nil, err
	}
	var ups []delivery
	for _, g := range l.groups {
		for _, m := range g.ups {
			ups = append(ups, delivery{g: g, m: m})
		}
	}
	slices.SortFunc(ups, func(a, b delivery) int { return cmp.Compare(a.m.seq, b.m.seq) })
	l.redelivering.Add(1)
	l.mu.Unlock()
	go l.emitDeliveries(ups, before) // unlocks deliverMu
	return &commonv1.StartResponse{LocalAddress: l.identity, DisplayAddress: hex.EncodeToString(l.identity)}, nil
}

// delivery is a message of a group that goes up.
type delivery struct {
	g *group
	m *message
}

// redeliveryChunk is how many UP frames emitDeliveries builds at a time.
const redeliveryChunk = 64

// emitDeliveries emits ups, which Start decided, in order, and then
// unlocks deliverMu. A message the host acknowledged meanwhile is skipped;
// those numbered up to before were delivered before this Start and count
// as redelivered. It gives up when the layer stops.
func (l *Layer) emitDeliveries(ups []delivery, before uint64) {
	defer l.redelivering.Done()
	defer l.deliverMu.Unlock()
	for len(ups) > 0 && l.runCtx.Err() == nil {
		n := min(len(ups), redeliveryChunk)
		var frames []*commonv1.Frame
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return
		}
		for _, d := range ups[:n] {
			if d.m.hostAcked {
				continue
			}
			frames = append(frames, d.g.upFrame(d.m))
			if d.m.seq <= before {
				l.redelivered.Add(1)
			}
		}
		l.mu.Unlock()
		ups = ups[n:]
		l.emit(l.runCtx, frames)
	}
}

// HandleBatch implements sdk.Layer: UP frames carry messages and acks from
// other members; DOWN frames are ignored.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	l.mu.Lock()
	if !l.runningLocked() {
		l.mu.Unlock()
		return
	}
	var out outbox
	for _, f := range b.GetFrames() {
		if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
			l.ignoredDown.Add(1)
			continue
		}
		l.handleUp(f, &out)
	}
	// Stored messages and delivered marks are durable before any ack or UP
	// frame leaves.
	err := l.commitLocked()
	l.mu.Unlock()
	if err != nil {
		return
	}
	l.emit(ctx, out.frames())
}

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := &commonv1.HealthResponse{Serving: l.runningLocked()}
	switch {
	case l.failed != nil:
		h.Detail = l.failed.Error()
	case l.stopped:
		h.Detail = "stopped"
	case !l.started:
		h.Detail = "not started"
	}
	var pending, unacked, ups uint64
	for _, g := range l.groups {
		pending += uint64(len(g.pending))
		unacked += uint64(len(g.unacked))
		ups += uint64(len(g.ups))
	}
	h.Counters = map[string]uint64{
		"dropped_malformed":         l.droppedMalformed.Load(),
		"dropped_non_member":        l.droppedNonMember.Load(),
		"dropped_full":              l.droppedFull.Load(),
		"duplicates":                l.duplicates.Load(),
		"retransmissions":           l.retransmissions.Load(),
		"delivered":                 l.delivered.Load(),
		"redelivered":               l.redelivered.Load(),
		"ignored_down":              l.ignoredDown.Load(),
		"pending":                   pending,
		"unacknowledged":            unacked,
		"unacknowledged_deliveries": ups,
	}
	return h
}

// Stop implements sdk.Layer: it ends retransmission and redelivery, waits
// for emissions in flight and closes the store. It may be called more than
// once.
func (l *Layer) Stop(context.Context) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	done := l.loopDone
	l.mu.Unlock()
	if l.runCancel != nil {
		l.runCancel()
	}
	if done != nil {
		<-done
	}
	l.redelivering.Wait()
	l.emitMu.Lock() // no Emit is in flight, and none starts: stopped is set
	defer l.emitMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store == nil {
		return nil
	}
	err := l.store.close()
	l.store = nil
	return err
}

// SetGroup implements syncv1.ControlServer. Members are 32-byte identity
// keys and include this node. The membership is stored, so that
// retransmission resumes after a restart even before the host sets it again.
func (l *Layer) SetGroup(_ context.Context, req *syncv1.GroupRequest) (*syncv1.GroupResponse, error) {
	if n := len(req.GetId()); n == 0 || n > MaxGroupID {
		return nil, status.Errorf(codes.InvalidArgument, "group id is %d bytes, want 1 to %d", n, MaxGroupID)
	}
	if len(req.GetMembers()) > MaxMembers {
		return nil, status.Errorf(codes.InvalidArgument, "%d members, at most %d", len(req.GetMembers()), MaxMembers)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(false); err != nil {
		return nil, err
	}
	var members [][]byte
	self := false
	for _, m := range req.GetMembers() {
		if len(m) != IdentitySize {
			return nil, status.Errorf(codes.InvalidArgument, "member %x is %d bytes, want an identity key of %d", m, len(m), IdentitySize)
		}
		if bytes.Equal(m, l.identity) {
			self = true
		}
		if !containsKey(members, m) {
			members = append(members, bytes.Clone(m))
		}
	}
	if !self {
		return nil, status.Error(codes.InvalidArgument, "the members do not include this node")
	}
	g := l.groups[string(req.GetId())]
	if g == nil && len(l.groups) >= MaxGroups {
		return nil, status.Errorf(codes.ResourceExhausted, "already %d groups", MaxGroups)
	}
	l.store.add(record{typ: recGroup, group: req.GetId(), members: members})
	if err := l.commitLocked(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if g == nil {
		g = newGroup(bytes.Clone(req.GetId()))
		l.groups[string(g.id)] = g
	}
	g.setMembers(members)
	for id, m := range g.unacked {
		if g.fullyAcked(m, l.identity) {
			delete(g.unacked, id)
			m.payload = nil
		}
	}
	return &syncv1.GroupResponse{}, nil
}

// Send implements syncv1.ControlServer. A persistent message is durable
// when Send returns; sending the same content again returns the same id
// and changes nothing. Every parent must be a message of the group that
// this node stores (its own or one it received); ephemeral messages are
// not stored, so they cannot be parents.
func (l *Layer) Send(ctx context.Context, req *syncv1.SendRequest) (*syncv1.SendResponse, error) {
	if len(req.GetPayload()) > MaxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "payload of %d bytes, at most %d", len(req.GetPayload()), MaxPayload)
	}
	if len(req.GetParents()) > MaxParents {
		return nil, status.Errorf(codes.InvalidArgument, "%d parents, at most %d", len(req.GetParents()), MaxParents)
	}
	parents := make([]ID, len(req.GetParents()))
	for i, p := range req.GetParents() {
		if len(p) != len(ID{}) {
			return nil, status.Errorf(codes.InvalidArgument, "parent %x is %d bytes, want %d", p, len(p), len(ID{}))
		}
		copy(parents[i][:], p)
		for _, q := range parents[:i] {
			if q == parents[i] {
				return nil, status.Errorf(codes.InvalidArgument, "parent %x named twice", p)
			}
		}
	}
	payload := bytes.Clone(req.GetPayload())

	l.mu.Lock()
	if err := l.usableLocked(true); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	g := l.groups[string(req.GetGroup())]
	if g == nil {
		l.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "group %x is not set", req.GetGroup())
	}
	for _, p := range parents {
		if g.msgs[p] == nil {
			l.mu.Unlock()
			return nil, status.Errorf(codes.FailedPrecondition, "parent %x is not a stored message of the group", p[:])
		}
	}
	id := MessageID(g.id, l.identity, parents, payload)
	m := &message{id: id, author: l.identity, parents: parents, payload: payload, own: true, ephemeral: req.GetEphemeral(), trace: req.GetTraceId()}
	var frames []*commonv1.Frame
	switch {
	case m.ephemeral:
		frames = g.messageFrames(m, l.identity, nil)
	case g.msgs[id] != nil:
		// Already stored: Send is idempotent.
	default:
		if len(g.msgs) >= MaxMessages {
			l.mu.Unlock()
			return nil, status.Errorf(codes.ResourceExhausted, "group %x holds %d messages, its limit", g.id, MaxMessages)
		}
		if len(g.unacked) >= MaxUnacked {
			l.mu.Unlock()
			return nil, status.Errorf(codes.ResourceExhausted, "group %x has %d unacknowledged messages, its limit", g.id, MaxUnacked)
		}
		l.store.add(record{typ: recMessage, group: g.id, own: true, author: l.identity, parents: parents, payload: payload})
		if err := l.commitLocked(); err != nil {
			l.mu.Unlock()
			return nil, status.Error(codes.Internal, err.Error())
		}
		m.acked = make(map[string]bool)
		g.msgs[id] = m
		if g.fullyAcked(m, l.identity) {
			m.payload = nil
		} else {
			g.unacked[id] = m
			m.lastSent = time.Now()
			frames = g.messageFrames(m, l.identity, nil)
		}
	}
	l.mu.Unlock()
	// The message is durable; if this first send is lost or cut short,
	// retransmission covers it.
	l.emit(ctx, frames)
	return &syncv1.SendResponse{MessageId: bytes.Clone(id[:])}, nil
}

// State implements syncv1.ControlServer. messages counts the stored
// messages of the group (authored here or received), delivered the received
// ones that went up, pending those waiting for a parent (ephemeral ones
// included) and unacknowledged this node's messages that some member has
// not acked.
func (l *Layer) State(_ context.Context, req *syncv1.StateRequest) (*syncv1.StateResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(false); err != nil {
		return nil, err
	}
	g := l.groups[string(req.GetGroup())]
	if g == nil {
		return nil, status.Errorf(codes.NotFound, "group %x is not set", req.GetGroup())
	}
	resp := &syncv1.StateResponse{
		Messages:       uint64(len(g.msgs)),
		Pending:        uint64(len(g.pending)),
		Unacknowledged: uint64(len(g.unacked)),
	}
	for _, m := range g.msgs {
		if !m.own && m.delivered {
			resp.Delivered++
		}
	}
	return resp, nil
}

// Ack implements syncv1.ControlServer: the host has stored these delivered
// messages, or rejected them (AckRequest.rejected, which acknowledges as
// message_ids does), and they are never delivered again. It returns once
// that is durable. The fixture relays nothing, so it never passes a
// rejected message on; it has no validity states (no
// syncv1.CapValidity), and a deferred message stays unacknowledged. Ids
// that are unknown, not delivered yet or already acknowledged, ids of this
// node's own or of ephemeral messages, and a group that is not set are
// ignored.
func (l *Layer) Ack(_ context.Context, req *syncv1.AckRequest) (*syncv1.AckResponse, error) {
	if len(req.GetGroup()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no group")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(false); err != nil {
		return nil, err
	}
	g := l.groups[string(req.GetGroup())]
	if g == nil {
		return &syncv1.AckResponse{}, nil
	}
	ids := append([][]byte(nil), req.GetMessageIds()...)
	for _, r := range req.GetRejected() {
		ids = append(ids, r.GetMessageId())
	}
	acked := false
	for _, raw := range ids {
		if len(raw) != len(ID{}) {
			continue
		}
		m := g.msgs[ID(raw)]
		if m == nil || m.own || !m.delivered || m.hostAcked {
			continue
		}
		m.hostAcked = true
		m.payload = nil // no longer needed: it is never delivered again
		l.store.add(record{typ: recTaken, group: g.id, id: m.id})
		acked = true
	}
	if !acked {
		return &syncv1.AckResponse{}, nil
	}
	g.ups = slices.DeleteFunc(g.ups, func(m *message) bool { return m.hostAcked })
	if err := l.commitLocked(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &syncv1.AckResponse{}, nil
}

// runningLocked says whether the layer handles traffic.
func (l *Layer) runningLocked() bool {
	return l.store != nil && l.started && !l.stopped && l.failed == nil
}

// usableLocked is the precondition of the control calls.
func (l *Layer) usableLocked(needStart bool) error {
	switch {
	case l.failed != nil:
		return status.Errorf(codes.Unavailable, "syncfix: storage failed: %v", l.failed)
	case l.stopped:
		return status.Error(codes.FailedPrecondition, "syncfix: stopped")
	case l.store == nil:
		return status.Error(codes.FailedPrecondition, "syncfix: not configured")
	case needStart && !l.started:
		return status.Error(codes.FailedPrecondition, "syncfix: not started")
	case len(l.identity) == 0:
		return status.Error(codes.FailedPrecondition, "syncfix: the node has no identity key")
	}
	return nil
}

// commitLocked makes the records added so far durable. A failure is final:
// the layer stops serving, since its memory is now ahead of its disk.
func (l *Layer) commitLocked() error {
	if err := l.store.commit(); err != nil {
		l.failed = err
		l.env.Logger.Error("storage failed; the layer stops serving", "error", err)
		return err
	}
	return nil
}

// emit hands frames to the host unless the layer has stopped. It gives up
// when ctx ends or the layer stops.
func (l *Layer) emit(ctx context.Context, frames []*commonv1.Frame) {
	if len(frames) == 0 {
		return
	}
	l.emitMu.RLock()
	defer l.emitMu.RUnlock()
	l.mu.Lock()
	stopped := l.stopped
	l.mu.Unlock()
	if stopped {
		return
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.runCtx, cancel)()
	if err := l.env.Out.Emit(ectx, frames...); err != nil {
		l.env.Logger.Debug("emit", "frames", len(frames), "error", err)
	}
}

// handleUp processes one frame from below.
func (l *Layer) handleUp(f *commonv1.Frame, out *outbox) {
	g := l.groups[string(f.GetConversation())]
	peer := f.GetPeer()
	if g == nil || !g.isMember(peer) || bytes.Equal(peer, l.identity) {
		l.droppedNonMember.Add(1)
		return
	}
	w, err := decodeWire(f.GetPayload())
	if err != nil {
		l.droppedMalformed.Add(1)
		return
	}
	switch w.typ {
	case wireMessage:
		l.receive(g, f, w, out)
	case wireAck:
		for _, id := range w.acks {
			m := g.unacked[id]
			if m == nil || m.acked[string(peer)] {
				continue
			}
			m.acked[string(peer)] = true
			l.store.add(record{typ: recAck, group: g.id, id: id, member: peer})
			if g.fullyAcked(m, l.identity) {
				delete(g.unacked, id)
				m.payload = nil
			}
		}
	}
}

// receive handles a message from the member f.peer.
func (l *Layer) receive(g *group, f *commonv1.Frame, w wireFrame, out *outbox) {
	author := f.GetPeer()
	id := MessageID(g.id, author, w.parents, w.payload)
	m := &message{id: id, author: author, parents: w.parents, payload: w.payload, ephemeral: w.ephemeral, trace: f.GetTraceId()}
	if m.ephemeral {
		if g.recent.has(id) || g.pending[id] != nil {
			l.duplicates.Add(1)
			return
		}
		if !g.ready(m) && len(g.pending) >= MaxPending {
			l.droppedFull.Add(1)
			return
		}
		l.admit(g, m, out)
		return
	}
	if g.msgs[id] != nil {
		// The author may have missed our ack: ack again.
		l.duplicates.Add(1)
		out.ack(g.id, author, id, m.trace)
		return
	}
	if len(g.msgs) >= MaxMessages || (!g.ready(m) && len(g.pending) >= MaxPending) {
		l.droppedFull.Add(1) // not acked: the author will try again
		return
	}
	g.msgs[id] = m
	l.store.add(record{typ: recMessage, group: g.id, author: author, parents: w.parents, payload: w.payload})
	out.ack(g.id, author, id, m.trace)
	l.admit(g, m, out)
}

// admit delivers m if its parents are delivered, or makes it wait.
func (l *Layer) admit(g *group, m *message, out *outbox) {
	if g.ready(m) {
		l.deliver(g, m, out)
		return
	}
	g.pending[m.id] = m
	for _, p := range m.parents {
		if !g.done(p) {
			g.waiting[p] = append(g.waiting[p], m.id)
		}
	}
}

// deliver sends m up, then every pending message that m (transitively)
// made ready, parents first. It marks them delivered (in the store too, for
// persistent ones) and appends their UP frames to out; Start passes a nil
// out and emits them itself.
func (l *Layer) deliver(g *group, m *message, out *outbox) {
	queue := []*message{m}
	delete(g.pending, m.id)
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		m.delivered = true
		if m.ephemeral {
			g.recent.add(m.id)
		} else {
			l.store.add(record{typ: recDelivered, group: g.id, id: m.id})
			l.seq++
			m.seq = l.seq
			g.ups = append(g.ups, m) // kept, payload included, until the host acks it
		}
		if out != nil {
			out.ups = append(out.ups, g.upFrame(m))
		}
		l.delivered.Add(1)
		if m.ephemeral {
			m.payload = nil // delivered once, never again
			continue
		}
		for _, cid := range g.waiting[m.id] {
			if c := g.pending[cid]; c != nil && g.ready(c) {
				delete(g.pending, cid)
				queue = append(queue, c)
			}
		}
		delete(g.waiting, m.id)
	}
}

// retransmitLoop sends unacknowledged messages again until Stop.
func (l *Layer) retransmitLoop(done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(l.jitter())
	defer timer.Stop()
	for {
		select {
		case <-l.runCtx.Done():
			return
		case <-timer.C:
		}
		l.emit(l.runCtx, l.due(time.Now()))
		timer.Reset(l.jitter())
	}
}

// jitter is the retransmit interval, give or take a third.
func (l *Layer) jitter() time.Duration {
	return l.interval*2/3 + rand.N(l.interval*2/3+1)
}

// due collects the retransmissions that are due at now.
func (l *Layer) due(now time.Time) []*commonv1.Frame {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.runningLocked() {
		return nil
	}
	var frames []*commonv1.Frame
	for _, g := range l.groups {
		for _, m := range g.unacked {
			if now.Sub(m.lastSent) < l.interval/2 {
				continue
			}
			m.lastSent = now
			n := len(frames)
			frames = g.messageFrames(m, l.identity, frames)
			l.retransmissions.Add(uint64(len(frames) - n))
		}
	}
	return frames
}

// replay rebuilds the state from one stored record (Configure).
func (l *Layer) replay(r record) error {
	g := l.groups[string(r.group)]
	if g == nil {
		g = newGroup(bytes.Clone(r.group))
		l.groups[string(g.id)] = g
	}
	switch r.typ {
	case recGroup:
		members := make([][]byte, len(r.members))
		for i, m := range r.members {
			members[i] = bytes.Clone(m)
		}
		g.setMembers(members)
	case recMessage:
		id := MessageID(r.group, r.author, r.parents, r.payload)
		if g.msgs[id] == nil {
			g.msgs[id] = &message{id: id, author: bytes.Clone(r.author), parents: r.parents, payload: bytes.Clone(r.payload), own: r.own, acked: make(map[string]bool)}
		}
	case recAck:
		if m := g.msgs[r.id]; m != nil && m.own {
			m.acked[string(r.member)] = true
		}
	case recDelivered:
		if m := g.msgs[r.id]; m != nil && !m.delivered {
			m.delivered = true
			if !m.own {
				l.seq++
				m.seq = l.seq
				g.ups = append(g.ups, m) // in the order of first delivery
			}
		}
	case recTaken:
		if m := g.msgs[r.id]; m != nil && !m.own && m.delivered {
			m.hostAcked = true
		}
	}
	return nil
}

// message is one message of a group.
type message struct {
	id      ID
	author  []byte
	parents []ID
	// payload is kept while the message is pending, unacknowledged (own)
	// or delivered and not acknowledged by the host.
	payload   []byte
	own       bool
	ephemeral bool
	delivered bool
	// hostAcked says that the host acknowledged the delivery (Ack).
	hostAcked bool
	// seq orders the deliveries up (Layer.seq).
	seq uint64
	// acked holds the members that have an own message.
	acked    map[string]bool
	lastSent time.Time
	// trace is the trace id of the frame that brought the message, or
	// for an own message the trace id of its Send.
	trace uint64
}

// group is one sync group's state.
type group struct {
	id        []byte
	members   [][]byte
	memberSet map[string]bool
	msgs      map[ID]*message // every stored message
	pending   map[ID]*message // received, waiting for a parent
	waiting   map[ID][]ID     // a missing parent -> messages waiting for it
	unacked   map[ID]*message // authored here, not acked by every member
	// ups holds the persistent messages delivered up that the host has not
	// acknowledged, in the order they were first delivered.
	ups    []*message
	recent recentSet // delivered ephemeral ids
}

func newGroup(id []byte) *group {
	return &group{
		id:        id,
		memberSet: make(map[string]bool),
		msgs:      make(map[ID]*message),
		pending:   make(map[ID]*message),
		waiting:   make(map[ID][]ID),
		unacked:   make(map[ID]*message),
		recent:    recentSet{ids: make(map[ID]bool)},
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

// done says whether the message id counts as delivered here: a stored
// message that went up or that this node authored.
func (g *group) done(id ID) bool {
	m := g.msgs[id]
	return m != nil && (m.own || m.delivered)
}

// ready says whether every parent of m is done.
func (g *group) ready(m *message) bool {
	for _, p := range m.parents {
		if !g.done(p) {
			return false
		}
	}
	return true
}

// fullyAcked says whether every member but self has acked m.
func (g *group) fullyAcked(m *message, self []byte) bool {
	for _, member := range g.members {
		if !bytes.Equal(member, self) && !m.acked[string(member)] {
			return false
		}
	}
	return true
}

// messageFrames appends to frames one DOWN frame carrying m for every
// member but self that has not acked it.
func (g *group) messageFrames(m *message, self []byte, frames []*commonv1.Frame) []*commonv1.Frame {
	wire := encodeMessage(m.ephemeral, m.parents, m.payload)
	for _, member := range g.members {
		if bytes.Equal(member, self) || m.acked[string(member)] {
			continue
		}
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			TraceId:      m.trace,
			Conversation: bytes.Clone(g.id),
			Peer:         bytes.Clone(member),
			Payload:      bytes.Clone(wire),
		}
		if m.ephemeral {
			f.Hints = &commonv1.Hints{Ephemeral: true}
		}
		frames = append(frames, f)
	}
	return frames
}

// settleLoaded sorts the messages read from the store (Configure): own
// ones not acked by every member are unacknowledged, received ones not
// delivered are pending, received ones delivered and not acknowledged by
// the host wait for redelivery, and payloads no longer needed are dropped.
func (g *group) settleLoaded(self []byte) {
	for id, m := range g.msgs {
		switch {
		case m.own && !g.fullyAcked(m, self):
			g.unacked[id] = m
		case !m.own && !m.delivered:
			g.pending[id] = m
			for _, p := range m.parents {
				if !g.done(p) {
					g.waiting[p] = append(g.waiting[p], id)
				}
			}
		case !m.own && !m.hostAcked:
			// In g.ups: its payload goes up again at Start.
		default:
			m.payload = nil
		}
	}
	g.ups = slices.DeleteFunc(g.ups, func(m *message) bool { return m.hostAcked })
}

// upFrame is the UP frame that delivers m. It carries a copy of the
// payload, which the layer keeps until the host acknowledges m.
func (g *group) upFrame(m *message) *commonv1.Frame {
	f := &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      m.trace,
		Conversation: bytes.Clone(g.id),
		Peer:         bytes.Clone(m.author),
		Payload:      bytes.Clone(m.payload),
		MessageId:    bytes.Clone(m.id[:]),
	}
	if m.ephemeral {
		f.Hints = &commonv1.Hints{Ephemeral: true}
	}
	return f
}

// recentSet remembers the last recentEphemeral ids added.
type recentSet struct {
	ids  map[ID]bool
	ring [recentEphemeral]ID
	next int
	full bool
}

func (s *recentSet) has(id ID) bool { return s.ids[id] }

func (s *recentSet) add(id ID) {
	if s.ids[id] {
		return
	}
	if s.full {
		delete(s.ids, s.ring[s.next])
	}
	s.ring[s.next] = id
	s.ids[id] = true
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
}

// outbox collects what one batch makes the layer emit.
type outbox struct {
	acks []*pendingAck
	ups  []*commonv1.Frame
}

type pendingAck struct {
	group, peer []byte
	ids         []ID
	trace       uint64
}

// ack queues an ack of id to peer.
func (o *outbox) ack(group, peer []byte, id ID, trace uint64) {
	for _, a := range o.acks {
		if bytes.Equal(a.group, group) && bytes.Equal(a.peer, peer) {
			a.ids = append(a.ids, id)
			return
		}
	}
	o.acks = append(o.acks, &pendingAck{group: group, peer: peer, ids: []ID{id}, trace: trace})
}

// frames returns the acks, at most MaxAckIDs ids a frame, then the UP
// frames in delivery order.
func (o *outbox) frames() []*commonv1.Frame {
	var frames []*commonv1.Frame
	for _, a := range o.acks {
		for ids := a.ids; len(ids) > 0; {
			n := min(len(ids), MaxAckIDs)
			frames = append(frames, &commonv1.Frame{
				Direction:    commonv1.Direction_DIRECTION_DOWN,
				TraceId:      a.trace,
				Conversation: bytes.Clone(a.group),
				Peer:         bytes.Clone(a.peer),
				Payload:      encodeAck(ids[:n]),
			})
			ids = ids[n:]
		}
	}
	return append(frames, o.ups...)
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
