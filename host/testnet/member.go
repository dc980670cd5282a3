package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// Roles of a Member.
const (
	// RoleClient is a node that runs the stack's every layer and serves
	// applications.
	RoleClient = "client"
	// RoleRelay is a node that runs the p2p and privacy layers only and
	// forwards what it cannot read.
	RoleRelay = "relay"
)

// goneTimeout bounds the wait for a host's plugins to end after the host
// has; past it they are killed and reported.
const goneTimeout = 10 * time.Second

// maxAPIMessage bounds a request or response on a member's API, as the
// host's own server does.
const maxAPIMessage = 8 << 20

// Member is one node of a Net: a `strata run` process and its plugins.
// Its methods are safe for concurrent use; Kill, Stop and Start of one
// member run one at a time.
type Member struct {
	// Name is the node's name (node.name): n0, n1, ... for clients, r0,
	// r1, ... for relays.
	Name string
	// Role is RoleClient or RoleRelay.
	Role string
	// Dir is the node's data directory (node.data_dir).
	Dir string
	// ConfigPath is the node's generated config file.
	ConfigPath string
	// API is where the node serves its messaging API, as a gRPC dial
	// target (and as `strata send --api` takes it):
	// "unix:<Dir>/host/api.sock".
	API string

	net     *Net
	args    []string
	apiNet  string // "unix" or "tcp"
	apiAddr string
	log     *tail
	sink    io.Writer // where output goes besides log: a file or a prefixWriter
	logFile *os.File
	logPath string

	op sync.Mutex // serialises Start, Stop and Kill

	mu          sync.Mutex
	run         *hostRun
	conn        *grpc.ClientConn
	card        string
	identity    []byte
	fingerprint string
	known       map[proc]bool // every process seen as this member's, for Close
}

// hostRun is one run of the host process, from start to exit.
type hostRun struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed once Wait returned
	copied chan struct{} // closed once the output pipe reached EOF
	// Set before exited is closed:
	waitErr error
	// Guarded by Member.mu:
	requested bool // Kill, Stop or Close asked it to end
}

// drain waits, briefly, until the run's output has reached the log, so
// that an error about its end can quote its last lines.
func (r *hostRun) drain() {
	select {
	case <-r.copied:
	case <-time.After(2 * time.Second):
	}
}

// Card returns the node's signed contact card, text form
// ("strata:card:..."), as the API's Node call gave it when the host last
// became ready.
func (m *Member) Card() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.card
}

// Identity returns the node's identity key (Ed25519, 32 bytes).
func (m *Member) Identity() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.identity...)
}

// Fingerprint returns the short human form of the node's identity.
func (m *Member) Fingerprint() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fingerprint
}

// LogPath returns the file the host's output goes to, or "" when
// Options.Log took it.
func (m *Member) LogPath() string { return m.logPath }

// LogTail returns up to the last n lines of the host's output (standard
// error and standard output, all runs), from memory.
func (m *Member) LogTail(n int) string { return m.log.lines(n) }

// Client returns a client of the node's messaging API. It stays usable
// across Kill and Start: each call goes to the connection of the host's
// current run, re-dialed at every Start. While the host is down, calls
// fail with codes.Unavailable.
func (m *Member) Client() appv1.MessagingClient {
	return appv1.NewMessagingClient(memberConn{m})
}

// memberConn is a grpc.ClientConnInterface that sends each call on the
// member's current connection.
type memberConn struct{ m *Member }

func (c memberConn) current() (*grpc.ClientConn, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if c.m.conn == nil {
		return nil, status.Errorf(codes.Unavailable, "testnet: %s is not running", c.m.Name)
	}
	return c.m.conn, nil
}

// Invoke implements grpc.ClientConnInterface.
func (c memberConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := c.current()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (c memberConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := c.current()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}

// PIDs returns the host's process id followed by those of every process
// below it (its plugins), read from /proc; nil when the host is not
// running.
func (m *Member) PIDs() []int {
	procs := m.snapshot()
	if len(procs) == 0 {
		return nil
	}
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.pid
	}
	return out
}

// snapshot reads the current host's process tree and remembers it.
func (m *Member) snapshot() []proc {
	m.mu.Lock()
	r := m.run
	m.mu.Unlock()
	if r == nil || isClosed(r.exited) {
		return nil
	}
	procs := descendants(r.pid)
	m.remember(procs)
	return procs
}

func (m *Member) remember(procs []proc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range procs {
		m.known[p] = true
	}
}

// Alive reports whether the host process runs.
func (m *Member) Alive() bool {
	m.mu.Lock()
	r := m.run
	m.mu.Unlock()
	return r != nil && !isClosed(r.exited)
}

// Exited returns a channel that is closed when the current run of the
// host ends, for whatever reason; after the host has ended (and until the
// next Start) it is closed already. Call it again after Start: each run has
// its own. Use ExitErr to tell a requested stop from a death.
func (m *Member) Exited() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return m.run.exited
}

// ExitErr describes how the host ended when it ended on its own: its exit
// status and the tail of its log. It is nil while the host runs and when
// Kill, Stop or Close ended it.
func (m *Member) ExitErr() error {
	m.mu.Lock()
	r := m.run
	requested := r != nil && r.requested
	m.mu.Unlock()
	if r == nil || !isClosed(r.exited) || requested {
		return nil
	}
	r.drain()
	how := "with status 0"
	if r.waitErr != nil {
		how = "(" + r.waitErr.Error() + ")"
	}
	return m.failure(fmt.Errorf("the host exited on its own %s", how))
}

// failure wraps err with the member's name and the tail of its log.
func (m *Member) failure(err error) error {
	msg := fmt.Sprintf("testnet: %s: %v", m.Name, err)
	if t := m.LogTail(tailLines); t != "" {
		msg += fmt.Sprintf("\n--- last lines of %s's log", m.Name)
		if m.logPath != "" {
			msg += " (" + m.logPath + ")"
		}
		msg += ":\n" + t
	}
	return &memberError{msg: msg, err: err}
}

// memberError is an error about one member, with its log's tail in the
// message; it unwraps to the cause.
type memberError struct {
	msg string
	err error
}

func (e *memberError) Error() string { return e.msg }
func (e *memberError) Unwrap() error { return e.err }

// Start starts the host again with the same config and data, and returns
// once its API answers and every layer runs. A host that does not get
// there (within Options.StartTimeout, or before ctx ends) is killed, and
// the error has the tail of its log. Starting a running member is an
// error.
func (m *Member) Start(ctx context.Context) error {
	m.op.Lock()
	defer m.op.Unlock()
	if m.Alive() {
		return fmt.Errorf("testnet: %s is running already", m.Name)
	}
	if err := m.net.usable(); err != nil {
		return err
	}
	// After a run that died on its own: its connection, and its plugins,
	// which must not hold the node's ports or files when it starts again.
	m.dropConn()
	if err := m.finish(nil); err != nil {
		return err
	}
	r, err := m.spawn()
	if err != nil {
		return m.failure(err)
	}
	if err := m.waitReady(ctx, r); err != nil {
		m.mu.Lock()
		r.requested = true
		m.mu.Unlock()
		m.hardStop(r)
		r.drain()
		return m.failure(err)
	}
	return nil
}

// spawn starts the host process, its output going to the log.
func (m *Member) spawn() (*hostRun, error) {
	cmd := exec.Command(m.net.binary, m.args...)
	cmd.Env = m.net.env
	cmd.Dir = m.net.dir
	cmd.SysProcAttr = sysProcAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = m.net.spawner.start(cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start %s: %w", m.net.binary, err)
	}
	r := &hostRun{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{}), copied: make(chan struct{})}
	go func() {
		defer close(r.copied)
		defer pr.Close()
		_, _ = io.Copy(io.MultiWriter(m.log, m.sink), pr)
		if p, ok := m.sink.(*prefixWriter); ok {
			p.flush()
		}
	}()
	go func() {
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	m.mu.Lock()
	m.run = r
	m.mu.Unlock()
	return r, nil
}

// waitReady waits until the API answers and every layer runs, then
// records the node's card and identity and its processes.
func (m *Member) waitReady(ctx context.Context, r *hostRun) error {
	ctx, cancel := context.WithTimeout(ctx, m.net.opts.StartTimeout)
	defer cancel()
	var cc *grpc.ClientConn
	defer func() {
		if cc != nil {
			cc.Close()
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-r.exited:
			if r.waitErr != nil {
				return fmt.Errorf("the host exited while starting (%v)", r.waitErr)
			}
			return errors.New("the host exited while starting, with status 0")
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
		if cc == nil {
			// Dial the socket first: a gRPC connection made before the
			// server listens would back off.
			c, err := net.DialTimeout(m.apiNet, m.apiAddr, time.Second)
			if err != nil {
				last = fmt.Errorf("API %s: %w", m.API, err)
				continue
			}
			c.Close()
			if cc, err = dialAPI(m.API); err != nil {
				return err
			}
		}
		client := appv1.NewMessagingClient(cc)
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := client.Node(cctx, &appv1.NodeRequest{})
		if err != nil {
			ccancel()
			last = fmt.Errorf("API Node: %w", err)
			continue
		}
		stats, err := client.Stats(cctx, &appv1.StatsRequest{})
		ccancel()
		if err != nil {
			last = fmt.Errorf("API Stats: %w", err)
			continue
		}
		if !stats.GetRunning() {
			var down []string
			for _, l := range stats.GetLayers() {
				if l.GetMode() == "process" && l.GetPid() == 0 {
					down = append(down, l.GetLayer())
				}
			}
			last = fmt.Errorf("layers not all running (down: %s)", strings.Join(down, ", "))
			continue
		}
		m.mu.Lock()
		m.conn, cc = cc, nil
		m.card = info.GetCard()
		m.identity = info.GetIdentity()
		m.fingerprint = info.GetFingerprint()
		m.mu.Unlock()
		m.snapshot()
		return nil
	}
}

// dialAPI makes a gRPC connection to a node's API.
func dialAPI(target string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}, MinConnectTimeout: 2 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxAPIMessage), grpc.MaxCallSendMsgSize(maxAPIMessage)))
	if err != nil {
		return nil, fmt.Errorf("API %s: %w", target, err)
	}
	return cc, nil
}

// Kill kills the host with SIGKILL, as a crash would, and waits until the
// host and every process that was below it (its plugins, which the plugin
// SDK stops when their host dies) are gone. Plugins still running after
// 10 s are killed too, and reported in the error. Killing a member that is
// not running only waits for the plugins of a host that died on its own.
func (m *Member) Kill() error {
	m.op.Lock()
	defer m.op.Unlock()
	r := m.begin()
	if r == nil {
		return m.finish(nil)
	}
	procs := m.snapshot()
	signalHost(r.pid, false)
	<-r.exited
	m.dropConn()
	return m.finish(procs)
}

// Stop stops the host as Ctrl-C would: SIGTERM, after which the host stops
// its plugins top down; SIGKILL when it has not ended within
// Options.StopTimeout or when ctx ends first. It returns once the host and
// its plugins are gone. Stopping a member that is not running only waits
// for the plugins of a host that died on its own.
func (m *Member) Stop(ctx context.Context) error {
	m.op.Lock()
	defer m.op.Unlock()
	r := m.begin()
	if r == nil {
		return m.finish(nil)
	}
	procs := m.snapshot()
	signalHost(r.pid, true)
	timer := time.NewTimer(m.net.opts.StopTimeout)
	defer timer.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case <-r.exited:
			break wait
		case <-timer.C:
			err = m.failure(fmt.Errorf("the host did not stop within %s of SIGTERM; killed it", m.net.opts.StopTimeout))
			signalHost(r.pid, false)
			break wait
		case <-ctx.Done():
			signalHost(r.pid, false)
			break wait
		case <-tick.C:
			// A plugin the supervisor restarts while the host stops
			// would be missed by the first snapshot.
			procs = appendNew(procs, m.snapshot())
		}
	}
	<-r.exited
	m.dropConn()
	return errors.Join(err, m.finish(procs))
}

// hardStop kills a run that failed to start, and its plugins.
func (m *Member) hardStop(r *hostRun) {
	procs := descendants(r.pid)
	signalHost(r.pid, false)
	<-r.exited
	m.dropConn()
	_ = m.finish(procs)
}

// begin marks the current run as ended on request and returns it; nil
// when the host is not running.
func (m *Member) begin() *hostRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.run
	if r == nil || isClosed(r.exited) {
		return nil
	}
	r.requested = true
	return r
}

// finish waits until procs and every process known to be the member's are
// gone.
func (m *Member) finish(procs []proc) error {
	m.remember(procs)
	m.mu.Lock()
	all := make([]proc, 0, len(m.known))
	for p := range m.known {
		all = append(all, p)
	}
	m.mu.Unlock()
	if err := waitGone(all, goneTimeout); err != nil {
		return m.failure(err)
	}
	m.mu.Lock()
	for _, p := range all {
		delete(m.known, p)
	}
	m.mu.Unlock()
	return nil
}

// dropConn closes the current API connection.
func (m *Member) dropConn() {
	m.mu.Lock()
	cc := m.conn
	m.conn = nil
	m.mu.Unlock()
	if cc != nil {
		cc.Close()
	}
}

// appendNew adds to procs those of more it does not have.
func appendNew(procs, more []proc) []proc {
	for _, p := range more {
		found := false
		for _, q := range procs {
			if p == q {
				found = true
				break
			}
		}
		if !found {
			procs = append(procs, p)
		}
	}
	return procs
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
