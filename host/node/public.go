package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// maxPublicChatName bounds a public chat's name.
const maxPublicChatName = 255

// ErrNoPublicChats is returned by JoinPublicChat when the privacy layer
// has no shared addresses (the none layer).
var ErrNoPublicChats = errors.New("the privacy layer has no public chats")

// publicChats maps the node's public chats between their conversation ids
// and the privacy layer's shared addresses. Public chat messages travel
// between the application and the privacy layer directly: they are open to
// whoever knows the chat's name, so the secure and sync layers, which work
// with members, have no part in them (as in Status's public chats).
type publicChats struct {
	mu     sync.RWMutex
	byAddr map[string][]byte // shared address → conversation id
	byID   map[string][]byte // conversation id → shared address
}

func newPublicChats() *publicChats {
	return &publicChats{byAddr: map[string][]byte{}, byID: map[string][]byte{}}
}

func (p *publicChats) add(id, addr []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byAddr[string(addr)] = id
	p.byID[string(id)] = addr
}

// conversation returns the public chat a shared address belongs to.
func (p *publicChats) conversation(addr []byte) ([]byte, bool) {
	if len(addr) == 0 {
		return nil, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	id, ok := p.byAddr[string(addr)]
	return id, ok
}

// address returns the shared address of a public chat.
func (p *publicChats) address(id []byte) ([]byte, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	addr, ok := p.byID[string(id)]
	return addr, ok
}

// JoinPublicChat joins the public chat of that name: the privacy layer
// subscribes to the shared address derived from the name (whisper: Status's
// public chat topic and key), and the chat is stored as a conversation
// whose id is conversations.PublicChatID(name), the same on every node.
// Joining again is harmless.
func (n *Node) JoinPublicChat(ctx context.Context, name string) (*conversations.Conversation, error) {
	if name == "" || len(name) > maxPublicChatName {
		return nil, fmt.Errorf("a public chat's name is 1 to %d bytes, got %d", maxPublicChatName, len(name))
	}
	s := n.slotOf(commonv1.LayerKind_LAYER_KIND_PRIVACY)
	if s == nil {
		return nil, ErrNoPublicChats
	}
	id := conversations.PublicChatID(name)
	if c, err := n.convs.Get(ctx, id); err == nil && c.PublicChat != name {
		return nil, fmt.Errorf("conversation %x exists and is not the public chat %q", id, name)
	}
	if err := n.subscribePublic(ctx, s, id, name); err != nil {
		return nil, err
	}
	c := conversations.Conversation{ID: id, Members: []ed25519.PublicKey{n.id.Public()}, PublicChat: name}
	if err := n.convs.Put(ctx, c); err != nil {
		return nil, err
	}
	return n.convs.Get(ctx, id)
}

// subscribePublic asks the privacy layer for a public chat's address.
func (n *Node) subscribePublic(ctx context.Context, s *slot, id []byte, name string) error {
	conn := s.liveConn()
	if conn == nil {
		return fmt.Errorf("layers.%s: the %s layer is not running", s.key, s.layer.Plugin)
	}
	resp, err := privacyv1.NewControlClient(conn.Control()).Subscribe(ctx, &privacyv1.SubscribeRequest{Name: name})
	if err != nil {
		return subscribeError(s, err)
	}
	n.public.add(id, resp.GetAddress())
	return nil
}

// deliverPublic hands UP frames of public chats, straight from the privacy
// layer at slot i, to the history and the application. The sender is the
// contact whose card claims the signer's address, if any.
func (n *Node) deliverPublic(i int, frames []*commonv1.Frame) {
	b := n.bounds[i]
	now := time.Now()
	msgs := make([]*conversations.Message, 0, len(frames))
	for _, f := range frames {
		b.frames[up].Add(1)
		b.bytes[up].Add(uint64(len(f.GetPayload())))
		if n.opts.Tap != nil {
			n.opts.Tap(b.name, f)
		}
		conv, ok := n.public.conversation(f.GetConversation())
		if !ok {
			continue
		}
		id := f.GetMessageId()
		if len(id) == 0 {
			id = make([]byte, hostIDSize)
			rand.Read(id)
		}
		var author []byte
		if len(f.GetPeer()) > 0 {
			if who, ok := n.book.identityOf(f.GetPeer()); ok {
				author = who
			}
		}
		msgs = append(msgs, &conversations.Message{
			Conversation: conv,
			MessageID:    id,
			Author:       author,
			Payload:      f.GetPayload(),
			Time:         now,
			TraceID:      f.GetTraceId(),
		})
	}
	if len(msgs) == 0 {
		return
	}
	added, err := n.hist.append(n.ctx, msgs)
	if err != nil {
		b.dropped[DropStoreError].Add(uint64(len(msgs)))
		n.log.Error("could not store received public chat messages; they are not delivered", "messages", len(msgs), "error", err)
		return
	}
	n.deliverAdded(added)
}

// postPublic sends a message to a public chat: one DOWN frame to the
// privacy layer for the chat's shared address.
func (n *Node) postPublic(ctx context.Context, c *conversations.Conversation, payload []byte, parents [][]byte, ephemeral bool) (*conversations.Message, error) {
	if len(parents) > 0 {
		return nil, errors.New("send: a public chat has no sync layer: no parents")
	}
	s := n.slotOf(commonv1.LayerKind_LAYER_KIND_PRIVACY)
	addr, ok := n.public.address(c.ID)
	if s == nil || !ok {
		return nil, fmt.Errorf("send: public chat %q is not joined on the privacy layer (is it running?)", c.PublicChat)
	}
	m := &conversations.Message{
		Conversation: c.ID,
		Author:       n.id.Public(),
		Payload:      payload,
		Outgoing:     true,
		Time:         time.Now(),
		MessageID:    make([]byte, hostIDSize),
	}
	rand.Read(m.MessageID)
	f := &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		TraceId:   n.traceID.Add(1),
		Peer:      addr,
		Payload:   payload,
	}
	m.TraceID = f.GetTraceId()
	if !n.forward(ctx, s.index+1, s.index, []*commonv1.Frame{f}) {
		return nil, fmt.Errorf("send: the %s layer did not take the message", s.key)
	}
	return n.recordSent(ctx, m, ephemeral)
}

// installPublic subscribes a privacy layer that has just started to every
// stored public chat.
func (n *Node) installPublic(ctx context.Context, s *slot, control privacyv1.ControlClient) {
	convs, err := n.convs.List(ctx)
	if err != nil {
		s.log.Error("could not list conversations", "error", err)
		return
	}
	for _, c := range convs {
		if c.PublicChat == "" {
			continue
		}
		resp, err := control.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: c.PublicChat})
		if err != nil {
			s.log.Warn("privacy layer refused a public chat", "chat", c.PublicChat, "error", err)
			continue
		}
		n.public.add(c.ID, resp.GetAddress())
	}
}

// subscribeError words a privacy layer's refusal of Subscribe.
func subscribeError(s *slot, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("%w (layers.%s is %s)", ErrNoPublicChats, s.key, s.layer.Plugin)
	}
	return fmt.Errorf("layers.%s: subscribe: %w", s.key, err)
}
