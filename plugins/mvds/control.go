package mvds

import (
	"bytes"
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// SetGroup implements syncv1.ControlServer. Members are 32-byte identity
// keys and include this node; the membership is stored, so that
// retransmission resumes after a restart before the host sets it again.
// Setting the members a group already has changes nothing.
func (l *Layer) SetGroup(ctx context.Context, req *syncv1.GroupRequest) (*syncv1.GroupResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	if err := nd.setGroup(ctx, req.GetId(), req.GetMembers()); err != nil {
		return nil, toStatus(err)
	}
	return &syncv1.GroupResponse{}, nil
}

// Send implements syncv1.ControlServer. A persistent message is committed
// when Send returns; an ephemeral one is never stored. Either goes out at
// once when the layer is idle, with the messages sent meanwhile when it is
// busy (eager, the default), or at the next epoch (eager: false); an
// ephemeral one only once. Parents must be persistent messages of the
// group sent or delivered here. Every call is a new message with a new id.
// Concurrent calls share commits: one fsync for all that gathered while
// the previous commit ran.
func (l *Layer) Send(ctx context.Context, req *syncv1.SendRequest) (*syncv1.SendResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	id, err := nd.send(ctx, req.GetGroup(), req.GetPayload(), req.GetParents(), req.GetEphemeral(), req.GetTraceId())
	if err != nil {
		return nil, toStatus(err)
	}
	l.kick()
	return &syncv1.SendResponse{MessageId: bytes.Clone(id[:])}, nil
}

var _ sdk.SyncBatcher = (*Layer)(nil)

// SendBatch implements sdk.SyncBatcher: the messages as Send takes each,
// in order, all or none, in one commit (one fsync) that is done before it
// returns. A message that Send would refuse refuses the batch, with an
// error that names its index, and nothing of the batch is stored or sent.
// A message may name an earlier message of the batch as a parent;
// timestamps strictly increase along the batch. At most MaxSendBatch
// messages.
func (l *Layer) SendBatch(ctx context.Context, req *syncv1.SendBatchRequest) (*syncv1.SendBatchResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	msgs := make([]sendMsg, len(req.GetMessages()))
	for i, m := range req.GetMessages() {
		msgs[i] = sendMsg{group: m.GetGroup(), payload: m.GetPayload(), parents: m.GetParents(), ephemeral: m.GetEphemeral(), trace: m.GetTraceId()}
	}
	ids, err := nd.sendBatch(ctx, msgs, true)
	if err != nil {
		return nil, toStatus(err)
	}
	l.kick()
	resp := &syncv1.SendBatchResponse{Results: make([]*syncv1.SendResponse, len(ids))}
	for i, id := range ids {
		resp.Results[i] = &syncv1.SendResponse{MessageId: bytes.Clone(id[:])}
	}
	return resp, nil
}

// State implements syncv1.ControlServer: messages counts the stored
// messages of the group (sent here or received), delivered the received
// ones that went up, pending those waiting for a parent (ephemeral ones
// included) and unacknowledged the stored messages that some member has
// not acknowledged to this node (its own, and those it relays).
func (l *Layer) State(ctx context.Context, req *syncv1.StateRequest) (*syncv1.StateResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	st, err := nd.state(ctx, req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &syncv1.StateResponse{
		Messages:       st.messages,
		Delivered:      st.delivered,
		Pending:        st.pending,
		Unacknowledged: st.unacknowledged,
	}, nil
}

// Ack implements syncv1.ControlServer: the host has stored these
// delivered messages of the group, which are not delivered again, not
// even after a restart. It returns once that is committed. Ids that are
// unknown, not delivered yet, of messages sent from here, of ephemeral
// messages or of another group are ignored (counted as
// host_acks_ignored). An empty group, or more than MaxAckIDs ids, is
// InvalidArgument.
func (l *Layer) Ack(ctx context.Context, req *syncv1.AckRequest) (*syncv1.AckResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	if _, _, err := nd.ack(ctx, req.GetGroup(), ackedIDs(req)); err != nil {
		return nil, toStatus(err)
	}
	if err := nd.reject(ctx, req); err != nil { // verdict.go
		return nil, toStatus(err)
	}
	return &syncv1.AckResponse{}, nil
}

// configured returns the node, or the status error of a layer that has
// none: not configured yet, or stopped.
func (l *Layer) configured() (*node, error) {
	nd := l.node.Load()
	if nd == nil {
		return nil, status.Error(codes.FailedPrecondition, "mvds: not configured, or stopped")
	}
	return nd, nil
}

// toStatus maps a node error to a gRPC status.
func toStatus(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, errInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, errNoGroup):
		code = codes.NotFound
	case errors.Is(err, errPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, errUnavailable):
		code = codes.Unavailable
	case errors.Is(err, errBusy):
		code = codes.ResourceExhausted
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
