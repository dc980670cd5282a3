package chat

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// Reasons a Group refuses a membership event or a message.
const (
	// ReasonForgedActor: the event's actor is not the identity that
	// signed it.
	ReasonForgedActor Reason = "forged_actor"
	// ReasonNotAdmin: an invite, remove or admin change by an identity
	// that is not an admin at that point.
	ReasonNotAdmin Reason = "not_admin"
	// ReasonNoGroup: an event before the group's create event.
	ReasonNoGroup Reason = "no_group"
	// ReasonAlreadyCreated: a second create event.
	ReasonAlreadyCreated Reason = "already_created"
	// ReasonNotInvited: a join by an identity that is not invited.
	ReasonNotInvited Reason = "not_invited"
	// ReasonNotMember: a leave, or a message, by an identity that is not a
	// member at that point and never was.
	ReasonNotMember Reason = "not_member"
	// ReasonRemoved: a message, or an event, by a member who was removed
	// before it.
	ReasonRemoved Reason = "removed"
	// ReasonTarget: an event about identities it cannot be about: removing
	// one who is neither member nor invited, making a non-member admin,
	// demoting a non-admin.
	ReasonTarget Reason = "target"
	// ReasonLastAdmin: an admin change that would leave the group without
	// an admin while it has members.
	ReasonLastAdmin Reason = "last_admin"
	// ReasonDuplicate: an event id the group already holds.
	ReasonDuplicate Reason = "duplicate"
)

// Event is a membership event as a Group takes it: the event the payload
// states, with what the host's envelope authenticated.
type Event struct {
	// ID is the message id; it orders events with equal clocks.
	ID []byte
	// Author is the identity whose signature the envelope carries.
	Author ed25519.PublicKey
	// Clock is the payload's Lamport clock.
	Clock uint64
	// MembershipEvent is the event as the payload states it.
	MembershipEvent
}

// EventOf returns the membership event of an accepted message with id,
// signed by author, or an error if m is not a membership event.
func EventOf(id []byte, author ed25519.PublicKey, m *Message) (Event, error) {
	if m == nil || m.Event == nil || m.Unsupported {
		return Event{}, fmt.Errorf("chat: not a membership event")
	}
	return Event{ID: bytes.Clone(id), Author: author, Clock: m.Clock, MembershipEvent: *m.Event}, nil
}

// before orders events causally: by Lamport clock, then by id.
func before(aClock uint64, aID []byte, bClock uint64, bID []byte) int {
	if c := cmp.Compare(aClock, bClock); c != 0 {
		return c
	}
	return bytes.Compare(aID, bID)
}

// Refusal is an event a Group holds but did not apply, and why.
type Refusal struct {
	Event  Event
	Reason Reason
}

// State is a private group's membership at one point of its event order.
type State struct {
	// Created is set once the create event applied.
	Created bool
	// Creator is the identity that created the group.
	Creator ed25519.PublicKey
	// Name is the name the create event gave.
	Name string
	// Members, Admins, Invited and Removed are sets of identity keys
	// (the key's bytes as a string). Admins are members; an invited
	// identity is a member once it joins; Removed holds those an admin
	// removed and who have not joined again.
	Members, Admins, Invited, Removed map[string]bool
}

// newState returns the state before any event.
func newState() State {
	return State{Members: map[string]bool{}, Admins: map[string]bool{}, Invited: map[string]bool{}, Removed: map[string]bool{}}
}

// clone returns a deep copy of s.
func (s State) clone() State {
	c := s
	c.Members, c.Admins, c.Invited, c.Removed = maps.Clone(s.Members), maps.Clone(s.Admins), maps.Clone(s.Invited), maps.Clone(s.Removed)
	return c
}

// IsMember reports whether id is a member.
func (s State) IsMember(id ed25519.PublicKey) bool { return s.Members[string(id)] }

// IsAdmin reports whether id is an admin.
func (s State) IsAdmin(id ed25519.PublicKey) bool { return s.Admins[string(id)] }

// sorted returns the keys of a set in byte order.
func sorted(set map[string]bool) []ed25519.PublicKey {
	keys := slices.Sorted(maps.Keys(set))
	out := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		out[i] = ed25519.PublicKey(k)
	}
	return out
}

// MemberList returns the members in byte order.
func (s State) MemberList() []ed25519.PublicKey { return sorted(s.Members) }

// AdminList returns the admins in byte order.
func (s State) AdminList() []ed25519.PublicKey { return sorted(s.Admins) }

// apply applies e to s, or returns why it does not apply; s is unchanged
// then.
func (s *State) apply(e Event) Reason {
	if !bytes.Equal(e.Actor, e.Author) {
		return ReasonForgedActor
	}
	actor := string(e.Actor)
	if e.Type == chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE {
		if s.Created {
			return ReasonAlreadyCreated
		}
		s.Created, s.Creator, s.Name = true, e.Actor, e.Name
		s.Members[actor], s.Admins[actor] = true, true
		for _, m := range e.Members {
			if string(m) != actor {
				s.Invited[string(m)] = true
			}
		}
		return ""
	}
	if !s.Created {
		return ReasonNoGroup
	}
	switch e.Type {
	case chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN:
		switch {
		case s.Members[actor]:
			return "" // joined already: nothing changes
		case !s.Invited[actor] && s.Removed[actor]:
			return ReasonRemoved
		case !s.Invited[actor]:
			return ReasonNotInvited
		}
		delete(s.Invited, actor)
		delete(s.Removed, actor)
		s.Members[actor] = true
		return ""
	case chatv1.MembershipType_MEMBERSHIP_TYPE_LEAVE:
		switch {
		case s.Invited[actor]:
			delete(s.Invited, actor) // declines the invitation
			return ""
		case s.Removed[actor]:
			return ReasonRemoved
		case !s.Members[actor]:
			return ReasonNotMember
		}
		delete(s.Members, actor)
		delete(s.Admins, actor)
		return ""
	}
	// The rest are an admin's.
	if !s.Admins[actor] {
		if s.Removed[actor] {
			return ReasonRemoved
		}
		return ReasonNotAdmin
	}
	switch e.Type {
	case chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE:
		for _, m := range e.Members {
			if !s.Members[string(m)] {
				s.Invited[string(m)] = true
			}
		}
	case chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE:
		for _, m := range e.Members {
			if !s.Members[string(m)] && !s.Invited[string(m)] {
				return ReasonTarget
			}
		}
		gone := make(map[string]bool, len(e.Members))
		for _, m := range e.Members {
			gone[string(m)] = true
		}
		if remaining(s.Admins, gone) == 0 && remaining(s.Members, gone) > 0 {
			return ReasonLastAdmin
		}
		for _, m := range e.Members {
			k := string(m)
			if s.Members[k] {
				s.Removed[k] = true
			}
			delete(s.Members, k)
			delete(s.Admins, k)
			delete(s.Invited, k)
		}
	case chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_ADD:
		for _, m := range e.Members {
			if !s.Members[string(m)] {
				return ReasonTarget
			}
		}
		for _, m := range e.Members {
			s.Admins[string(m)] = true
		}
	case chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_REMOVE:
		for _, m := range e.Members {
			if !s.Admins[string(m)] {
				return ReasonTarget
			}
		}
		gone := make(map[string]bool, len(e.Members))
		for _, m := range e.Members {
			gone[string(m)] = true
		}
		if remaining(s.Admins, gone) == 0 {
			return ReasonLastAdmin
		}
		for _, m := range e.Members {
			delete(s.Admins, string(m))
		}
	default:
		return ReasonNoGroup // unreachable: Decode accepts no other type
	}
	return ""
}

// remaining counts the keys of set that are not in gone.
func remaining(set, gone map[string]bool) int {
	n := 0
	for k := range set {
		if !gone[k] {
			n++
		}
	}
	return n
}

// Group is the membership of one private group: a pure state machine that
// takes the group's membership events in any order, applies them in causal
// order (Lamport clock, then message id) from the create event on, and
// answers who is a member, who is an admin, and whether a message's author
// was a member where the message sits in that order. It does no I/O and is
// not safe for concurrent use.
type Group struct {
	// events holds every event taken, in causal order.
	events []Event
	ids    map[string]bool
	// state is the state after every applied event; refused the events
	// that did not apply.
	state   State
	refused []Refusal
	// counts counts refusals of messages (CheckMessage) and of duplicate
	// events, which are not replayed.
	counts map[Reason]uint64
}

// NewGroup returns a group with no events: no members until a create
// event applies.
func NewGroup() *Group {
	return &Group{ids: map[string]bool{}, state: newState(), counts: map[Reason]uint64{}}
}

// Add takes an event and returns "" if it applied, or the reason it did
// not. An event that sorts before events already taken (it arrived late)
// is slotted in where it belongs and the group's events are applied again
// from the start, so the state is the same in whatever order the events
// arrive; an event refused now may apply once an earlier event arrives
// (a join before the invite it needs), and then Add's answer for it is
// out of date: State and Refused are always current.
func (g *Group) Add(e Event) Reason {
	if g.ids[string(e.ID)] {
		g.counts[ReasonDuplicate]++
		return ReasonDuplicate
	}
	g.ids[string(e.ID)] = true
	i, _ := slices.BinarySearchFunc(g.events, e, func(a, b Event) int { return before(a.Clock, a.ID, b.Clock, b.ID) })
	g.events = slices.Insert(g.events, i, e)
	if i == len(g.events)-1 {
		// The newest event: apply it to the current state.
		if r := g.state.apply(e); r != "" {
			g.refused = append(g.refused, Refusal{Event: e, Reason: r})
			return r
		}
		return ""
	}
	g.replay()
	for _, r := range g.refused {
		if bytes.Equal(r.Event.ID, e.ID) {
			return r.Reason
		}
	}
	return ""
}

// replay applies every event again, in order, from the empty state.
func (g *Group) replay() {
	g.state, g.refused = newState(), nil
	for _, e := range g.events {
		if r := g.state.apply(e); r != "" {
			g.refused = append(g.refused, Refusal{Event: e, Reason: r})
		}
	}
}

// stateBefore returns the state after the events that sort before pos.
func (g *Group) stateBefore(pos *Event) State {
	s := newState()
	for _, e := range g.events {
		if before(e.Clock, e.ID, pos.Clock, pos.ID) >= 0 {
			break
		}
		s.apply(e) // a refused event changes nothing
	}
	return s
}

// State returns the group's membership after every event it holds.
func (g *Group) State() State { return g.state.clone() }

// Refused returns the events the group holds that did not apply, in causal
// order, each with its reason.
func (g *Group) Refused() []Refusal { return slices.Clone(g.refused) }

// CheckMessage reports whether a message with the clock and id, signed by
// author, comes from a member at its place in the group's order: nil if
// it does; else an *Error with ReasonRemoved (the author was removed
// before it: a removed member who keeps sending) or ReasonNotMember, and
// the refusal is counted.
func (g *Group) CheckMessage(author ed25519.PublicKey, clock uint64, id []byte) error {
	s := g.stateAt(clock, id)
	switch {
	case s.Members[string(author)]:
		return nil
	case s.Removed[string(author)]:
		g.counts[ReasonRemoved]++
		return refuse(ReasonRemoved, "the author was removed from the group before this message")
	default:
		g.counts[ReasonNotMember]++
		return refuse(ReasonNotMember, "the author is not a member of the group")
	}
}

// RemovedAt reports whether author was removed from the group before the
// place of a message with the clock and id: what CheckMessage refuses as
// ReasonRemoved, asked without counting a refusal.
func (g *Group) RemovedAt(author ed25519.PublicKey, clock uint64, id []byte) bool {
	s := g.stateAt(clock, id)
	return !s.Members[string(author)] && s.Removed[string(author)]
}

// stateAt is the group's state at the place of a message with the clock
// and id.
func (g *Group) stateAt(clock uint64, id []byte) State {
	if n := len(g.events); n > 0 && before(clock, id, g.events[n-1].Clock, g.events[n-1].ID) < 0 {
		return g.stateBefore(&Event{Clock: clock, ID: id})
	}
	return g.state
}

// Counts returns how many events and messages the group refused, by
// reason: the events that do not apply in the current order, and every
// message CheckMessage refused and duplicate event Add refused.
func (g *Group) Counts() map[Reason]uint64 {
	out := maps.Clone(g.counts)
	for _, r := range g.refused {
		out[r.Reason]++
	}
	return out
}
