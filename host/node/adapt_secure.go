package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/host/contacts"
)

// secureAdapter is the host's side of a conversational-security layer: it
// gives the layer every contact's key material and every conversation's
// members, re-signs the card when the layer's bundle changes, and is the
// application's port when no sync layer sits above it.
type secureAdapter struct {
	n *Node
	s *slot
}

// install implements installer: every contact's card section, then every
// conversation. A contact or conversation the layer refuses is logged and
// skipped: one bad card must not keep the node from starting.
func (a *secureAdapter) install(ctx context.Context) {
	for _, c := range a.n.book.all() {
		if err := a.addContact(ctx, c); err != nil {
			a.s.log.Warn("secure layer refused a contact", "contact", c.Name, "error", err)
		}
	}
	installMembers(ctx, a.n, a.s, a)
}

// addContact implements contactTaker, when the card has a section for this
// node's secure plugin.
func (a *secureAdapter) addContact(ctx context.Context, c *contacts.Card) error {
	sec, ok := c.Sections[a.s.kind]
	if !ok || sec.Plugin != a.s.layer.Plugin {
		return nil
	}
	conn := a.s.liveConn()
	if conn == nil {
		return nil // down now; install gives it the card when it is back
	}
	_, err := securev1.NewControlClient(conn.Control()).AddContact(ctx, &securev1.AddContactRequest{
		Identity:       c.IdentityKey,
		ContactSection: sec.Data,
	})
	return err
}

// setMembers implements memberTaker.
func (a *secureAdapter) setMembers(ctx context.Context, id []byte, members []ed25519.PublicKey) error {
	conn := a.s.liveConn()
	if conn == nil {
		return nil // down now; install gives it the conversation when it is back
	}
	_, err := securev1.NewControlClient(conn.Control()).SetConversation(ctx, &securev1.ConversationRequest{Id: id, Members: rawKeys(members)})
	return err
}

// refreshSection implements cardRefresher: the layer's prekeys rotate, and
// the card must carry the current bundle.
func (a *secureAdapter) refreshSection(ctx context.Context) []byte {
	conn := a.s.liveConn()
	if conn == nil {
		return nil
	}
	resp, err := securev1.NewControlClient(conn.Control()).Bundle(ctx, &securev1.BundleRequest{})
	if err != nil {
		a.s.log.Debug("could not read the secure layer's bundle", "error", err)
		return nil
	}
	return resp.GetContactSection()
}

// sendBatch implements appPort for a stack whose top is the secure
// layer: one DOWN frame per message for its conversation, sealed by the
// layer for every other member, all in one batch, best effort; a message
// keeps its envelope's id.
func (a *secureAdapter) sendBatch(ctx context.Context, items []portItem) error {
	frames := make([]*commonv1.Frame, len(items))
	for i, it := range items {
		if len(it.opts.Parents) > 0 {
			return errors.New("send: parents need a sync layer")
		}
		frames[i] = &commonv1.Frame{Conversation: it.c.ID, Payload: it.wire, Hints: it.opts.hints(), TraceId: a.n.router.NewTraceID()}
		it.m.TraceID = frames[i].GetTraceId()
	}
	if err := a.n.router.Send(ctx, a.s.index, frames); err != nil {
		return fmt.Errorf("send: the %s layer did not take the message: %w", a.s.key, err)
	}
	return nil
}

// check implements contractChecker (core/api/secure/v1): an UP frame names
// its conversation and its authenticated sender's identity key.
func (a *secureAdapter) check(f *commonv1.Frame) string {
	if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
		return ""
	}
	switch {
	case len(f.GetPeer()) != ed25519.PublicKeySize:
		return "an UP frame without its sender's identity key (Frame.peer)"
	case len(f.GetConversation()) == 0:
		return "an UP frame without its conversation (Frame.conversation)"
	}
	return ""
}

// installMembers gives a layer that takes members every conversation it
// must know (Node.memberships).
func installMembers(ctx context.Context, n *Node, s *slot, m memberTaker) {
	convs, err := n.memberships(ctx)
	if err != nil {
		s.log.Error("could not list conversations", "error", err)
		return
	}
	for _, c := range convs {
		if err := m.setMembers(ctx, c.ID, c.Members); err != nil {
			s.log.Warn("layer refused a conversation", "conversation", fmt.Sprintf("%x", c.ID), "error", err)
		}
	}
}

func rawKeys(keys []ed25519.PublicKey) [][]byte {
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i] = k
	}
	return raw
}

// checkRecipient implements recipientChecker.
func (a *secureAdapter) checkRecipient(c *contacts.Card) error { return cardSectionFor(c, a.s) }
