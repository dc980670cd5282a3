package tui

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
)

// conv is one conversation as the UI keeps it: what the node says of it,
// and its messages in a chat.Timeline.
type conv struct {
	id   []byte
	kind chatv1.ChatType
	// name is the node's name for it: a group's name, a public chat's
	// name; a 1:1 chat is named after peer.
	name string
	// public is the public chat's name, or "".
	public string
	// peer is the other member of a 1:1 chat.
	peer ed25519.PublicKey
	// members are the node's members of the conversation, self included.
	members [][]byte
	tl      *chat.Timeline
	// onNode is set once the node holds the conversation: a 1:1 chat with
	// a new contact is set on the node before its first message.
	onNode bool
	// joinSent is set once this client sent a join for an invitation.
	joinSent bool
	// privateGroup is set when the node says the conversation is a
	// private group (its members follow its membership events).
	privateGroup bool
	// roster is the node's answer to Members for a private group, nil
	// until it came.
	roster *appv1.MembersResponse
	// other counts the messages whose payload is not a chat payload (an
	// application's own bytes): not shown.
	other int
}

// newConv returns the conversation of c, as the node self sees it.
func newConv(self ed25519.PublicKey, c *appv1.Conversation) *conv {
	v := &conv{id: bytes.Clone(c.GetId()), name: c.GetName(), public: c.GetPublicChat(), members: c.GetMembers(), onNode: true,
		privateGroup: c.GetPrivateGroup()}
	switch {
	case v.public != "":
		v.kind = chatv1.ChatType_CHAT_TYPE_PUBLIC
	default:
		v.kind = chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP
		if len(v.members) == 2 && !v.privateGroup {
			for _, m := range v.members {
				if !bytes.Equal(m, self) && bytes.Equal(v.id, conversations.DirectID(self, m)) {
					v.kind, v.peer = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, ed25519.PublicKey(bytes.Clone(m))
				}
			}
		}
	}
	v.tl = chat.NewTimeline(v.id, self, v.public)
	return v
}

// directConv returns the 1:1 chat of self and peer, not yet on the node.
func directConv(self, peer ed25519.PublicKey) *conv {
	id := conversations.DirectID(self, peer)
	return &conv{id: id, kind: chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, peer: bytes.Clone(peer), members: [][]byte{self, peer},
		tl: chat.NewTimeline(id, self, "")}
}

// update takes what the node now says of the conversation.
func (v *conv) update(c *appv1.Conversation) {
	v.onNode, v.members, v.privateGroup = true, c.GetMembers(), c.GetPrivateGroup()
	if c.GetName() != "" {
		v.name = c.GetName()
	}
}

// last returns the clock of the conversation's latest entry, 0 if none.
func (v *conv) last() uint64 {
	es := v.tl.Entries()
	if len(es) == 0 {
		return 0
	}
	return es[len(es)-1].Message.Clock
}

// plain reports whether v is a conversation of several members that is
// not a private group (made with `strata conversation create`, or a group
// whose create event has not arrived): a chat message in it would be
// refused by every member, having no group to be a member of.
func (v *conv) plain() bool {
	return v.kind == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP && !v.privateGroup && !v.tl.Group().State().Created
}

// payload fills in the header of p (version, clock, timestamp, chat id
// and type) for a message written now, checks it as every receiver will
// (chat.Validate), and returns its bytes, marked as a chat payload
// (chat.Encode).
func (v *conv) payload(self ed25519.PublicKey, now time.Time, p *chatv1.ChatPayload) ([]byte, error) {
	p.Version, p.ChatId, p.ChatType = chat.Version, v.id, v.kind
	p.Clock, p.Timestamp = v.tl.Next(now)
	env := chat.Envelope{Author: self, Conversation: v.id, Self: self, PublicChat: v.public, Received: now}
	if err := chat.Validate(p, env); err != nil {
		return nil, err
	}
	return chat.Encode(p)
}

// isMessage reports whether e is a message (not a membership event nor an
// unsupported payload).
func isMessage(e *chat.Entry) bool {
	return e.Message.Event == nil && !e.Message.Unsupported
}

// textPayload is a text message.
func textPayload(s string) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT,
		Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}}}
}

// membershipPayload is a membership event by actor.
func membershipPayload(t chatv1.MembershipType, actor ed25519.PublicKey, name string, members ...[]byte) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP,
		Body: &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: t, Actor: actor, Members: members, Name: name}}}
}

// delivery is the delivery mark of a message this node's user wrote.
func delivery(v *conv, e *chat.Entry) string {
	n := v.tl.Recipients(e)
	d, r := len(e.DeliveredTo), len(e.ReadBy)
	switch {
	case n > 0 && r >= n:
		return "✓✓ read"
	case r > 0:
		return fmt.Sprintf("✓✓ read by %d of %d", r, n)
	case d > 0:
		return fmt.Sprintf("✓✓ delivered to %d of %d", d, n)
	}
	return "✓ sent"
}

// eventText says what a membership event did; who names an identity.
func eventText(ev *chat.MembershipEvent, who func([]byte) string) string {
	var names []string
	for _, m := range ev.Members {
		names = append(names, who(m))
	}
	list := strings.Join(names, ", ")
	actor := who(ev.Actor)
	switch ev.Type {
	case chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE:
		s := fmt.Sprintf("%s created the group %q", actor, clean(ev.Name))
		if list != "" {
			s += " and invited " + list
		}
		return s
	case chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE:
		return actor + " invited " + list
	case chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN:
		return actor + " joined"
	case chatv1.MembershipType_MEMBERSHIP_TYPE_LEAVE:
		return actor + " left"
	case chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE:
		return actor + " removed " + list
	case chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_ADD:
		return actor + " made " + list + " admin"
	case chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_REMOVE:
		return actor + " took the admin role from " + list
	}
	return actor + " changed the group"
}

// sortConvs orders conversations by their latest message, newest first,
// then by title.
func sortConvs(cs []*conv, title func(*conv) string) {
	slices.SortStableFunc(cs, func(a, b *conv) int {
		if c := cmp.Compare(b.last(), a.last()); c != 0 {
			return c
		}
		return cmp.Compare(title(a), title(b))
	})
}
