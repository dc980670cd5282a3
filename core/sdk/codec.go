package sdk

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// boundaryCodec is the gRPC codec on both ends of the plugin boundary. It
// writes and reads the same protobuf wire format as gRPC's own proto codec,
// and names itself "proto", so the content type stays application/grpc+proto
// and a plugin written in any language with stock gRPC speaks to it
// unchanged. It differs in where its buffers come from: gRPC's codec takes
// them from the process-wide default pool, which zeroes the whole capacity
// of every buffer it hands out and rounds a 260 KB batch up to a 1 MiB
// buffer. At the boundary's batch sizes that clearing was an eighth of the
// host's CPU. boundaryCodec takes buffers from a pool that does not zero:
// every byte a caller can see is written before it is read (marshal fills
// exactly the message's size; unmarshal copies what it keeps), so no stale
// byte is ever exposed.
type boundaryCodec struct{ pool *dirtyPool }

// Name implements encoding.CodecV2. It is "proto" on purpose: see the type.
func (boundaryCodec) Name() string { return "proto" }

// Marshal implements encoding.CodecV2.
func (c boundaryCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("boundary codec: cannot marshal %T, want a proto.Message", v)
	}
	size := proto.Size(m)
	// UseCachedSize is safe: Size just computed it, and a message is not
	// changed while it is being sent.
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := c.pool.Get(size)
	out, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

// Unmarshal implements encoding.CodecV2. proto.Unmarshal copies every
// bytes field it keeps, so the buffers are free to return to the pool as
// soon as it returns.
func (c boundaryCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("boundary codec: cannot unmarshal into %T, want a proto.Message", v)
	}
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// dirtyPool is a mem.BufferPool of power-of-two size classes from 256 B to
// 64 MiB that does not clear the buffers it hands out. Larger requests are
// allocated and dropped.
type dirtyPool struct {
	classes [dirtyClasses]sync.Pool
}

const (
	dirtyMinShift = 8  // 256 B
	dirtyClasses  = 19 // up to 2^26 = 64 MiB
)

// newDirtyPool returns an empty pool.
func newDirtyPool() *dirtyPool { return &dirtyPool{} }

// class returns the index of the smallest class that holds n bytes, or -1
// when n is beyond the largest class.
func dirtyClass(n int) int {
	if n <= 1<<dirtyMinShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - dirtyMinShift
	if c >= dirtyClasses {
		return -1
	}
	return c
}

// Get implements mem.BufferPool.
func (p *dirtyPool) Get(n int) *[]byte {
	c := dirtyClass(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+dirtyMinShift))
	return &b
}

// Put implements mem.BufferPool. Only buffers of exactly a class's
// capacity are kept, so Get never returns one too small.
func (p *dirtyPool) Put(b *[]byte) {
	n := cap(*b)
	c := dirtyClass(n)
	if c < 0 || n != 1<<(c+dirtyMinShift) {
		return
	}
	*b = (*b)[:0]
	p.classes[c].Put(b)
}

// boundaryDialOptions are the host side's gRPC options for a plugin
// connection: the boundary codec, its pool for the transport's reads, and
// the message size limits. A plugin's answers to unary calls are bounded by
// maxUnaryRecvBytes; its data stream sets its own limit per call, from the
// plugin's frame limits (remoteConn.Open).
func boundaryDialOptions() []grpc.DialOption {
	pool := newDirtyPool()
	return []grpc.DialOption{
		experimental.WithBufferPool(pool),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(boundaryCodec{pool: pool}),
			grpc.MaxCallRecvMsgSize(maxUnaryRecvBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}
}

// boundaryServerOptions are the plugin side's counterparts of
// boundaryDialOptions.
func boundaryServerOptions() []grpc.ServerOption {
	pool := newDirtyPool()
	return []grpc.ServerOption{
		experimental.BufferPool(pool),
		grpc.ForceServerCodecV2(boundaryCodec{pool: pool}),
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
	}
}
