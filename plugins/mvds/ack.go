package mvds

import (
	"context"
	"fmt"
)

// Acknowledgements from the host (syncv1 Ack): exactly once to the host.
//
// A persistent message that goes up is recorded, in the transaction that
// commits its delivered mark, as an unacknowledged delivery with the next
// delivery sequence number (the store's unacked table). The host's Ack
// deletes the record, durably before Ack returns. After every Start the
// layer delivers again, in sequence order (the order they first went up,
// so parents before children), every delivery still recorded: the host
// may have lost the frames, or died before it stored them. Within one run
// nothing goes up twice: the delivered mark is committed before the frame
// leaves, and what a Start redelivers is what earlier runs delivered.
// Ephemeral messages are delivered once and never recorded, so they are
// neither acknowledged nor redelivered.

// MaxAckIDs is the most message ids one Ack may carry.
const MaxAckIDs = 4096

// redeliveryPage is how many unacknowledged deliveries a Start reads, and
// emits, at a time.
const redeliveryPage = 256

// delivered counts the persistent deliveries of a committed batch as
// unacknowledged; n.mu is held.
func (n *node) delivered(ds []delivery) {
	for _, d := range ds {
		if !d.ephemeral {
			n.unacked++
		}
	}
}

// ack records that the host has taken the delivered messages ids of a
// group: they are not delivered again. It returns once that is committed.
// Ids that match no unacknowledged delivery of the group (unknown, not
// delivered yet, sent from here, ephemeral, of another group, acknowledged
// already, or not 32 bytes) are ignored and counted. An empty group id, or
// more than MaxAckIDs ids, is refused.
func (n *node) ack(ctx context.Context, groupID []byte, ids [][]byte) (acked, ignored int, err error) {
	if len(groupID) == 0 {
		return 0, 0, fmt.Errorf("%w: no group", errInvalid)
	}
	if len(ids) > MaxAckIDs {
		return 0, 0, fmt.Errorf("%w: %d ids, at most %d", errInvalid, len(ids), MaxAckIDs)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return 0, 0, err
	}
	var valid [][]byte
	if n.groups[string(groupID)] != nil {
		for _, id := range ids {
			if len(id) == len(ID{}) {
				valid = append(valid, id)
			}
		}
	}
	ignored = len(ids) - len(valid)
	if len(valid) == 0 || n.unacked == 0 {
		n.c.hostAcksIgnored.Add(uint64(len(ids)))
		return 0, len(ids), nil
	}
	// Memory changes only once the transaction is committed, so a storage
	// error leaves the node as it was (and serving): the host retries.
	tx, err := n.st.begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range valid {
		ok, err := tx.ack(groupID, id)
		if err != nil {
			tx.rollback()
			return 0, 0, err
		}
		if ok {
			acked++
		} else {
			ignored++
		}
	}
	if acked == 0 {
		tx.rollback()
	} else if err := tx.commit(); err != nil {
		return 0, 0, err
	}
	n.unacked -= acked
	n.c.hostAcks.Add(uint64(acked))
	n.c.hostAcksIgnored.Add(uint64(ignored))
	return acked, ignored, nil
}

// redeliver returns up to limit unacknowledged deliveries whose sequence
// number is in (after, upto], in the order they first went up, and the
// sequence number of the last one (after if none). A storage error other
// than ctx's end fails the node: the deliveries it did not return would be
// missing before later children.
func (n *node) redeliver(ctx context.Context, after, upto int64, limit int) ([]delivery, int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return nil, after, err
	}
	if err := ctx.Err(); err != nil {
		return nil, after, err
	}
	fail := func(err error) ([]delivery, int64, error) {
		if ctx.Err() == nil {
			n.fail(err)
		}
		return nil, after, err
	}
	tx, err := n.st.begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.rollback() // it only reads
	rows, err := tx.unacked(after, upto, limit)
	if err != nil {
		return fail(err)
	}
	out := make([]delivery, 0, len(rows))
	for _, r := range rows {
		c, err := r.content()
		if err != nil {
			return fail(fmt.Errorf("mvds: stored message %s: %w", r.id, err))
		}
		out = append(out, delivery{group: r.group, id: r.id, author: c.author, payload: c.payload, trace: r.trace})
		after = r.seq
	}
	return out, after, nil
}
