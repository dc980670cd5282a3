package bsp

import (
	"bytes"
	"context"
	"fmt"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// The validator hook (sync.v1 AckRequest): BSP's client validates each
// message and names its dependencies (§2.10); in Strata the host is that
// client. The node's own validator (validate) checks what the sync layer
// can check alone (the body, the author's membership, the clock); the
// host's verdict comes with its Ack of the delivery:
//
//   - accepted (message_ids): the delivery is acknowledged;
//   - rejected: the message becomes invalid: its body goes, its statuses
//     go (it is never sent, offered or relayed again; an ACK owed for it
//     is still sent, so that its sender stops), and every message that
//     depends on it (its parents or the host's deferral name it),
//     directly or transitively, becomes invalid too, delivered or not; a
//     copy that comes again is acknowledged and dropped;
//   - deferred: the message goes back to pending, not offered nor
//     relayed, until each named dependency is delivered here (missing
//     ones are repaired as missing parents are); it is then delivered
//     again. A dependency that is or becomes invalid makes it invalid,
//     and so does one that depends on the message itself (a cycle,
//     closesCycle), whether it is here already or comes later.

// verdicts is one Ack's verdicts, decoded.
type verdicts struct {
	rejected map[wire.ID]string
	deferred map[wire.ID][]wire.ID
}

// decodeVerdicts decodes an AckRequest's verdicts. As with message_ids,
// what names nothing this layer could hold is ignored and counted
// (host_acks_ignored), so that one bad entry does not cost the host the
// rest of its Ack: ids that are not 32 bytes, and deferrals naming no
// dependency, more than MaxDeferralDependencies, or one that is not 32
// bytes. A message's own id among its dependencies is dropped.
func decodeVerdicts(req *syncv1.AckRequest, c *counters) verdicts {
	v := verdicts{rejected: map[wire.ID]string{}, deferred: map[wire.ID][]wire.ID{}}
	for _, r := range req.GetRejected() {
		if len(r.GetMessageId()) != wire.IDLen {
			c.hostAcksIgnored.Inc()
			continue
		}
		v.rejected[wire.ID(r.GetMessageId())] = r.GetReason()
	}
next:
	for _, d := range req.GetDeferred() {
		if len(d.GetMessageId()) != wire.IDLen || len(d.GetDependencies()) == 0 || len(d.GetDependencies()) > syncv1.MaxDeferralDependencies {
			c.hostAcksIgnored.Inc()
			continue
		}
		id := wire.ID(d.GetMessageId())
		var deps []wire.ID
		for _, raw := range d.GetDependencies() {
			if len(raw) != wire.IDLen {
				c.hostAcksIgnored.Inc()
				continue next
			}
			dep := wire.ID(raw)
			if dep != id && !containsID(deps, dep) {
				deps = append(deps, dep)
			}
		}
		v.deferred[id] = deps
	}
	return v
}

func containsID(ids []wire.ID, id wire.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// hostAck records the host's Ack: the deliveries acknowledged (ids, and
// the rejected ones), the rejections and the deferrals. It commits, and
// returns the deferred messages whose dependencies are all delivered
// already, delivered again.
func (n *node) hostAck(ctx context.Context, gid []byte, ids [][]byte, v verdicts) ([]delivery, error) {
	n.mu.Lock()
	if n.failed != nil {
		n.mu.Unlock()
		return nil, n.failed
	}
	g := n.groups[string(gid)]
	if g == nil {
		n.mu.Unlock()
		n.c.hostAcksIgnored.Add(uint64(len(ids) + len(v.rejected) + len(v.deferred)))
		return nil, nil
	}
	acked := map[wire.ID]bool{}
	for _, raw := range ids {
		if len(raw) != wire.IDLen {
			n.c.hostAcksIgnored.Inc()
			continue
		}
		acked[wire.ID(raw)] = true
	}
	for id := range v.rejected {
		acked[id] = true
	}
	for id := range acked {
		m := g.msgs[id]
		if m == nil || m.deliverSeq == 0 || m.hostAcked {
			n.c.hostAcksIgnored.Inc()
			continue
		}
		m.hostAcked = true
		n.dirtyMsgs[m] = g
		n.markCheck(g, m)
		n.c.hostAcks.Inc()
	}
	for id, why := range v.rejected {
		m := g.msgs[id]
		if m == nil || m.own || m.deliverSeq == 0 || (m.state != stDelivered && m.state != stCompacted) {
			continue
		}
		n.c.hostRejected.Inc()
		if n.log != nil {
			n.log.Debug("host rejected a message", "id", fmt.Sprintf("%x", id[:4]), "reason", why)
		}
		n.reject(g, m)
	}
	var out []delivery
	for id, deps := range v.deferred {
		m := g.msgs[id]
		if m == nil || m.own || acked[id] || m.state != stDelivered || m.hostAcked || m.raw == nil {
			n.c.hostAcksIgnored.Inc()
			continue
		}
		out = n.deferTo(g, m, deps, out)
	}
	n.mu.Unlock()
	if err := n.sync(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// reject makes m, which the host refused, invalid, and with it every
// message that depends on it, transitively: delivered ones stop being
// shared, pending ones are never delivered. Own messages are the host's
// and stay. n.mu is held.
func (n *node) reject(g *group, m *message) {
	queue := []*message{m}
	bad := map[wire.ID]bool{}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if bad[x.id] {
			continue
		}
		bad[x.id] = true
		if x.state == stPending {
			g.pending--
		}
		x.state, x.raw, x.b, x.missing, x.waits = stInvalid, nil, body{}, 0, nil
		n.dirtyMsgs[x] = g
		n.c.invalid.Inc()
		n.unshare(g, x.id)
		if w := g.waiting[x.id]; len(w) > 0 {
			queue = append(queue, w...)
			delete(g.waiting, x.id)
		}
		delete(g.wants, x.id)
		// Delivered dependants: the host has them, but this node no
		// longer passes them on, as BSP would never have delivered them.
		for _, c := range g.msgs {
			if c.own || bad[c.id] || c.state == stInvalid || c.state == stPending {
				continue
			}
			if containsID(c.b.parents, x.id) || containsID(c.waits, x.id) {
				queue = append(queue, c)
			}
		}
	}
}

// unshare drops every member's status of id, so that it is never sent,
// offered or relayed again; an ACK owed goes on being owed. n.mu is held.
func (n *node) unshare(g *group, id wire.ID) {
	for _, p := range g.peers {
		st := p.status[id]
		if st == nil {
			continue
		}
		if st.ack {
			p.owed[id] = struct{}{}
		}
		delete(p.status, id)
		delete(p.sentAt, id)
		n.dirtyStatusOf(g, p, id)
	}
	delete(g.check, id)
}

// deferTo makes the delivered message m wait for deps besides its
// parents (the host deferred it): pending, or invalid if one of them is;
// with every one delivered already it is delivered again at once, onto
// out. n.mu is held.
func (n *node) deferTo(g *group, m *message, deps []wire.ID, out []delivery) []delivery {
	n.c.hostDeferred.Inc()
	m.waits = deps
	m.missing = 0
	n.dirtyMsgs[m] = g
	var wait []wire.ID
	for _, d := range deps {
		if d == m.id {
			continue // decodeVerdicts drops these too
		}
		pm := g.msgs[d]
		switch {
		case pm != nil && pm.state == stInvalid:
			n.reject(g, m)
			return out
		case pm == nil || pm.state == stPending || pm.state == stUnknown:
			wait = append(wait, d)
		}
	}
	if len(wait) == 0 {
		return n.deliver(g, m, out)
	}
	if n.closesCycle(g, wait, m.id) {
		// A dependency waits, through pending messages, for m itself: the
		// host named a message that depends on m. m could never be
		// delivered.
		n.reject(g, m)
		return out
	}
	m.state = stPending
	m.missing = len(wait)
	g.pending++
	sender := g.byKey[string(m.sender)]
	for _, d := range wait {
		g.waiting[d] = append(g.waiting[d], m)
		if g.msgs[d] == nil {
			n.wantDep(g, d, sender)
		}
	}
	return out
}

// closesCycle reports whether target is among the dependencies, followed
// through pending messages, of the messages start names: making target
// wait for them would close a cycle. It visits each pending message once
// (at most max_pending). n.mu is held.
func (n *node) closesCycle(g *group, start []wire.ID, target wire.ID) bool {
	seen := map[wire.ID]bool{}
	stack := append([]wire.ID(nil), start...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if id == target {
			return true
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if m := g.msgs[id]; m != nil && m.state == stPending {
			stack = append(stack, m.deps()...)
		}
	}
	return false
}

// deps are the dependencies m waits for: its parents and the host's.
func (m *message) deps() []wire.ID {
	if len(m.waits) == 0 {
		return m.b.parents
	}
	return append(append([]wire.ID(nil), m.b.parents...), m.waits...)
}

// joinIDs concatenates ids (nil for none), as the store keeps them.
func joinIDs(ids []wire.ID) []byte {
	if len(ids) == 0 {
		return nil
	}
	b := make([]byte, 0, len(ids)*wire.IDLen)
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// splitIDs reads what joinIDs wrote.
func splitIDs(b []byte) ([]wire.ID, error) {
	if len(b)%wire.IDLen != 0 {
		return nil, fmt.Errorf("%d bytes, not a multiple of %d", len(b), wire.IDLen)
	}
	var ids []wire.ID
	for ; len(b) > 0; b = b[wire.IDLen:] {
		ids = append(ids, wire.ID(bytes.Clone(b[:wire.IDLen])))
	}
	return ids, nil
}
