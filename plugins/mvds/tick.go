package mvds

import (
	"bytes"
	"context"
	"fmt"
)

// pruneEvery is how many epochs pass between two prunings of the
// remembered ephemeral ids.
const pruneEvery = 64

// tick runs one epoch (2/MVDS "Flow"): the epoch advances, pending
// messages past their expiry go, and every member of every group gets at
// most one payload holding what is due for it: the acks queued since the
// last epoch, the ephemeral messages to send once, and the records whose
// send epoch has come (oldest first). A record that is sent gets its send
// count increased and its next send epoch from the backoff (nextEpoch);
// what does not fit in the payload (max_frame, max_ids) waits for the next
// epoch. The record updates are committed before the payloads are
// returned, so a crash cannot lose a transmission's bookkeeping and only
// delays one.
func (n *node) tick(ctx context.Context) ([]outbound, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.epoch++
	sweep := n.epoch%sweepEvery == 0
	if !sweep && !n.needsStore() {
		// Nothing can be due: the acks and ephemeral messages queued in
		// memory are all this epoch sends, without a transaction.
		out, _, err := n.build(nil, false)
		return out, err
	}
	// Once begun, the transaction runs to its end (see receive).
	tx, err := n.st.begin(context.WithoutCancel(ctx))
	if err != nil {
		n.fail(err)
		return nil, err
	}
	out, wrote, err := n.build(tx, sweep)
	if err != nil {
		tx.rollback()
		n.fail(err)
		return nil, err
	}
	if !wrote {
		tx.rollback() // an idle epoch writes nothing; see load for the epoch's bound
		return out, nil
	}
	if err := tx.setMeta(metaEpoch, int64(n.epoch)); err != nil {
		tx.rollback()
		n.fail(err)
		return nil, err
	}
	if err := tx.commit(); err != nil {
		n.fail(err)
		return nil, err
	}
	return out, nil
}

// needsStore says whether this epoch must read the store: a pruning is
// due, a message waits for a parent (it may expire), or a member may have
// a record due (dueBounds).
func (n *node) needsStore() bool {
	if n.epoch%pruneEvery == 0 {
		return true
	}
	for _, g := range n.groups {
		if len(g.pending) > 0 {
			return true
		}
		for _, peer := range g.members {
			if !bytes.Equal(peer, n.self) && !n.st.due.idle(g.id, peer, n.epoch) {
				return true
			}
		}
	}
	return false
}

// build collects the epoch's payloads; wrote says whether it changed the
// store. Without a transaction (tx nil) it sends only what is queued in
// memory. sweep reads every member's due records, whatever their bounds.
func (n *node) build(tx *txn, sweep bool) (out []outbound, wrote bool, err error) {
	now := n.now()
	if tx != nil {
		if wrote, err = n.expire(tx, now); err != nil {
			return nil, false, err
		}
	}
	if tx != nil && n.epoch%pruneEvery == 0 {
		pruned, err := tx.pruneEphemeral(now.UnixMilli())
		if err != nil {
			return nil, false, err
		}
		wrote = wrote || pruned
	}
	n.fresh = false // the epoch takes what is fresh, as much as fits
	for _, g := range n.groups {
		clear(g.fresh)
		var read map[string][]stateRow // due rows groupAgain read and left
		if tx != nil {
			var o *outbound
			var changed bool
			o, read, changed, err = n.groupAgain(tx, g, sweep)
			if err != nil {
				return nil, false, err
			}
			wrote = wrote || changed
			if o != nil {
				out = append(out, *o)
			}
		}
		if o := n.groupAcks(g); o != nil {
			out = append(out, *o)
		}
		for _, peer := range g.members {
			if bytes.Equal(peer, n.self) {
				continue
			}
			pb := newPayloadBuilder(n.cfg.MaxFrame, n.cfg.MaxIDs)
			// Acks that have waited ack_delay epochs go first, so that
			// they fit; younger ones ride on a payload going anyway.
			acked := n.acksDue(g, peer)
			if acked {
				n.takeAcks(g, peer, pb)
			}
			n.takeOnce(g, peer, pb)
			if tx != nil {
				rows, ok := read[string(peer)]
				changed, err := n.takeDue(tx, g, peer, pb, sweep, rows, ok)
				if err != nil {
					return nil, false, err
				}
				wrote = wrote || changed
			}
			if pb.empty() {
				continue
			}
			if !acked {
				n.takeAcks(g, peer, pb)
			}
			payload, err := pb.encode()
			if err != nil {
				return nil, false, err
			}
			n.c.payloadsSent.Add(1)
			n.c.bytesSent.Add(uint64(len(payload)))
			trace := pb.trace // an own message's send, else what the acks answer
			if trace == 0 {
				trace = pb.ackTrace
			}
			out = append(out, outbound{group: g.id, peer: peer, payload: payload, ephemeral: pb.ephemeralOnly, trace: trace})
		}
	}
	return out, wrote, nil
}

// takeAcks moves the queued acks for peer into pb, as many as fit.
func (n *node) takeAcks(g *group, peer []byte, pb *payloadBuilder) {
	n.takeAcksOnce(g, peer, pb, nil)
}

// takeAcksOnce is takeAcks for a payload to every member, which acks an id
// once however many members it is owed to (seen holds the ids it has).
func (n *node) takeAcksOnce(g *group, peer []byte, pb *payloadBuilder, seen map[ID]bool) {
	q := g.acks[string(peer)]
	if q == nil {
		return
	}
	i := 0
	for ; i < len(q.ids); i++ {
		id := q.ids[i]
		if seen != nil && seen[id] {
			delete(q.set, id)
			continue
		}
		if !pb.addAck(id) {
			break
		}
		if seen != nil {
			seen[id] = true
		}
		delete(q.set, id)
	}
	n.c.acksSent.Add(uint64(i))
	if i > 0 && pb.ackTrace == 0 {
		pb.ackTrace = q.trace // the ack path: the frame that brought the first
	}
	q.ids = q.ids[i:]
	if len(q.ids) == 0 {
		delete(g.acks, string(peer))
	}
}

// takeOnce moves the ephemeral messages for peer into pb, as many as fit;
// each is sent once, never retransmitted.
func (n *node) takeOnce(g *group, peer []byte, pb *payloadBuilder) {
	msgs := g.once[string(peer)]
	i := 0
	for ; i < len(msgs) && pb.addMessage(msgs[i], true); i++ {
		if pb.trace == 0 && len(n.traces) > 0 {
			pb.trace = n.traces[MessageID(g.id, msgs[i].m.Timestamp, msgs[i].m.Body)]
		}
	}
	n.c.sent.Add(uint64(i))
	if i == len(msgs) {
		delete(g.once, string(peer))
	} else {
		g.once[string(peer)] = msgs[i:]
	}
}

// takeDue moves peer's due records into pb and records their
// transmission. Unless sweep is set it skips a member whose bound says
// nothing is due; when it took every due record it sets the bound from
// what is left. With read set, rows are peer's due records as this epoch
// already read them (groupAgain), and the store is not read again.
func (n *node) takeDue(tx *txn, g *group, peer []byte, pb *payloadBuilder, sweep bool, rows []stateRow, read bool) (bool, error) {
	if !read && !sweep && tx.due.idle(g.id, peer, n.epoch) {
		return false, nil
	}
	limit := 3 * n.cfg.MaxIDs
	if !read {
		var err error
		if rows, err = tx.dueStates(g.id, peer, n.epoch, limit); err != nil {
			return false, err
		}
	}
	wrote, left, err := n.takeRows(tx, g, peer, pb, rows, n.epoch)
	if err != nil || left > 0 || len(rows) == limit {
		return wrote, err
	}
	next, err := tx.nextDue(g.id, peer)
	if err != nil {
		return wrote, err
	}
	tx.due.set(g.id, peer, next)
	return wrote, nil
}

// takeRows moves the records rows for peer into pb, as many as fit, and
// records the transmission of each that goes: its send count increased
// and its next send epoch counted from epoch (nextEpoch). It says whether
// it wrote and how many rows did not fit.
func (n *node) takeRows(tx *txn, g *group, peer []byte, pb *payloadBuilder, rows []stateRow, epoch uint64) (wrote bool, left int, err error) {
	for _, r := range rows {
		var fits bool
		switch r.typ {
		case recMessage:
			if !r.held { // the message is no longer stored
				if err := tx.deleteState(r.rowid); err != nil {
					return wrote, left, err
				}
				wrote = true
				continue
			}
			var err error
			if fits, err = n.addStored(g, r, pb); err != nil {
				return wrote, left, err
			}
		case recOffer:
			fits = pb.addOffer(r.id)
		case recRequest:
			fits = pb.addRequest(r.id)
		default:
			continue
		}
		if !fits {
			left++
			continue
		}
		if pb.trace == 0 && r.typ == recOffer {
			pb.trace = n.traces[r.id]
		}
		wrote = true
		if err := n.recordSent(tx, g, peer, r, epoch); err != nil {
			return wrote, left, err
		}
	}
	return wrote, left, nil
}

// addStored puts r's stored message into pb and says whether it fit; the
// payload takes the trace of the first message that has one.
func (n *node) addStored(g *group, r stateRow, pb *payloadBuilder) (bool, error) {
	m, err := r.wire(g.id, r.timestamp, n.self)
	if err != nil {
		return false, fmt.Errorf("mvds: stored message %s: %w", r.id, err)
	}
	if !pb.addMessage(m, false) {
		return false, nil
	}
	if pb.trace == 0 {
		pb.trace = n.traces[r.id]
	}
	return true, nil
}

// fillGroupPayload adds to pb, in order, the stored messages of rows that
// want picks and that are not taken yet, marking them taken, until one
// does not fit.
func (n *node) fillGroupPayload(g *group, pb *payloadBuilder, rows []stateRow, want func(stateRow) bool, taken map[ID]bool) error {
	for _, r := range rows {
		if taken[r.id] || !want(r) {
			continue
		}
		fits, err := n.addStored(g, r, pb)
		if err != nil || !fits {
			return err
		}
		taken[r.id] = true
	}
	return nil
}

// recordSent records one transmission of r to peer at epoch: it is
// counted, and the record is given up (max_send_count) or made due again
// after its back-off.
func (n *node) recordSent(tx *txn, g *group, peer []byte, r stateRow, epoch uint64) error {
	n.countSent(r)
	count := r.count + 1
	if n.abandon(r.typ, count) {
		if err := tx.deleteState(r.rowid); err != nil {
			return err
		}
		if r.typ == recRequest && g.requests[string(peer)] > 0 {
			g.requests[string(peer)]--
		}
		n.c.abandoned.Add(1)
		return nil
	}
	return tx.updateState(g.id, peer, r.rowid, count, nextEpoch(count, epoch, n.cfg.BackoffBase, n.cfg.BackoffMax))
}

// countSent counts one transmission of r.
func (n *node) countSent(r stateRow) {
	if r.count > 0 {
		n.c.retransmissions.Add(1)
	}
	switch r.typ {
	case recMessage:
		if r.count == 0 {
			n.c.sent.Add(1)
		}
	case recOffer:
		n.c.offersSent.Add(1)
	case recRequest:
		n.c.requestsSent.Add(1)
	}
}

// abandon says whether a record sent count times is given up: a request
// after maxRequestTries, a message or offer after max_send_count (if set).
func (n *node) abandon(typ recordType, count uint64) bool {
	if typ == recRequest {
		return count >= maxRequestTries
	}
	return n.cfg.MaxSendCount > 0 && count >= n.cfg.MaxSendCount
}

// groupAcks puts the acks owed to members of a group of three or more
// (group_acks on) in one payload for every member, once one of them has
// waited ack_delay epochs (acksDue): on a privacy layer that
// reaches every node anyway (whisper) one envelope then carries what one
// per author would, and the members that are not the author of an acked
// message learn that the acker holds it (onAck: a late ack, no drop), which
// cancels their delayed relay offers to it (relay_delay). Acks that do not
// fit wait for the members' own payloads.
func (n *node) groupAcks(g *group) *outbound {
	if !n.cfg.GroupAcks || len(g.members) < 3 {
		return nil
	}
	due := false
	for _, p := range g.members {
		if n.acksDue(g, p) {
			due = true
			break
		}
	}
	if !due {
		return nil // what is owed waits (ack_delay), or rides on a payload
	}
	pb := newPayloadBuilder(n.cfg.MaxFrame, n.cfg.MaxIDs)
	seen := map[ID]bool{}
	for _, p := range g.members {
		n.takeAcksOnce(g, p, pb, seen)
	}
	payload, err := pb.encode()
	if err != nil || pb.empty() {
		return nil
	}
	n.c.payloadsSent.Add(1)
	n.c.multicastPayloads.Add(1)
	n.c.bytesSent.Add(uint64(len(payload)))
	return &outbound{group: g.id, payload: payload, trace: pb.ackTrace}
}

// groupAgain sends again, as one payload for every member (an outbound
// without a peer; Config.GroupRetransmit), the messages in g (this node's
// own, or one a member requested) that are due for retransmission to two
// or more members and to at least half of the others. Each such member's
// record is updated as if the payload had gone to it alone; what is due
// for fewer members goes in their own payloads after this. The acks this
// node owes ride along (group_acks).
//
// It returns, per member, the due records it read and did not send (all
// there are: a member whose read hit the limit is left out), so that the
// members' own payloads need not read them again.
func (n *node) groupAgain(tx *txn, g *group, sweep bool) (*outbound, map[string][]stateRow, bool, error) {
	if !n.cfg.GroupRetransmit || len(g.members) < 3 {
		return nil, nil, false, nil
	}
	limit := 3 * n.cfg.MaxIDs
	rows := map[string][]stateRow{}
	count := map[ID]int{}
	others := 0
	isAgain := func(r stateRow) bool { return r.typ == recMessage && r.held && r.count > 0 }
	for _, peer := range g.members {
		if bytes.Equal(peer, n.self) {
			continue
		}
		others++
		if !sweep && tx.due.idle(g.id, peer, n.epoch) {
			continue
		}
		rs, err := tx.dueStates(g.id, peer, n.epoch, limit)
		if err != nil {
			return nil, nil, false, err
		}
		rows[string(peer)] = rs
		for _, r := range rs {
			if isAgain(r) {
				count[r.id]++
			}
		}
	}
	again := func(id ID) bool { k := count[id]; return k >= 2 && 2*k >= others }
	pb := newPayloadBuilder(n.cfg.MaxFrame, n.cfg.MaxIDs)
	taken := map[ID]bool{}
	for _, peer := range g.members {
		if err := n.fillGroupPayload(g, pb, rows[string(peer)], func(r stateRow) bool { return isAgain(r) && again(r.id) }, taken); err != nil {
			return nil, nil, false, err
		}
	}
	left := make(map[string][]stateRow, len(rows))
	for _, peer := range g.members {
		rs, ok := rows[string(peer)]
		if !ok {
			continue
		}
		var rest []stateRow
		for _, r := range rs {
			if !isAgain(r) || !taken[r.id] {
				rest = append(rest, r)
				continue
			}
			if err := n.recordSent(tx, g, peer, r, n.epoch); err != nil {
				return nil, nil, false, err
			}
		}
		if len(rs) < limit {
			left[string(peer)] = rest
		}
	}
	if len(taken) == 0 {
		return nil, left, false, nil
	}
	n.c.groupRetransmits.Add(uint64(len(taken)))
	if n.cfg.GroupAcks {
		seen := map[ID]bool{}
		for _, p := range g.members {
			n.takeAcksOnce(g, p, pb, seen)
		}
	}
	payload, err := pb.encode()
	if err != nil {
		return nil, nil, false, err
	}
	n.c.payloadsSent.Add(1)
	n.c.multicastPayloads.Add(1)
	n.c.bytesSent.Add(uint64(len(payload)))
	return &outbound{group: g.id, payload: payload, trace: pb.trace}, left, true, nil
}
