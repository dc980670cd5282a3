package bsp

import (
	"bytes"
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
)

// SetGroup implements syncv1.ControlServer. Members are 32-byte identity
// keys and include this node; the membership is stored. A member who
// joins is sent what this node shares, back to the history window.
func (l *Layer) SetGroup(ctx context.Context, req *syncv1.GroupRequest) (*syncv1.GroupResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	if err := nd.setGroup(ctx, req.GetId(), req.GetMembers()); err != nil {
		return nil, toStatus(err)
	}
	l.kick()
	return &syncv1.GroupResponse{}, nil
}

// Send implements syncv1.ControlServer. A persistent message is committed
// when Send returns (concurrent Sends share one commit) and goes out at
// once; an ephemeral one goes out once and is never stored. Parents must
// be delivered messages of the group; they are the message's BSP
// dependencies.
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

// SendBatch implements sdk.SyncBatcher: the messages are taken all or
// none, in order (a parent may be an earlier message of the batch), and
// committed together.
func (l *Layer) SendBatch(ctx context.Context, req *syncv1.SendBatchRequest) (*syncv1.SendBatchResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	msgs := make([]outgoing, len(req.GetMessages()))
	for i, m := range req.GetMessages() {
		msgs[i] = outgoing{group: m.GetGroup(), payload: m.GetPayload(), parents: m.GetParents(), ephemeral: m.GetEphemeral(), trace: m.GetTraceId()}
	}
	ids, err := nd.sendBatch(ctx, msgs)
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

// State implements syncv1.ControlServer: messages counts the group's
// messages held or compacted here (invalid ones aside), delivered the
// received ones that went up, pending those waiting for a dependency,
// unacknowledged those this node shares that some member has not
// acknowledged to it.
func (l *Layer) State(ctx context.Context, req *syncv1.StateRequest) (*syncv1.StateResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	st, err := nd.state(req.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &syncv1.StateResponse{Messages: st.messages, Delivered: st.delivered, Pending: st.pending, Unacknowledged: st.unacknowledged}, nil
}

// Ack implements syncv1.ControlServer: the host is done with these
// deliveries (accepted, or rejected); they are not delivered again. A
// rejected message becomes invalid with its dependants, a deferred one
// pending until its dependencies are delivered (verdict.go); one whose
// dependencies are all delivered already goes up again before Ack
// returns. It returns once that is committed. Ids that acknowledge
// nothing are counted as host_acks_ignored.
func (l *Layer) Ack(ctx context.Context, req *syncv1.AckRequest) (*syncv1.AckResponse, error) {
	nd, err := l.configured()
	if err != nil {
		return nil, err
	}
	v := decodeVerdicts(req, l.c)
	if len(v.deferred) > 0 {
		// A deferral may deliver at once: in order with other deliveries.
		l.deliverMu.Lock()
		defer l.deliverMu.Unlock()
	}
	ds, err := nd.hostAck(ctx, req.GetGroup(), req.GetMessageIds(), v)
	if err != nil {
		return nil, toStatus(err)
	}
	l.kick()
	if err := l.emit(ctx, upFrames(ds)); err == nil {
		l.c.delivered.Add(uint64(len(ds)))
	}
	return &syncv1.AckResponse{}, nil
}

func (l *Layer) configured() (*node, error) {
	nd := l.node.Load()
	if nd == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "bsp: not configured, or stopped")
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
	case errors.Is(err, errFailed):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return grpcstatus.Error(code, err.Error())
}
