package layer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/framing"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }

// handleDown seals a DOWN frame for its conversation, or holds it until
// the group is ready; l.mu is held.
func (l *Layer) handleDown(f *commonv1.Frame) error {
	if len(f.GetPayload()) > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrOversize, len(f.GetPayload()))
	}
	c := l.convs[string(f.GetConversation())]
	if c == nil {
		return fmt.Errorf("%w: %x", ErrUnknownConversation, f.GetConversation())
	}
	ready, err := l.downReady(c, f)
	if err != nil {
		return err
	}
	if !ready && c.lazyPair() {
		// A conversation of two whose group is created now (lazy.go).
		l.need(c)
		if ready, err = l.downReady(c, f); err != nil {
			return err
		}
	}
	if !ready {
		l.holdDown(c, f)
		return nil
	}
	return l.seal(c, f)
}

// downReady reports whether a DOWN frame can be sealed now, or why it
// never can; l.mu is held.
func (l *Layer) downReady(c *conv, f *commonv1.Frame) (bool, error) {
	if c.removed {
		return false, fmt.Errorf("%w: this node was removed from %x", ErrNotMember, c.id)
	}
	peer := f.GetPeer()
	if len(peer) == 0 {
		return c.live(), nil
	}
	if len(peer) != identitySize {
		return false, fmt.Errorf("%w: %d bytes", ErrBadPeer, len(peer))
	}
	if bytes.Equal(peer, l.self) {
		return false, fmt.Errorf("%w: a frame for this node itself", ErrNotMember)
	}
	if c.live() {
		if _, ok := c.members()[string(peer)]; ok {
			return true, nil
		}
	}
	if !c.wants(peer) {
		return false, fmt.Errorf("%w: %x is not in %x", ErrNotMember, peer, c.id)
	}
	return false, nil // a member on its way in
}

// holdDown keeps a DOWN frame until its group is ready, dropping the
// oldest beyond held_frames. A frame equal to one held already (same peer,
// same payload: the layer above sending again what waits here, as a sync
// layer retransmits what was not acknowledged) is not held twice: it would
// go out twice when the group is ready, each copy a message on the wire.
// l.mu is held.
func (l *Layer) holdDown(c *conv, f *commonv1.Frame) {
	for _, h := range c.held {
		if bytes.Equal(h.GetPeer(), f.GetPeer()) && bytes.Equal(h.GetPayload(), f.GetPayload()) {
			l.c.HeldDuplicates.Inc()
			return
		}
	}
	if len(c.held) >= l.cfg.HeldFrames {
		c.held = c.held[1:]
		l.c.drop(ErrHeldOverflow)
	}
	c.held = append(c.held, f)
	l.c.HeldDown.Inc()
}

// releaseHeld seals the held DOWN frames that can go now; l.mu is held.
func (l *Layer) releaseHeld(c *conv) {
	held := c.held
	c.held = nil
	for _, f := range held {
		ready, err := l.downReady(c, f)
		switch {
		case err != nil:
			l.c.drop(err)
		case !ready:
			c.held = append(c.held, f)
		default:
			l.c.ReleasedDown.Inc()
			if err := l.seal(c, f); err != nil {
				l.c.drop(err)
			}
		}
	}
}

// seal encrypts a DOWN frame's payload in the current epoch and sends it
// down with the frame's peer (empty: the group), trace id and hints; l.mu
// is held.
func (l *Layer) seal(c *conv, f *commonv1.Frame) error {
	m, err := c.g.Protect(f.GetPayload(), nil)
	if err != nil {
		return err
	}
	l.markDirty(c) // a generation was used: stored before the frame leaves
	raw, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	payload, err := (&envelope{kind: kindApplication, raw: raw}).marshal()
	if err != nil {
		return err
	}
	l.emit(&commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: f.GetTraceId(),
		Conversation: bytes.Clone(c.id), Peer: bytes.Clone(f.GetPeer()), Hints: f.GetHints(), Payload: payload,
	})
	l.c.Sealed.Inc()
	return nil
}

// handleUp opens an UP frame; at is when it first arrived (frames held
// for later keep it); l.mu is held.
func (l *Layer) handleUp(f *commonv1.Frame, at time.Time) error {
	e, err := decodeEnvelope(f.GetPayload())
	if err != nil {
		return err
	}
	switch e.kind {
	case kindStatus:
		return l.handleStatus(e, f)
	case kindGroupAsk:
		return l.handleAsk(e, f)
	case kindWelcome, kindGroupWelcome:
		return l.handleWelcome(e, f)
	case kindKeyPackage:
		return l.handleOffer(e, f)
	}
	gid, epoch := messageGroup(e.message)
	if len(f.GetConversation()) > 0 && !bytes.Equal(f.GetConversation(), gid) {
		return fmt.Errorf("%w: frame for %x, message for %x", ErrConversationMismatch, f.GetConversation(), gid)
	}
	c := l.convs[string(gid)]
	if c != nil && c.removed {
		return group.ErrNotMember
	}
	if c == nil || c.g == nil {
		return l.holdOrphan(f, at)
	}
	if e.kind == kindCommit || e.kind == kindCommitAgain {
		err := l.handleCommit(c, e, f, epoch, at)
		if e.kind == kindCommitAgain && e.lists(l.self) && c.live() && c.g.Epoch() >= epoch {
			// The committer has not seen this node's status for the
			// epoch its Commit leads to: this node says where it is. It
			// has applied the Commit, or is on another branch (which the
			// status's branch and tag show the committer), or the Commit
			// did not apply here (the committer sends it again).
			l.replyStatus(c, e.committer)
		}
		return err
	}
	return l.handleApp(c, e, f, epoch, at, false)
}

// handleApp opens an application message and hands it up with its
// sender's identity; l.mu is held.
func (l *Layer) handleApp(c *conv, e *envelope, f *commonv1.Frame, epoch uint64, at time.Time, retried bool) error {
	h := sha256.Sum256(e.raw)
	if l.seen.has(h) {
		return ErrReplay
	}
	if epoch > c.g.Epoch() {
		return l.holdEarly(c, f, at)
	}
	l.markDirty(c)
	ev, err := c.g.Handle(e.message)
	if err != nil {
		var berr error
		if ev, berr = c.openInBranches(e.message); berr != nil {
			if !retried && errors.Is(err, framing.ErrDecrypt) {
				// Perhaps sealed on a branch this node has not seen yet:
				// dropped and counted, and tried again if one appears.
				l.keepUndecided(c, f, at)
			}
			return err
		}
		l.c.BranchOpened.Inc()
	}
	if ev.Kind != group.EventApplication || ev.SenderLeaf == nil {
		return fmt.Errorf("%w: not an application message", ErrMalformed)
	}
	sender := ev.SenderLeaf.Credential.Identity
	if bytes.Equal(sender, l.self) {
		return fmt.Errorf("%w: this node's own message came back", ErrNotMember)
	}
	l.seen.add(h)
	c.createdHere = false // another member is in it
	l.emit(&commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_UP, TraceId: f.GetTraceId(),
		Conversation: bytes.Clone(c.id), Peer: bytes.Clone(sender), Hints: f.GetHints(), Payload: ev.ApplicationData,
	})
	l.c.Opened.Inc()
	return nil
}

// handleCommit applies a Commit of the current epoch, holds one of a
// later epoch, and hands one of an earlier epoch to the fork choice; l.mu
// is held.
func (l *Layer) handleCommit(c *conv, e *envelope, f *commonv1.Frame, epoch uint64, at time.Time) error {
	h := commitHash(e.raw)
	switch cur := c.g.Epoch(); {
	case epoch > cur:
		return l.holdEarly(c, f, at)
	case epoch < cur:
		return l.otherCommit(c, e, f, epoch, h)
	}
	snap := l.takeSnapshot(c, h)
	before := c.memberList()
	ev, err := c.g.Handle(e.message)
	if err != nil {
		if snap != nil {
			snap.destroy()
		}
		return err
	}
	l.c.CommitsApplied.Inc()
	c.createdHere = false
	c.committer = nil
	if ev.SenderLeaf != nil {
		c.committer = bytes.Clone(ev.SenderLeaf.Credential.Identity)
	}
	if ev.Removed {
		if snap != nil {
			snap.destroy()
		}
		l.removedFrom(c)
		return nil
	}
	c.enter(c.g.Epoch(), h, l.now())
	c.pushSnapshot(snap)
	l.epochChanged(c, false, before)
	return nil
}

// removedFrom ends this node's part in a group a Commit removed it from;
// l.mu is held.
func (l *Layer) removedFrom(c *conv) {
	var members [][]byte
	for _, id := range c.memberList() {
		if !bytes.Equal(id, l.self) {
			members = append(members, id)
		}
	}
	c.destroy()
	c.g = nil
	c.removed = true
	c.outbox = nil
	for range c.held {
		l.c.drop(ErrNotMember)
	}
	c.held = nil
	c.early = nil
	l.markDirty(c)
	l.events = append(l.events, &commonv1.Event{Kind: &commonv1.Event_Conversation{Conversation: &commonv1.ConversationLearned{
		Id: bytes.Clone(c.id), Members: members, Removed: true,
	}}})
}

// handleWelcome joins a group from a Welcome for one of this node's
// KeyPackages; l.mu is held.
//
// A group_welcome goes to the whole group: a member it does not list
// ignores it. Its committer is where the answers go (a status, a
// KeyPackage offer); an older welcome envelope was addressed to this
// node by its committer.
func (l *Layer) handleWelcome(e *envelope, f *commonv1.Frame) error {
	committer := e.committer
	if e.kind == kindWelcome {
		committer = f.GetPeer()
	} else if !e.lists(l.self) {
		l.c.WelcomesForOthers.Inc()
		return nil
	}
	if len(e.commitHash) > 0 {
		for _, c := range l.convs {
			if !c.live() {
				continue
			}
			if slices.ContainsFunc(c.history, func(p pathEntry) bool { return bytes.Equal(p.hash, e.commitHash) }) {
				l.c.Duplicates.Inc()
				l.replyStatus(c, committer)
				return nil
			}
		}
	}
	kp := l.keyPackageFor(e.message.Welcome)
	if kp == nil {
		l.offerKeyPackage(f.GetConversation(), committer)
		return ErrUnknownKeyPackage
	}
	g, err := group.Join(l.groupConfig(), kp.bundle, e.message.Welcome, nil)
	if err != nil {
		return err
	}
	gid := g.GroupID()
	if len(f.GetConversation()) > 0 && !bytes.Equal(f.GetConversation(), gid) {
		g.Destroy()
		return fmt.Errorf("%w: Welcome into %x in a frame for %x", ErrConversationMismatch, gid, f.GetConversation())
	}
	c := l.convs[string(gid)]
	if c == nil {
		c = newConv(gid)
		l.convs[string(gid)] = c
	}
	now := l.now()
	if c.live() {
		// Already in the group: the Welcome comes from another branch, or
		// from further on this one.
		switch l.compareWelcome(c, e.path, now) {
		case branchBetter:
			l.c.ForksDetected.Inc()
			l.c.ForksResolved.Inc()
			l.c.Rollbacks.Inc()
		case branchAhead:
			// Further along this node's branch: it catches up.
		case branchWorse:
			l.c.ForksDetected.Inc()
			l.c.ForksResolved.Inc()
			if g.Epoch() == c.g.Epoch() {
				// Keep the losing branch readable.
				c.branches = append(c.branches, &sideBranch{g: g, hash: bytes.Clone(e.commitHash), expires: now.Add(l.cfg.BranchRetention)})
				l.usedKeyPackage(kp)
				l.retryUndecided(c)
				return nil
			}
			g.Destroy()
			return fmt.Errorf("%w: Welcome on a losing branch", ErrStale)
		default:
			g.Destroy()
			return fmt.Errorf("%w: Welcome into epoch %d, group in epoch %d", ErrStale, g.Epoch(), c.g.Epoch())
		}
		c.branches = append(c.branches, &sideBranch{g: c.g, hash: c.branch, expires: now.Add(l.cfg.BranchRetention)})
		for _, s := range c.snaps {
			s.destroy()
		}
		c.snaps, c.outbox = nil, nil
	}
	c.g, c.removed = g, false
	c.committer = nil
	if _, ok := c.members()[string(committer)]; ok && len(committer) == identitySize {
		c.committer = bytes.Clone(committer)
	}
	c.leafAt, c.leaves = now, map[string]leafSeen{}
	c.history = nil
	for _, p := range e.path {
		c.history = append(c.history, pathEntry{epoch: p.epoch, hash: p.hash, at: now})
	}
	c.enter(g.Epoch(), e.commitHash, now)
	l.usedKeyPackage(kp)
	l.c.WelcomesJoined.Inc()
	l.epochChanged(c, true, nil)
	l.retryOrphans()
	return nil
}

// epochChanged is everything that follows a new epoch: the state is
// stored, the members told, the host told of a membership it did not ask
// for, held frames released; l.mu is held.
//
// The host hears of the members (ConversationLearned) when this node
// joined, and when a Commit changed them to something other than what the
// host asked for (a Commit the host did not ask this node for). Only a
// change is told: a membership that merely differs from the host's list
// may be a change the host asked for and is still waiting for.
func (l *Layer) epochChanged(c *conv, joined bool, before [][]byte) {
	c.since = l.now()
	l.markDirty(c)
	l.seeLeaves(c, c.since)
	members := c.memberList()
	// Members that left are not waited for.
	in := c.members()
	for _, o := range c.outbox {
		for id := range o.pending {
			if _, ok := in[id]; !ok {
				delete(o.pending, id)
			}
		}
	}
	l.pruneOutbox(c)
	if joined || !sameIDs(members, before) && (c.desired == nil || !sameIDs(members, c.desired)) {
		l.events = append(l.events, &commonv1.Event{Kind: &commonv1.Event_Conversation{Conversation: &commonv1.ConversationLearned{
			Id: bytes.Clone(c.id), Members: members,
		}}})
	}
	l.sendStatus(c)
	l.releaseHeld(c)
	l.retryEarly(c)
	l.reconcile(c)
}

func sameIDs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// holdEarly keeps an UP frame for a later epoch; l.mu is held.
func (l *Layer) holdEarly(c *conv, f *commonv1.Frame, at time.Time) error {
	if l.now().Sub(at) > l.cfg.BranchRetention {
		return fmt.Errorf("%w: epoch never reached", ErrHeldOverflow)
	}
	if len(c.early) >= l.cfg.HeldFrames {
		c.early = c.early[1:]
		l.c.drop(ErrHeldOverflow)
	}
	c.early = append(c.early, heldUp{f: f, at: at})
	l.c.HeldUp.Inc()
	return nil
}

// retryEarly hands the held UP frames in again; l.mu is held.
func (l *Layer) retryEarly(c *conv) {
	early := c.early
	c.early = nil
	for _, h := range early {
		l.c.ReleasedUp.Inc()
		if err := l.handleUp(h.f, h.at); err != nil {
			l.c.drop(err)
		}
	}
}

// holdOrphan keeps an UP frame for a group this node does not have yet
// (its Welcome may come later); l.mu is held.
func (l *Layer) holdOrphan(f *commonv1.Frame, at time.Time) error {
	if l.now().Sub(at) > l.cfg.BranchRetention {
		return fmt.Errorf("%w: group never joined", ErrHeldOverflow)
	}
	if len(l.orphans) >= l.cfg.HeldFrames {
		l.orphans = l.orphans[1:]
		l.c.drop(ErrHeldOverflow)
	}
	l.orphans = append(l.orphans, heldUp{f: f, at: at})
	l.c.HeldUp.Inc()
	return nil
}

// retryOrphans hands the orphaned UP frames in again; l.mu is held.
func (l *Layer) retryOrphans() {
	orphans := l.orphans
	l.orphans = nil
	for _, h := range orphans {
		l.c.ReleasedUp.Inc()
		if err := l.handleUp(h.f, h.at); err != nil {
			l.c.drop(err)
		}
	}
}

// tick runs the timers; l.mu is held.
func (l *Layer) tick(now time.Time) {
	for _, c := range l.convs {
		l.expireForks(c, now)
		l.retransmit(c, now)
		kept := c.early[:0]
		for _, h := range c.early {
			if now.Sub(h.at) > l.cfg.BranchRetention {
				l.c.drop(ErrHeldOverflow)
			} else {
				kept = append(kept, h)
			}
		}
		c.early = kept
		l.reconcile(c)
		l.askGroup(c, now)
		l.refresh(c, now)
	}
	kept := l.orphans[:0]
	for _, h := range l.orphans {
		if now.Sub(h.at) > l.cfg.BranchRetention {
			l.c.drop(ErrHeldOverflow)
		} else {
			kept = append(kept, h)
		}
	}
	l.orphans = kept
	l.expireRetired(now)
	l.refreshKeyPackages(now)
	l.countStale(now)
}

// keepUndecided keeps a copy of an application message that no branch
// opened, to try again when a fork brings a new branch; l.mu is held.
func (l *Layer) keepUndecided(c *conv, f *commonv1.Frame, at time.Time) {
	if len(c.undecided) >= l.cfg.HeldFrames {
		c.undecided = c.undecided[1:]
	}
	c.undecided = append(c.undecided, heldUp{f: f, at: at})
}

// retryUndecided tries the kept application messages again after a fork
// brought a new branch; those that open are delivered; l.mu is held.
func (l *Layer) retryUndecided(c *conv) {
	kept := c.undecided[:0]
	now := l.now()
	for _, h := range c.undecided {
		if now.Sub(h.at) > l.cfg.BranchRetention {
			continue
		}
		e, err := decodeEnvelope(h.f.GetPayload())
		if err != nil || e.kind != kindApplication {
			continue
		}
		_, epoch := messageGroup(e.message)
		if l.handleApp(c, e, h.f, epoch, h.at, true) != nil {
			kept = append(kept, h)
		} else {
			l.c.Recovered.Inc()
		}
	}
	c.undecided = kept
}

// Outcomes of compareBranch.
const (
	branchStale  = iota // nothing better: an old or equal branch
	branchBetter        // diverges from this node's, and wins
	branchWorse         // diverges from this node's, and loses
	branchAhead         // extends this node's branch
)

// compareBranch compares a Welcome's path with the group's history: at the
// first epoch where both name a Commit and they differ, the lower hash
// wins, if this node entered that epoch within the settling window (after
// it, its branch stands, as it does for the members that can no longer
// roll back). With no divergence, a path that reaches a later epoch is
// ahead. With no epoch in common, a later epoch is taken as ahead.
func (l *Layer) compareBranch(c *conv, path []pathEntry, now time.Time) int {
	mine := map[uint64]pathEntry{}
	for _, p := range c.history {
		mine[p.epoch] = p
	}
	for _, p := range path {
		m, ok := mine[p.epoch]
		if !ok || bytes.Equal(m.hash, p.hash) {
			continue
		}
		if bytes.Compare(p.hash, m.hash) < 0 && now.Sub(m.at) < l.cfg.SettleWindow {
			return branchBetter
		}
		return branchWorse
	}
	if last := path[len(path)-1]; last.epoch > c.g.Epoch() {
		return branchAhead
	}
	return branchStale
}

// compareWelcome is compareBranch, except that a group this node created
// and no other member has shown it is in gives way to a Welcome into a
// later epoch: this node was being added to an existing group when it
// created its own (commit.go), and the existing members refuse its
// Welcome as stale.
func (l *Layer) compareWelcome(c *conv, path []pathEntry, now time.Time) int {
	r := l.compareBranch(c, path, now)
	if c.createdHere && r != branchBetter && path[len(path)-1].epoch > c.g.Epoch() {
		return branchAhead
	}
	return r
}

// handleOffer takes a KeyPackage a member sent because the Welcome that
// added it named one it no longer had: the next Commit of this node adds
// it again with this one (replacing the leaf it cannot use), and the
// useless Welcome is no longer retransmitted; l.mu is held.
func (l *Layer) handleOffer(e *envelope, f *commonv1.Frame) error {
	if len(f.GetConversation()) > 0 && !bytes.Equal(f.GetConversation(), e.groupID) {
		return ErrConversationMismatch
	}
	c := l.convs[string(e.groupID)]
	if c == nil || !c.live() {
		return fmt.Errorf("%w: KeyPackage offer for a group this node is not in", ErrUnknownConversation)
	}
	kp := e.message.KeyPackage
	id := kp.LeafNode.Credential.Identity
	if !c.wants(id) || bytes.Equal(id, l.self) {
		return fmt.Errorf("%w: KeyPackage offer from %x", ErrNotMember, id)
	}
	if kp.CipherSuite != wire.CipherSuite(l.cs.ID()) {
		return fmt.Errorf("%w: KeyPackage of suite %d", group.ErrInvalidKeyPackage, kp.CipherSuite)
	}
	if err := group.ValidateKeyPackage(l.cs, kp, l.now()); err != nil {
		return err
	}
	if err := l.acceptLeaf(&kp.LeafNode); err != nil {
		return fmt.Errorf("%w: %w", group.ErrRejectedLeaf, err)
	}
	if _, member := c.members()[string(id)]; member {
		// A member's leaf is replaced only if this node added it and it
		// has not shown any epoch since: it never joined.
		pendingJoiner := false
		for _, o := range c.outbox {
			if o.joiners[string(id)] && o.pending[string(id)] {
				pendingJoiner = true
			}
		}
		if !pendingJoiner {
			return fmt.Errorf("%w: KeyPackage offer from a member that joined", ErrStale)
		}
	}
	for _, o := range c.outbox {
		if o.joiners[string(id)] {
			delete(o.pending, string(id))
		}
	}
	l.pruneOutbox(c)
	c.offers[string(id)] = *kp
	c.gen++
	l.c.OffersTaken.Inc()
	l.reconcile(c)
	return nil
}
