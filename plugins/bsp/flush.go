package bsp

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// maxMessagesPerFlush bounds the MESSAGE and OFFER entries one flush
// writes to one member; the rest wait for the next flush, which follows at
// once (coalescing under load).
const maxMessagesPerFlush = 512

// flush writes what is due to every member at time now (ms), as one or
// more frames per member, each a BSP record stream that begins with
// VERSIONS (§2.7), and, in a group of three or more, frames for the whole
// group (multicast, group_acks; see groupNew). It returns the frames,
// whether more is due at once, and the time the next record comes due
// (0: none). The caller commits (sync) before it emits the frames.
func (n *node) flush(now int64) (out []outbound, ups []delivery, more bool, next int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failed != nil {
		return nil, nil, false, 0
	}
	defer func() { n.hello = false }()
	soon := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	// told: members some frame went to in this flush; any frame opens a
	// session (each begins with VERSIONS), so none needs another.
	told := map[string]bool{}
	for _, g := range n.groups {
		n.compact(g)
		n.forget(g, now)
		repairs := n.dueRepairs(g, now)
		gw, full := n.groupNew(g, now, soon)
		more = more || full
		var held map[*peer]bool
		for _, p := range g.peers {
			if until, hold := n.holdLazy(g, p, repairs, now, told); hold {
				if held == nil {
					held = map[*peer]bool{}
				}
				held[p] = true
				soon(until)
			}
		}
		gw, acked := n.groupAcks(g, gw, held)
		gw = n.groupHello(g, gw, now, told)
		if gw != nil {
			fs := gw.frames()
			if len(fs) == 0 {
				fs = gw.out[:1] // VERSIONS alone: a session opened with every member
			}
			for _, p := range g.peers {
				n.lastSent[string(p.key)] = now
				told[string(p.key)] = true
			}
			for _, f := range fs {
				out = append(out, outbound{group: g.id, payload: f.b, trace: f.trace})
				n.c.framesSent.Inc()
				n.c.multicast.Inc()
				n.c.bytesSent.Add(uint64(len(f.b)))
			}
			if acked {
				n.c.groupAckFrames.Add(uint64(len(fs)))
			}
		}
		for _, p := range g.peers {
			if held[p] {
				continue
			}
			w := newFrameWriter(n.cfg.MaxFrame)
			// ACKs owed (unless they went to the whole group above).
			acks := n.takeAcks(g, p)
			w.ids(wire.Ack, acks)
			n.c.acksSent.Add(uint64(len(acks)))
			// REQUESTs of offered ids (Briar requests each once; a lost
			// request is made good by the offerer offering again), then of
			// missing dependencies.
			var reqs []wire.ID
			for id := range p.offered {
				if g.msgs[id] == nil {
					reqs = append(reqs, id)
				}
				delete(p.offered, id)
				n.dirtyOffered[statusKey{g, p, id}] = false
			}
			n.c.requestsSent.Add(uint64(len(reqs)))
			for _, r := range repairs {
				if r.w.from[p] || r.w.tries >= 2 {
					reqs = append(reqs, r.id)
					n.c.repairsSent.Inc()
					if r.w.asked == nil {
						r.w.asked = map[*peer]bool{}
					}
					r.w.asked[p] = true
				}
			}
			w.ids(wire.Request, reqs)
			// Messages and offers due.
			lat := n.latency(p)
			var due []*message
			for id, st := range p.status {
				if st.seen {
					continue
				}
				m := g.msgs[id]
				if m == nil || m.state != stDelivered || m.raw == nil || !(n.shares(m) || st.requested) {
					continue
				}
				// A request is answered at once, or at its expiry when it
				// waits on a random delay (onRequest).
				if (st.requested && st.expiry <= now) || (!st.requested && (st.expiry <= now || (st.maxLatency > 0 && 2*lat < st.maxLatency))) {
					due = append(due, m)
				} else {
					soon(st.expiry)
				}
			}
			sortMessages(due)
			if len(due) > maxMessagesPerFlush {
				due, more = due[:maxMessagesPerFlush], true
			}
			var offers []wire.ID
			offerTrace := uint64(0)
			for _, m := range due {
				st := p.status[m.id]
				full := st.requested || (m.own && !n.cfg.interactive())
				if full {
					w.message(wire.RawMessage{Group: g.bsp, Timestamp: m.ts, Body: m.raw}, m.trace)
					if st.tx == 0 && !st.requested {
						n.c.sent.Inc()
					}
				} else {
					offers = append(offers, m.id)
					if offerTrace == 0 {
						offerTrace = m.trace
					}
				}
				if st.tx > 0 {
					n.c.retransmissions.Inc()
				}
				n.transmitted(g, p, m, st, lat, now)
				soon(st.expiry)
			}
			if len(offers) > 0 {
				w.trace(offerTrace)
				w.ids(wire.Offer, offers)
				n.c.offersSent.Add(uint64(len(offers)))
			}
			// Ephemeral messages, once (unless they went to the whole
			// group above).
			for _, e := range g.ephOut {
				w.message(e.raw, e.trace)
			}
			fs := w.frames()
			if len(fs) == 0 && gw == nil && n.sessionDue(g, p, now, told) {
				// VERSIONS alone: a session that says "here", at start and
				// as Briar's keepalive on an idle link, so that a member
				// that missed the first learns this node is back (heard).
				fs = w.out[:1]
			}
			if len(fs) > 0 {
				n.lastSent[string(p.key)] = now
				told[string(p.key)] = true
			}
			if n.cfg.Keepalive > 0 && g.active() {
				soon(n.lastSentTo(p) + n.cfg.Keepalive.Milliseconds())
			}
			for _, f := range fs {
				out = append(out, outbound{group: g.id, peer: p.key, payload: f.b, trace: f.trace})
				n.c.framesSent.Inc()
				n.c.bytesSent.Add(uint64(len(f.b)))
			}
		}
		g.ephOut = nil
		g.hello = false
		for _, r := range repairs {
			r.w.tries++
			lat := n.cfg.InitialLatency.Milliseconds()
			for p := range r.w.from {
				lat = min(lat, n.latency(p))
			}
			r.w.next = now + n.backoff(max(lat, n.cfg.MinLatency.Milliseconds()), r.w.tries)
			if n.cfg.History > 0 && r.w.tries >= beyondHistoryTries {
				ups = n.beyondHistory(g, r.id, ups)
			}
		}
		for _, wt := range g.wants {
			if next == 0 || wt.next < next {
				next = max(wt.next, now+1)
			}
		}
	}
	return out, ups, more, next
}

// sortMessages orders messages by timestamp, then id.
func sortMessages(ms []*message) {
	slices.SortFunc(ms, func(a, b *message) int {
		if c := cmp.Compare(a.ts, b.ts); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
}

// transmitted records that m went to p now, timed for latency lat: the
// next transmission is due after Briar's backoff, and the first one is
// the start of a round-trip sample. n.mu is held.
func (n *node) transmitted(g *group, p *peer, m *message, st *status, lat, now int64) {
	if st.tx == 0 {
		p.sentAt[m.id] = now
	}
	st.expiry = now + n.backoff(lat, st.tx)
	st.tx++
	st.maxLatency = lat
	st.requested = false
	n.dirtyStatusOf(g, p, m.id)
}

// takeAcks takes the ACKs owed to p. n.mu is held.
func (n *node) takeAcks(g *group, p *peer) []wire.ID {
	var acks []wire.ID
	for id, st := range p.status {
		if st.ack {
			acks = append(acks, id)
			st.ack = false
			n.dirtyStatusOf(g, p, id)
			if m := g.msgs[id]; m != nil {
				n.markCheck(g, m)
			}
		}
	}
	for id := range p.owed {
		acks = append(acks, id)
	}
	clear(p.owed)
	p.ackNow = false
	return acks
}

// owesAcks reports whether an ACK is owed to p. n.mu is held.
func (n *node) owesAcks(p *peer) bool {
	if len(p.owed) > 0 {
		return true
	}
	for _, st := range p.status {
		if st.ack {
			return true
		}
	}
	return false
}

// Frames for the whole group (Config.Multicast, Config.GroupAcks). In a
// group of three or more, what is the same for every other member goes
// once, in a DOWN frame without a peer: the secure layer seals it for the
// group (once with mls, once per member with pairwise sessions) and the
// host sends it to the group's shared privacy address where the privacy
// layer has one (docs/architecture.md, "Group frames"), so that a message
// costs the group one frame from its author instead of one per member. It
// is an ordinary BSP record stream from this node: each member reads it as
// a session from this node, as it would its own copy. The per-member state
// is updated as if the frame had gone to every member alone: a member that
// does not ack is sent the record again, alone, when its backoff runs out.

// multicastGroup reports whether g gets frames for the whole group: it
// has three members or more.
func multicastGroup(g *group) bool { return len(g.peers) >= 2 }

// groupNew starts the frame for the whole group of g with what is new
// for every other member (Config.Multicast): this node's messages that
// were never sent to any of them and are due to all (whole, or offered in
// interactive mode), and its ephemeral messages. It returns nil if there
// is none, and full if more such messages wait for the next flush. n.mu
// is held.
func (n *node) groupNew(g *group, now int64, soon func(int64)) (w *frameWriter, full bool) {
	if !n.cfg.Multicast || !multicastGroup(g) {
		return nil, false
	}
	fresh := func(st *status) bool {
		return st != nil && !st.seen && !st.requested && st.tx == 0 && st.expiry <= now
	}
	var ms []*message
	for id, st := range g.peers[0].status {
		if !fresh(st) {
			continue
		}
		m := g.msgs[id]
		if m == nil || !m.own || m.state != stDelivered || m.raw == nil {
			continue
		}
		all := true
		for _, q := range g.peers[1:] {
			all = all && fresh(q.status[id])
		}
		if all {
			ms = append(ms, m)
		}
	}
	again := n.groupAgain(g, now)
	ms = append(ms, again...)
	if len(ms) == 0 && len(g.ephOut) == 0 {
		return nil, false
	}
	sortMessages(ms)
	if len(ms) > maxMessagesPerFlush {
		ms, full = ms[:maxMessagesPerFlush], true
	}
	w = newFrameWriter(n.cfg.MaxFrame)
	var offers []wire.ID
	offerTrace := uint64(0)
	for _, m := range ms {
		if n.cfg.interactive() {
			offers = append(offers, m.id)
			if offerTrace == 0 {
				offerTrace = m.trace
			}
		} else {
			w.message(wire.RawMessage{Group: g.bsp, Timestamp: m.ts, Body: m.raw}, m.trace)
		}
		for _, p := range g.peers {
			st := p.status[m.id]
			if st == nil || st.seen || st.requested {
				continue // (a retransmission) p holds it, or asked for it alone
			}
			if st.tx > 0 {
				n.c.retransmissions.Inc()
			} else if !n.cfg.interactive() {
				n.c.sent.Inc()
			}
			n.transmitted(g, p, m, st, n.latency(p), now)
			soon(st.expiry)
		}
	}
	if len(again) > 0 {
		n.c.groupRetransmissions.Add(uint64(len(again)))
	}
	if len(offers) > 0 {
		w.trace(offerTrace)
		w.ids(wire.Offer, offers)
		n.c.offersSent.Add(uint64(len(offers)))
	}
	for _, e := range g.ephOut {
		w.message(e.raw, e.trace)
	}
	g.ephOut = nil
	return w, full
}

// groupAgain returns this node's messages in g to send again to the
// whole group (Config.GroupRetransmit): those due for retransmission to
// two or more members and to at least half of the others (a member that
// requested one is answered alone). n.mu is held.
func (n *node) groupAgain(g *group, now int64) []*message {
	if !n.cfg.GroupRetransmit {
		return nil
	}
	due := map[wire.ID]int{}
	for _, p := range g.peers {
		for id, st := range p.status {
			if !st.seen && !st.requested && st.tx > 0 && st.expiry <= now {
				due[id]++
			}
		}
	}
	var again []*message
	for id, k := range due {
		if k < 2 || 2*k < len(g.peers) {
			continue
		}
		if m := g.msgs[id]; m != nil && m.own && m.state == stDelivered && m.raw != nil {
			again = append(again, m)
		}
	}
	return again
}

// groupAcks adds to w, the frame for the whole group of g (nil: none
// yet), the ACKs owed to its members (Config.GroupAcks), each id once:
// when they are owed to two or more members that are not held back
// (holdLazy), with relaying to one or more, or when the frame goes
// anyway, in which case the ACKs owed to every member ride along. A
// member that is not the acked message's author learns that the acker
// holds it: with relaying, that cancels its relayed offer to the acker
// (markSeen), which is why a lone member's acks then go to the group too;
// an id it does not hold counts as an unknown ack and a hint. It reports
// whether it added any. n.mu is held.
func (n *node) groupAcks(g *group, w *frameWriter, held map[*peer]bool) (*frameWriter, bool) {
	if !n.cfg.GroupAcks || !multicastGroup(g) {
		return w, false
	}
	if w == nil {
		// Without relaying a lone member's acks tell the others nothing
		// they act on, so they go to that member alone.
		need := 2
		if n.cfg.Relay {
			need = 1
		}
		owing := 0
		for _, p := range g.peers {
			if !held[p] && n.owesAcks(p) {
				owing++
			}
		}
		if owing < need {
			return w, false
		}
	}
	seen := map[wire.ID]bool{}
	var acks []wire.ID
	for _, p := range g.peers {
		for _, id := range n.takeAcks(g, p) {
			if !seen[id] {
				seen[id] = true
				acks = append(acks, id)
			}
		}
	}
	if len(acks) == 0 {
		return w, false
	}
	slices.SortFunc(acks, func(a, b wire.ID) int { return bytes.Compare(a[:], b[:]) })
	if w == nil {
		w = newFrameWriter(n.cfg.MaxFrame)
	}
	w.ids(wire.Ack, acks)
	n.c.acksSent.Add(uint64(len(acks)))
	return w, true
}

// sessionDue reports whether p is to be sent a session frame (VERSIONS
// alone) in g at now when nothing else goes to it: g is active, no frame
// went to p yet in this flush (told), and this node has just started, p
// has just joined g, or nothing went to p for the keepalive. n.mu is held.
func (n *node) sessionDue(g *group, p *peer, now int64, told map[string]bool) bool {
	if !g.active() || told[string(p.key)] {
		return false
	}
	return n.hello || g.hello || n.idle(p, now)
}

// idle reports whether nothing went to p for the keepalive (since this
// node started, if nothing went to p at all). n.mu is held.
func (n *node) idle(p *peer, now int64) bool {
	return n.cfg.Keepalive > 0 && now-n.lastSentTo(p) >= n.cfg.Keepalive.Milliseconds()
}

// lastSentTo is when a frame last went to p, or when this node started.
func (n *node) lastSentTo(p *peer) int64 {
	if t, ok := n.lastSent[string(p.key)]; ok {
		return t
	}
	return n.started
}

// groupHello opens a session with every member of g at once (a frame for
// the whole group holding VERSIONS alone) when two or more of them are to
// be told this node is here (sessionDue) and no frame for the group goes
// anyway (Config.Multicast). n.mu is held.
func (n *node) groupHello(g *group, w *frameWriter, now int64, told map[string]bool) *frameWriter {
	if w != nil || !n.cfg.Multicast || !multicastGroup(g) {
		return w
	}
	quiet := 0
	for _, p := range g.peers {
		if n.sessionDue(g, p, now, told) {
			quiet++
		}
	}
	if quiet < 2 {
		return nil
	}
	return newFrameWriter(n.cfg.MaxFrame)
}

// holdLazy reports whether the records due to p are all lazy (relayed
// OFFERs, and ACKs that answer offers or tell of a repair; an ACK of a
// MESSAGE is urgent, see owe, unless Config.AckDelay) and may wait for
// other records to p, and until when
// (Config.BatchRelays): they wait at most half p's latency (half
// min_latency before one is observed; AckDelay when an ACK of a MESSAGE
// waits) from the first flush that found them, so that acks come well
// before the sender's retransmission (after twice its latency). Anything
// else due (a message, an own offer, a request, an ephemeral message, a
// session to open) sends them at once, in the same frame. n.mu is held.
func (n *node) holdLazy(g *group, p *peer, repairs []dueRepair, now int64, told map[string]bool) (until int64, hold bool) {
	delayAcks := n.cfg.AckDelay > 0
	if !n.cfg.BatchRelays && !delayAcks {
		return 0, false
	}
	urgent := (p.ackNow && !delayAcks) || len(g.ephOut) > 0 || n.sessionDue(g, p, now, told)
	for id := range p.offered {
		urgent = urgent || g.msgs[id] == nil
	}
	for _, r := range repairs {
		urgent = urgent || r.w.from[p] || r.w.tries >= 2
	}
	lazy := len(p.owed) > 0
	lat := n.latency(p)
	for id, st := range p.status {
		if urgent {
			break
		}
		lazy = lazy || st.ack
		if st.seen {
			continue
		}
		m := g.msgs[id]
		if m == nil || m.state != stDelivered || m.raw == nil || !(n.shares(m) || st.requested) {
			continue
		}
		if (st.requested && st.expiry <= now) || (!st.requested && (st.expiry <= now || (st.maxLatency > 0 && 2*lat < st.maxLatency))) {
			if st.requested || m.own {
				urgent = true
			} else {
				lazy = true // a relayed offer
			}
		}
	}
	if urgent || !lazy {
		p.lazySince = 0
		return 0, false
	}
	if p.lazySince == 0 {
		p.lazySince = now
	}
	// Half the latency observed to p; without an observation (this node
	// has sent p nothing it acked) half min_latency, since p's own
	// retransmissions may be timed from as little as that.
	wait := n.cfg.MinLatency.Milliseconds() / 2
	if p.srtt > 0 {
		wait = lat / 2
	}
	if p.ackNow {
		wait = n.cfg.AckDelay.Milliseconds()
	}
	until = p.lazySince + max(wait, 1)
	if now >= until {
		p.lazySince = 0
		return 0, false
	}
	n.c.lazyHeld.Inc()
	return until, true
}

// beyondHistoryTries is the number of repair rounds, the last ones to
// every member, after which a missing dependency counts as beyond the
// history window (Config.History).
const beyondHistoryTries = 6

// beyondHistory gives up on the missing dependency d, which no member
// could send after beyondHistoryTries rounds: with a history window,
// members forget what is older than it, so a member who joins late, or
// comes back after longer than the window, cannot have it. The messages
// waiting only for it are delivered (the cut-off rule, docs/plugins/bsp.md).
func (n *node) beyondHistory(g *group, d wire.ID, ups []delivery) []delivery {
	delete(g.wants, d)
	n.c.beyondHistory.Inc()
	for _, w := range g.waiting[d] {
		w.missing--
		if w.missing == 0 && w.state == stPending {
			g.pending--
			ups = n.deliver(g, w, ups)
		}
	}
	delete(g.waiting, d)
	return ups
}

// forget drops, once every tenth of the history window, the messages
// older than the window that the sync state may let go: compacted ids,
// and held messages the host has acknowledged or that are this node's,
// with what every member's state says of them. A member that has not
// acknowledged one by then will not get it from here (the cut-off rule).
// Pending messages wait for their dependencies regardless.
func (n *node) forget(g *group, now int64) {
	if n.cfg.History <= 0 {
		return
	}
	every := max(n.cfg.History.Milliseconds()/10, 1000)
	if now-g.lastForget < every {
		return
	}
	g.lastForget = now
	cut := uint64(max(n.historyCut(), 0))
	for id, m := range g.msgs {
		if m.ts >= cut || m.state == stPending || (m.deliverSeq > 0 && !m.hostAcked && !m.own) || len(g.waiting[id]) > 0 {
			continue
		}
		for _, p := range g.peers {
			if _, ok := p.status[id]; ok {
				delete(p.status, id)
				delete(p.sentAt, id)
				n.dirtyStatusOf(g, p, id)
			}
		}
		delete(g.msgs, id)
		m.gone = true
		n.dirtyMsgs[m] = g
		n.c.forgotten.Inc()
	}
}

type dueRepair struct {
	id wire.ID
	w  *want
}

// dueRepairs are the missing dependencies to ask for now: first from the
// members that announced them, from the third try on from every member.
func (n *node) dueRepairs(g *group, now int64) []dueRepair {
	var rs []dueRepair
	for id, w := range g.wants {
		if g.msgs[id] != nil {
			delete(g.wants, id)
			continue
		}
		if w.next <= now {
			rs = append(rs, dueRepair{id, w})
		}
	}
	slices.SortFunc(rs, func(a, b dueRepair) int { return bytes.Compare(a.id[:], b.id[:]) })
	if len(rs) > wire.MaxIDs {
		rs = rs[:wire.MaxIDs]
	}
	return rs
}

// compact takes out of the sync state the messages that every member
// holds and, for received ones, that the host has acknowledged: their
// statuses go, their body goes (the host's history keeps the message),
// and the id stays, so that a replay is acknowledged and not taken again.
// Ids compacted longer ago than the history window are forgotten
// (Config.History), and a copy that comes back after that is refused as
// too old.
func (n *node) compact(g *group) {
	for id := range g.check {
		delete(g.check, id)
		m := g.msgs[id]
		if m == nil || m.state != stDelivered || m.raw == nil || (!m.own && !m.hostAcked) {
			continue
		}
		if len(g.waiting[id]) > 0 {
			continue
		}
		done := true
		for _, p := range g.peers {
			st := p.status[id]
			if st == nil {
				// Only a member known to have it counts: its author, or the
				// member it came from. Without relaying, another member's
				// copy is never acknowledged here, so received messages
				// stay until the history window forgets them.
				if bytes.Equal(p.key, m.b.author) || bytes.Equal(p.key, m.sender) {
					continue
				}
				done = false
				break
			}
			if !st.seen || st.ack || st.requested {
				done = false
				break
			}
		}
		if !done {
			continue
		}
		for _, p := range g.peers {
			if _, ok := p.status[id]; ok {
				delete(p.status, id)
				delete(p.sentAt, id)
				n.dirtyStatusOf(g, p, id)
			}
		}
		m.state, m.raw = stCompacted, nil
		n.dirtyMsgs[m] = g
		n.c.compacted.Inc()
	}
}

// frameWriter packs records into frames of at most max bytes, each
// beginning with VERSIONS.
type frameWriter struct {
	max int
	out []frame
}

type frame struct {
	b     []byte
	trace uint64
}

// newFrameWriter returns a writer whose first frame holds VERSIONS.
func newFrameWriter(max int) *frameWriter {
	w := &frameWriter{max: max}
	w.room(0)
	return w
}

// room returns a frame with room for n more bytes.
func (w *frameWriter) room(n int) *frame {
	if len(w.out) == 0 || len(w.out[len(w.out)-1].b)+n > w.max {
		w.out = append(w.out, frame{b: wire.AppendVersions(make([]byte, 0, 256), wire.ProtocolVersion)})
	}
	return &w.out[len(w.out)-1]
}

// trace sets the trace id of the current frame if it has none.
func (w *frameWriter) trace(t uint64) {
	f := w.room(0)
	if f.trace == 0 {
		f.trace = t
	}
}

// ids writes records of type t for ids, as many as they need.
func (w *frameWriter) ids(t wire.Type, ids []wire.ID) {
	for len(ids) > 0 {
		f := w.room(wire.HeaderLen + wire.IDLen)
		k := min(len(ids), wire.MaxIDs, (w.max-len(f.b)-wire.HeaderLen)/wire.IDLen)
		f.b = wire.AppendIDs(f.b, t, ids[:k])
		ids = ids[k:]
	}
}

// message writes m's MESSAGE record; a frame that carries a message
// carries its trace id (the first message's).
func (w *frameWriter) message(m wire.RawMessage, trace uint64) {
	f := w.room(m.RecordLen())
	f.b = wire.AppendMessage(f.b, m)
	if f.trace == 0 {
		f.trace = trace
	}
}

// frames returns the frames written, none if nothing but VERSIONS.
func (w *frameWriter) frames() []frame {
	if len(w.out) == 1 && len(w.out[0].b) == wire.HeaderLen+1 {
		return nil
	}
	return w.out
}
