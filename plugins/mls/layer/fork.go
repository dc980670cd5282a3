package layer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Serverless commit ordering. docs/plugins/mls.md gives the rule, its
// safety argument and its limits; in short:
//
//   - Among valid Commits for the same epoch of a group, the one whose
//     MLSMessage encoding has the lowest SHA-256 wins (commitHash).
//   - A member that applies a Commit keeps the state from before it (a
//     snapshot) for settle_window. A Commit for that epoch with a lower
//     hash arriving within the window makes it restore the snapshot and
//     apply the winner (everything built on the loser is dropped; its own
//     Commits on it are re-proposed by reconcile).
//   - A losing Commit that arrives while the snapshot is kept is applied
//     to a copy of the snapshot, kept receive-only for branch_retention,
//     so that application messages sealed on the losing branch still open.
//   - Members announce (epoch, branch, tag) after every epoch change: to
//     the group in a group of at most status_to_group_max members, to the
//     epoch's committer in a larger one. The committer sends its Commit
//     and Welcome again with back-off, once per round to the group (or to
//     each member missing, when they are few) and naming the members that
//     have not shown the new epoch on its branch; those answer with a
//     status. None of this decides which Commit wins: it only spreads
//     Commits and detects forks.

// snapshot is a group's state before a Commit for its epoch was applied.
type snapshot struct {
	epoch uint64 // the epoch the state is in (the Commit's epoch)
	state []byte // group.State, secrets included: memory only
	next  []byte // hash of the Commit applied on top of it
	at    time.Time
}

func (s *snapshot) destroy() { clear(s.state) }

// sideBranch is a losing branch kept to open application messages sealed
// in it.
type sideBranch struct {
	g       *group.Group
	hash    []byte
	expires time.Time
}

// outgoing is a Commit this node made, retransmitted until every member
// has shown the epoch it leads to.
type outgoing struct {
	epoch   uint64 // the epoch the Commit was made in
	hash    []byte
	commit  []byte // envelope
	welcome []byte // envelope, nil without new members
	joiners map[string]bool
	pending map[string]bool // members that have not shown epoch+1 on this branch
	next    time.Time
	wait    time.Duration
	tries   int
}

// takeSnapshot records g's state before a Commit with hash next is
// applied; it returns nil if the state cannot be encoded.
func (l *Layer) takeSnapshot(c *conv, next []byte) *snapshot {
	st, err := c.g.State()
	if err != nil {
		return nil
	}
	return &snapshot{epoch: c.g.Epoch(), state: st, next: next, at: l.now()}
}

// pushSnapshot keeps s as the snapshot of its epoch, dropping those of its
// epoch and later ones.
func (c *conv) pushSnapshot(s *snapshot) {
	if s == nil {
		return
	}
	kept := c.snaps[:0]
	for _, o := range c.snaps {
		if o.epoch < s.epoch {
			kept = append(kept, o)
		} else {
			o.destroy()
		}
	}
	c.snaps = append(kept, s)
}

// snapshotAt returns the snapshot of epoch e, if one is kept.
func (c *conv) snapshotAt(e uint64) *snapshot {
	for _, s := range c.snaps {
		if s.epoch == e {
			return s
		}
	}
	return nil
}

// otherCommit handles a Commit for an epoch this member has left (it
// applied another Commit for it): a duplicate, a winner (roll back) or a
// loser (keep its branch readable); l.mu is held.
func (l *Layer) otherCommit(c *conv, e *envelope, f *commonv1.Frame, epoch uint64, h []byte) error {
	s := c.snapshotAt(epoch)
	onPath := slices.ContainsFunc(c.history, func(p pathEntry) bool { return p.epoch == epoch+1 && bytes.Equal(p.hash, h) })
	if onPath || s != nil && bytes.Equal(h, s.next) {
		// Already applied. A retransmission that lists this node is
		// answered by handleUp; any other copy (the group's, or one held
		// until the Welcome came) needs no answer: the status this node
		// sent when it entered the epoch is it.
		l.c.Duplicates.Inc()
		return nil
	}
	for _, b := range c.branches {
		if bytes.Equal(b.hash, h) {
			l.c.Duplicates.Inc()
			return nil
		}
	}
	if s == nil {
		return fmt.Errorf("%w: Commit for epoch %d, group in epoch %d beyond the settling window", ErrStale, epoch, c.g.Epoch())
	}
	alt, err := group.Restore(l.groupConfig(), s.state)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	ev, err := alt.Handle(e.message)
	if err != nil {
		alt.Destroy()
		return err
	}
	l.c.ForksDetected.Inc()
	l.c.ForksResolved.Inc()
	now := l.now()
	if bytes.Compare(h, s.next) > 0 {
		// A loser: keep its branch readable, stay on the winner.
		c.branches = append(c.branches, &sideBranch{g: alt, hash: h, expires: now.Add(l.cfg.BranchRetention)})
		l.retryUndecided(c)
		return nil
	}
	// A winner: roll back to the snapshot and apply it.
	l.c.Rollbacks.Inc()
	before := c.memberList()
	c.branches = append(c.branches, &sideBranch{g: c.g, hash: c.branch, expires: now.Add(l.cfg.BranchRetention)})
	c.g = alt
	c.enter(c.g.Epoch(), h, now)
	c.committer = nil
	if ev.SenderLeaf != nil {
		c.committer = bytes.Clone(ev.SenderLeaf.Credential.Identity)
	}
	lost := c.outbox[:0]
	for _, o := range c.outbox {
		if o.epoch < epoch {
			lost = append(lost, o)
		}
	}
	c.outbox = lost
	c.pushSnapshot(&snapshot{epoch: s.epoch, state: bytes.Clone(s.state), next: h, at: s.at})
	l.c.CommitsApplied.Inc()
	l.epochChanged(c, false, before)
	l.retryUndecided(c)
	return nil
}

// expireForks ends settling windows and losing branches; l.mu is held.
func (l *Layer) expireForks(c *conv, now time.Time) {
	kept := c.snaps[:0]
	for _, s := range c.snaps {
		if now.Sub(s.at) < l.cfg.SettleWindow {
			kept = append(kept, s)
		} else {
			s.destroy()
		}
	}
	c.snaps = kept
	bk := c.branches[:0]
	for _, b := range c.branches {
		if now.Before(b.expires) {
			bk = append(bk, b)
		} else {
			b.g.Destroy()
		}
	}
	c.branches = bk
}

// openInBranches tries a message on the losing branches.
func (c *conv) openInBranches(m *wire.MLSMessage) (*group.Event, error) {
	for _, b := range c.branches {
		if b.g.Removed() {
			continue
		}
		if ev, err := b.g.Handle(m); err == nil {
			return ev, nil
		}
	}
	return nil, errNoBranch
}

var errNoBranch = fmt.Errorf("%w: no branch opens it", ErrStale)

// statusTag is what a member of the current epoch says in its status: an
// exporter value bound to its identity, so that two members of the same
// epoch number compare their epoch secrets without revealing them.
func statusTag(g *group.Group, sender []byte) ([]byte, error) {
	return g.Export("strata mls status", sender, 16)
}

// statusFrame makes this node's status for c, for peer (nil: the group).
func (l *Layer) statusFrame(c *conv, peer []byte) *commonv1.Frame {
	tag, err := statusTag(c.g, l.self)
	if err != nil {
		return nil
	}
	env := &envelope{kind: kindStatus, groupID: c.id, epoch: c.g.Epoch(), branch: c.branch, sender: l.self, tag: tag}
	b, err := env.marshal()
	if err != nil {
		return nil
	}
	l.c.StatusSent.Inc()
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Peer: bytes.Clone(peer), Payload: b}
}

// sendStatus tells the group this node's epoch after an epoch change: in
// a group of at most status_to_group_max members the whole group (one
// frame; every member compares its epoch with everyone's), in a larger
// one only the committer of the Commit that entered the epoch, which is
// the member waiting for it (nobody, when this node is that committer or
// does not know it); l.mu is held.
func (l *Layer) sendStatus(c *conv) {
	if !c.live() {
		return
	}
	var peer []byte
	if len(c.members()) > l.cfg.StatusToGroupMax {
		if len(c.committer) != identitySize || bytes.Equal(c.committer, l.self) {
			return
		}
		peer = c.committer
	}
	if f := l.statusFrame(c, peer); f != nil {
		c.statusTo[string(peer)] = l.now()
		l.emit(f)
	}
}

// replyStatus answers a retransmission or a status with this node's
// status, at most once per retransmit_initial per member, and not within
// retransmit_initial of a status to the whole group; l.mu is held.
func (l *Layer) replyStatus(c *conv, peer []byte) {
	if !c.live() {
		return
	}
	if len(peer) != identitySize {
		peer = nil
	}
	now := l.now()
	if t, ok := c.statusTo[string(peer)]; ok && now.Sub(t) < l.cfg.RetransmitInitial {
		return
	}
	if t, ok := c.statusTo[""]; ok && now.Sub(t) < l.cfg.RetransmitInitial {
		return
	}
	c.statusTo[string(peer)] = now
	if f := l.statusFrame(c, peer); f != nil {
		l.emit(f)
	}
}

// handleStatus processes a member's status; l.mu is held.
func (l *Layer) handleStatus(e *envelope, f *commonv1.Frame) error {
	c := l.convs[string(e.groupID)]
	if len(f.GetConversation()) > 0 && !bytes.Equal(f.GetConversation(), e.groupID) {
		return ErrConversationMismatch
	}
	if len(e.tag) == 0 {
		return l.handleAsk(e, f) // no member of an epoch sends a status without a tag
	}
	if c == nil || !c.live() {
		return fmt.Errorf("%w: status for a group this node is not in", ErrUnknownConversation)
	}
	if _, ok := c.members()[string(e.sender)]; !ok || bytes.Equal(e.sender, l.self) {
		return fmt.Errorf("%w: status from a non-member", ErrNotMember)
	}
	l.c.StatusReceived.Inc()
	my := c.g.Epoch()
	tagOK := false
	if e.epoch == my {
		want, err := statusTag(c.g, e.sender)
		if err != nil {
			return err
		}
		tagOK = hmacEqual(want, e.tag)
		if tagOK {
			c.createdHere = false // another member is in it
		}
		if !tagOK {
			l.c.ForksDetected.Inc()
			for _, p := range c.history {
				if p.epoch == my {
					l.countUnresolved(c, p, e.sender)
				}
			}
			l.replyStatus(c, e.sender)
		}
	}
	if e.epoch < my {
		// A member that says it is on another branch of an epoch this
		// node has passed has forked from it.
		for _, p := range c.history {
			if p.epoch == e.epoch && !bytes.Equal(p.hash, e.branch) {
				l.c.ForksDetected.Inc()
				l.countUnresolved(c, p, e.sender)
			}
		}
	}
	for _, o := range c.outbox {
		if !o.pending[string(e.sender)] {
			continue
		}
		switch {
		case e.epoch == o.epoch+1 && bytes.Equal(e.branch, o.hash) && (e.epoch != my || tagOK),
			e.epoch > o.epoch+1 && e.epoch <= my && (e.epoch != my || tagOK):
			delete(o.pending, string(e.sender))
		case e.epoch <= o.epoch || e.epoch == o.epoch+1:
			// Behind, or on another branch: send it again now.
			o.next = l.now()
		}
	}
	l.pruneOutbox(c)
	return nil
}

// countUnresolved counts a fork with sender at the epoch p entered as one
// this member can no longer resolve if it entered that epoch longer than
// the settling window ago; once per member and epoch; l.mu is held.
func (l *Layer) countUnresolved(c *conv, p pathEntry, sender []byte) {
	key := fmt.Sprintf("%d/%x", p.epoch, sender)
	if l.now().Sub(p.at) >= l.cfg.SettleWindow && !c.unresolved[key] {
		c.unresolved[key] = true
		l.c.ForksUnresolved.Inc()
	}
}

// retransmit sends again what members have not acknowledged; l.mu is held.
func (l *Layer) retransmit(c *conv, now time.Time) {
	for _, o := range c.outbox {
		if now.Before(o.next) {
			continue
		}
		if o.tries >= l.cfg.RetransmitAttempts {
			l.c.RetransmitGaveUp.Add(uint64(len(o.pending)))
			clear(o.pending)
			continue
		}
		o.tries++
		var members, joiners [][]byte
		for id := range o.pending {
			if o.joiners[id] {
				joiners = append(joiners, []byte(id))
			} else {
				members = append(members, []byte(id))
			}
		}
		slices.SortFunc(members, bytes.Compare)
		slices.SortFunc(joiners, bytes.Compare)
		if len(members) > 0 {
			if env, err := l.again(o.commit, kindCommitAgain, members); err == nil {
				l.c.Retransmitted.Add(uint64(l.sendTo(c, env, members, l.toGroup(c, len(members)))))
			} else {
				l.env.Logger.Error("could not encode a Commit again", "error", err)
			}
		}
		if len(joiners) > 0 && o.welcome != nil {
			// The first time to the group; then to the group for the
			// joiners that asked for it (their hosts know the
			// conversation, so they read the group's shared address),
			// two or more of them, in the first retransmitsToReady
			// rounds, and to each other joiner that still has not shown
			// the epoch: a new member's host may not have subscribed to
			// the group's shared address (it learns the conversation
			// from the Welcome itself).
			if env, err := l.again(o.welcome, kindGroupWelcome, joiners); err == nil {
				n := 0
				if o.tries == 1 && l.toGroup(c, len(joiners)) {
					n = l.sendTo(c, env, joiners, true)
				} else {
					alone := joiners
					if o.tries <= retransmitsToReady {
						var ready, others [][]byte
						for _, id := range joiners {
							if c.ready[string(id)] {
								ready = append(ready, id)
							} else {
								others = append(others, id)
							}
						}
						if len(ready) >= 2 {
							n += l.sendTo(c, env, ready, true)
							alone = others
						}
					}
					n += l.sendTo(c, env, alone, false)
				}
				l.c.Retransmitted.Add(uint64(n))
			} else {
				l.env.Logger.Error("could not encode a Welcome again", "error", err)
			}
		}
		o.wait = min(o.wait*2, l.cfg.RetransmitMax)
		o.next = now.Add(o.wait)
	}
	l.pruneOutbox(c)
}

// retransmitsToReady is how many retransmission rounds of a Welcome go
// to the whole group for the joiners that asked for it before each of
// them is sent its own copy (a host that knew the conversation may have
// lost its subscription since).
const retransmitsToReady = 3

// again makes the envelope that sends a Commit or Welcome of the outbox
// (stored as first sent; a Welcome of an older version as a welcome
// envelope) again, naming the members that have not shown its epoch;
// l.mu is held.
func (l *Layer) again(stored []byte, kind uint8, listed [][]byte) ([]byte, error) {
	e, err := decodeEnvelope(stored)
	if err != nil {
		return nil, err
	}
	return (&envelope{kind: kind, committer: l.self, listed: listed, path: e.path, raw: e.raw}).marshal()
}

// pruneOutbox drops Commits every member has acknowledged.
func (l *Layer) pruneOutbox(c *conv) {
	kept := c.outbox[:0]
	changed := false
	for _, o := range c.outbox {
		if len(o.pending) > 0 {
			kept = append(kept, o)
		} else {
			changed = true
		}
	}
	c.outbox = kept
	if changed {
		l.markDirty(c)
	}
}

// writeOutbox replaces a group's outbox rows.
func writeOutbox(ctx context.Context, tx *sql.Tx, id []byte, rows []outboxRow) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE group_id = ?`, id); err != nil {
		return fmt.Errorf("store outbox: %w", err)
	}
	for _, o := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (group_id, epoch, hash, commit_, welcome, joiners, members) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, o.epoch, o.hash, o.commit, o.welcome, o.joiners, o.members); err != nil {
			return fmt.Errorf("store outbox: %w", err)
		}
	}
	return nil
}

// loadOutbox reads the outboxes: after a restart every pending member is
// sent the Commit again at once.
func (l *Layer) loadOutbox(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT group_id, epoch, hash, commit_, welcome, joiners, members FROM outbox ORDER BY group_id, epoch`)
	if err != nil {
		return fmt.Errorf("load outbox: %w", err)
	}
	defer rows.Close()
	now := l.now()
	for rows.Next() {
		var gid, hash, commit, welcome, joiners, members []byte
		var epoch int64
		if err := rows.Scan(&gid, &epoch, &hash, &commit, &welcome, &joiners, &members); err != nil {
			return fmt.Errorf("load outbox: %w", err)
		}
		c := l.convs[string(gid)]
		if c == nil {
			continue
		}
		js, err := splitIDs(joiners)
		if err != nil {
			return err
		}
		ms, err := splitIDs(members)
		if err != nil {
			return err
		}
		o := &outgoing{epoch: uint64(epoch), hash: hash, commit: commit, welcome: welcome, joiners: map[string]bool{}, pending: map[string]bool{}, next: now, wait: l.cfg.RetransmitInitial}
		for _, id := range js {
			o.joiners[string(id)] = true
		}
		for _, id := range ms {
			o.pending[string(id)] = true
		}
		c.outbox = append(c.outbox, o)
	}
	return rows.Err()
}
