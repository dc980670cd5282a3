package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
)

// privacyAdapter is the host's side of a transport-privacy layer. At the
// boundary above it, it translates Frame.peer between identity keys (above)
// and privacy addresses (below) from the contacts' cards, and takes public
// chat messages (whose conversation is a joined chat's shared address)
// straight to the application: they are open to whoever knows the chat's
// name, so the secure and sync layers, which work with members, have no
// part in them (as in Status's public chats).
type privacyAdapter struct {
	n      *Node
	s      *slot
	public *publicChats
	// groups route DOWN frames without a peer (groupaddr.go).
	groups *groupRoutes
}

func newPrivacyAdapter(n *Node, s *slot) *privacyAdapter {
	return &privacyAdapter{n: n, s: s, public: newPublicChats(), groups: newGroupRoutes()}
}

// addressKind is the card section that holds a contact's privacy address.
func (a *privacyAdapter) addressKind() commonv1.LayerKind { return a.s.kind }

// stage implements stager: on the boundary above the privacy layer, UP
// frames of public chats go to the application and the rest have their
// sender translated; DOWN frames have their recipient translated.
func (a *privacyAdapter) stage() pipeline.Stage {
	return func(b *pipeline.Boundary, dir pipeline.Dir, next pipeline.Handler) pipeline.Handler {
		if b.Index != a.s.index {
			return next
		}
		if dir == pipeline.Down {
			return pipeline.HandlerFunc(func(ctx context.Context, frames []*commonv1.Frame) error {
				if frames = a.translateDown(b, frames); len(frames) == 0 {
					return ErrUnknownContact
				}
				return next.Handle(ctx, frames)
			})
		}
		return pipeline.HandlerFunc(func(ctx context.Context, frames []*commonv1.Frame) error {
			frames = a.divertPublic(ctx, b, frames)
			if len(frames) == 0 {
				return nil
			}
			return next.Handle(ctx, a.translateUp(b, frames))
		})
	}
}

// translateDown rewrites the recipient of DOWN frames from an identity key
// to its privacy address. A frame for an identity with no privacy address
// is dropped and counted; a public chat's shared address passes as it is;
// a frame without a peer in a conversation goes to its members
// (routeGroup).
func (a *privacyAdapter) translateDown(b *pipeline.Boundary, frames []*commonv1.Frame) []*commonv1.Frame {
	out := frames[:0]
	shared := true // out is written over frames' array
	for _, f := range frames {
		if len(f.GetPeer()) == 0 && len(f.GetConversation()) > 0 {
			if r, ok := a.groups.get(f.GetConversation()); ok {
				if r.addr == nil && shared {
					// Copies follow, which would overwrite frames not yet read.
					out, shared = slices.Clone(out), false
				}
				out = a.routeGroup(b, out, f, r)
				continue
			}
		}
		if _, public := a.public.conversation(f.GetPeer()); !public && len(f.GetPeer()) > 0 {
			addr, ok := a.n.book.address(f.GetPeer())
			if !ok {
				b.Drop(pipeline.DropUnknownContact, 1)
				continue
			}
			f.Peer = addr
		}
		out = append(out, f)
	}
	return out
}

// translateUp rewrites the sender of UP frames from a privacy address to
// the identity of the one contact whose card claims it. A frame from an
// unknown address goes on with an empty peer (the layer above may
// authenticate it in-band, as a first X3DH message does).
func (a *privacyAdapter) translateUp(b *pipeline.Boundary, frames []*commonv1.Frame) []*commonv1.Frame {
	for _, f := range frames {
		if len(f.GetPeer()) == 0 {
			continue
		}
		id, ok := a.n.book.identityOf(f.GetPeer())
		if !ok {
			b.UnknownSender()
		}
		f.Peer = id
	}
	return frames
}

// divertPublic hands UP frames of public chats to the history writer, and
// returns the others. The author is whoever signed the message's envelope
// (Node.open): anyone may write to a public chat, and a contact's card
// proves nothing about the privacy layer's signer.
func (a *privacyAdapter) divertPublic(ctx context.Context, b *pipeline.Boundary, frames []*commonv1.Frame) []*commonv1.Frame {
	var msgs []*conversations.Message
	rest := frames[:0]
	for _, f := range frames {
		conv, ok := a.public.conversation(f.GetConversation())
		if !ok {
			rest = append(rest, f)
			continue
		}
		b.Crossed(pipeline.Up, 1, uint64(len(f.GetPayload())))
		if a.n.opts.Tap != nil {
			a.n.opts.Tap(b.Name, f)
		}
		msgs = append(msgs, a.n.received(f, conv, nil))
	}
	if len(msgs) > 0 {
		a.n.deliver(ctx, b, msgs, false)
	}
	return rest
}

// install implements installer: the layer subscribes to every stored
// public chat.
func (a *privacyAdapter) install(ctx context.Context) {
	conn := a.s.liveConn()
	if conn == nil {
		return
	}
	convs, err := a.n.convs.List(ctx)
	if err != nil {
		a.s.log.Error("could not list conversations", "error", err)
		return
	}
	control := privacyv1.NewControlClient(conn.Control())
	a.groups.forget()
	installMembers(ctx, a.n, a.s, a)
	for _, c := range convs {
		if c.PublicChat == "" {
			continue
		}
		resp, err := control.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: c.PublicChat})
		if err == nil {
			err = a.overlayTopics(ctx, resp.GetOverlayTopics())
		}
		if err != nil {
			a.s.log.Warn("privacy layer refused a public chat", "chat", c.PublicChat, "error", err)
			continue
		}
		a.public.add(c.ID, resp.GetAddress())
	}
}

// joinPublic implements publicChatter: the layer subscribes to the chat's
// shared address.
func (a *privacyAdapter) joinPublic(ctx context.Context, id []byte, name string) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("layers.%s: the %s layer is not running", a.s.key, a.s.layer.Plugin)
	}
	resp, err := privacyv1.NewControlClient(conn.Control()).Subscribe(ctx, &privacyv1.SubscribeRequest{Name: name})
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return fmt.Errorf("%w (layers.%s is %s)", ErrNoPublicChats, a.s.key, a.s.layer.Plugin)
		}
		return fmt.Errorf("layers.%s: subscribe: %w", a.s.key, err)
	}
	if err := a.overlayTopics(ctx, resp.GetOverlayTopics()); err != nil {
		return err
	}
	a.public.add(id, resp.GetAddress())
	return nil
}

// overlayTopics subscribes the p2p layer to the broadcast topics that
// carry a shared address (SubscribeResponse.overlay_topics), for a layer
// whose public chats ride the overlay's broadcast.
func (a *privacyAdapter) overlayTopics(ctx context.Context, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	p2p, _ := adapterOf[*p2pAdapter](a.n)
	if p2p == nil {
		return fmt.Errorf("%w: no p2p layer to carry its topics", ErrNoPublicChats)
	}
	return p2p.subscribe(ctx, topics)
}

// postPublic implements publicChatter: one DOWN frame to the chat's shared
// address, across the boundary above the privacy layer (past the secure
// and sync layers).
func (a *privacyAdapter) postPublic(ctx context.Context, c *conversations.Conversation, m *conversations.Message, wire []byte) error {
	addr, ok := a.public.address(c.ID)
	if !ok {
		return fmt.Errorf("send: public chat %q is not joined on the privacy layer (is it running?)", c.PublicChat)
	}
	f := &commonv1.Frame{Peer: addr, Payload: wire, TraceId: a.n.router.NewTraceID()}
	m.TraceID = f.GetTraceId()
	if err := a.n.router.Send(ctx, a.s.index, []*commonv1.Frame{f}); err != nil {
		return fmt.Errorf("send: the %s layer did not take the message: %w", a.s.key, err)
	}
	return nil
}

// sendBatch implements appPort for a stack whose top is the privacy layer
// (a relay's stack): one DOWN frame to each other member of each message's
// conversation, all in one batch, best effort; a message keeps its
// envelope's id. A 1:1 conversation's frame names no conversation: the
// receiver derives it from the sender (deliverTop), and the privacy layer
// then puts nothing of ours in front of the payload (whisper sets no flag
// bit, so a stock Status client reads the message as sent).
func (a *privacyAdapter) sendBatch(ctx context.Context, items []portItem) error {
	var frames []*commonv1.Frame
	for _, it := range items {
		if len(it.opts.Parents) > 0 {
			return errors.New("send: parents need a sync layer")
		}
		it.m.TraceID = a.n.router.NewTraceID()
		conv := it.c.ID
		if a.n.isDirect(*it.c) {
			conv = nil
		}
		k := len(frames)
		for _, member := range it.c.Members {
			if bytes.Equal(member, a.n.id.Public()) {
				continue
			}
			frames = append(frames, &commonv1.Frame{
				TraceId: it.m.TraceID, Conversation: conv, Peer: member, Payload: it.wire, Hints: it.opts.hints(),
			})
		}
		if len(frames) == k {
			return errors.New("send: the conversation has no other member")
		}
	}
	if err := a.n.router.Send(ctx, a.s.index, frames); err != nil {
		return fmt.Errorf("send: the %s layer did not take the message: %w", a.s.key, err)
	}
	return nil
}

// check implements contractChecker (core/api/privacy/v1): an UP frame
// names its sender's privacy address, unless it came to a shared address.
func (a *privacyAdapter) check(f *commonv1.Frame) string {
	if f.GetDirection() != commonv1.Direction_DIRECTION_UP || len(f.GetPeer()) > 0 {
		return ""
	}
	if _, public := a.public.conversation(f.GetConversation()); public {
		return ""
	}
	return "an UP frame without its sender's privacy address (Frame.peer): the layers above cannot tell who sent it"
}

// publicChats maps the node's public chats between their conversation ids
// and the privacy layer's shared addresses.
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

// checkRecipient implements recipientChecker.
func (a *privacyAdapter) checkRecipient(c *contacts.Card) error { return cardSectionFor(c, a.s) }

// addressBinder is a layer whose card section can be bound to the node's
// identity, so that a card copying another node's address is refused.
type addressBinder interface {
	// bind returns the binding of the node's own address to identity, or
	// nil when the layer does not bind its addresses.
	bind(ctx context.Context, identity []byte) ([]byte, error)
	// checkBinding checks a contact's section against its identity. It
	// returns nil for a layer that does not bind its addresses.
	checkBinding(ctx context.Context, identity []byte, sec contacts.Section) error
}

// ErrUnboundAddress reports a card whose privacy section is not bound to
// its identity by the privacy layer's proof: a copy of another node's
// address, or a card made by a version of the plugin that did not bind.
var ErrUnboundAddress = errors.New("the card's privacy address is not proven to belong to its identity")

// bind implements addressBinder through the layer's BindAddress.
func (a *privacyAdapter) bind(ctx context.Context, identity []byte) ([]byte, error) {
	conn := a.s.liveConn()
	if conn == nil {
		return nil, fmt.Errorf("layers.%s: the %s layer is not running", a.s.key, a.s.layer.Plugin)
	}
	resp, err := privacyv1.NewControlClient(conn.Control()).BindAddress(ctx, &privacyv1.BindAddressRequest{IdentityKey: identity})
	if status.Code(err) == codes.Unimplemented {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layers.%s: bind the address: %w", a.s.key, err)
	}
	return resp.GetBinding(), nil
}

// checkBinding implements addressBinder through the layer's CheckBinding.
func (a *privacyAdapter) checkBinding(ctx context.Context, identity []byte, sec contacts.Section) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("layers.%s: the %s layer is restarting and cannot check the card's address; try again", a.s.key, a.s.layer.Plugin)
	}
	_, err := privacyv1.NewControlClient(conn.Control()).CheckBinding(ctx, &privacyv1.CheckBindingRequest{
		IdentityKey: identity, Address: sec.Data, Binding: sec.Binding,
	})
	switch status.Code(err) {
	case codes.OK, codes.Unimplemented:
		return nil
	case codes.InvalidArgument:
		return fmt.Errorf("%w (%s: %s); ask the contact for a card made by a current version", ErrUnboundAddress, a.s.layer.Plugin, status.Convert(err).Message())
	}
	return fmt.Errorf("layers.%s: check the card's address: %w", a.s.key, err)
}
