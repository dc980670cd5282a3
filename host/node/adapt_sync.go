package node

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/conversations"
)

// syncAdapter is the host's side of a data-sync layer: it gives the layer
// every conversation's members, and is the application's port: a message
// enters through the layer's Send, which stores it durably and names it
// before the application is told it was sent, and a delivered message is
// acknowledged through Ack once the host has stored it.
type syncAdapter struct {
	n *Node
	s *slot
}

// install implements installer.
func (a *syncAdapter) install(ctx context.Context) { installMembers(ctx, a.n, a.s, a) }

// setMembers implements memberTaker.
func (a *syncAdapter) setMembers(ctx context.Context, id []byte, members []ed25519.PublicKey) error {
	conn := a.s.liveConn()
	if conn == nil {
		return nil // down now; install gives it the group when it is back
	}
	_, err := syncv1.NewControlClient(conn.Control()).SetGroup(ctx, &syncv1.GroupRequest{Id: id, Members: rawKeys(members)})
	return err
}

// send implements appPort: Send stores the message's envelope and returns
// its id;
// the trace id goes with it onto every frame that carries it. It crossed
// the top boundary all the same, through the control API: it is counted
// there like any frame.
func (a *syncAdapter) send(ctx context.Context, c *conversations.Conversation, m *conversations.Message, wire []byte, opts SendOptions) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("send: the %s layer is not running", a.s.key)
	}
	m.TraceID = a.n.router.NewTraceID()
	resp, err := syncv1.NewControlClient(conn.Control()).Send(ctx, &syncv1.SendRequest{
		Group: c.ID, Payload: wire, Parents: opts.Parents, Ephemeral: opts.Ephemeral, TraceId: m.TraceID,
	})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	m.MessageID = resp.GetMessageId()
	b := a.n.router.Boundary(a.s.index)
	b.Crossed(pipeline.Down, 1, uint64(len(wire)))
	if a.n.opts.Tap != nil {
		a.n.opts.Tap(b.Name, &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: m.TraceID, Conversation: c.ID,
			Payload: wire, MessageId: m.MessageID,
		})
	}
	return nil
}

// sendBatch implements batchPort: one SendBatch, which the layer makes
// one durable commit, all or none. A layer without SendBatch (it answers
// Unimplemented) gets one Send per message, in order.
func (a *syncAdapter) sendBatch(ctx context.Context, items []portItem) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("send: the %s layer is not running", a.s.key)
	}
	req := &syncv1.SendBatchRequest{Messages: make([]*syncv1.SendRequest, len(items))}
	for i, it := range items {
		it.m.TraceID = a.n.router.NewTraceID()
		req.Messages[i] = &syncv1.SendRequest{
			Group: it.c.ID, Payload: it.wire, Parents: it.opts.Parents, Ephemeral: it.opts.Ephemeral, TraceId: it.m.TraceID,
		}
	}
	client := syncv1.NewControlClient(conn.Control())
	resp, err := client.SendBatch(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		for i, it := range items {
			if err := a.send(ctx, it.c, it.m, it.wire, it.opts); err != nil {
				if i == 0 {
					return err
				}
				return fmt.Errorf("message %d of the batch (the %d before it were sent): %w", i, i, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if len(resp.GetResults()) != len(items) {
		return fmt.Errorf("send: the %s layer answered %d results for a batch of %d", a.s.key, len(resp.GetResults()), len(items))
	}
	b := a.n.router.Boundary(a.s.index)
	var bytes uint64
	for i, it := range items {
		it.m.MessageID = resp.GetResults()[i].GetMessageId()
		bytes += uint64(len(it.wire))
		if a.n.opts.Tap != nil {
			a.n.opts.Tap(b.Name, &commonv1.Frame{
				Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: it.m.TraceID, Conversation: it.c.ID,
				Payload: it.wire, MessageId: it.m.MessageID,
			})
		}
	}
	b.Crossed(pipeline.Down, uint64(len(items)), bytes)
	return nil
}

// ack implements appAcker.
func (a *syncAdapter) ack(ctx context.Context, group []byte, ids [][]byte) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("the %s layer is not running", a.s.key)
	}
	_, err := syncv1.NewControlClient(conn.Control()).Ack(ctx, &syncv1.AckRequest{Group: group, MessageIds: ids})
	return err
}

// check implements contractChecker (core/api/sync/v1): an UP frame names
// its group, its message id and its author.
func (a *syncAdapter) check(f *commonv1.Frame) string {
	if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
		return ""
	}
	switch {
	case len(f.GetConversation()) == 0:
		return "an UP frame without its group (Frame.conversation)"
	case len(f.GetMessageId()) == 0:
		return "an UP frame without its message id (Frame.message_id): the host cannot acknowledge it"
	case len(f.GetPeer()) == 0:
		return "an UP frame without its author (Frame.peer)"
	}
	return ""
}
