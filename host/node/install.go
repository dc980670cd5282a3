package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/conversations"
)

// installTimeout bounds the whole installation of a layer's state.
const installTimeout = 30 * time.Second

// install gives a layer that has just started the host state it does not
// keep across starts, through its adapter, and lets the layer below react
// to its start (the overlay announces its connected peers). It runs before
// the layer's door opens, so no frame reaches a layer that does not yet
// know its sender.
func (n *Node) install(ctx context.Context, s *slot) {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if s.index > 0 {
		if hook, ok := n.slots[s.index-1].adapter.(aboveStartedHook); ok {
			hook.aboveStarted(ctx, s)
		}
	}
	if in, ok := s.adapter.(installer); ok {
		in.install(ctx)
	}
}

// liveConn returns the slot's plugin connection once it is started, or nil.
func (s *slot) liveConn() sdk.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.started == nil {
		return nil
	}
	return s.conn
}

// ConversationOption is an optional part of SetConversation.
type ConversationOption func(*conversations.Conversation)

// WithName gives the conversation a display name.
func WithName(name string) ConversationOption {
	return func(c *conversations.Conversation) { c.Name = name }
}

// SetConversation creates a conversation, or changes its members, and
// gives it to every layer that takes members (the secure and sync layers).
// The local node is always a member. Every member other than the node must
// be a contact. The conversation is stored, so the layers get it again
// after every restart. Unless it is the 1:1 conversation of this node and
// one contact (which both derive), it is announced to the other members
// (announce.go), so that it shows on their nodes too.
func (n *Node) SetConversation(ctx context.Context, id []byte, members []ed25519.PublicKey, opts ...ConversationOption) error {
	c := conversations.Conversation{ID: id, Members: append([]ed25519.PublicKey{n.id.Public()}, members...)}
	for _, o := range opts {
		o(&c)
	}
	return n.setConversation(ctx, c, true)
}

// setConversation is SetConversation; with announce, the other members
// are told.
func (n *Node) setConversation(ctx context.Context, c conversations.Conversation, announce bool) error {
	all, err := conversations.Normalize(c.ID, append(c.Members, n.id.Public()))
	if err != nil {
		return err
	}
	c.Members = all
	if old, err := n.convs.Get(ctx, c.ID); err == nil {
		if old.PublicChat != "" {
			return fmt.Errorf("conversation %x is the public chat %q: it has no members to set", c.ID, old.PublicChat)
		}
		if c.Name == "" {
			c.Name = old.Name
		}
	}
	for _, m := range all {
		if !bytes.Equal(m, n.id.Public()) && !n.book.knows(m) {
			return fmt.Errorf("%w: member %x", ErrUnknownContact, []byte(m))
		}
	}
	if err := n.convs.Put(ctx, c); err != nil {
		return err
	}
	for _, s := range n.slots {
		if m, ok := s.adapter.(memberTaker); ok {
			if err := m.setMembers(ctx, c.ID, all); err != nil {
				return fmt.Errorf("layers.%s: set conversation: %w", s.key, err)
			}
		}
	}
	if announce && n.authenticated() && !n.isDirect(c) {
		n.announce(ctx, c)
	}
	return nil
}

// authenticated reports whether the stack authenticates who sent a
// message (it has a secure layer), which host messages need: without one,
// a message's author is only what a card claims for its address.
func (n *Node) authenticated() bool {
	a, _ := adapterOf[*secureAdapter](n)
	return a != nil
}

// isDirect reports whether c is the 1:1 conversation of this node and its
// one other member.
func (n *Node) isDirect(c conversations.Conversation) bool {
	if len(c.Members) != 2 {
		return false
	}
	for _, m := range c.Members {
		if !bytes.Equal(m, n.id.Public()) {
			return bytes.Equal(c.ID, conversations.DirectID(n.id.Public(), m))
		}
	}
	return false
}

// memberships are the conversations the layers that take members must
// know: every stored conversation but public chats (they bypass the secure
// and sync layers), and the 1:1 conversation with every contact, stored or
// not, so that a contact's first message in it is taken: neither side has
// to announce a 1:1 conversation (conversations.DirectID).
func (n *Node) memberships(ctx context.Context) ([]conversations.Conversation, error) {
	stored, err := n.convs.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []conversations.Conversation
	seen := map[string]bool{}
	for _, c := range stored {
		if c.PublicChat != "" {
			continue
		}
		seen[string(c.ID)] = true
		out = append(out, *c)
	}
	for _, card := range n.book.all() {
		if d := n.direct(card.IdentityKey); !seen[string(d.ID)] {
			out = append(out, d)
		}
	}
	return out, nil
}

// direct is the 1:1 conversation of this node and a contact.
func (n *Node) direct(contact ed25519.PublicKey) conversations.Conversation {
	members, _ := conversations.Normalize([]byte("dm"), []ed25519.PublicKey{n.id.Public(), contact})
	return conversations.Conversation{ID: conversations.DirectID(n.id.Public(), contact), Members: members}
}

// storeDirect stores the 1:1 conversation of a message that arrived in it
// from the contact it is with, the first time one does, so that it shows
// in the conversation list. A message in a 1:1 conversation whose author
// is not the other member is not this node's 1:1 conversation.
func (n *Node) storeDirect(ctx context.Context, m *conversations.Message) {
	if len(m.Author) != ed25519.PublicKeySize || bytes.Equal(m.Author, n.id.Public()) {
		return
	}
	d := n.direct(m.Author)
	if !bytes.Equal(m.Conversation, d.ID) {
		return
	}
	if _, known := n.directStored.Load(string(d.ID)); known {
		return
	}
	if _, err := n.convs.Get(ctx, d.ID); err == nil {
		n.directStored.Store(string(d.ID), true)
		return
	}
	if err := n.convs.Put(ctx, d); err != nil {
		n.log.Warn("could not store a 1:1 conversation", "conversation", string(d.ID), "error", err)
		return
	}
	n.directStored.Store(string(d.ID), true)
}

// Conversations lists the stored conversations.
func (n *Node) Conversations(ctx context.Context) ([]*conversations.Conversation, error) {
	return n.convs.List(ctx)
}

// refreshSections asks every layer whose card section can change while it
// runs (the secure layer's prekeys rotate) for its current one, and
// re-signs the card when one changed.
func (n *Node) refreshSections(ctx context.Context) {
	changed := false
	for _, s := range n.slots {
		r, ok := s.adapter.(cardRefresher)
		if !ok {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, n.opts.HealthTimeout)
		sec := r.refreshSection(rctx)
		cancel()
		if len(sec) == 0 || bytes.Equal(sec, s.contactSection()) {
			continue
		}
		s.mu.Lock()
		s.section = sec
		s.mu.Unlock()
		changed = true
	}
	if !changed {
		return
	}
	if err := n.refreshCard(); err != nil {
		n.log.Warn("could not refresh contact card", "error", err)
		return
	}
	n.log.Info("contact card re-signed: a layer's key material changed")
}
