package mvds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// batch is the context of one receive (or one delivery pass): its
// transaction, its clock reading and the deliveries it decided.
type batch struct {
	tx  *txn
	now time.Time
	out []delivery
}

// receive handles a batch of inbound payloads in one transaction and
// returns the messages to deliver, in order. When it returns, everything
// the batch changed is committed: stored messages, records, and the
// delivered marks (and unacknowledged deliveries) of what it returns. Acks for the stored messages are
// queued only in memory and leave at the next epoch (or with an eager
// flush), which cannot begin before the commit (it needs n.mu). A storage error fails the node.
//
// early, if not nil, is handed the deliveries once they are decided and
// before the commit, so that they travel up while the commit's fsync
// runs. That is safe because nothing leaves this node on their account
// before the commit: the acks that tell the author they arrived are sent
// after it. If the commit never happens (a crash, a storage error), the
// author sends them again and they are delivered again, and the host,
// which stores what it takes under the message's id, takes them once.
// The host's Ack of them waits for the commit: it needs n.mu.
func (n *node) receive(ctx context.Context, in []inbound, early func([]delivery)) ([]delivery, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		for range in {
			n.c.drop(dropNotRunning)
		}
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Once begun, the transaction runs to its end: cancelling it half way
	// would leave memory (pending messages, queued acks) ahead of disk.
	tx, err := n.st.begin(context.WithoutCancel(ctx))
	if err != nil {
		n.fail(err)
		return nil, err
	}
	b := &batch{tx: tx, now: n.now()}
	for _, f := range in {
		if err := n.handle(b, f); err != nil {
			tx.rollback()
			n.fail(err)
			return nil, err
		}
	}
	if err := tx.setMeta(metaEpoch, int64(n.epoch)); err != nil {
		tx.rollback()
		n.fail(err)
		return nil, err
	}
	if early != nil && len(b.out) > 0 {
		early(b.out)
	}
	if err := tx.commit(); err != nil {
		n.fail(err)
		return nil, err
	}
	n.c.receiveCommits.Add(1)
	n.delivered(b.out)
	return b.out, nil
}

// handle processes one payload: its sender must be another member of the
// group, its bytes a valid Payload. Records go in the order of the Go
// node: acks, requests, offers, messages. The error is a storage error;
// anything wrong with the input is dropped and counted.
func (n *node) handle(b *batch, f inbound) error {
	g := n.groups[string(f.group)]
	if g == nil {
		n.c.drop(dropUnknownGroup)
		return nil
	}
	if !g.isMember(f.from) || bytes.Equal(f.from, n.self) {
		n.c.drop(dropNonMember)
		return nil
	}
	if len(f.payload) > n.cfg.MaxFrame {
		n.c.drop(dropOversize)
		return nil
	}
	p, err := decodePayload(f.payload, n.cfg.MaxIDs)
	if err != nil {
		n.c.drop(reasonOf(err))
		return nil
	}
	n.c.payloadsIn.Add(1)
	n.c.bytesIn.Add(uint64(len(f.payload)))
	if err := n.heardFrom(b, g, f.from); err != nil {
		return err
	}
	if err := n.onAcks(b, g, f.from, p.Acks); err != nil {
		return err
	}
	for _, raw := range p.Requests {
		if err := n.onRequest(b, g, f.from, ID(raw)); err != nil {
			return err
		}
	}
	for _, raw := range p.Offers {
		if err := n.onOffer(b, g, f.from, ID(raw), f.trace); err != nil {
			return err
		}
	}
	for _, m := range p.Messages {
		if err := n.onMessage(b, g, f.from, m, false, f.trace); err != nil {
			return err
		}
	}
	for _, m := range p.BoundMessages {
		if err := n.onMessage(b, g, f.from, m, true, f.trace); err != nil {
			return err
		}
	}
	return nil
}

// heardFrom notes a valid payload from peer. If peer had been silent for
// backoff_max epochs (or since this node started), up to online_reset of
// the records waiting for it in a long backoff (more than backoff_base
// epochs still to wait) become due at the next epoch: it is back, and
// need not wait them out. Records in their first, short wait are left
// alone: their ack may be on its way.
func (n *node) heardFrom(b *batch, g *group, peer []byte) error {
	last, seen := g.heard[string(peer)]
	g.heard[string(peer)] = n.epoch
	if n.cfg.OnlineReset == 0 || (seen && n.epoch-last < n.cfg.BackoffMax) {
		return nil
	}
	reset, err := b.tx.resetPeer(g.id, peer, n.epoch+1, n.epoch+n.cfg.BackoffBase, n.cfg.OnlineReset)
	if err != nil {
		return err
	}
	n.c.onlineResets.Add(uint64(reset))
	return nil
}

// onAcks: peer holds the messages, so their OFFER and MESSAGE records for
// it go; an ack of a message this node does not hold is dropped and
// counted (unless hearsAllAcks), one of a message it holds but had no
// record for is a late or repeated ack (or, with group_acks, one owed to
// another member). The
// records of all of a payload's acks are cleared by a statement or two
// rather than two per ack: with group acks every member reads every
// other's, which is O(n^3) acks over a group's posts.
func (n *node) onAcks(b *batch, g *group, peer []byte, raws [][]byte) error {
	if len(raws) == 0 {
		return nil
	}
	n.c.acks.Add(uint64(len(raws)))
	ids := make([]ID, len(raws))
	for i, raw := range raws {
		ids[i] = ID(raw)
	}
	cleared, err := b.tx.clearSentMany(g.id, peer, ids)
	if err != nil {
		return err
	}
	var rest []ID
	for _, id := range ids {
		if !cleared[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 || n.hearsAllAcks(g) {
		return nil
	}
	held, err := b.tx.heldMany(g.id, rest)
	if err != nil {
		return err
	}
	for _, id := range rest {
		if !held[id] {
			n.c.drop(dropUnknownAck)
		}
	}
	return nil
}

// hearsAllAcks reports whether this node hears the acks every member owes
// every other (group_acks in a group of three or more). An ack of a
// message not held here is then no sign of a bad peer (the message may
// still be on its way here), so it is not looked up to be counted as
// dropped_unknown_ack: in a group of n members the node hears n-1 acks
// of each message, nearly all of messages that are not its own.
func (n *node) hearsAllAcks(g *group) bool {
	return n.cfg.GroupAcks && len(g.members) >= 3
}

// onRequest: peer wants a message; if it is stored here it becomes a
// MESSAGE record for peer, due at the next epoch (an OFFER record turned
// MESSAGE is never sent, so an eager flush sends it at once).
func (n *node) onRequest(b *batch, g *group, peer []byte, id ID) error {
	n.c.requests.Add(1)
	_, found, err := b.tx.message(g.id, id)
	if err != nil {
		return err
	}
	if !found || n.rejected.has(g.id, id) { // verdict.go: never passed on
		n.c.drop(dropUnknownRequest)
		return nil
	}
	n.markFresh(g, peer) // an OFFER record becomes a MESSAGE never sent
	return b.tx.answerRequest(g.id, peer, id, n.epoch+1)
}

// onOffer: peer holds a message. If it is stored here too, peer gets an
// ack (so that it stops offering; the Go node ignores such offers, which
// makes the offerer retransmit forever) and loses any record for it;
// otherwise the message is requested from peer, within max_requests.
func (n *node) onOffer(b *batch, g *group, peer []byte, id ID, trace uint64) error {
	n.c.offers.Add(1)
	_, found, err := b.tx.message(g.id, id)
	if err != nil {
		return err
	}
	if found {
		n.queueAck(g, peer, id, trace)
		_, err := b.tx.clearSent(g.id, peer, id)
		return err
	}
	capped, err := n.request(b, g, peer, id)
	if capped {
		n.c.drop(dropOfferFlood)
	}
	return err
}

// request adds a REQUEST record for id to peer, due at the next epoch
// (eager: at the next flush),
// unless peer already has max_requests of them (capped).
func (n *node) request(b *batch, g *group, peer []byte, id ID) (capped bool, err error) {
	if g.requests[string(peer)] >= n.cfg.MaxRequests {
		return true, nil
	}
	added, err := b.tx.addState(g.id, peer, id, recRequest, n.epoch+1)
	if added {
		g.requests[string(peer)]++
		n.markFresh(g, peer)
	}
	return false, err
}

// decodeMessage checks a message of Payload.messages (bound false) or
// Payload.bound_messages (bound true) as the node's wire mode says. A
// node of either mode takes bound messages: their id covers what they
// carry. A node in the spec mode takes spec messages; one in the bound
// mode refuses them (a relay could have changed their metadata), except
// that it reads a Body there as a bound message: Strata sent bound
// messages in Payload.messages before it spoke the spec's wire.
func (n *node) decodeMessage(g *group, peer []byte, m *wirepb.Message, bound bool) (content, error) {
	switch {
	case bound:
		return decodeBound(m, n.cfg.MaxParents)
	case !n.cfg.bound():
		return decodeSpec(m, n.cfg.MaxParents)
	}
	c, err := decodeBound(m, n.cfg.MaxParents)
	if errors.Is(err, errMalformed) || errors.Is(err, errVersion) {
		if !g.wireWarned[string(peer)] {
			g.wireWarned[string(peer)] = true
			n.log.Warn("a member sends spec messages (wire: spec); this node is in the bound wire mode and drops them (dropped_wire_mode): give every member the same wire", "group", short(g.id), "member", short(peer))
		}
		return content{}, fmt.Errorf("%w: %v", errWireMode, err)
	}
	return c, err
}

// onMessage checks and takes one message from peer, of Payload.messages
// (bound false) or Payload.bound_messages (bound true).
func (n *node) onMessage(b *batch, g *group, peer []byte, m *wirepb.Message, bound bool, trace uint64) error {
	n.c.messages.Add(1)
	if !bytes.Equal(m.GroupId, g.id) {
		n.c.drop(dropWrongGroup)
		return nil
	}
	c, err := n.decodeMessage(g, peer, m, bound)
	if err != nil {
		n.c.drop(reasonOf(err))
		return nil
	}
	author := c.author
	if author == nil {
		author = peer // a spec message that names no author: the member it came from
	}
	if !g.isMember(author) {
		n.c.drop(dropNonMemberAuthor)
		return nil
	}
	if !n.cfg.Relay && !bytes.Equal(author, peer) {
		n.c.drop(dropRelayed) // authorship is authenticated only first hand
		return nil
	}
	id := MessageID(g.id, m.Timestamp, m.Body)
	if slices.Contains(c.parents, id) {
		// Possible only where the id does not cover the parents (spec).
		n.c.drop(dropMalformed)
		return nil
	}
	pm := &pendingMsg{id: id, author: bytes.Clone(author), parents: c.parents, from: bytes.Clone(peer), received: b.now, trace: trace, timestamp: m.Timestamp}
	if c.ephemeral {
		pm.ephemeral, pm.payload = true, bytes.Clone(c.payload)
		return n.onEphemeral(b, g, pm)
	}
	_, found, err := b.tx.message(g.id, id)
	if err != nil {
		return err
	}
	if found {
		// The sender may have missed the ack: ack again (2/MVDS acks every
		// copy that arrives). The sender holds the message.
		n.c.duplicates.Add(1)
		n.queueAck(g, peer, id, trace)
		_, err := b.tx.clearSent(g.id, peer, id)
		return err
	}
	if !n.cfg.AcceptUnsolicited {
		asked, err := b.tx.requested(g.id, id)
		if err != nil {
			return err
		}
		if !asked {
			n.c.drop(dropUnrequested)
			return nil
		}
	}
	// A persistent copy of a message delivered here as ephemeral (the
	// spec's id does not cover the flag): it went up once and does not
	// again; it is stored as delivered, so that it is acked, relayed and a
	// parent like any other.
	seen, err := b.tx.ephemeralSeen(g.id, id)
	if err != nil {
		return err
	}
	var missing []ID
	if !seen {
		if missing, err = n.missing(b, g, c.parents); err != nil {
			return err
		}
	}
	if missing != nil && len(g.pending) >= n.cfg.MaxPending {
		n.c.drop(dropPendingFull) // not acked: it comes back by retransmission
		return nil
	}
	st := stored{format: c.format, body: bytes.Clone(m.Body)}
	if c.format == formatSpec {
		st.author = pm.author
		if m.Metadata != nil {
			if st.metadata, err = proto.Marshal(m.Metadata); err != nil {
				return fmt.Errorf("mvds: encode metadata: %w", err)
			}
			if st.metadata == nil {
				st.metadata = []byte{} // present, and empty
			}
		}
	}
	if err := b.tx.insertMessage(messageRow{group: g.id, id: id, timestamp: m.Timestamp, stored: st, sender: pm.from, receivedMs: b.now.UnixMilli()}); err != nil {
		return err
	}
	n.queueAck(g, peer, id, trace)
	// Every member this node asked for the message holds it: ack it to
	// them too, so that they stop sending it.
	asked, err := b.tx.clearRequests(g.id, id)
	if err != nil {
		return err
	}
	for _, q := range asked {
		if g.requests[string(q)] > 0 {
			g.requests[string(q)]--
		}
		if g.isMember(q) && !bytes.Equal(q, peer) {
			n.queueAck(g, q, id, trace)
		}
	}
	if seen {
		n.c.duplicates.Add(1)
		pm.silent = true
		return n.deliver(b, g, pm, nil)
	}
	if missing == nil {
		return n.deliver(b, g, pm, c.payload)
	}
	return n.hold(b, g, pm, missing)
}

// onEphemeral takes an ephemeral message: never stored, acked or relayed,
// delivered at most once (its id is remembered for ephemeral_window), and
// dropped when its timestamp is more than ephemeral_window from this
// node's clock, either way (so that no id is remembered for longer than
// twice the window).
func (n *node) onEphemeral(b *batch, g *group, pm *pendingMsg) error {
	if _, fresh := ephemeralMillis(pm.timestamp, b.now.UnixMilli(), n.cfg.EphemeralWindow.Milliseconds()); !fresh {
		n.c.drop(dropStale)
		return nil
	}
	seen, err := b.tx.ephemeralSeen(g.id, pm.id)
	if err != nil {
		return err
	}
	// A message stored here (a persistent copy, spec wire) is not
	// delivered again as ephemeral either.
	_, stored, err := b.tx.message(g.id, pm.id)
	if err != nil {
		return err
	}
	if seen || stored || g.pending[pm.id] != nil {
		n.c.duplicates.Add(1)
		return nil
	}
	missing, err := n.missing(b, g, pm.parents)
	if err != nil {
		return err
	}
	if missing == nil {
		return n.deliver(b, g, pm, pm.payload)
	}
	if len(g.pending) >= n.cfg.MaxPending {
		n.c.drop(dropPendingFull)
		return nil
	}
	return n.hold(b, g, pm, missing)
}

// ephemeralMillis reads an ephemeral message's timestamp ts, which Strata
// writes in Unix milliseconds and the vacp2p/mvds Go node in seconds, and
// says whether it is within window (ms) of now (ms), either way; ms is the
// timestamp in milliseconds. A timestamp is taken in seconds only when it
// is not fresh in milliseconds: the two cannot both be near the present
// (seconds since 1970 read as milliseconds fall in January 1970).
func ephemeralMillis(ts, now, window int64) (ms int64, fresh bool) {
	near := func(t int64) bool { return t >= now-window && t <= now+window }
	if near(ts) {
		return ts, true
	}
	const limit = math.MaxInt64 / 1000
	if ts > -limit && ts < limit && near(ts*1000) {
		return ts * 1000, true
	}
	return ts, false
}
