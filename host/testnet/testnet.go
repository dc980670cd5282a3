// Package testnet runs a local network of Strata hosts on loopback: one
// `strata run` process per node, each with its own generated config, data
// directory and messaging API socket, all on one stack config. Relays (p2p
// and privacy only) start first; clients get the relays' cards as
// node.peers. For a stack whose privacy layer is mixnet, the relays are a
// whole mixnet instead: mixes in layers and providers, with their keys and
// a signed PKI document generated in Dir, each node kept connected to the
// relays it sends to (MixnetOptions). Start returns once every node's API
// answers and every layer runs; Close stops every node and checks that no
// process is left.
//
//	net, err := testnet.Start(ctx, testnet.Options{Stack: "configs/libp2p-none-dr-mvds.yaml", Nodes: 3, Relays: testnet.AutoRelays, Dir: dir})
//	if err != nil { ... }
//	defer net.Close(context.Background())
//	if err := net.IntroduceAll(ctx); err != nil { ... }
//	n0 := net.Member("n0").Client() // the node's appv1.MessagingClient
//
// The `strata testnet` command is a front end to it.
package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/mixnet"
)

// AutoRelays as Options.Relays runs the relays the stack's privacy layer
// needs: for the mixnet layer, a whole mixnet (Options.Mixnet: mixes in
// layers and providers, with their PKI document); one relay when the layer
// provides sdk.CapRelayed (its messages travel through relays of its own,
// such as whisper's); none otherwise. The layer is asked: its plugin
// binary is described, checked against the lock as a node checks it, or
// looked up in Options.Catalog when it runs in process.
const AutoRelays = -1

// Defaults of Options.
const (
	// DefaultStartTimeout is how long a node may take to become ready.
	DefaultStartTimeout = 60 * time.Second
	// DefaultStopTimeout is how long a node may take to stop after
	// SIGTERM before it is killed.
	DefaultStopTimeout = 20 * time.Second
)

// Options say what network to run.
type Options struct {
	// Stack is the stack config: a node config file (YAML or TOML) whose
	// layers, plugin directory and settings every node uses. It must have
	// p2p, privacy and secure layers (a client stack).
	Stack string
	// Nodes is the number of clients, at least 1. They are named n0, n1,
	// ...
	Nodes int
	// Relays is the number of relays (named r0, r1, ...), or AutoRelays:
	// for a mixnet stack its mixes and providers (named mix-<layer>-<i>
	// and provider-<i>), else one when the stack's privacy layer provides
	// sdk.CapRelayed, else none. A relay runs the stack's p2p and privacy
	// layers only; every client keeps a connection to every relay, and
	// each relay to the relays before it. In a mixnet each node keeps a
	// connection to the relays it sends to instead (docs/testnet.md).
	Relays int
	// Dir is where the nodes' configs (<name>.yaml), data directories
	// (<name>/) and, without Log, logs (<name>.log) go. Required; the
	// caller creates and removes it. A Dir used before keeps the nodes'
	// identities and state. Keep it short: each node's API socket is
	// <Dir>/<name>/host/api.sock, and a socket path has at most 103 bytes.
	Dir string
	// Binary is the strata executable; "" means os.Executable().
	Binary string
	// Catalog holds the plugins the hosts run in process, so that
	// AutoRelays can ask one of them what it provides; nil is an empty
	// catalog.
	Catalog plugins.Catalog
	// AllowUnverified passes --allow-unverified to every host, so that
	// plugin binaries without a recorded checksum run. The stack's own
	// plugins.allow_unverified is kept either way.
	AllowUnverified bool
	// Faults, when not nil, is the faults section of every client's config
	// (the layout of a host config's faults: section, as faults.Parse
	// reads it), replacing the stack's; an empty map removes the stack's.
	// nil keeps the stack's faults section, if it has one (the stacks in
	// configs/ have none). Relays get none of these; they keep the stack's
	// faults of the p2p and privacy boundaries.
	Faults map[string]any
	// Set holds key=value overrides for every node, as `strata run --set`
	// takes them. Keys under layers.secure, layers.sync and faults are
	// passed to clients only. The keys the testnet sets itself (node.name,
	// node.data_dir, node.role, node.peers, api.listen, metrics.listen) are
	// refused.
	Set []string
	// Log receives every host's standard error and standard output, each
	// line prefixed with the node's name ("n0 | ..."). nil: each node's
	// output goes to <Dir>/<name>.log.
	Log io.Writer
	// StartTimeout bounds the start of each node (DefaultStartTimeout
	// when 0).
	StartTimeout time.Duration
	// StopTimeout is how long a node may take to stop after SIGTERM before
	// it is killed (DefaultStopTimeout when 0).
	StopTimeout time.Duration
	// Mixnet shapes the mixnet built for a stack whose privacy layer is
	// mixnet, when Relays is AutoRelays (docs/testnet.md); zero fields
	// take the defaults.
	Mixnet MixnetOptions
}

// Net is a running testnet.
type Net struct {
	opts    Options
	stack   *stack
	dir     string
	binary  string
	env     []string
	spawner *spawner
	clients []*Member
	relays  []*Member
	byName  map[string]*Member
	mix     *mixNetwork       // the mixnet, for a mixnet stack
	mixAt   map[*Member]relay // each mixnet node's relay (a client's: its provider)
	logMu   sync.Mutex        // serialises lines written to Options.Log

	// stopAuthority ends the mixnet authority's publishing (mixnet stack).
	stopAuthority func()

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Start writes one config per node under opts.Dir, starts the relays one
// after the other, then the clients in parallel, and returns once every
// node's API answers and every layer of every node runs. On any failure it
// stops what it started and returns an error that names the node and
// quotes the end of its log.
func Start(ctx context.Context, opts Options) (*Net, error) {
	if opts.Nodes < 1 {
		return nil, fmt.Errorf("testnet: Nodes is %d; want at least 1 client", opts.Nodes)
	}
	if opts.Relays < AutoRelays {
		return nil, fmt.Errorf("testnet: Relays is %d; want 0 or more, or AutoRelays (-1)", opts.Relays)
	}
	if opts.Dir == "" {
		return nil, errors.New("testnet: no Dir: give a directory for the nodes' configs and data (a temporary one, say)")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	st, err := readStack(opts.Stack)
	if err != nil {
		return nil, err
	}
	relaySet, err := checkSet(opts.Set)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: Dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: Dir: %w", err)
	}
	binary := opts.Binary
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("testnet: no Binary and no executable of this process: %w", err)
		}
	}
	if fi, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("testnet: Binary: %w", err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("testnet: Binary %s is not an executable file", binary)
	}
	relays := opts.Relays
	var mix *mixNetwork
	if relays == AutoRelays {
		relays = 0
		info, err := describePrivacy(ctx, st.path, opts.Catalog, opts.AllowUnverified)
		if err != nil {
			return nil, err
		}
		switch {
		case info.GetName() == mixnet.Name:
			// Its relays are the mixnet's mixes and providers.
			if mix, err = planMixnet(st, dir, opts.Mixnet, opts.Nodes); err != nil {
				return nil, err
			}
		case plugins.Provides(info, sdk.CapRelayed):
			relays = 1
		}
	}
	n := &Net{opts: opts, stack: st, dir: dir, binary: binary, env: hostEnviron(os.Environ()), byName: map[string]*Member{}, mix: mix, mixAt: map[*Member]relay{}}
	for i := range relays {
		if _, err := n.add(fmt.Sprintf("r%d", i), RoleRelay, relaySet); err != nil {
			return nil, err
		}
	}
	var stages [][]*Member
	if mix != nil {
		for _, rs := range mix.stages() {
			var stage []*Member
			for _, r := range rs {
				m, err := n.add(r.Name, RoleRelay, relaySet)
				if err != nil {
					return nil, err
				}
				n.mixAt[m] = r
				stage = append(stage, m)
			}
			stages = append(stages, stage)
		}
	}
	for i := range opts.Nodes {
		m, err := n.add(fmt.Sprintf("n%d", i), RoleClient, opts.Set)
		if err != nil {
			return nil, err
		}
		if mix != nil {
			// Clients spread over the providers.
			ps := mix.providers()
			n.mixAt[m] = ps[i%len(ps)]
		}
	}
	n.spawner = newSpawner()

	fail := func(err error) (*Net, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*opts.StopTimeout)
		defer cancel()
		if cerr := n.Close(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	var cards []string
	if mix != nil {
		if n.stopAuthority, err = mix.runAuthority(); err != nil {
			return fail(err)
		}
		// Every mixnet node knows from the start the relays it dials; a
		// stage starts once those it dials are up.
		for _, stage := range stages {
			for _, r := range stage {
				if err := n.configure(r, nil); err != nil {
					return fail(err)
				}
			}
			if err := n.parallel(ctx, stage, func(ctx context.Context, m *Member) error { return m.Start(ctx) }); err != nil {
				return fail(err)
			}
		}
	} else {
		for _, r := range n.relays {
			if err := n.configure(r, cards); err != nil {
				return fail(err)
			}
			if err := r.Start(ctx); err != nil {
				return fail(err)
			}
			cards = append(cards, r.Card())
		}
	}
	for _, c := range n.clients {
		if err := n.configure(c, cards); err != nil {
			return fail(err)
		}
	}
	if err := n.parallel(ctx, n.clients, func(ctx context.Context, m *Member) error { return m.Start(ctx) }); err != nil {
		return fail(err)
	}
	return n, nil
}

// add creates a member, its paths and its log, without a config yet.
func (n *Net) add(name, role string, set []string) (*Member, error) {
	m := &Member{
		Name:       name,
		Role:       role,
		Dir:        filepath.Join(n.dir, name),
		ConfigPath: filepath.Join(n.dir, name+".yaml"),
		net:        n,
		log:        &tail{},
		known:      map[proc]bool{},
	}
	m.args = []string{"run", "-c", m.ConfigPath}
	for _, kv := range set {
		m.args = append(m.args, "--set", kv)
	}
	if n.opts.AllowUnverified {
		m.args = append(m.args, "--allow-unverified")
	}
	if n.opts.Log != nil {
		m.sink = &prefixWriter{mu: &n.logMu, w: n.opts.Log, prefix: []byte(name + " | ")}
	} else {
		m.logPath = filepath.Join(n.dir, name+".log")
		f, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			n.closeLogs()
			return nil, fmt.Errorf("testnet: %s: log: %w", name, err)
		}
		m.logFile, m.sink = f, f
	}
	if role == RoleRelay {
		n.relays = append(n.relays, m)
	} else {
		n.clients = append(n.clients, m)
	}
	n.byName[name] = m
	return m, nil
}

// configure writes a member's config with the given peers, and checks it
// as the host will read it (without looking at the plugins, which only the
// host does).
func (n *Net) configure(m *Member, peers []string) error {
	sock := filepath.Join(m.Dir, "host", "api.sock")
	if len(sock) > 103 {
		return fmt.Errorf("testnet: %s: its API socket %s would be %d bytes, more than the 103 a Unix socket path allows; use a shorter Dir", m.Name, sock, len(sock))
	}
	var faults map[string]any
	if m.Role == RoleClient {
		faults = n.opts.Faults
	}
	tree := n.stack.nodeConfig(m.Name, m.Role, m.Dir, peers, faults)
	if n.mix != nil {
		n.mixConfig(m, tree)
	}
	if err := writeConfig(m.ConfigPath, n.stack.path, m.Name, m.Role, tree); err != nil {
		return err
	}
	var set []string
	for i := 0; i+1 < len(m.args); i++ {
		if m.args[i] == "--set" {
			set = append(set, m.args[i+1])
		}
	}
	cfg, err := config.Load(config.Sources{File: m.ConfigPath, Environ: n.env, Set: set})
	if err != nil {
		return fmt.Errorf("testnet: %s (%s): %w", m.Name, m.ConfigPath, err)
	}
	network, addr := cfg.APIEndpoint()
	switch network {
	case "unix":
		m.API = "unix:" + addr
	case "tcp":
		m.API = addr
	default:
		return fmt.Errorf("testnet: %s: its API is off; the testnet needs it", m.Name)
	}
	m.apiNet, m.apiAddr = network, addr
	m.Dir = cfg.Node.DataDir
	return nil
}

// parallel runs f for every member at once; the first failure cancels the
// others and is returned (the others' errors, consequences of the
// cancellation, are not).
func (n *Net) parallel(ctx context.Context, ms []*Member, f func(context.Context, *Member) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, m); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// hostEnviron is the environment of the hosts: the testnet's, minus the
// STRATA_ variables that set config keys (STRATA_SECTION__KEY), so that
// every node runs the config the testnet wrote.
func hostEnviron(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "STRATA_") && strings.Contains(key, "__") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// usable refuses to start a member of a closed Net.
func (n *Net) usable() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("testnet: the testnet is closed")
	}
	return nil
}

// Dir returns the testnet's directory (Options.Dir, absolute).
func (n *Net) Dir() string { return n.dir }

// Clients returns the client members, n0 first.
func (n *Net) Clients() []*Member { return append([]*Member(nil), n.clients...) }

// Relays returns the relay members, r0 first; none when the testnet runs
// no relay.
func (n *Net) Relays() []*Member { return append([]*Member(nil), n.relays...) }

// Member returns the member called name ("n0", "r0", ...), or nil.
func (n *Net) Member(name string) *Member { return n.byName[name] }

// Introduce makes a and b contacts of each other: each imports the
// other's card through its API (AddContact). With node.dial_contacts on
// (the default) their overlays then connect.
func (n *Net) Introduce(ctx context.Context, a, b *Member) error {
	if a == nil || b == nil || a == b {
		return errors.New("testnet: Introduce needs two different members")
	}
	for _, p := range [][2]*Member{{a, b}, {b, a}} {
		card := p[1].Card()
		if card == "" {
			return fmt.Errorf("testnet: %s has no card yet", p[1].Name)
		}
		if _, err := p[0].Client().AddContact(ctx, &appv1.AddContactRequest{Card: card}); err != nil {
			return fmt.Errorf("testnet: %s imports %s's card: %w", p[0].Name, p[1].Name, err)
		}
	}
	return nil
}

// IntroduceAll introduces every pair of clients, concurrently.
func (n *Net) IntroduceAll(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for i, a := range n.clients {
		for _, b := range n.clients[i+1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := n.Introduce(ctx, a, b); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops every member (SIGTERM, SIGKILL after Options.StopTimeout or
// once ctx ends), waits until no process it started, nor any process
// below one (plugins), is left, and reports any it had to kill. Members
// can no longer be started afterwards. Close is idempotent: later calls
// wait for the first and return its result.
func (n *Net) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		all := append(n.Clients(), n.relays...)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, m := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.Stop(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Let the output of the last runs drain into the logs.
		for _, m := range all {
			m.mu.Lock()
			r := m.run
			m.mu.Unlock()
			if r != nil {
				r.drain()
			}
		}
		n.closeLogs()
		if n.stopAuthority != nil {
			n.stopAuthority()
		}
		if n.spawner != nil {
			n.spawner.close()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// closeLogs closes the members' log files.
func (n *Net) closeLogs() {
	for _, m := range append(n.Clients(), n.relays...) {
		if m.logFile != nil {
			m.logFile.Close()
		}
	}
}

// NeedsRelays reports whether the privacy layer of the stack config at
// path needs relays, by asking it: whether its PluginInfo provides
// sdk.CapRelayed. allowUnverified lets a binary without a recorded
// checksum be described, as `strata run --allow-unverified` would run it.
func NeedsRelays(ctx context.Context, path string, catalog plugins.Catalog, allowUnverified bool) (bool, error) {
	info, err := describePrivacy(ctx, path, catalog, allowUnverified)
	if err != nil {
		return false, err
	}
	return plugins.Provides(info, sdk.CapRelayed), nil
}

// describePrivacy asks the privacy layer of the stack config at path what
// it is (its PluginInfo), as a node would find it.
func describePrivacy(ctx context.Context, path string, catalog plugins.Catalog, allowUnverified bool) (*commonv1.PluginInfo, error) {
	cfg, err := config.Load(config.Sources{File: path})
	if err != nil {
		return nil, fmt.Errorf("testnet: stack %s: %w", path, err)
	}
	cfg.Plugins.AllowUnverified = cfg.Plugins.AllowUnverified || allowUnverified
	info, err := plugins.DescribeLayer(ctx, cfg, catalog, "privacy", commonv1.LayerKind_LAYER_KIND_PRIVACY)
	if err != nil {
		return nil, fmt.Errorf("testnet: does the privacy layer need relays? %w", err)
	}
	return info, nil
}
