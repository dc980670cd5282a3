package sdk

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// ErrUnverified is returned by Launch when no checksum was given and
// unverified binaries are not allowed.
var ErrUnverified = errors.New("sdk: plugin binary has no checksum to verify")

// ErrChecksumMismatch is returned by Launch when the binary's SHA-256 is
// not LaunchConfig.Checksum.
var ErrChecksumMismatch = errors.New("plugin checksum mismatch")

// LaunchConfig says how to start a plugin process.
type LaunchConfig struct {
	// Path is the plugin binary. Launch opens it once (OpenBinary: no
	// symlink, owned by this user or root, neither it nor a directory above
	// it writable by others), hashes the open file and executes that same
	// file, so the binary cannot be swapped between the check and the run.
	Path string
	// Kind is the layer kind the host expects the binary to serve.
	Kind commonv1.LayerKind
	// Checksum is the binary's expected SHA-256, compared with the hash of
	// the open file right before it is executed; a mismatch is refused.
	Checksum []byte
	// AllowUnverified starts the binary when Checksum is empty. For
	// development: the file checks still apply, and every such launch logs
	// a warning that names the binary, its SHA-256 and UnverifiedReason.
	AllowUnverified bool
	// UnverifiedReason says what allowed an unverified binary, for that
	// warning (for the host: plugins.allow_unverified, from the config
	// file or STRATA_PLUGINS__ALLOW_UNVERIFIED, or --allow-unverified).
	UnverifiedReason string
	// Logger receives the plugin's log, under its own name.
	Logger hclog.Logger
	// LogLimit bounds what the plugin may write to Logger.
	LogLimit LogLimit
	// Env is extra environment for the plugin. The host's own environment is
	// not passed on (it may hold secrets).
	Env []string
	// RunAs, when set, runs the plugin as that user (the host must be root).
	RunAs *RunAs
	// StartTimeout bounds the handshake; default 1 minute.
	StartTimeout time.Duration
	// CallTimeout bounds every unary call (lifecycle and Control) whose
	// context has no deadline; default 30 s. A plugin that hangs must not
	// hang the host.
	CallTimeout time.Duration
	// Batch bounds the batches the host sends to the plugin, and those it
	// accepts from it: the plugin is told MaxFrames and MaxBytes, and a
	// batch beyond them is refused (see FrameLimits).
	Batch BatchOptions
	// Limits bound the frames the host accepts from the plugin.
	Limits FrameLimits
	// Refused is told of every frame and event the host dropped on receipt
	// for breaking Limits or Batch, from the goroutine that receives the
	// plugin's output, before the rest of the batch is delivered. The host
	// counts them at its boundary. May be nil.
	Refused func(Refusal)
}

// launchHook, when set by a test, runs after the binary was opened and
// hashed and before it is started: where a swap of the file would have
// to happen to beat the check.
var launchHook func(path string)

// Launch starts a plugin binary and returns its Conn once the handshake is
// done: protocol version negotiated, AutoMTLS set up, kind checked.
func Launch(ctx context.Context, cfg LaunchConfig) (Conn, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	cfg.Batch = cfg.Batch.withDefaults()
	bin, err := OpenBinary(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", cfg.Path, err)
	}
	// bin stays open until the process has started from it.
	defer bin.Close()
	sum, err := HashFile(bin)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", cfg.Path, err)
	}
	switch {
	case len(cfg.Checksum) > 0:
		if !bytes.Equal(sum, cfg.Checksum) {
			return nil, fmt.Errorf("launch %s: %w: its sha256 is %x, not the recorded %x", cfg.Path, ErrChecksumMismatch, sum, cfg.Checksum)
		}
	case !cfg.AllowUnverified:
		return nil, fmt.Errorf("launch %s: %w", cfg.Path, ErrUnverified)
	default:
		reason := cfg.UnverifiedReason
		if reason == "" {
			reason = "LaunchConfig.AllowUnverified"
		}
		cfg.Logger.Warn("STARTING AN UNVERIFIED PLUGIN BINARY: no recorded checksum vouches for it; lock it, or stop allowing unverified plugins",
			"binary", cfg.Path, "sha256", hex.EncodeToString(sum), "allowed_by", reason)
	}
	if launchHook != nil {
		launchHook(cfg.Path)
	}
	kind := KindName(cfg.Kind)
	env := append([]string{
		EnvLogLevel + "=" + levelName(cfg.Logger),
		EnvBatchFrames + "=" + strconv.Itoa(cfg.Batch.MaxFrames),
		EnvBatchBytes + "=" + strconv.Itoa(cfg.Batch.MaxBytes),
	}, cfg.Env...)
	env = append(env, profileEnv()...)
	var (
		proc       *procRunner
		socketConf *plugin.UnixSocketConfig
	)
	if cfg.RunAs != nil {
		// go-plugin makes a directory for the plugin's socket, mode 0700:
		// the plugin's user must be able to create its socket in it.
		socketConf = &plugin.UnixSocketConfig{Group: strconv.FormatUint(uint64(cfg.RunAs.GID), 10)}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {kind: &grpcPlugin{}}},
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			r, err := newProcRunner(cfg.Path, bin, append(env, cmd.Env...), &cfg)
			proc = r
			return r, err
		},
		UnixSocketConfig: socketConf,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           cfg.Logger,
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
		Stderr:           io.Discard,
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
		proc:   proc,
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
	c.limits = newRecvLimits(cfg.Limits, info.GetMaxPayload(), cfg.Batch, cfg.Refused)
	return c, nil
}

// remoteConn is a Conn to a plugin process.
type remoteConn struct {
	client *plugin.Client
	proc   *procRunner
	cc     *grpc.ClientConn
	layer  commonv1.LayerClient
	cfg    LaunchConfig
	limits *recvLimits

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
	return info, untrusted(fromStatus(err))
}

func (c *remoteConn) Configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Configure(ctx, req)
	return resp, untrusted(fromStatus(err))
}

func (c *remoteConn) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Start(ctx, req)
	return resp, untrusted(fromStatus(err))
}

func (c *remoteConn) Health(ctx context.Context) (*commonv1.HealthResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.layer.Health(ctx, &commonv1.HealthRequest{})
	return resp, untrusted(fromStatus(err))
}

func (c *remoteConn) Stop(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.layer.Stop(ctx, &commonv1.StopRequest{})
	return untrusted(fromStatus(err))
}

func (c *remoteConn) Open(ctx context.Context, deliver func(*commonv1.Batch)) (Link, error) {
	sctx, cancel := context.WithCancel(ctx)
	// The data stream's own receive limit: the largest batch the plugin
	// can legitimately send (boundaryDialOptions' default is for the
	// unary calls).
	stream, err := c.layer.Frames(sctx, grpc.MaxCallRecvMsgSize(c.limits.streamMax))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open frame stream: %w", untrusted(fromStatus(err)))
	}
	l := newLink(c.cfg.Batch, cancel)
	go func() { l.fail(l.pump(sctx, stream.Send)) }()
	go func() {
		for {
			b, err := stream.Recv()
			if err != nil {
				if status.Code(err) == codes.ResourceExhausted {
					c.cfg.Logger.Error("the plugin sent a batch larger than the host accepts from it; its data stream is closed",
						"limit_bytes", c.limits.streamMax, "error", err)
				}
				l.fail(err)
				return
			}
			c.limits.admit(b)
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

// untrusted cleans the text of an error a plugin sent (cleanLogText), so
// that the host's log and the CLI show it without terminal escapes or
// fake lines.
func untrusted(err error) error {
	var ce *ConfigError
	var re *RemoteError
	switch {
	case errors.As(err, &ce):
		ce.Key, ce.Problem, ce.Fix = cleanLogText(ce.Key), cleanLogText(ce.Problem), cleanLogText(ce.Fix)
	case errors.As(err, &re):
		re.Message = cleanLogText(re.Message)
	}
	return err
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
	if c.proc == nil {
		return 0
	}
	return c.proc.Pid()
}
