package sdk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// ErrUnverified is returned by Launch when no checksum was given and
// unverified binaries are not allowed.
var ErrUnverified = errors.New("sdk: plugin binary has no checksum to verify")

// LaunchConfig says how to start a plugin process.
type LaunchConfig struct {
	// Path is the plugin binary.
	Path string
	// Kind is the layer kind the host expects the binary to serve.
	Kind commonv1.LayerKind
	// Checksum is the binary's expected SHA-256. The binary is hashed right
	// before it is executed and refused on mismatch.
	Checksum []byte
	// AllowUnverified starts the binary without a checksum. For development.
	AllowUnverified bool
	// Logger receives the plugin's log, under its own name.
	Logger hclog.Logger
	// Env is extra environment for the plugin. The host's own environment is
	// not passed on (it may hold secrets).
	Env []string
	// StartTimeout bounds the handshake; default 1 minute.
	StartTimeout time.Duration
	// CallTimeout bounds every unary call (lifecycle and Control) whose
	// context has no deadline; default 30 s. A plugin that hangs must not
	// hang the host.
	CallTimeout time.Duration
	// Batch bounds the batches the host sends to the plugin.
	Batch BatchOptions
}

// Launch starts a plugin binary and returns its Conn once the handshake is
// done: protocol version negotiated, AutoMTLS set up, kind checked.
func Launch(ctx context.Context, cfg LaunchConfig) (Conn, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	var secure *plugin.SecureConfig
	switch {
	case len(cfg.Checksum) > 0:
		secure = &plugin.SecureConfig{Checksum: cfg.Checksum, Hash: sha256.New()}
	case !cfg.AllowUnverified:
		return nil, fmt.Errorf("launch %s: %w", cfg.Path, ErrUnverified)
	}
	kind := KindName(cfg.Kind)
	cmd := exec.Command(cfg.Path)
	cmd.Env = append([]string{EnvLogLevel + "=" + levelName(cfg.Logger)}, cfg.Env...)
	if cfg.Batch.MaxFrames > 0 {
		cmd.Env = append(cmd.Env, EnvBatchFrames+"="+strconv.Itoa(cfg.Batch.MaxFrames))
	}
	setParentDeathSignal(cmd)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {kind: &grpcPlugin{}}},
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           cfg.Logger,
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions:  boundaryDialOptions(),
	})
	fail := func(err error) (Conn, error) {
		killBounded(client)
		return nil, fmt.Errorf("launch %s: %w", cfg.Path, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(kind)
	if err != nil {
		return fail(fmt.Errorf("the binary does not serve a %s layer: %w", kind, err))
	}
	d, ok := raw.(*dispensed)
	if !ok {
		return fail(fmt.Errorf("unexpected plugin client %T", raw))
	}
	c := &remoteConn{
		client: client,
		cc:     d.cc,
		layer:  commonv1.NewLayerClient(d.cc),
		cfg:    cfg,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	go func() {
		select {
		case <-d.exited.Done():
		case <-c.closed:
		}
		c.markDone()
	}()
	info, err := c.Describe(ctx)
	if err != nil {
		return fail(err)
	}
	if info.GetKind() != cfg.Kind {
		return fail(fmt.Errorf("the binary is a %s layer, not %s", KindName(info.GetKind()), kind))
	}
	return c, nil
}

// remoteConn is a Conn to a plugin process.
type remoteConn struct {
	client *plugin.Client
	cc     *grpc.ClientConn
	layer  commonv1.LayerClient
	cfg    LaunchConfig

	doneOnce  sync.Once
	done      chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *remoteConn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// call gives ctx the default deadline when it has none.
func (c *remoteConn) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.CallTimeout)
}

func (c *remoteConn) Describe(ctx context.Context) (*commonv1.PluginInfo, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	info, err := c.layer.Describe(ctx, &commonv1.DescribeRequest{})
	return info, fromStatus(err)
}

func (c *remoteConn) Configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Configure(ctx, req)
	return resp, fromStatus(err)
}

func (c *remoteConn) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Start(ctx, req)
	return resp, fromStatus(err)
}

func (c *remoteConn) Health(ctx context.Context) (*commonv1.HealthResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Health(ctx, &commonv1.HealthRequest{})
	return resp, fromStatus(err)
}

func (c *remoteConn) Stop(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.layer.Stop(ctx, &commonv1.StopRequest{})
	return fromStatus(err)
}

func (c *remoteConn) Open(ctx context.Context, deliver func(*commonv1.Batch)) (Link, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.layer.Frames(sctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open frame stream: %w", fromStatus(err))
	}
	l := newLink(c.cfg.Batch, cancel)
	go func() { l.fail(l.pump(sctx, stream.Send)) }()
	go func() {
		for {
			b, err := stream.Recv()
			if err != nil {
				l.fail(err)
				return
			}
			deliver(b)
		}
	}()
	return l, nil
}

func (c *remoteConn) Control() grpc.ClientConnInterface {
	return deadlineConn{cc: c.cc, timeout: c.cfg.CallTimeout}
}

func (c *remoteConn) Done() <-chan struct{} { return c.done }

// Close ends the plugin process: a Shutdown RPC, then a kill after 2 s.
func (c *remoteConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		killBounded(c.client)
		c.markDone()
	})
	return nil
}

// killBounded calls Kill but gives up waiting after 10 s: go-plugin's Kill
// has been seen to hang on a stuck broker stream.
func killBounded(client *plugin.Client) {
	done := make(chan struct{})
	go func() {
		client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

func levelName(l hclog.Logger) string {
	switch {
	case l.IsTrace():
		return "trace"
	case l.IsDebug():
		return "debug"
	case l.IsInfo():
		return "info"
	case l.IsWarn():
		return "warn"
	default:
		return "error"
	}
}

// Pid returns the plugin's process id, or 0 if it is not known.
func (c *remoteConn) Pid() int {
	if rc := c.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}
