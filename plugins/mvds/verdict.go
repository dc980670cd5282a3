package mvds

import (
	"context"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
)

// The validator hook (sync.v1 AckRequest.rejected and .deferred), as far
// as MVDS's model allows. MVDS has no validity states: a message is held
// or not, and delivered or not. So mvds does the part every sync layer
// owes: from the host's Ack on, a message the host rejected is no longer
// passed on by this node. Its OFFER and MESSAGE records (the relay offers
// share made, a request being answered) are deleted, so it is neither
// offered, relayed nor retransmitted from here, and a request for it is
// dropped (dropped_unknown_request) while this run remembers it (at most
// maxRejected ids; after a restart the records stay deleted, but a request
// that comes for it would be answered: an offer of it that went out
// before the host's verdict can still draw one). It stays stored, acked to
// members that send it, and is never delivered again. mvds does not
// provide syncv1.CapValidity: messages that depend on a rejected message
// are delivered as usual, and a deferred message (not acknowledged by the
// host) is delivered again after the next Start, as any unacknowledged
// delivery.

// maxRejected bounds the rejected ids a node remembers in memory.
const maxRejected = 65536

// rejectedSet is the rejected messages this run remembers, by group and
// id; the zero value is empty.
type rejectedSet map[string]struct{}

func rejectedKey(group []byte, id ID) string { return string(group) + string(id[:]) }

// has reports whether the host rejected message id of group; n.mu is
// held.
func (s rejectedSet) has(group []byte, id ID) bool {
	_, ok := s[rejectedKey(group, id)]
	return ok
}

// ackedIDs are the ids an Ack acknowledges: message_ids and the rejected
// ones, which the contract acknowledges whether or not message_ids names
// them.
func ackedIDs(req *syncv1.AckRequest) [][]byte {
	ids := req.GetMessageIds()
	if len(req.GetRejected()) == 0 {
		return ids
	}
	named := make(map[string]bool, len(ids))
	for _, id := range ids {
		named[string(id)] = true
	}
	ids = append([][]byte(nil), ids...)
	for _, r := range req.GetRejected() {
		if !named[string(r.GetMessageId())] {
			ids = append(ids, r.GetMessageId())
		}
	}
	return ids
}

// reject deletes the OFFER and MESSAGE records of the received messages
// of req's group that the host rejected, committed before it returns.
// Unknown ids, and messages sent from here, are left alone.
func (n *node) reject(ctx context.Context, req *syncv1.AckRequest) error {
	if len(req.GetRejected()) == 0 {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return err
	}
	g := n.groups[string(req.GetGroup())]
	if g == nil {
		return nil
	}
	tx, err := n.st.begin(ctx)
	if err != nil {
		return err
	}
	wrote := false
	for _, r := range req.GetRejected() {
		if len(r.GetMessageId()) != len(ID{}) {
			continue
		}
		id := ID(r.GetMessageId())
		info, found, err := tx.message(g.id, id)
		if err != nil {
			tx.rollback()
			return err
		}
		if !found || info.own {
			continue
		}
		if n.rejected == nil {
			n.rejected = rejectedSet{}
		}
		if len(n.rejected) < maxRejected {
			n.rejected[rejectedKey(g.id, id)] = struct{}{}
		}
		if _, err := tx.exec("drop rejected message's records", qDeleteMessageRecords, g.id, id[:], recRequest); err != nil {
			tx.rollback()
			return err
		}
		wrote = true
	}
	if !wrote {
		tx.rollback()
		return nil
	}
	return tx.commit()
}
