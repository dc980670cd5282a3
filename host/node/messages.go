package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/conversations"
)

// ErrUnknownConversation is returned by Send for a conversation the node
// does not have.
var ErrUnknownConversation = errors.New("unknown conversation")

// historyStore is where the history is kept: *conversations.Store.
type historyStore interface {
	Append(ctx context.Context, msgs []*conversations.Message) (*conversations.Appended, error)
	History(ctx context.Context, conversation []byte, after uint64, limit int) ([]*conversations.Message, error)
}

// history is the node's message history and its subscribers. Its appends
// are group-committed: calls that arrive while a write is running wait for
// it to end and are then written together, in one transaction (one fsync),
// by one of them. Each call still returns only once its own messages are
// on disk.
type history struct {
	store historyStore
	// life bounds every write: it ends when the node closes.
	life context.Context
	mu   sync.Mutex
	// changed is closed, and replaced, whenever messages are appended.
	changed chan struct{}

	// commitMu is held by the caller writing a group.
	commitMu sync.Mutex
	gmu      sync.Mutex
	// waiting are the calls not yet taken into a write, in arrival order.
	waiting []*appendCall
	// observe, when set, is given the messages of each write that added
	// some, in cursor order, before the write's callers return (the
	// node's chat state follows the history with it: chat.go).
	observe func([]*conversations.Message)
}

// appendCall is one call of history.append waiting for its write.
type appendCall struct {
	msgs []*conversations.Message
	res  *conversations.Appended
	err  error
	done chan struct{}
}

// newHistory makes the history of store; life ends when the node closes,
// and with it any write in progress.
func newHistory(life context.Context, store historyStore) *history {
	return &history{store: store, life: life, changed: make(chan struct{})}
}

// maxGroupMessages bounds the messages of one group write.
const maxGroupMessages = 8192

// append stores messages and wakes subscribers. Concurrent calls share
// writes (see history).
func (h *history) append(ctx context.Context, msgs []*conversations.Message) (*conversations.Appended, error) {
	call := &appendCall{msgs: msgs, done: make(chan struct{})}
	h.gmu.Lock()
	h.waiting = append(h.waiting, call)
	h.gmu.Unlock()
	for {
		select {
		case <-call.done:
			return call.res, call.err
		default:
		}
		h.commitMu.Lock()
		select {
		case <-call.done: // a write that took it ended meanwhile
			h.commitMu.Unlock()
			return call.res, call.err
		default:
		}
		h.writeGroup()
		h.commitMu.Unlock()
	}
}

// writeGroup writes the waiting calls (up to maxGroupMessages messages, at
// least one call) in one transaction and ends them. The caller holds
// commitMu. The write is not cancelled with the caller's ctx, since the
// other calls of the group ride on it, but ends when the node closes.
func (h *history) writeGroup() {
	h.gmu.Lock()
	k, n := 0, 0
	for k < len(h.waiting) && (k == 0 || n+len(h.waiting[k].msgs) <= maxGroupMessages) {
		n += len(h.waiting[k].msgs)
		k++
	}
	group := append([]*appendCall(nil), h.waiting[:k]...)
	h.waiting = append(h.waiting[:0], h.waiting[k:]...)
	h.gmu.Unlock()
	if len(group) == 0 {
		return
	}
	var all []*conversations.Message
	if len(group) == 1 {
		all = group[0].msgs
	} else {
		all = make([]*conversations.Message, 0, n)
		for _, c := range group {
			all = append(all, c.msgs...)
		}
	}
	res, err := h.store.Append(h.life, all)
	if err == nil && len(res.Added) > 0 && h.observe != nil {
		h.observe(res.Added)
	}
	if err == nil && len(res.Added) > 0 {
		h.mu.Lock()
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}
	if len(group) == 1 {
		group[0].res, group[0].err = res, err
		close(group[0].done)
		return
	}
	for _, c := range group {
		c.err = err
		if err == nil {
			c.res = splitAppended(res, c.msgs)
		}
		close(c.done)
	}
}

// splitAppended is the part of a group write's result that concerns msgs.
func splitAppended(res *conversations.Appended, msgs []*conversations.Message) *conversations.Appended {
	mine := make(map[*conversations.Message]bool, len(msgs))
	for _, m := range msgs {
		mine[m] = true
	}
	pick := func(all []*conversations.Message) []*conversations.Message {
		var out []*conversations.Message
		for _, m := range all {
			if mine[m] {
				out = append(out, m)
			}
		}
		return out
	}
	return &conversations.Appended{
		Added:     pick(res.Added),
		Replayed:  pick(res.Replayed),
		OverQuota: pick(res.OverQuota),
		Evicted:   res.Evicted,
	}
}

// wait returns a channel closed at the next append.
func (h *history) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// SendOptions are the optional parts of a message the application sends.
type SendOptions struct {
	// Parents are the ids of messages this one depends on; it is
	// delivered after them. They need a sync layer.
	Parents [][]byte
	// Ephemeral messages are not stored nor retransmitted (typing
	// notices), and not added to the history.
	Ephemeral bool
}

// hints returns the frame hints the options imply.
func (o SendOptions) hints() *commonv1.Hints {
	if !o.Ephemeral {
		return nil
	}
	return &commonv1.Hints{Ephemeral: true}
}

// Send sends a message to a conversation. It is the one way the
// application's messages enter the stack: the host puts the payload in an
// envelope signed by the node's identity for this conversation
// (envelope.go), and the top layer's adapter takes the envelope (a sync
// layer stores it durably and names the message before Send returns; a
// secure or privacy layer takes it best effort, and the message is named
// by its envelope), and the message's trace id follows it down the stack.
// Public chats go to the privacy layer directly. A message that is not
// ephemeral is added to the node's history as outgoing. It is SendBatch
// of one message; when the message was sent but not added to the history,
// it is returned with the error.
func (n *Node) Send(ctx context.Context, conversation, payload []byte, opts SendOptions) (*conversations.Message, error) {
	if err := n.CheckChatPayload(conversation, payload); err != nil {
		return nil, err
	}
	msgs, err := n.SendBatch(ctx, []Outgoing{{Conversation: conversation, Payload: payload, Options: opts}})
	if len(msgs) == 0 {
		return nil, err
	}
	return msgs[0], err
}

// checkRecipients refuses a send to a conversation with a member this
// stack cannot reach: not a contact, or a contact whose card was made on
// another stack (it has no section for one of this node's plugins).
// Without the check such a send would be taken and delivered to nobody.
func (n *Node) checkRecipients(c *conversations.Conversation) error {
	for _, m := range c.Members {
		if bytes.Equal(m, n.id.Public()) {
			continue
		}
		card, ok := n.book.card(m)
		if !ok {
			return fmt.Errorf("%w: member %x of the conversation", ErrUnknownContact, []byte(m))
		}
		for _, s := range n.slots {
			if rc, ok := s.adapter.(recipientChecker); ok {
				if err := rc.checkRecipient(card); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		}
	}
	return nil
}

// received makes the history's message of an UP frame that reached the
// application's side of the stack, in conversation conv from the author
// the layer names (nil when none). Its payload is still the envelope; the
// writer opens it (Node.open). A frame without a message id (no sync layer
// below) is named by its envelope.
func (n *Node) received(f *commonv1.Frame, conv, author []byte) *conversations.Message {
	return &conversations.Message{
		Conversation: conv,
		MessageID:    f.GetMessageId(),
		Author:       author,
		Payload:      f.GetPayload(),
		Time:         time.Now(),
		TraceID:      f.GetTraceId(),
	}
}

// deliverTop is the router's App: the UP frames that crossed the top
// boundary go to the history writer. A frame that names its sender's
// identity but no conversation is in their 1:1 conversation
// (conversations.DirectID): a privacy layer on top carries none for it
// (privacyAdapter.send); secure and sync layers always name one.
func (n *Node) deliverTop(ctx context.Context, frames []*commonv1.Frame) error {
	msgs := make([]*conversations.Message, len(frames))
	for i, f := range frames {
		conv := f.GetConversation()
		if len(conv) == 0 && len(f.GetPeer()) == ed25519.PublicKeySize {
			conv = conversations.DirectID(n.id.Public(), f.GetPeer())
		}
		msgs[i] = n.received(f, conv, f.GetPeer())
	}
	n.deliver(ctx, n.router.Boundary(len(n.slots)-1), msgs, true)
	return nil
}

// deliver hands messages that crossed boundary b toward the application to
// the history writer (writer.go), which checks their envelopes, writes
// them to the history (once: a message already there is not delivered
// again), then, for messages that came through the top of the stack (top),
// acknowledges them to the top layer, then hands the new ones to
// Options.Deliver. It is called on routing goroutines and does no I/O:
// top deliveries wait for room in the writer's queue, public chat messages
// that find none are dropped.
func (n *Node) deliver(ctx context.Context, b *pipeline.Boundary, msgs []*conversations.Message, top bool) {
	n.writer.queue(ctx, b, msgs, top)
}

// maxAckIDs bounds the ids of one Ack call.
const maxAckIDs = 1024

// acker collects the ids of delivered messages that are in the history,
// for the top layer's acknowledgement. Acknowledging runs on its own
// goroutine: the routing path never waits for a plugin's control API
// (which could be waiting for the routing path to take its output).
type acker struct {
	port    appAcker // nil: the top layer takes no acknowledgements
	mu      sync.Mutex
	pending map[string][]ackItem // group -> acknowledgements
	wake    chan struct{}
}

// ackItem is the acknowledgement of one delivered message: reject is
// empty for a message the host took, else why it refused it for good
// (the sync layer's verdict, AckRequest.rejected).
type ackItem struct {
	id     []byte
	reject string
}

func newAcker(port appAcker) *acker {
	return &acker{port: port, pending: map[string][]ackItem{}, wake: make(chan struct{}, 1)}
}

// queue queues the acknowledgement of messages now in the history, so that
// the layer does not deliver them again after a restart. Repeats are
// acknowledged too: the layer delivered them again because it had not seen
// an acknowledgement. Public chat messages came past the layer; the layer
// ignores ids it does not know. The messages in why were refused, for the
// reason it gives.
func (a *acker) queue(msgs []*conversations.Message, why map[*conversations.Message]string) {
	if a.port == nil {
		return
	}
	a.mu.Lock()
	for _, m := range msgs {
		a.pending[string(m.Conversation)] = append(a.pending[string(m.Conversation)], ackItem{id: m.MessageID, reject: why[m]})
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run sends queued acknowledgements until ctx ends. If the layer is down
// they are dropped: it delivers those messages again after its restart,
// and they are acknowledged then.
func (a *acker) run(ctx context.Context, timeout time.Duration, log hclog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		a.mu.Lock()
		pending := a.pending
		a.pending = map[string][]ackItem{}
		a.mu.Unlock()
		for group, ids := range pending {
			for len(ids) > 0 {
				k := min(len(ids), maxAckIDs)
				actx, cancel := context.WithTimeout(ctx, timeout)
				err := a.port.ack(actx, []byte(group), ids[:k])
				cancel()
				if err != nil && ctx.Err() == nil {
					log.Warn("could not acknowledge deliveries; the layer will deliver them again after a restart", "messages", k, "error", err)
				}
				ids = ids[k:]
			}
		}
	}
}

// History returns up to limit stored messages after a cursor, of one
// conversation or (nil) of all.
func (n *Node) History(ctx context.Context, conversation []byte, after uint64, limit int) ([]*conversations.Message, error) {
	return n.hist.store.History(ctx, conversation, after, limit)
}

// Follow calls f for every message of the history after the cursor, in
// cursor order, first the stored ones and then each new one as the host
// takes it, until ctx ends or f returns an error. With a conversation it
// follows that conversation only; outgoing messages are included only if
// asked for. It reads the history a page at a time (at most
// conversations.MaxHistoryPage messages and MaxHistoryPageBytes bytes).
func (n *Node) Follow(ctx context.Context, conversation []byte, after uint64, outgoing bool, f func(*conversations.Message) error) error {
	for {
		changed := n.hist.wait()
		msgs, err := n.History(ctx, conversation, after, 0)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			after = m.Cursor
			if m.Outgoing && !outgoing {
				continue
			}
			if conversation != nil && !bytes.Equal(conversation, m.Conversation) {
				continue
			}
			if err := f(m); err != nil {
				return err
			}
		}
		if len(msgs) > 0 {
			continue // there may be more stored
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return errors.New("node closed")
		case <-changed:
		}
	}
}
