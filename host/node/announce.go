package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/conversations"
)

// hostMessagePrefix marks a payload as a host message (core/api/app/v1
// host.proto): a zero byte, which no text payload starts with, and a tag.
var hostMessagePrefix = []byte("\x00strata-host-v1\x00")

// maxHostMessage bounds a host message's encoding.
const maxHostMessage = 64 << 10

// ErrReservedPayload is returned by Send for an application payload that
// begins with the host messages' prefix.
var ErrReservedPayload = errors.New("the payload begins with the prefix reserved for host messages")

// isHostMessage reports whether a payload is a host message.
func isHostMessage(payload []byte) bool { return bytes.HasPrefix(payload, hostMessagePrefix) }

// decodeHostMessage decodes and checks a host message's payload.
func decodeHostMessage(payload []byte) (*appv1.HostMessage, error) {
	if !isHostMessage(payload) {
		return nil, errors.New("not a host message")
	}
	body := payload[len(hostMessagePrefix):]
	if len(body) > maxHostMessage {
		return nil, fmt.Errorf("host message of %d bytes, at most %d", len(body), maxHostMessage)
	}
	var m appv1.HostMessage
	if err := proto.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("host message: %w", err)
	}
	if a := m.GetConversation(); a != nil {
		if len(a.GetId()) == 0 || len(a.GetId()) > conversations.MaxIDSize {
			return nil, fmt.Errorf("announcement: conversation id of %d bytes", len(a.GetId()))
		}
		if len(a.GetMembers()) == 0 || len(a.GetMembers()) > conversations.MaxMembers {
			return nil, fmt.Errorf("announcement: %d members", len(a.GetMembers()))
		}
		for _, k := range a.GetMembers() {
			if len(k) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("announcement: a member key of %d bytes", len(k))
			}
		}
		if len(a.GetName()) > conversations.MaxNameSize {
			return nil, fmt.Errorf("announcement: a name of %d bytes", len(a.GetName()))
		}
		return &m, nil
	}
	return nil, errors.New("host message of an unknown kind")
}

// encodeHostMessage is a host message's payload.
func encodeHostMessage(m *appv1.HostMessage) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(hostMessagePrefix), b...), nil
}

// announcements counts what the node did with conversation announcements
// it received.
type announcements struct {
	accepted, unchanged, malformed, notMember, authorNotMember, unknownMember, publicChat, storeError atomic.Uint64
}

// AnnouncementStats returns what the node did with conversation
// announcements it received: accepted, and each reason for a refusal.
func (n *Node) AnnouncementStats() map[string]uint64 {
	a := &n.announced
	return map[string]uint64{
		"accepted":                  a.accepted.Load(),
		"unchanged":                 a.unchanged.Load(),
		"refused_malformed":         a.malformed.Load(),
		"refused_not_a_member":      a.notMember.Load(),
		"refused_author_not_member": a.authorNotMember.Load(),
		"refused_unknown_member":    a.unknownMember.Load(),
		"refused_public_chat":       a.publicChat.Load(),
		"refused_store_error":       a.storeError.Load(),
	}
}

// announce tells every other member of a conversation its id, members and
// name, each in its 1:1 conversation with this node, through the stack.
// A member that cannot be reached now is logged; the announcement is made
// again whenever the conversation is set again. When the secure layer
// provides sdk.CapLearnsConversations (mls: this node's layer asks the
// member that makes the group for it, and a Welcome tells the others) a
// conversation of three or more is announced only once, in the
// conversation itself: the members know the conversation from the layer
// by the time that announcement reaches them, and it carries the name. No
// 1:1 conversation carries it, so none needs a group of its own.
func (n *Node) announce(ctx context.Context, c conversations.Conversation) {
	raw := make([][]byte, len(c.Members))
	for i, m := range c.Members {
		raw[i] = m
	}
	payload, err := encodeHostMessage(&appv1.HostMessage{Kind: &appv1.HostMessage_Conversation{
		Conversation: &appv1.ConversationAnnouncement{Id: c.ID, Members: raw, Name: c.Name},
	}})
	if err != nil {
		n.log.Error("could not encode a conversation announcement", "error", err)
		return
	}
	if len(c.Members) > 2 && n.secureProvides(sdk.CapLearnsConversations) {
		if err := n.sendHost(ctx, &c, payload); err != nil {
			n.log.Warn("could not announce a conversation in it", "conversation", fmt.Sprintf("%x", c.ID), "error", err)
		}
		return
	}
	for _, member := range c.Members {
		if bytes.Equal(member, n.id.Public()) {
			continue
		}
		d := n.direct(member)
		if err := n.sendHost(ctx, &d, payload); err != nil {
			n.log.Warn("could not announce a conversation to a member", "conversation", fmt.Sprintf("%x", c.ID), "member", n.book.name(member), "error", err)
		}
	}
}

// secureProvides reports whether the stack's secure layer provides the
// capability word.
func (n *Node) secureProvides(word string) bool {
	for _, s := range n.slots {
		if _, ok := s.adapter.(*secureAdapter); ok {
			return slices.Contains(s.info.GetProvides(), word)
		}
	}
	return false
}

// sendHost sends a host message in conversation c through the top layer's
// port, as the application's messages go (in a signed envelope), without
// adding it to the history.
func (n *Node) sendHost(ctx context.Context, c *conversations.Conversation, payload []byte) error {
	if err := n.checkRecipients(c); err != nil {
		return err
	}
	top := n.slots[len(n.slots)-1]
	port, ok := top.adapter.(appPort)
	if !ok {
		return fmt.Errorf("a %s layer cannot address a conversation", top.key)
	}
	env, err := n.seal(c.ID, payload)
	if err != nil {
		return err
	}
	m := &conversations.Message{Conversation: c.ID, MessageID: env.id, EnvelopeID: env.id, Author: n.id.Public(), Payload: payload, Outgoing: true}
	return port.sendBatch(ctx, []portItem{{c: c, m: m, wire: env.wire}})
}

// takeHostMessage applies a host message that arrived from author: a
// conversation announcement stores the conversation and gives it to the
// layers, when its rules hold (see ConversationAnnouncement).
func (n *Node) takeHostMessage(ctx context.Context, author []byte, payload []byte) {
	a := &n.announced
	hm, err := decodeHostMessage(payload)
	if err != nil {
		a.malformed.Add(1)
		n.log.Warn("dropped a malformed host message", "from", n.book.name(author), "error", err)
		return
	}
	ann := hm.GetConversation()
	members := make([]ed25519.PublicKey, len(ann.GetMembers()))
	for i, m := range ann.GetMembers() {
		members[i] = ed25519.PublicKey(m)
	}
	refuse := func(counter *atomic.Uint64, why string) {
		counter.Add(1)
		n.log.Warn("refused a conversation announcement", "conversation", fmt.Sprintf("%x", ann.GetId()), "from", n.book.name(author), "reason", why)
	}
	contains := func(keys []ed25519.PublicKey, k []byte) bool {
		for _, m := range keys {
			if bytes.Equal(m, k) {
				return true
			}
		}
		return false
	}
	switch {
	case !contains(members, n.id.Public()):
		refuse(&a.notMember, "this node is not a member")
		return
	case len(author) == 0 || !contains(members, author):
		refuse(&a.authorNotMember, "the announcer is not a member")
		return
	}
	old, err := n.convs.Get(ctx, ann.GetId())
	if err == nil {
		if old.PublicChat != "" {
			refuse(&a.publicChat, "the id is a public chat's")
			return
		}
		if !contains(old.Members, author) {
			refuse(&a.authorNotMember, "the announcer is not a member of the conversation as this node knows it")
			return
		}
	}
	for _, m := range members {
		if !bytes.Equal(m, n.id.Public()) && !n.book.knows(m) {
			refuse(&a.unknownMember, "a member is not a contact of this node")
			return
		}
	}
	if old != nil && (ann.GetName() == "" || ann.GetName() == old.Name) {
		// Every member that was given the conversation announces it, so a
		// member hears it from the others once each: storing it and giving
		// it to the layers again would change nothing.
		if all, err := conversations.Normalize(ann.GetId(), append(members, n.id.Public())); err == nil &&
			slices.EqualFunc(all, old.Members, func(x, y ed25519.PublicKey) bool { return bytes.Equal(x, y) }) {
			a.unchanged.Add(1)
			return
		}
	}
	if err := n.setConversation(ctx, conversations.Conversation{ID: ann.GetId(), Members: members, Name: ann.GetName()}, false); err != nil {
		refuse(&a.storeError, err.Error())
		return
	}
	a.accepted.Add(1)
	n.log.Info("joined a conversation a member announced", "conversation", fmt.Sprintf("%x", ann.GetId()), "name", ann.GetName(), "from", n.book.name(author), "members", len(members))
}
