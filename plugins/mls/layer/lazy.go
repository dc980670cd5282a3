package layer

import (
	"bytes"
	"fmt"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Lazy groups of two. The host gives the secure layer the conversation of
// two of every contact up front, so that a contact's first message in it
// is taken; creating all of them at once would cost every pair of
// contacts a KeyPackage, a Welcome and its statuses before anyone says
// anything. A conversation of two members therefore records its members
// only; its group is created when it is needed:
//
//   - the lowest member (the one that creates every group, commit.go) has
//     a DOWN frame for it: it creates the group, adds the other member
//     (the Welcome goes at once) and seals the frame in the new epoch;
//   - the higher member has a DOWN frame for it: it holds the frame
//     (conv.held) and asks the lowest member for the group with an ask, a
//     status message with no tag (which only a member of an epoch can
//     make, so no real status is one): envelope kind 4 with epoch 0, an
//     empty branch and an empty tag, addressed to the lowest member. The
//     lowest member creates the group as if it had a frame; the Welcome
//     releases the held frames. The higher member asks again after
//     retransmit_initial, doubling up to retransmit_max, at most
//     retransmit_attempts times, until it is in the group.
//
// The higher member never creates the group, so both members sending at
// once still end with one group: an ask that reaches a lowest member
// whose group exists already is ignored (its Welcome is retransmitted as
// any other, until the other member's status shows it joined).
//
// Groups of three or more. A member whose host gave it such a conversation
// and that has no group for it asks the lowest member too, at once and
// then with the same back-off, with a group ask (envelope kind 8) that
// lists the members. It says two things. The lowest member's host may not
// know the conversation (only the member whose user made it does): the
// lowest member then takes the conversation from the ask, when the ask
// comes from the member it names (the frame's peer, a contact) and every
// member is a contact of this node, tells its host (ConversationLearned)
// and creates the group as if its host had set it, so no member's host
// needs to announce the conversation in a conversation of two (each one an
// MLS group to form). And the asking member's host knows the
// conversation, so it is subscribed to the group's shared address and
// reads what is sent to the whole group there: the lowest member notes it
// (conv.ready, memory only) and sends the Welcome again to the whole group
// once for every such member still missing, instead of a copy to each
// (retransmit); a member whose host does not know the conversation yet
// (it learns it from the Welcome) does not ask, and is sent its copy.
//
// Restart: needed is stored with the conversation. A lowest member that
// restarts with it set creates the group at its first tick; a higher one
// asks again at its first tick. Held frames are not stored (the sync
// layer above sends again what was not acknowledged).

// lazyPair reports whether c is a conversation of two whose group does not
// exist here and this node has not been removed from.
func (c *conv) lazyPair() bool {
	return c.g == nil && !c.removed && len(c.desired) == 2
}

// lazy reports whether c's group is not to be created yet: a conversation
// of two that nobody has needed.
func (c *conv) lazy() bool { return c.lazyPair() && !c.needed }

// need records that this node has a DOWN frame for c, a conversation of
// two without a group: the lowest member creates the group at once, the
// higher asks the lowest for it; l.mu is held.
func (l *Layer) need(c *conv) {
	if !c.lazyPair() || !c.wants(l.self) {
		return
	}
	if !c.needed {
		c.needed = true
		l.markDirty(c)
		l.c.LazyNeeded.Inc()
	}
	now := l.now()
	if bytes.Equal(c.desired[0], l.self) {
		l.reconcile(c)
		return
	}
	if c.asks > l.cfg.RetransmitAttempts {
		// It gave up asking; a new frame starts again.
		c.asks, c.askWait, c.askAt = 0, 0, time.Time{}
	}
	l.askGroup(c, now)
}

// askGroup sends the lowest member of c an ask for the group if one is
// due; l.mu is held.
func (l *Layer) askGroup(c *conv, now time.Time) {
	if c.g != nil || c.removed || !c.wants(l.self) || bytes.Equal(c.desired[0], l.self) {
		return
	}
	if len(c.desired) == 2 && !c.needed {
		return
	}
	if c.asks > l.cfg.RetransmitAttempts || now.Before(c.askAt) {
		return
	}
	e := &envelope{kind: kindStatus, groupID: c.id, sender: l.self}
	if len(c.desired) > 2 {
		e.kind, e.listed = kindGroupAsk, c.desired
	}
	payload, err := e.marshal()
	if err != nil {
		l.env.Logger.Error("could not encode an ask", "error", err)
		return
	}
	if c.askWait == 0 {
		c.askWait = l.cfg.RetransmitInitial
		if len(c.desired) > 2 {
			c.askWait += l.cfg.createWait() // the lowest member waits that long before it creates the group
		}
	} else {
		c.askWait = min(2*c.askWait, l.cfg.RetransmitMax)
	}
	c.asks++
	c.askAt = now.Add(c.askWait)
	l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Peer: bytes.Clone(c.desired[0]), Payload: payload})
	l.c.AsksSent.Inc()
}

// handleAsk takes an ask (a status without a tag): the other member of a
// conversation of two needs its group, which this node, the lowest
// member, creates if it has not; a member of a larger conversation reads
// the group's shared address (conv.ready); l.mu is held.
func (l *Layer) handleAsk(e *envelope, f *commonv1.Frame) error {
	if len(e.sender) != identitySize || bytes.Equal(e.sender, l.self) {
		return fmt.Errorf("%w: ask from %x", ErrNotMember, e.sender)
	}
	if len(f.GetPeer()) > 0 && !bytes.Equal(f.GetPeer(), e.sender) {
		return fmt.Errorf("%w: ask from %x in a frame from %x", ErrNotMember, e.sender, f.GetPeer())
	}
	c := l.convs[string(e.groupID)]
	if (c == nil || c.desired == nil) && e.kind == kindGroupAsk {
		var err error
		if c, err = l.learnFromAsk(e, f); err != nil {
			return err
		}
	}
	if c == nil || c.desired == nil {
		return fmt.Errorf("%w: ask for a conversation this node does not know", ErrUnknownConversation)
	}
	if !c.wants(e.sender) || !c.wants(l.self) || c.removed {
		return fmt.Errorf("%w: ask from %x", ErrNotMember, e.sender)
	}
	l.c.AsksReceived.Inc()
	if len(c.desired) > 2 {
		if c.ready == nil {
			c.ready = map[string]bool{}
		}
		c.ready[string(e.sender)] = true
		return nil
	}
	if c.g != nil {
		return nil // created already: its Welcome is retransmitted until the member shows it joined
	}
	if !bytes.Equal(c.desired[0], l.self) {
		return fmt.Errorf("%w: ask for a group this node does not create", ErrNotMember)
	}
	if !c.needed {
		c.needed = true
		l.markDirty(c)
		l.c.LazyNeeded.Inc()
	}
	l.reconcile(c)
	return nil
}

// learnFromAsk takes a conversation of three or more that this node's host
// does not know from a member's group ask: this node is its lowest member
// (it creates the group), the ask comes from the member it names (the
// frame's peer, which the host sets only for a contact), and every member
// is a contact of this node, as the host's rules for an announced
// conversation ask. The host is told (ConversationLearned); l.mu is held.
func (l *Layer) learnFromAsk(e *envelope, f *commonv1.Frame) (*conv, error) {
	if !bytes.Equal(f.GetPeer(), e.sender) {
		return nil, fmt.Errorf("%w: group ask from %x in a frame from %x", ErrNotMember, e.sender, f.GetPeer())
	}
	if len(e.groupID) == 0 || len(e.groupID) > 255 || !bytes.Equal(e.listed[0], l.self) {
		return nil, fmt.Errorf("%w: a group ask this node does not create the group of", ErrNotMember)
	}
	for _, m := range e.listed[1:] {
		if l.contacts[string(m)] == nil {
			return nil, fmt.Errorf("%w: a group ask listing %x, not a contact", ErrNotMember, m)
		}
	}
	c := l.convs[string(e.groupID)]
	if c == nil {
		c = newConv(e.groupID)
		l.convs[string(e.groupID)] = c
	}
	c.desired = e.listed
	c.gen++
	c.since = l.now()
	l.markDirty(c)
	l.c.LearnedFromAsk.Inc()
	l.events = append(l.events, &commonv1.Event{Kind: &commonv1.Event_Conversation{Conversation: &commonv1.ConversationLearned{
		Id: bytes.Clone(c.id), Members: e.listed,
	}}})
	return c, nil
}
