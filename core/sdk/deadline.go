package sdk

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// deadlineConn gives every unary control call a deadline when its context
// has none, so that a plugin that hangs while alive cannot hang its caller.
// Streams are left alone: they are meant to be long-lived.
type deadlineConn struct {
	cc      grpc.ClientConnInterface
	timeout time.Duration
}

// Invoke implements grpc.ClientConnInterface.
func (d deadlineConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	return d.cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (d deadlineConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return d.cc.NewStream(ctx, desc, method, opts...)
}
