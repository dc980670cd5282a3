package layer

import (
	"bytes"
	"slices"
	"time"
)

// Leaf refresh (post-compromise security). A member's leaf changes only
// when it commits with an UpdatePath, so each member refreshes its own
// leaf once update_interval has passed since it last changed: it commits
// an empty Commit with a path (RFC 9420 §12.4: a Commit may carry no
// proposals; its path replaces the committer's leaf and direct path).
// A membership Commit it makes meanwhile carries the path instead.
//
// Only one member should commit per epoch, so the refresh waits for its
// turn: with the group's members sorted by identity (n of them) and this
// member at index i, its place in epoch e is p = (i − e) mod n, and it
// commits only once settle_window + p × retransmit_initial have passed
// since the later of the group's last epoch change and the time its leaf
// became due. Of the members due at the same time, the first in the
// rotation commits and the others see the new epoch and wait again; every
// epoch moves the rotation by one, so a member waits at most
// settle_window when it is first. A race (two members with different views of the epoch) is
// resolved by the fork choice; the loser's leaf is back to its old one,
// so it refreshes again at its next turn.

// leafSeen is a member's leaf encryption key and when this node first saw
// it; prev is the one before, so that a rollback restores its time.
type leafSeen struct {
	key  []byte
	at   time.Time
	prev *leafSeen
}

// seeLeaves records every member's leaf after the group changed; a leaf
// back to the one before (a rollback) gets its old time back; l.mu is
// held.
func (l *Layer) seeLeaves(c *conv, now time.Time) {
	if !c.live() {
		return
	}
	seen := map[string]leafSeen{}
	for _, leaf := range c.g.Members() {
		id := string(leaf.Credential.Identity)
		key := leaf.EncryptionKey
		old, ok := c.leaves[id]
		switch {
		case !ok:
			at := now
			if id == string(l.self) && !c.leafAt.IsZero() {
				at = c.leafAt
			}
			seen[id] = leafSeen{key: bytes.Clone(key), at: at}
		case bytes.Equal(old.key, key):
			seen[id] = old
		case old.prev != nil && bytes.Equal(old.prev.key, key):
			seen[id] = *old.prev
		default:
			prev := old
			prev.prev = nil
			seen[id] = leafSeen{key: bytes.Clone(key), at: now, prev: &prev}
		}
	}
	c.leaves = seen
	if own, ok := seen[string(l.self)]; ok && !own.at.Equal(c.leafAt) {
		c.leafAt = own.at
		l.markDirty(c)
	}
}

// leafDue reports whether this node's leaf in c is due for a refresh;
// l.mu is held.
func (l *Layer) leafDue(c *conv, now time.Time) bool {
	return l.cfg.UpdateInterval > 0 && !c.leafAt.IsZero() && now.Sub(c.leafAt) >= l.cfg.UpdateInterval
}

// refresh commits an empty Commit with a path when this node's leaf is
// due and it is its turn in the rotation; l.mu is held.
func (l *Layer) refresh(c *conv, now time.Time) {
	if !c.live() || len(c.outbox) > 0 || !l.leafDue(c, now) {
		return
	}
	if c.desired != nil && !c.wants(l.self) {
		return // on its way out
	}
	members := c.memberList()
	n := len(members)
	if n < 2 {
		return // alone: nothing to protect from anyone
	}
	i := slices.IndexFunc(members, func(id []byte) bool { return bytes.Equal(id, l.self) })
	if i < 0 {
		return
	}
	p := (i - int(c.g.Epoch()%uint64(n)) + n) % n
	start := c.since
	if due := c.leafAt.Add(l.cfg.UpdateInterval); due.After(start) {
		start = due
	}
	if now.Before(start.Add(l.cfg.SettleWindow + time.Duration(p)*l.cfg.RetransmitInitial)) {
		return
	}
	l.c.LeafUpdates.Inc()
	l.commit(c, nil, nil, true)
}

// countStale counts, over every group, the members whose leaf this node
// has not seen change for twice update_interval (this node's own
// included), at most every 10 s; l.mu is held.
func (l *Layer) countStale(now time.Time) {
	if now.Sub(l.staleAt) < 10*time.Second && !now.Before(l.staleAt) {
		return // it changes slowly: not at every tick
	}
	l.staleAt = now
	var k uint64
	if l.cfg.UpdateInterval > 0 {
		for _, c := range l.convs {
			if !c.live() {
				continue
			}
			for _, s := range c.leaves {
				if now.Sub(s.at) >= 2*l.cfg.UpdateInterval {
					k++
				}
			}
		}
	}
	l.stale.Store(k)
}

// leafUnix is the stored form of leafAt: Unix seconds, 0 when unknown.
func leafUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
