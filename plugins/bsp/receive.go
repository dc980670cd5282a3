package bsp

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// inbound is an UP frame from a member.
type inbound struct {
	group, from, payload []byte
	trace                uint64
}

// receive handles frames from members: each frame is a BSP record stream
// (a session, §2.7). It commits what they change and returns the messages
// they make deliverable, in delivery order.
//
// early, if not nil, is handed those messages before the commit, so that
// they travel up while it runs. Nothing that tells their authors they
// arrived leaves first: acks go out with a flush, which commits every
// change made before it (sync) before it emits. A crash before the commit
// leaves neither the messages nor their acks, so the authors send them
// again and they are delivered again; the host stores by message id and
// takes them once.
func (n *node) receive(ctx context.Context, in []inbound, early func([]delivery)) ([]delivery, error) {
	n.mu.Lock()
	if n.failed != nil {
		n.mu.Unlock()
		for range in {
			n.c.notRunning.Inc()
		}
		return nil, n.failed
	}
	now := n.nowMS()
	var out []delivery
	for _, f := range in {
		g := n.groups[string(f.group)]
		if g == nil {
			n.c.unknownGroup.Inc()
			continue
		}
		p := g.byKey[string(f.from)]
		if p == nil {
			n.c.nonMember.Inc()
			continue
		}
		if len(f.payload) > n.cfg.MaxFrame {
			n.c.oversize.Inc()
			continue
		}
		n.c.framesIn.Inc()
		n.c.bytesIn.Add(uint64(len(f.payload)))
		n.heard(g, p, now)
		out = n.session(g, p, f.payload, f.trace, now, out)
	}
	n.mu.Unlock()
	if early != nil && len(out) > 0 {
		early(out)
	}
	if err := n.sync(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// session reads one frame's records (§2.5): a record of another protocol
// version ends it, as does a record that does not decode; one of an
// unknown type is skipped.
func (n *node) session(g *group, p *peer, b []byte, trace uint64, now int64, out []delivery) []delivery {
	for len(b) > 0 {
		r, k, err := wire.Next(b)
		if err != nil {
			n.c.readError(err)
			return out
		}
		b = b[k:]
		if !r.Type.Known() {
			n.c.skipped.Inc()
			continue
		}
		if err := r.Check(); err != nil {
			n.c.readError(err)
			return out
		}
		switch r.Type {
		case wire.Ack:
			ids, _ := wire.DecodeIDs(r.Payload)
			n.onAck(g, p, ids, now)
		case wire.Offer:
			ids, _ := wire.DecodeIDs(r.Payload)
			n.onOffer(g, p, ids, now)
		case wire.Request:
			ids, _ := wire.DecodeIDs(r.Payload)
			n.onRequest(g, p, ids, now)
		case wire.Message:
			m, _ := wire.DecodeMessage(r.Payload)
			out = n.onMessage(g, p, m, trace, now, out)
		case wire.Versions, wire.Priority:
			// Version 0 is all there is; PRIORITY chooses between
			// redundant connections, which the layers below own.
		}
	}
	return out
}

func (n *node) onAck(g *group, p *peer, ids []wire.ID, now int64) {
	n.c.acks.Add(uint64(len(ids)))
	for _, id := range ids {
		m := g.msgs[id]
		if m == nil {
			n.c.unknownAck.Inc()
			n.hint(g, id, p)
			continue
		}
		n.markSeen(g, p, m, now)
	}
}

func (n *node) onOffer(g *group, p *peer, ids []wire.ID, now int64) {
	n.c.offers.Add(uint64(len(ids)))
	for _, id := range ids {
		if m := g.msgs[id]; m != nil {
			// An offer of a message held here is acked (§2.8).
			n.markSeen(g, p, m, now)
			n.owe(g, p, id, false)
			continue
		}
		if _, eph := g.ephSeen[id]; eph {
			continue
		}
		n.hint(g, id, p)
		if _, ok := p.offered[id]; ok {
			continue
		}
		if len(p.offered) >= n.cfg.MaxOffered {
			n.c.offerFlood.Inc()
			continue
		}
		p.offered[id] = struct{}{}
		n.dirtyOffered[statusKey{g, p, id}] = true
	}
}

// onRequest makes each requested message due to p: at once when it
// answers this node's own offer or transmission (p asked this node
// alone), else, a repair request that p may have sent to several members,
// after a random delay of up to answer_backoff of p's latencies, so that
// one of them answers first and p's ACK of the message, sent to every
// member it asked, cancels the others' answers (markSeen).
func (n *node) onRequest(g *group, p *peer, ids []wire.ID, now int64) {
	n.c.requests.Add(uint64(len(ids)))
	for _, id := range ids {
		m := g.msgs[id]
		if m == nil || m.state != stDelivered || m.raw == nil {
			n.c.unknownReq.Inc()
			continue
		}
		st := p.status[id]
		answer := st != nil && st.tx > 0 && !st.seen
		if st == nil {
			st = &status{}
			p.status[id] = st
		}
		if st.requested && st.expiry > now {
			continue // already waiting on its delay
		}
		var at int64
		if !answer && n.cfg.AnswerBackoff > 0 {
			at = now + n.rng.Int64N(int64(n.cfg.AnswerBackoff)*n.latency(p)+1)
			n.c.answersDelayed.Inc()
		}
		st.seen, st.requested, st.expiry, st.tx = false, true, at, 0
		n.dirtyStatusOf(g, p, id)
	}
}

// onMessage takes a MESSAGE record from p.
func (n *node) onMessage(g *group, p *peer, rm wire.RawMessage, trace uint64, now int64, out []delivery) []delivery {
	n.c.messages.Inc()
	if rm.Group != g.bsp {
		n.c.wrongGroup.Inc()
		return out
	}
	id := rm.ID()
	if m := g.msgs[id]; m != nil {
		n.c.duplicates.Inc()
		n.markSeen(g, p, m, now)
		n.owe(g, p, id, true)
		return out
	}
	if _, eph := g.ephSeen[id]; eph {
		n.c.duplicates.Inc()
		return out
	}
	if _, ok := p.offered[id]; ok {
		delete(p.offered, id)
		n.dirtyOffered[statusKey{g, p, id}] = false
	}
	delete(g.hints, id)
	raw := bytes.Clone(rm.Body)
	b, err := n.validate(g, rm, raw, now)
	if err == nil && b.ephemeral {
		return n.onEphemeral(g, p, id, b, trace, now, out)
	}
	if err == nil && rm.Timestamp < uint64(max(n.historyCut(), 0)) {
		// Beyond the history window (Config.History): acknowledged, so that
		// its sender stops, and neither kept nor delivered.
		n.c.tooOld.Inc()
		n.owe(g, p, id, true)
		return out
	}
	m := &message{id: id, ts: rm.Timestamp, raw: raw, b: b, sender: bytes.Clone(p.key), trace: trace, receivedMS: now, state: stPending}
	if err != nil {
		n.c.invalid.Inc()
		m.state, m.raw, m.b = stInvalid, nil, body{}
		g.msgs[id] = m
		n.dirtyMsgs[m] = g
		n.owe(g, p, id, true)
		if n.log != nil {
			n.log.Debug("invalid message", "id", fmt.Sprintf("%x", id[:4]), "error", err)
		}
		return n.invalidateDependants(g, id, out)
	}
	invalid := false
	for _, d := range b.parents {
		pm := g.msgs[d]
		switch {
		case pm == nil || pm.state == stPending || pm.state == stUnknown:
			m.missing++
		case pm.state == stInvalid:
			invalid = true
		}
	}
	// A deferral (verdict.go) may have made a pending message wait for
	// this one, which depends on it in turn: a cycle that would leave both
	// pending for ever. This one is invalid, and so, through
	// invalidateDependants, is the deferred one.
	invalid = invalid || (m.missing > 0 && n.closesCycle(g, b.parents, id))
	if m.missing > 0 && !invalid && g.pending >= n.cfg.MaxPending {
		n.c.pendingFull.Inc()
		return out // not acknowledged: its sender tries again later
	}
	g.msgs[id] = m
	n.dirtyMsgs[m] = g
	n.owe(g, p, id, true)
	if invalid {
		n.c.invalid.Inc()
		m.state, m.raw, m.b = stInvalid, nil, body{}
		return n.invalidateDependants(g, id, out)
	}
	// The member it came from, and its author, have it.
	for _, q := range []*peer{p, g.byKey[string(b.author)]} {
		if q != nil && q.status[id] == nil {
			q.status[id] = &status{seen: true}
			if _, owed := q.owed[id]; owed {
				delete(q.owed, id)
				q.status[id].ack = true
			}
			n.dirtyStatusOf(g, q, id)
		}
	}
	if m.missing == 0 {
		return n.deliver(g, m, out)
	}
	g.pending++
	for _, d := range b.parents {
		pm := g.msgs[d]
		if pm == nil || pm.state == stPending || pm.state == stUnknown {
			g.waiting[d] = append(g.waiting[d], m)
			if pm == nil {
				n.wantDep(g, d, p)
			}
		}
	}
	return out
}

// validate is the validator of Strata's sync client (§2.10): the body
// decodes, its author is a member, and its timestamp is not too far in
// the future. It returns the dependencies in the body.
func (n *node) validate(g *group, rm wire.RawMessage, raw []byte, now int64) (body, error) {
	b, err := decodeBody(raw, n.cfg.MaxParents)
	if err != nil {
		return body{}, err
	}
	if !bytes.Equal(b.author, n.self) && g.byKey[string(b.author)] == nil {
		return body{}, fmt.Errorf("%w: author is not a member", errBodyFormat)
	}
	if int64(rm.Timestamp) > now+n.cfg.MaxClockSkew.Milliseconds() {
		return body{}, fmt.Errorf("%w: timestamp %d ms ahead", errBodyFormat, int64(rm.Timestamp)-now)
	}
	return b, nil
}

// onEphemeral delivers an ephemeral message whose parents are delivered;
// it is neither stored nor acknowledged (4/MVDS-META's meaning, which
// sync.v1 carries), and its id is remembered for ephemeral_window.
func (n *node) onEphemeral(g *group, p *peer, id wire.ID, b body, trace uint64, now int64, out []delivery) []delivery {
	for _, d := range b.parents {
		if pm := g.msgs[d]; pm == nil || (pm.state != stDelivered && pm.state != stCompacted) {
			return out
		}
	}
	if len(g.ephSeen) >= maxEphemeralSeen {
		for k, until := range g.ephSeen {
			if until < now {
				delete(g.ephSeen, k)
			}
		}
		if len(g.ephSeen) >= maxEphemeralSeen {
			n.c.ephemeralFull.Inc()
			return out
		}
	}
	g.ephSeen[id] = now + n.cfg.EphemeralWindow.Milliseconds()
	return append(out, delivery{group: g.id, id: id, author: bytes.Clone(b.author), payload: bytes.Clone(b.payload), trace: trace, ephemeral: true})
}

// deliver marks m delivered, and then every pending message it released,
// in causal order. m is not counted in g.pending (a new message, or one
// whose count its releaser took).
func (n *node) deliver(g *group, m *message, out []delivery) []delivery {
	queue := []*message{m}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		m.state = stDelivered
		n.seq++
		m.deliverSeq = n.seq
		n.dirtyMsgs[m] = g
		out = append(out, delivery{group: g.id, id: m.id, author: bytes.Clone(m.b.author), payload: bytes.Clone(m.b.payload), trace: m.trace, seq: m.deliverSeq})
		// Share it: every other member that may not have it gets a status.
		if n.shares(m) {
			now := n.nowMS()
			for _, q := range g.peers {
				if q.status[m.id] == nil && !bytes.Equal(q.key, m.b.author) {
					// Relayed copies wait a latency, so that the
					// author's own copy usually gets there first.
					q.status[m.id] = &status{expiry: now + n.latency(q)}
					n.dirtyStatusOf(g, q, m.id)
				}
			}
		}
		n.markCheck(g, m)
		if w := g.wants[m.id]; w != nil {
			delete(g.wants, m.id)
			if w.tries > 0 {
				n.c.repaired.Inc()
			}
			// Every member asked for it is told it is here, so that the
			// answers they hold back are not sent (onRequest).
			for q := range w.asked {
				if !bytes.Equal(q.key, m.sender) && g.byKey[string(q.key)] == q {
					n.owe(g, q, m.id, false)
				}
			}
		}
		for _, w := range g.waiting[m.id] {
			w.missing--
			if w.missing == 0 && w.state == stPending {
				g.pending--
				w.state = stUnknown // in the queue; set delivered below
				queue = append(queue, w)
			}
		}
		delete(g.waiting, m.id)
	}
	return out
}

// invalidateDependants invalidates, transitively, the pending messages
// that wait for id (§2.10).
func (n *node) invalidateDependants(g *group, id wire.ID, out []delivery) []delivery {
	queue := []wire.ID{id}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, w := range g.waiting[d] {
			if w.state != stPending {
				continue
			}
			g.pending--
			w.state, w.raw, w.b, w.missing = stInvalid, nil, body{}, 0
			n.dirtyMsgs[w] = g
			n.c.invalid.Inc()
			queue = append(queue, w.id)
		}
		delete(g.waiting, d)
		delete(g.wants, d)
	}
	return out
}

// unackedDeliveries returns the deliveries the host has not acknowledged,
// in the order they first went up.
func (n *node) unackedDeliveries() []delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ds []delivery
	for _, g := range n.groups {
		for _, m := range g.msgs {
			if m.state == stDelivered && m.deliverSeq > 0 && !m.hostAcked && !m.own && m.raw != nil {
				ds = append(ds, delivery{group: g.id, id: m.id, author: bytes.Clone(m.b.author), payload: bytes.Clone(m.b.payload), trace: m.trace, seq: m.deliverSeq})
			}
		}
	}
	slices.SortFunc(ds, func(a, b delivery) int { return cmp.Compare(a.seq, b.seq) })
	return ds
}

// groupState is StateResponse's numbers.
type groupState struct {
	messages, delivered, pending, unacknowledged uint64
}

func (n *node) state(gid []byte) (groupState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.groups[string(gid)]
	if g == nil {
		return groupState{}, fmt.Errorf("%w: %x", errNoGroup, gid)
	}
	var s groupState
	for _, m := range g.msgs {
		switch m.state {
		case stInvalid:
			continue
		case stPending:
			s.pending++
		case stDelivered, stCompacted:
			if !m.own {
				s.delivered++
			}
		}
		s.messages++
		if m.state == stDelivered && m.raw != nil && n.shares(m) {
			for _, p := range g.peers {
				if st := p.status[m.id]; st != nil && !st.seen {
					s.unacknowledged++
					break
				}
			}
		}
	}
	return s, nil
}

// health is the levels Health reports.
type nodeHealth struct {
	pending, groups, unacked int
	failed                   error
}

func (n *node) health() nodeHealth {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := nodeHealth{groups: len(n.groups), failed: n.failed}
	for _, g := range n.groups {
		h.pending += g.pending
		for _, m := range g.msgs {
			if m.state == stDelivered && m.deliverSeq > 0 && !m.hostAcked && !m.own {
				h.unacked++
			}
		}
	}
	return h
}
