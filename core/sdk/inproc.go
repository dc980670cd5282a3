package sdk

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// InProcessConfig says how to run a layer inside the host's process.
type InProcessConfig struct {
	// Logger is the layer's logger.
	Logger hclog.Logger
	// Batch bounds the batches in both directions.
	Batch BatchOptions
	// CallTimeout bounds every Control call whose context has no deadline;
	// default 30 s, as out of process.
	CallTimeout time.Duration
}

// controlPipeBytes is the buffer of each direction of an in-process
// control connection. Control calls are small; a larger message waits for
// the reader, as on a socket. bufconn allocates the whole buffer up front,
// so it is kept small: a process of many stacks (the host tests run 50)
// has eight of them per stack.
const controlPipeBytes = 64 << 10

// InProcess runs impl inside the calling process and returns its Conn. Frames
// cross the boundary as Go values, in the same batches and through the same
// queues as out of process; control calls go through an in-memory gRPC
// connection, so the typed control clients work unchanged. It is the
// "inproc" mode of the host, and what tests and benchmarks compare the
// process boundary against.
func InProcess(impl Layer, cfg InProcessConfig) (Conn, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	info := impl.Describe()
	lis := bufconn.Listen(controlPipeBytes)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))
	if err := registerControl(srv, impl); err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///inproc-"+info.GetName(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)))
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("in-process control connection for %s: %w", info.GetName(), err)
	}
	return &inprocConn{
		rt:   newRuntime(impl, cfg.Logger, cfg.Batch),
		cfg:  cfg,
		srv:  srv,
		cc:   cc,
		done: make(chan struct{}),
	}, nil
}

// inprocConn is a Conn to a layer in the host's own process.
type inprocConn struct {
	rt   *runtime
	cfg  InProcessConfig
	srv  *grpc.Server
	cc   *grpc.ClientConn
	once sync.Once
	done chan struct{}
}

func (c *inprocConn) Describe(context.Context) (*commonv1.PluginInfo, error) {
	return c.rt.impl.Describe(), nil
}

func (c *inprocConn) Configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error) {
	return c.rt.configure(ctx, req)
}

func (c *inprocConn) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	return c.rt.start(ctx, req)
}

func (c *inprocConn) Health(ctx context.Context) (*commonv1.HealthResponse, error) {
	return c.rt.health(ctx), nil
}

func (c *inprocConn) Stop(ctx context.Context) error {
	return c.rt.shutdown(ctx, "the host asked")
}

func (c *inprocConn) Open(ctx context.Context, deliver func(*commonv1.Batch)) (Link, error) {
	sctx, cancel := context.WithCancel(ctx)
	l := newLink(c.cfg.Batch, cancel)
	go func() {
		l.fail(l.pump(sctx, func(b *commonv1.Batch) error {
			c.rt.impl.HandleBatch(sctx, b)
			return nil
		}))
	}()
	go func() {
		l.fail(c.rt.out.pump(sctx, func(b *commonv1.Batch) error {
			deliver(b)
			return nil
		}))
	}()
	return l, nil
}

func (c *inprocConn) Control() grpc.ClientConnInterface {
	return deadlineConn{cc: c.cc, timeout: c.cfg.CallTimeout}
}

func (c *inprocConn) Done() <-chan struct{} { return c.done }

func (c *inprocConn) Close() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.rt.shutdown(ctx, "closed")
		_ = c.cc.Close()
		c.srv.Stop()
		close(c.done)
	})
	return nil
}
