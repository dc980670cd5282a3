package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/pipeline"
)

// syncAdapter is the host's side of a data-sync layer: it gives the layer
// every conversation's members, and is the application's port: a message
// enters through the layer's Send, which stores it durably and names it
// before the application is told it was sent, and a delivered message is
// acknowledged through Ack once the host has stored it.
type syncAdapter struct {
	n *Node
	s *slot
	// noBatch: the layer answered SendBatch with Unimplemented; it gets
	// one Send per message.
	noBatch atomic.Bool
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

// sendBatch implements appPort: the layer stores the messages' envelopes
// and names them, in one SendBatch, which it makes one durable commit, all
// or none; each message's trace id goes with it onto every frame that
// carries it. They crossed the top boundary all the same, through the
// control API: they are counted there like frames. A layer without
// SendBatch (it answers Unimplemented) gets one Send per message, in
// order, from then on.
func (a *syncAdapter) sendBatch(ctx context.Context, items []portItem) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("send: the %s layer is not running", a.s.key)
	}
	reqs := make([]*syncv1.SendRequest, len(items))
	for i, it := range items {
		it.m.TraceID = a.n.router.NewTraceID()
		reqs[i] = &syncv1.SendRequest{
			Group: it.c.ID, Payload: it.wire, Parents: it.opts.Parents, Ephemeral: it.opts.Ephemeral, TraceId: it.m.TraceID,
		}
	}
	client := syncv1.NewControlClient(conn.Control())
	ids, err := a.sendRequests(ctx, client, reqs)
	if err != nil {
		return err
	}
	b := a.n.router.Boundary(a.s.index)
	var size uint64
	for i, it := range items {
		it.m.MessageID = ids[i]
		size += uint64(len(it.wire))
		if a.n.opts.Tap != nil {
			a.n.opts.Tap(b.Name, &commonv1.Frame{
				Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: it.m.TraceID, Conversation: it.c.ID,
				Payload: it.wire, MessageId: it.m.MessageID,
			})
		}
	}
	b.Crossed(pipeline.Down, uint64(len(items)), size)
	return nil
}

// sendRequests makes the layer take reqs and returns their ids: one
// SendBatch, or, for a layer that has none, one Send each, in order,
// stopping at the first error (what came before it is sent).
func (a *syncAdapter) sendRequests(ctx context.Context, client syncv1.ControlClient, reqs []*syncv1.SendRequest) ([][]byte, error) {
	ids := make([][]byte, len(reqs))
	if !a.noBatch.Load() {
		resp, err := client.SendBatch(ctx, &syncv1.SendBatchRequest{Messages: reqs})
		switch {
		case status.Code(err) == codes.Unimplemented:
			a.noBatch.Store(true)
		case err != nil:
			return nil, fmt.Errorf("send: %w", err)
		case len(resp.GetResults()) != len(reqs):
			return nil, fmt.Errorf("send: the %s layer answered %d results for a batch of %d", a.s.key, len(resp.GetResults()), len(reqs))
		default:
			for i, r := range resp.GetResults() {
				ids[i] = r.GetMessageId()
			}
			return ids, nil
		}
	}
	for i, req := range reqs {
		resp, err := client.Send(ctx, req)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("send: message %d of the batch (the %d before it were sent): %w", i, i, err)
			}
			return nil, fmt.Errorf("send: %w", err)
		}
		ids[i] = resp.GetMessageId()
	}
	return ids, nil
}

// ack implements appAcker: the layer's Ack, with the host's verdicts (the
// validator hook of sync.v1). Every message is in message_ids, so that a
// layer that predates verdicts does not deliver a refused one again
// either; a refused one is also in rejected, with why (Node.open: its
// envelope's signature, conversation, or its author's membership failed),
// so that the layer does not pass it on to other members and, with
// syncv1.CapValidity, makes its dependants invalid.
func (a *syncAdapter) ack(ctx context.Context, group []byte, items []ackItem) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("the %s layer is not running", a.s.key)
	}
	_, err := syncv1.NewControlClient(conn.Control()).Ack(ctx, ackRequest(group, items))
	return err
}

// maxRejectReason bounds the reason the host gives a layer for a refusal.
const maxRejectReason = 256

// ackRequest is the Ack of items in group.
func ackRequest(group []byte, items []ackItem) *syncv1.AckRequest {
	req := &syncv1.AckRequest{Group: group, MessageIds: make([][]byte, 0, len(items))}
	for _, it := range items {
		req.MessageIds = append(req.MessageIds, it.id)
		if it.reject != "" {
			reason := it.reject
			if len(reason) > maxRejectReason {
				reason = strings.ToValidUTF8(reason[:maxRejectReason], "")
			}
			req.Rejected = append(req.Rejected, &syncv1.Rejection{MessageId: it.id, Reason: reason})
		}
	}
	return req
}

// refusal is why Node.open refused a message: its drop counter and the
// detail. The sync layer is told it (AckRequest.rejected).
type refusal struct {
	counter msgCounter
	detail  string
}

func (r *refusal) Error() string { return msgCounterNames[r.counter] + ": " + r.detail }

// refuse counts a refused message under c and says why it was refused.
func (n *Node) refuse(c msgCounter, detail string, author []byte) error {
	n.msgStats.count(c, 1, n, detail, author)
	return &refusal{counter: c, detail: detail}
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
