package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/host/conversations"
)

// Limits of one SendBatch.
const (
	// MaxBatch is the most messages one SendBatch takes.
	MaxBatch = 1024
	// MaxBatchBytes bounds the payload bytes of one SendBatch, all
	// messages together.
	MaxBatchBytes = 8 << 20
)

// Outgoing is one message of a SendBatch.
type Outgoing struct {
	// Conversation is the conversation's id.
	Conversation []byte
	// Payload is the application's message.
	Payload []byte
	// Options are its optional parts.
	Options SendOptions
}

// SendBatch sends several messages, in order, and returns them as Send
// would, in the same order. Every message is checked (its conversation,
// its recipients, its size) and sealed before any is handed on, so a
// mistake refuses the whole batch. With a sync layer on top the batch is
// then all or none: the layer stores it durably in one commit
// (strata.sync.v1 SendBatch), or, where the layer has no SendBatch, the
// host calls Send for each message in order and stops at the first error
// (the messages before it are sent). Below a secure or privacy layer the
// messages are handed on in one batch of frames. Public-chat messages go to
// the privacy layer one by one after the others. The messages that are
// not ephemeral are added to the history in one write; when that fails
// they were sent all the same, and are returned with the error.
func (n *Node) SendBatch(ctx context.Context, batch []Outgoing) ([]*conversations.Message, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	if len(batch) > MaxBatch {
		return nil, fmt.Errorf("send: a batch is at most %d messages, got %d", MaxBatch, len(batch))
	}
	total := 0
	for i, o := range batch {
		if isHostMessage(o.Payload) {
			return nil, fmt.Errorf("send: %s%w", which(batch, i), ErrReservedPayload)
		}
		total += len(o.Payload)
	}
	if total > MaxBatchBytes {
		return nil, fmt.Errorf("send: a batch is at most %d payload bytes, got %d", MaxBatchBytes, total)
	}
	convs := map[string]*conversations.Conversation{}
	checked := map[string]bool{}
	var stack, public []portItem
	out := make([]*conversations.Message, len(batch))
	now := time.Now()
	for i, o := range batch {
		c, ok := convs[string(o.Conversation)]
		if !ok {
			var err error
			c, err = n.convs.Get(ctx, o.Conversation)
			if errors.Is(err, conversations.ErrNotFound) {
				return nil, fmt.Errorf("%s%w: %x", which(batch, i), ErrUnknownConversation, o.Conversation)
			} else if err != nil {
				return nil, err
			}
			convs[string(o.Conversation)] = c
		}
		if c.PublicChat != "" && len(o.Options.Parents) > 0 {
			return nil, fmt.Errorf("send: %sa public chat has no sync layer: no parents", which(batch, i))
		}
		if c.PublicChat == "" && !checked[string(c.ID)] {
			if err := n.checkRecipients(c); err != nil {
				return nil, fmt.Errorf("%s%w", which(batch, i), err)
			}
			checked[string(c.ID)] = true
		}
		env, err := n.seal(o.Conversation, o.Payload)
		if err != nil {
			return nil, fmt.Errorf("send: %s%w", which(batch, i), err)
		}
		m := &conversations.Message{
			Conversation: o.Conversation,
			MessageID:    env.id,
			EnvelopeID:   env.id,
			Author:       n.id.Public(),
			Payload:      o.Payload,
			Parents:      o.Options.Parents,
			Outgoing:     true,
			Time:         now,
		}
		out[i] = m
		it := portItem{c: c, m: m, wire: env.wire, opts: o.Options}
		if c.PublicChat != "" {
			public = append(public, it)
		} else {
			stack = append(stack, it)
		}
	}
	var pub publicChatter
	if len(public) > 0 {
		if pub, _ = adapterOf[publicChatter](n); pub == nil {
			return nil, ErrNoPublicChats
		}
	}
	var sent []portItem
	if len(stack) > 0 {
		top := n.slots[len(n.slots)-1]
		port, ok := top.adapter.(appPort)
		if !ok {
			return nil, fmt.Errorf("send: a %s layer cannot address a conversation; the stack needs a privacy, secure or sync layer on top", top.key)
		}
		if err := port.sendBatch(ctx, stack); err != nil {
			return nil, err
		}
		sent = stack
	}
	for i, it := range public {
		if err := pub.postPublic(ctx, it.c, it.m, it.wire); err != nil {
			// What went out before it is recorded.
			_ = n.recordSent(ctx, sent)
			if len(batch) > 1 {
				err = fmt.Errorf("public chat message %d of the batch: %w", i, err)
			}
			return nil, fmt.Errorf("send: %w", err)
		}
		sent = append(sent, it)
	}
	if err := n.recordSent(ctx, sent); err != nil {
		return out, err
	}
	return out, nil
}

// which names message i of a batch in an error, unless it is the batch's
// only message.
func which[T any](batch []T, i int) string {
	if len(batch) == 1 {
		return ""
	}
	return fmt.Sprintf("message %d of the batch: ", i)
}

// recordSent adds the sent messages that are not ephemeral to the history
// as outgoing, in one write.
func (n *Node) recordSent(ctx context.Context, sent []portItem) error {
	var rec []*conversations.Message
	for _, it := range sent {
		if !it.opts.Ephemeral {
			rec = append(rec, it.m)
		}
	}
	if len(rec) == 0 {
		return nil
	}
	res, err := n.hist.append(ctx, rec)
	if err != nil {
		return fmt.Errorf("sent, but not added to the history: %w", err)
	}
	if len(res.OverQuota) > 0 {
		return fmt.Errorf("sent, but %d of the messages were not added to the history: larger than public.max_bytes_per_chat", len(res.OverQuota))
	}
	return nil
}
