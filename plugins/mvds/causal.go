package mvds

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"
)

// Causal delivery (4/MVDS-META "consistent" resolution): a message goes up
// only once every parent is done here (delivered, or sent from here).
// Until then it is pending: held within max_pending per group, with a
// REQUEST of each parent this node does not hold to the member it came
// from and to its author; when a parent is delivered, every pending child
// it made ready is delivered in the same transaction, parents first.
// Where the id covers the parents (bound wire), a cycle is impossible (a
// message would have to name the hash of a body that contains that name);
// with the spec's wire a member can make one up (a message naming itself
// is dropped as malformed), and its messages wait until pending_expiry
// drops them, as any message whose parents never come.

// missing returns the parents of a message that are not done here, nil if
// none.
func (n *node) missing(b *batch, g *group, parents []ID) ([]ID, error) {
	var out []ID
	for _, p := range parents {
		info, found, err := b.tx.message(g.id, p)
		if err != nil {
			return nil, err
		}
		if !found || !info.done() {
			out = append(out, p)
		}
	}
	return out, nil
}

// hold makes pm wait for its missing parents and requests those that are
// not stored here at all.
func (n *node) hold(b *batch, g *group, pm *pendingMsg, missing []ID) error {
	g.pending[pm.id] = pm
	for _, p := range missing {
		g.waiting[p] = append(g.waiting[p], pm.id)
		_, found, err := b.tx.message(g.id, p)
		if err != nil {
			return err
		}
		if found {
			continue // stored, itself waiting for a parent
		}
		askers := [][]byte{pm.from}
		if !bytes.Equal(pm.author, pm.from) && !bytes.Equal(pm.author, n.self) && g.isMember(pm.author) {
			askers = append(askers, pm.author)
		}
		for _, peer := range askers {
			capped, err := n.request(b, g, peer, p)
			if err != nil {
				return err
			}
			if capped {
				n.c.requestsCapped.Add(1)
			}
		}
	}
	return nil
}

// deliver delivers first (whose payload is given) and then every pending
// message that it made ready, transitively, parents before children. Each
// delivered mark, and for a persistent message its unacknowledged
// delivery (which takes the next sequence number, so that a redelivery
// keeps this order), is written in b's transaction, so it is committed
// before the layer emits the UP frames.
func (n *node) deliver(b *batch, g *group, first *pendingMsg, payload []byte) error {
	delete(g.pending, first.id)
	queue := []*pendingMsg{first}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		p := payload
		if m != first {
			var err error
			if p, err = n.payloadOf(b, g, m); err != nil {
				return err
			}
		}
		switch {
		case m.ephemeral:
			now, window := b.now.UnixMilli(), n.cfg.EphemeralWindow.Milliseconds()
			ms, _ := ephemeralMillis(m.timestamp, now, window)
			if err := b.tx.markEphemeral(g.id, m.id, max(ms, now)+window); err != nil {
				return err
			}
		case m.silent: // went up as ephemeral already
			if err := b.tx.markDelivered(g.id, m.id); err != nil {
				return err
			}
			if err := n.share(b, g, m); err != nil {
				return err
			}
		default:
			if err := b.tx.markDelivered(g.id, m.id); err != nil {
				return err
			}
			if err := b.tx.addUnacked(g.id, m.id, m.trace); err != nil {
				return err
			}
			if err := n.share(b, g, m); err != nil {
				return err
			}
		}
		if !m.silent {
			b.out = append(b.out, delivery{group: g.id, id: m.id, author: m.author, payload: p, ephemeral: m.ephemeral, trace: m.trace})
		}
		children := g.waiting[m.id]
		delete(g.waiting, m.id)
		if m.ephemeral {
			continue // never a parent
		}
		for _, c := range children {
			cm := g.pending[c]
			if cm == nil {
				continue
			}
			missing, err := n.missing(b, g, cm.parents)
			if err != nil {
				return err
			}
			if missing == nil {
				delete(g.pending, c)
				queue = append(queue, cm)
			}
		}
	}
	return nil
}

// payloadOf returns a pending message's payload: kept in memory for an
// ephemeral one, read back from the store for a persistent one.
func (n *node) payloadOf(b *batch, g *group, m *pendingMsg) ([]byte, error) {
	if m.ephemeral {
		return m.payload, nil
	}
	st, ok, err := b.tx.messageBody(g.id, m.id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("mvds: pending message %s is not stored", m.id)
	}
	c, err := st.content()
	if err != nil {
		return nil, fmt.Errorf("mvds: stored message %s: %w", m.id, err)
	}
	return c.payload, nil
}

// share offers a delivered message to every member that is neither its
// author nor the member it came from (relay; off with relay false). A
// member that holds it acks the offer; one that missed it requests it.
// Offers, not messages, so that members that hold it cost an id, not a
// body: status-im/mvds relays the same way. With relay_delay the offers
// wait that many epochs, and any sign in the meantime that a member holds
// the message (its ack, seen with group_acks; its offer; the message from
// it) deletes the offer to it (clearSent): in a group where everyone is
// online, nothing is relayed, and a member that was away still is.
func (n *node) share(b *batch, g *group, m *pendingMsg) error {
	if !n.cfg.Relay {
		return nil
	}
	for _, q := range g.members {
		if bytes.Equal(q, n.self) || bytes.Equal(q, m.author) || bytes.Equal(q, m.from) {
			continue
		}
		added, err := b.tx.addState(g.id, q, m.id, recOffer, n.epoch+1+n.cfg.RelayDelay)
		if err != nil {
			return err
		}
		if added {
			n.c.relayed.Add(1)
			if n.cfg.RelayDelay == 0 {
				n.markFresh(g, q)
			}
		}
	}
	return nil
}

// expire drops the pending messages that have waited too long:
// pending_expiry for persistent ones (deleted from the store, though they
// were acked: their parents are not coming), ephemeral_window for
// ephemeral ones. It says whether it wrote to the store.
func (n *node) expire(tx *txn, now time.Time) (bool, error) {
	wrote := false
	for _, g := range n.groups {
		for id, pm := range g.pending {
			limit := n.cfg.PendingExpiry
			if pm.ephemeral {
				limit = n.cfg.EphemeralWindow
			}
			if now.Sub(pm.received) <= limit {
				continue
			}
			delete(g.pending, id)
			for _, p := range pm.parents {
				kids := slices.DeleteFunc(g.waiting[p], func(c ID) bool { return c == id })
				if len(kids) == 0 {
					delete(g.waiting, p)
				} else {
					g.waiting[p] = kids
				}
			}
			if !pm.ephemeral {
				if err := tx.deleteMessage(g.id, id); err != nil {
					return wrote, err
				}
				wrote = true
			}
			n.c.drop(dropPendingExpired)
		}
	}
	return wrote, nil
}

// start is the node's part of a Start. It delivers the stored messages
// whose parents are all done (none, unless a crash of an older version or
// a bug left one behind: a message is delivered in the transaction that
// stores it or the parent it waited for), and returns
// them with upto, the sequence number of the last delivery made before:
// the layer redelivers the unacknowledged deliveries up to upto
// (redeliver), and then emits ds, which come after them.
func (n *node) start(ctx context.Context) (upto int64, ds []delivery, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	// Once begun, the transaction runs to its end (see receive).
	tx, err := n.st.begin(context.WithoutCancel(ctx))
	if err != nil {
		n.fail(err)
		return 0, nil, err
	}
	fail := func(err error) (int64, []delivery, error) {
		tx.rollback()
		n.fail(err)
		return 0, nil, err
	}
	if _, upto, err = tx.unackedCount(); err != nil {
		return fail(err)
	}
	b := &batch{tx: tx, now: n.now()}
	for _, g := range n.groups {
		ids := make([]ID, 0, len(g.pending))
		for id, pm := range g.pending {
			if !pm.ephemeral {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			pm := g.pending[id]
			if pm == nil {
				continue // delivered as another's child
			}
			missing, err := n.missing(b, g, pm.parents)
			if err == nil && missing == nil {
				var p []byte
				if p, err = n.payloadOf(b, g, pm); err == nil {
					err = n.deliver(b, g, pm, p)
				}
			}
			if err != nil {
				return fail(err)
			}
		}
	}
	if len(b.out) > 0 {
		if err := tx.commit(); err != nil {
			n.fail(err)
			return 0, nil, err
		}
	} else {
		tx.rollback()
	}
	n.delivered(b.out)
	return upto, b.out, nil
}
