package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
)

// installTimeout bounds the whole installation of a layer's state.
const installTimeout = 30 * time.Second

// install gives a layer that has just started the host state it does not
// keep across starts: the secure layer every contact's key material and
// every conversation, the sync layer every group. It runs before the slot
// takes traffic, so that no frame reaches a layer that does not yet know
// its sender. A contact or conversation that a layer refuses is logged and
// skipped: one bad card must not keep the node from starting.
func (n *Node) install(ctx context.Context, s *slot, conn sdk.Conn) {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if s.index == 1 {
		n.announcePeers(ctx, s)
	}
	switch s.kind {
	case commonv1.LayerKind_LAYER_KIND_PRIVACY:
		n.installPublic(ctx, s, privacyv1.NewControlClient(conn.Control()))
		return
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		for _, c := range n.book.all() {
			if err := n.addSecureContact(ctx, s, conn, c); err != nil {
				s.log.Warn("secure layer refused a contact", "contact", c.Name, "error", err)
			}
		}
	case commonv1.LayerKind_LAYER_KIND_SYNC:
	default:
		return
	}
	convs, err := n.convs.List(ctx)
	if err != nil {
		s.log.Error("could not list conversations", "error", err)
		return
	}
	for _, c := range convs {
		if c.PublicChat != "" {
			continue // public chats bypass the secure and sync layers
		}
		if err := setMembers(ctx, s, conn, c.ID, c.Members); err != nil {
			s.log.Warn("layer refused a conversation", "conversation", fmt.Sprintf("%x", c.ID), "error", err)
		}
	}
}

// announcePeers tells the layer just above the overlay which peers are
// connected already: their PeerEvents went by before it started (the
// overlay connects at its own start, and again while a restarted layer
// is down), and a layer that keeps per-peer state (whisper's handshake)
// must not wait for events that will not come again.
func (n *Node) announcePeers(ctx context.Context, s *slot) {
	p2p := n.slots[0]
	p2pConn := p2p.liveConn()
	s.mu.RLock()
	link := s.link
	s.mu.RUnlock()
	if p2pConn == nil || link == nil {
		return
	}
	resp, err := p2pv1.NewControlClient(p2pConn.Control()).Peers(ctx, &p2pv1.PeersRequest{})
	if err != nil {
		s.log.Debug("could not list the overlay's peers", "error", err)
		return
	}
	for _, p := range resp.GetPeers() {
		ev := &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{
			Peer: p.GetId(), State: commonv1.PeerState_PEER_STATE_CONNECTED,
		}}}
		if err := link.EmitEvent(ctx, ev); err != nil {
			return
		}
	}
}

// addSecureContact gives the secure layer a contact's card section, when
// the card has one for this node's secure plugin.
func (n *Node) addSecureContact(ctx context.Context, s *slot, conn sdk.Conn, c *contacts.Card) error {
	sec, ok := c.Sections[commonv1.LayerKind_LAYER_KIND_SECURE]
	if !ok || sec.Plugin != s.layer.Plugin {
		return nil
	}
	_, err := securev1.NewControlClient(conn.Control()).AddContact(ctx, &securev1.AddContactRequest{
		Identity:       c.IdentityKey,
		ContactSection: sec.Data,
	})
	return err
}

// setMembers tells a secure or sync layer a conversation's members.
func setMembers(ctx context.Context, s *slot, conn sdk.Conn, id []byte, members []ed25519.PublicKey) error {
	raw := make([][]byte, len(members))
	for i, m := range members {
		raw[i] = m
	}
	var err error
	switch s.kind {
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		_, err = securev1.NewControlClient(conn.Control()).SetConversation(ctx, &securev1.ConversationRequest{Id: id, Members: raw})
	case commonv1.LayerKind_LAYER_KIND_SYNC:
		_, err = syncv1.NewControlClient(conn.Control()).SetGroup(ctx, &syncv1.GroupRequest{Id: id, Members: raw})
	}
	return err
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

// slotOf returns the slot running a layer kind, or nil.
func (n *Node) slotOf(kind commonv1.LayerKind) *slot {
	for _, s := range n.slots {
		if s.kind == kind {
			return s
		}
	}
	return nil
}

// SetConversation creates a conversation, or changes its members, and
// gives it to the secure and sync layers. The local node is always a
// member. Every member other than the node must be a contact. The
// conversation is stored, so the layers get it again after every restart.
func (n *Node) SetConversation(ctx context.Context, id []byte, members []ed25519.PublicKey) error {
	all := append([]ed25519.PublicKey{n.id.Public()}, members...)
	all, err := conversations.Normalize(id, all)
	if err != nil {
		return err
	}
	if c, err := n.convs.Get(ctx, id); err == nil && c.PublicChat != "" {
		return fmt.Errorf("conversation %x is the public chat %q: it has no members to set", id, c.PublicChat)
	}
	for _, m := range all {
		if !bytes.Equal(m, n.id.Public()) && !n.book.knows(m) {
			return fmt.Errorf("%w: member %x", ErrUnknownContact, []byte(m))
		}
	}
	if err := n.convs.Put(ctx, conversations.Conversation{ID: id, Members: all}); err != nil {
		return err
	}
	for _, kind := range []commonv1.LayerKind{commonv1.LayerKind_LAYER_KIND_SECURE, commonv1.LayerKind_LAYER_KIND_SYNC} {
		s := n.slotOf(kind)
		if s == nil {
			continue
		}
		conn := s.liveConn()
		if conn == nil {
			// Down now; install gives it the conversation when it is back.
			continue
		}
		if err := setMembers(ctx, s, conn, id, all); err != nil {
			return fmt.Errorf("layers.%s: set conversation: %w", s.key, err)
		}
	}
	return nil
}

// Conversations lists the stored conversations.
func (n *Node) Conversations(ctx context.Context) ([]*conversations.Conversation, error) {
	return n.convs.List(ctx)
}

// refreshBundle asks the secure layer for its current card section (its
// prekeys rotate) and re-signs the card when it changed.
func (n *Node) refreshBundle(ctx context.Context) {
	s := n.slotOf(commonv1.LayerKind_LAYER_KIND_SECURE)
	if s == nil {
		return
	}
	conn := s.liveConn()
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.HealthTimeout)
	defer cancel()
	resp, err := securev1.NewControlClient(conn.Control()).Bundle(ctx, &securev1.BundleRequest{})
	if err != nil {
		s.log.Debug("could not read the secure layer's bundle", "error", err)
		return
	}
	sec := resp.GetContactSection()
	if len(sec) == 0 || bytes.Equal(sec, s.contactSection()) {
		return
	}
	s.mu.Lock()
	s.section = sec
	s.mu.Unlock()
	if err := n.refreshCard(); err != nil {
		n.log.Warn("could not refresh contact card", "error", err)
		return
	}
	n.log.Info("contact card re-signed: the secure layer's key material changed")
}
