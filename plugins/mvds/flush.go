package mvds

import (
	"bytes"
	"context"
)

// Eager transmission (config eager, the default). 2/MVDS sends only at
// epochs, so a new message waits half an epoch on average before it
// leaves. An eager node sends what is new at once instead: after a Send,
// or a batch of input that made records, the layer asks for a flush
// (Layer.flushLoop); one runs at once when none is running, and while one
// runs the requests gather and the next flush takes everything they
// brought (coalescing, as Nagle's algorithm does). What is new is what was
// never sent: a record with send count 0 (a message or offer of a Send, a
// request for a missing message, a request answered, a relay's offer) and
// an ephemeral message. Acks are not new: they wait for the next epoch, or
// ride on a payload that a flush sends to the same member anyway. Epochs
// then time only what follows: retransmissions, acks, and whatever a flush
// could not fit.
//
// A record that a flush sends is scheduled as if it had gone at the next
// epoch, in which it was due: its next transmission is backoff_base epochs
// after that one, exactly when it would have been without eager, so eager
// changes when the first copy leaves and nothing else.

// flush builds a payload for every member that has something new, with
// what is new for it (as much as fits) and the acks owed to it, and
// records the transmissions. more says that something new did not fit and
// waits for another flush. The record updates are committed before the
// payloads are returned, without an fsync of their own: losing them in a
// crash of the machine only sends those records again.
func (n *node) flush(ctx context.Context) (out []outbound, more bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return nil, false, err
	}
	if !n.fresh {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	// Once begun, the transaction runs to its end (see receive).
	tx, err := n.st.beginLight(context.WithoutCancel(ctx))
	if err != nil {
		n.fail(err)
		return nil, false, err
	}
	defer tx.rollback()
	n.fresh = false
	wrote := false
	due := n.epoch + 1 // a fresh record is due at the next epoch
	limit := 3 * n.cfg.MaxIDs
	for _, g := range n.groups {
		if len(g.fresh) == 0 {
			continue
		}
		var read map[string]freshRows // what flushGroup read and left
		if n.cfg.Multicast {
			var o *outbound
			var changed bool
			o, read, changed, err = n.flushGroup(tx, g, due, limit)
			if err != nil {
				n.fail(err)
				return nil, false, err
			}
			wrote = wrote || changed
			if o != nil {
				out = append(out, *o)
			}
		}
		for _, peer := range g.members {
			if !g.fresh[string(peer)] || bytes.Equal(peer, n.self) {
				continue
			}
			delete(g.fresh, string(peer))
			pb := newPayloadBuilder(n.cfg.MaxFrame, n.cfg.MaxIDs)
			n.takeOnce(g, peer, pb)
			fr, ok := read[string(peer)]
			if !ok {
				if fr.rows, err = tx.freshStates(g.id, peer, due, limit); err != nil {
					n.fail(err)
					return nil, false, err
				}
				fr.full = len(fr.rows) == limit
			}
			changed, left, err := n.takeRows(tx, g, peer, pb, fr.rows, due)
			if err != nil {
				n.fail(err)
				return nil, false, err
			}
			wrote = wrote || changed
			if pb.empty() {
				continue // what is left goes at the next epoch
			}
			if left > 0 || fr.full || len(g.once[string(peer)]) > 0 {
				n.markFresh(g, peer)
				more = true
			}
			n.takeAcks(g, peer, pb) // free riders: the payload goes anyway
			payload, err := pb.encode()
			if err != nil {
				n.fail(err)
				return nil, false, err
			}
			n.c.payloadsSent.Add(1)
			n.c.eagerPayloads.Add(1)
			n.c.bytesSent.Add(uint64(len(payload)))
			trace := pb.trace
			if trace == 0 {
				trace = pb.ackTrace
			}
			out = append(out, outbound{group: g.id, peer: peer, payload: payload, ephemeral: pb.ephemeralOnly, trace: trace})
		}
	}
	if !wrote {
		return out, more, nil
	}
	if err := tx.setMeta(metaEpoch, int64(n.epoch)); err != nil {
		n.fail(err)
		return nil, false, err
	}
	if err := tx.commit(); err != nil {
		n.fail(err)
		return nil, false, err
	}
	return out, more, nil
}

// flushGroup sends, as one payload for every member (an outbound without
// a peer, which the layers below send to the whole group), the messages
// that are new for every other member of a group of three or more: this
// node's own messages of a Send, sent whole (batch mode). Their records
// are updated for each member as if the payload had gone to each, so
// retransmissions and acks stay per member (but see groupAgain and
// groupAcks). Whatever is new for some members only goes in their own
// payloads, after this.
//
// It returns, per member, the fresh records it read and did not send, so
// that the members' own payloads need not read them again.
func (n *node) flushGroup(tx *txn, g *group, due uint64, limit int) (*outbound, map[string]freshRows, bool, error) {
	var others [][]byte
	for _, p := range g.members {
		if !bytes.Equal(p, n.self) {
			if !g.fresh[string(p)] {
				return nil, nil, false, nil
			}
			others = append(others, p)
		}
	}
	if len(others) < 2 {
		return nil, nil, false, nil
	}
	rows := make([][]stateRow, len(others))
	var err error
	for i, p := range others {
		if rows[i], err = tx.freshStates(g.id, p, due, limit); err != nil {
			return nil, nil, false, err
		}
	}
	// The messages new for every member, in the first member's order.
	common := map[ID]int{}
	for _, rs := range rows {
		for _, r := range rs {
			if r.typ == recMessage && r.held {
				common[r.id]++
			}
		}
	}
	pb := newPayloadBuilder(n.cfg.MaxFrame, n.cfg.MaxIDs)
	taken := map[ID]bool{}
	forAll := func(r stateRow) bool { return r.typ == recMessage && r.held && common[r.id] == len(others) }
	if err := n.fillGroupPayload(g, pb, rows[0], forAll, taken); err != nil {
		return nil, nil, false, err
	}
	read := make(map[string]freshRows, len(others))
	for i, p := range others {
		fr := freshRows{full: len(rows[i]) == limit}
		for _, r := range rows[i] {
			if !taken[r.id] || r.typ != recMessage {
				fr.rows = append(fr.rows, r)
			}
		}
		read[string(p)] = fr
	}
	if len(taken) == 0 {
		return nil, read, false, nil
	}
	if n.cfg.GroupAcks {
		seen := map[ID]bool{}
		for _, p := range others {
			n.takeAcksOnce(g, p, pb, seen) // free riders: the payload reaches every member
		}
	}
	for i, rs := range rows {
		for _, r := range rs {
			if !taken[r.id] || r.typ != recMessage {
				continue
			}
			n.countSent(r)
			if err := tx.updateState(g.id, others[i], r.rowid, r.count+1, nextEpoch(r.count+1, due, n.cfg.BackoffBase, n.cfg.BackoffMax)); err != nil {
				return nil, nil, false, err
			}
		}
	}
	payload, err := pb.encode()
	if err != nil {
		return nil, nil, false, err
	}
	n.c.payloadsSent.Add(1)
	n.c.eagerPayloads.Add(1)
	n.c.multicastPayloads.Add(1)
	n.c.bytesSent.Add(uint64(len(payload)))
	return &outbound{group: g.id, payload: payload, trace: pb.trace}, read, true, nil
}

// freshRows are a member's fresh records as one read found them; full
// says the read stopped at its limit, so that more may wait.
type freshRows struct {
	rows []stateRow
	full bool
}
