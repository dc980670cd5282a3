package sdk

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Conn is the host's handle on one running layer, whether the layer runs in
// its own process (Launch) or in the host's (InProcess). The host and the
// conformance suites speak to every layer through it, so both modes run the
// same code above this line.
type Conn interface {
	// Describe asks the plugin for its self-description.
	Describe(ctx context.Context) (*commonv1.PluginInfo, error)
	// Configure hands the plugin its config section. A rejected value comes
	// back as a *ConfigError.
	Configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error)
	// Open starts the data stream. deliver is called for every batch the
	// layer emits, from one goroutine, in order; it owns the batch. The
	// returned Link sends input to the layer. Open is called once, after
	// Configure and before Start.
	Open(ctx context.Context, deliver func(*commonv1.Batch)) (Link, error)
	// Start makes the layer go live.
	Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error)
	// Health asks for liveness and counters.
	Health(ctx context.Context) (*commonv1.HealthResponse, error)
	// Stop ends the layer cleanly. The Conn stays usable for Close.
	Stop(ctx context.Context) error
	// Control is the connection for the layer's typed control client, e.g.
	// p2pv1.NewControlClient(conn.Control()).
	Control() grpc.ClientConnInterface
	// Done is closed when the layer is gone: its process exited or Close
	// was called.
	Done() <-chan struct{}
	// Close releases the layer; for a plugin process it ends the process.
	Close() error
}

// Link sends input frames and events to a layer. Frames are queued and
// carried in batches; a Link is safe for concurrent use.
type Link interface {
	Emitter
	// Done is closed when the data stream has ended.
	Done() <-chan struct{}
	// Err says why the stream ended, once Done is closed.
	Err() error
	// Close ends the stream.
	Close() error
}

// link is the Link shared by both modes: a queue pumped into the layer by
// one goroutine, plus the goroutine that delivers the layer's output.
type link struct {
	*queue
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func newLink(opts BatchOptions, cancel context.CancelFunc) *link {
	return &link{queue: newQueue(opts), cancel: cancel, done: make(chan struct{})}
}

// fail ends the link with err (the first error wins).
func (l *link) fail(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		l.queue.close()
		l.cancel()
		close(l.done)
	})
}

func (l *link) Done() <-chan struct{} { return l.done }

func (l *link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *link) Close() error {
	l.fail(ErrClosed)
	return nil
}
