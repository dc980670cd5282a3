package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// ErrUnknownConversation is returned by Post for a conversation the node
// does not have.
var ErrUnknownConversation = errors.New("unknown conversation")

// hostIDSize is the length of the ids the host gives messages on stacks
// without a sync layer, which has none of its own.
const hostIDSize = 16

// history is the node's message history and its subscribers.
type history struct {
	store *conversations.Store
	mu    sync.Mutex
	// changed is closed, and replaced, whenever messages are appended.
	changed chan struct{}
}

func newHistory(store *conversations.Store) *history {
	return &history{store: store, changed: make(chan struct{})}
}

// append stores messages and wakes subscribers; it returns the new ones.
func (h *history) append(ctx context.Context, msgs []*conversations.Message) ([]*conversations.Message, error) {
	added, err := h.store.Append(ctx, msgs)
	if len(added) > 0 {
		h.mu.Lock()
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}
	return added, err
}

// wait returns a channel closed at the next append.
func (h *history) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// toApp takes UP frames from the top layer: each is written to the
// history (once: a message already there is not delivered again), then
// acknowledged to a sync layer, then handed to Options.Deliver.
func (n *Node) toApp(frames []*commonv1.Frame) {
	top := len(n.slots) - 1
	if n.slots[top].kind == commonv1.LayerKind_LAYER_KIND_PRIVACY {
		frames = n.translate(n.bounds[top], up, frames)
	}
	b := n.bounds[top]
	if inj := b.faults[up]; inj != nil {
		inj.Apply(frames) // deliverApp, now or later
		return
	}
	n.deliverApp(frames)
}

// deliverApp is toApp past the top boundary's fault injector.
func (n *Node) deliverApp(frames []*commonv1.Frame) {
	b := n.bounds[len(n.slots)-1]
	now := time.Now()
	msgs := make([]*conversations.Message, 0, len(frames))
	for _, f := range frames {
		b.frames[up].Add(1)
		b.bytes[up].Add(uint64(len(f.GetPayload())))
		if n.opts.Tap != nil {
			n.opts.Tap(b.name, f)
		}
		id := f.GetMessageId()
		if len(id) == 0 {
			// No sync layer: the host names the message.
			id = make([]byte, hostIDSize)
			rand.Read(id)
		}
		msgs = append(msgs, &conversations.Message{
			Conversation: f.GetConversation(),
			MessageID:    id,
			Author:       f.GetPeer(),
			Payload:      f.GetPayload(),
			Time:         now,
			TraceID:      f.GetTraceId(),
		})
	}
	added, err := n.hist.append(n.ctx, msgs)
	if err != nil {
		b.dropped[DropStoreError].Add(uint64(len(msgs)))
		n.log.Error("could not store received messages; they are not delivered", "messages", len(msgs), "error", err)
		return
	}
	n.ackSync(msgs)
	n.deliverAdded(added)
}

// deliverAdded hands messages just added to the history to
// Options.Deliver.
func (n *Node) deliverAdded(added []*conversations.Message) {
	if n.opts.Deliver == nil {
		return
	}
	for _, m := range added {
		d := Delivery{
			Conversation: m.Conversation,
			Payload:      m.Payload,
			MessageID:    m.MessageID,
			TraceID:      m.TraceID,
			Cursor:       m.Cursor,
		}
		if len(m.Author) > 0 {
			d.From = ed25519.PublicKey(m.Author)
			d.FromName = n.book.name(d.From)
		}
		n.opts.Deliver(d)
	}
}

// maxAckIDs bounds the ids of one Ack call.
const maxAckIDs = 1024

// acker collects the ids of delivered messages that are in the history,
// for the sync layer's Ack. Acknowledging runs on its own goroutine: the
// routing path never waits for the sync plugin's control API (which could
// be waiting for the routing path to take its output).
type acker struct {
	mu      sync.Mutex
	pending map[string][][]byte // group -> ids
	wake    chan struct{}
}

func newAcker() *acker {
	return &acker{pending: map[string][][]byte{}, wake: make(chan struct{}, 1)}
}

// ackSync queues the acknowledgement of messages now in the history, so
// that the sync layer does not deliver them again after a restart. Repeats
// are acknowledged too: the layer delivered them again because it had not
// seen an acknowledgement.
func (n *Node) ackSync(msgs []*conversations.Message) {
	if n.slotOf(commonv1.LayerKind_LAYER_KIND_SYNC) == nil {
		return
	}
	a := n.acks
	a.mu.Lock()
	for _, m := range msgs {
		a.pending[string(m.Conversation)] = append(a.pending[string(m.Conversation)], m.MessageID)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// runAcks sends queued acknowledgements to the sync layer until the node
// closes. If the layer is down they are dropped: it delivers those
// messages again after its restart, and they are acknowledged then.
func (n *Node) runAcks() {
	s := n.slotOf(commonv1.LayerKind_LAYER_KIND_SYNC)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.acks.wake:
		}
		n.acks.mu.Lock()
		pending := n.acks.pending
		n.acks.pending = map[string][][]byte{}
		n.acks.mu.Unlock()
		conn := s.liveConn()
		if conn == nil {
			continue
		}
		client := syncv1.NewControlClient(conn.Control())
		for group, ids := range pending {
			for len(ids) > 0 {
				k := min(len(ids), maxAckIDs)
				ctx, cancel := context.WithTimeout(n.ctx, n.opts.HealthTimeout)
				_, err := client.Ack(ctx, &syncv1.AckRequest{Group: []byte(group), MessageIds: ids[:k]})
				cancel()
				if err != nil && n.ctx.Err() == nil {
					s.log.Warn("could not acknowledge deliveries; the sync layer will deliver them again after a restart", "messages", k, "error", err)
				}
				ids = ids[k:]
			}
		}
	}
}

// Post sends a message to a conversation. With a sync layer the message is
// handed to its Send, which stores it durably and returns its id before
// Post returns; the message then reaches every member as the sync protocol
// brings it. Without one the secure layer seals it for every other member
// at once, best effort, and the host names it. Either way a message that
// is not ephemeral is added to the node's history as outgoing.
func (n *Node) Post(ctx context.Context, conversation, payload []byte, parents [][]byte, ephemeral bool) (*conversations.Message, error) {
	c, err := n.convs.Get(ctx, conversation)
	if errors.Is(err, conversations.ErrNotFound) {
		return nil, fmt.Errorf("%w: %x", ErrUnknownConversation, conversation)
	} else if err != nil {
		return nil, err
	}
	if c.PublicChat != "" {
		return n.postPublic(ctx, c, payload, parents, ephemeral)
	}
	top := n.slots[len(n.slots)-1]
	m := &conversations.Message{
		Conversation: conversation,
		Author:       n.id.Public(),
		Payload:      payload,
		Parents:      parents,
		Outgoing:     true,
		Time:         time.Now(),
	}
	switch top.kind {
	case commonv1.LayerKind_LAYER_KIND_SYNC:
		conn := top.liveConn()
		if conn == nil {
			return nil, fmt.Errorf("send: the %s layer is not running", top.key)
		}
		resp, err := syncv1.NewControlClient(conn.Control()).Send(ctx, &syncv1.SendRequest{
			Group: conversation, Payload: payload, Parents: parents, Ephemeral: ephemeral,
		})
		if err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		m.MessageID = resp.GetMessageId()
		// Through the control API rather than a frame, but it crossed the
		// top boundary all the same: count it there.
		b := n.bounds[len(n.slots)-1]
		b.frames[down].Add(1)
		b.bytes[down].Add(uint64(len(payload)))
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		if len(parents) > 0 {
			return nil, errors.New("send: parents need a sync layer")
		}
		m.MessageID = make([]byte, hostIDSize)
		rand.Read(m.MessageID)
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			TraceId:      n.traceID.Add(1),
			Conversation: conversation,
			Payload:      payload,
		}
		m.TraceID = f.GetTraceId()
		if !n.forward(ctx, len(n.slots), len(n.slots)-1, []*commonv1.Frame{f}) {
			return nil, fmt.Errorf("send: the %s layer did not take the message", top.key)
		}
	default:
		return nil, fmt.Errorf("send: a %s layer cannot address a conversation; the stack needs a secure layer", top.key)
	}
	return n.recordSent(ctx, m, ephemeral)
}

// recordSent adds a sent message that is not ephemeral to the history as
// outgoing.
func (n *Node) recordSent(ctx context.Context, m *conversations.Message, ephemeral bool) (*conversations.Message, error) {
	if ephemeral {
		return m, nil
	}
	if _, err := n.hist.append(ctx, []*conversations.Message{m}); err != nil {
		return m, fmt.Errorf("sent, but not added to the history: %w", err)
	}
	return m, nil
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
// asked for.
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
		if len(msgs) == conversations.MaxHistoryPage {
			continue // more stored
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
