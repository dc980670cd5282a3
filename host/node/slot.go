package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/plugins"
)

// slot is one layer of the node's stack: the configured choice, and the
// plugin instance currently running it (replaced when it crashes).
type slot struct {
	n     *Node
	index int
	key   string // "p2p", "privacy", ...
	kind  commonv1.LayerKind
	layer config.Layer
	log   hclog.Logger

	// Resolved once at New.
	path string // binary, in process mode
	// checksum is what New verified the binary against, nil when it was
	// unverified. Each launch reads the lock again (vouch).
	checksum []byte
	factory  plugins.Factory

	// refusedOnce holds the reasons of sdk.Refusal already logged.
	refusedOnce sync.Map

	// Set when the slot is first loaded, kept across restarts.
	info       *commonv1.PluginInfo
	configJSON string

	mu         sync.RWMutex
	conn       sdk.Conn
	link       sdk.Link
	configured *commonv1.ConfigureResponse
	started    *commonv1.StartResponse
	health     map[string]uint64
	// section is the layer's contact-card section when it changed since
	// Start (the secure layer's Bundle); nil means started's.
	section []byte

	// adapter is the host's knowledge of the slot's kind (adapters.go).
	adapter adapter

	restarts   atomic.Uint64
	unanswered atomic.Int32 // health checks in a row without an answer
}

// load starts the plugin (a process, or an in-process instance), asks it to
// describe itself, and checks that it is the layer the config asked for.
func (s *slot) load(ctx context.Context) (sdk.Conn, *commonv1.PluginInfo, error) {
	var (
		conn sdk.Conn
		err  error
	)
	if s.layer.Mode == config.ModeInProc {
		conn, err = sdk.InProcess(s.factory(), sdk.InProcessConfig{Logger: s.log, Batch: s.n.opts.Batch})
	} else {
		var lc sdk.LaunchConfig
		if lc, err = s.launchConfig(); err != nil {
			return nil, nil, err
		}
		conn, err = sdk.Launch(ctx, lc)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("layers.%s: start plugin %q: %w", s.key, s.layer.Plugin, err)
	}
	info, err := conn.Describe(ctx)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("layers.%s: plugin %q does not describe itself: %w", s.key, s.layer.Plugin, err)
	}
	if info.GetKind() != s.kind {
		conn.Close()
		return nil, nil, &sdk.ConfigError{Key: "layers." + s.key + ".plugin", Problem: fmt.Sprintf("plugin %q is a %s layer", s.layer.Plugin, sdk.KindName(info.GetKind())), Fix: "choose a " + s.key + " plugin"}
	}
	if info.GetName() != s.layer.Plugin {
		conn.Close()
		return nil, nil, fmt.Errorf("layers.%s: binary for plugin %q says its name is %q", s.key, s.layer.Plugin, info.GetName())
	}
	return conn, info, nil
}

// launchConfig says how to launch the slot's binary, from the lock as it
// is now: the plugin's binary is checked and hashed again on every launch,
// restarts included (sdk.Launch), against what the lock records at that
// moment (plugins.Vouch, which also checks that the lock records the
// binary as a layer of this slot's kind).
func (s *slot) launchConfig() (sdk.LaunchConfig, error) {
	flag := s.n.opts.AllowUnverified
	sum, err := plugins.Vouch(s.n.cfg, s.key, s.layer.Plugin, s.path, flag || s.n.cfg.Plugins.AllowUnverified)
	if err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return sdk.LaunchConfig{}, err
		}
		return sdk.LaunchConfig{}, fmt.Errorf("layers.%s.plugin: %w", s.key, err)
	}
	if s.checksum != nil && sum != nil && !bytes.Equal(sum, s.checksum) {
		s.log.Info("the lock records another checksum for the plugin than when the node was created; the binary must match the new one", "plugin", s.layer.Plugin, "lock", s.n.cfg.LockPathFor(s.path))
	}
	runAs, err := plugins.RunAs(s.n.cfg)
	if err != nil {
		return sdk.LaunchConfig{}, err
	}
	// DOWN frames go to the layer below, which takes no payload larger
	// than it declared. Nothing lies below the bottom layer: the router
	// drops its DOWN frames whatever their size, and a limit of one byte
	// keeps them from widening the limit of its batches.
	limits := sdk.FrameLimits{DownPayload: 1}
	if s.index > 0 {
		limits.DownPayload = s.n.slots[s.index-1].info.GetMaxPayload()
	}
	return sdk.LaunchConfig{
		Path:             s.path,
		Kind:             s.kind,
		Checksum:         sum,
		AllowUnverified:  sum == nil,
		UnverifiedReason: plugins.UnverifiedReason(s.n.cfg, flag),
		Logger:           s.log,
		Batch:            s.n.opts.Batch,
		Limits:           limits,
		Refused:          s.refused,
		RunAs:            runAs,
	}, nil
}

// refused counts what the host dropped on receipt from the plugin, for
// breaking the limits of its frames, as invalid at the boundary the frames
// were to cross (UP: the one above the layer; DOWN: the one below), and
// logs the first refusal of each reason.
func (s *slot) refused(rf sdk.Refusal) {
	k := s.index
	if rf.Direction == commonv1.Direction_DIRECTION_DOWN && k > 0 {
		k--
	}
	if rf.Frames > 0 {
		s.n.router.Boundary(k).Drop(pipeline.DropInvalid, uint64(rf.Frames))
	}
	if _, seen := s.refusedOnce.LoadOrStore(rf.Reason, struct{}{}); !seen {
		s.log.Warn("the plugin emitted frames or events beyond its limits; the host drops them and counts them as invalid (reported once per reason)",
			"plugin", s.layer.Plugin, "reason", rf.Reason, "direction", rf.Direction, "frames", rf.Frames, "events", rf.Events)
	}
}

// prepare loads the plugin once to check its config section against its
// schema, and keeps the checked section for every later (re)start.
func (s *slot) prepare(ctx context.Context) error {
	conn, info, err := s.load(ctx)
	if err != nil {
		return err
	}
	section, err := sdk.ApplySchema(info.GetConfig(), s.layer.Config)
	if err != nil {
		conn.Close()
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return ce.WithPrefix("layers." + s.key + ".config")
		}
		return err
	}
	b, err := json.Marshal(section)
	if err != nil {
		conn.Close()
		return fmt.Errorf("layers.%s.config: %w", s.key, err)
	}
	s.info, s.configJSON = info, string(b)
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	return nil
}

// configure hands the plugin its section and opens its data stream.
func (s *slot) configure(ctx context.Context) error {
	if err := s.migrateLayerDir(s.n.cfg.Node.DataDir); err != nil {
		return err
	}
	resp, err := s.callConfigure(ctx, s.layerDir(s.n.cfg.Node.DataDir))
	if err != nil {
		return err
	}
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	link, err := conn.Open(s.n.ctx, s.n.router.Deliverer(s.n.ctx, s.index))
	if err != nil {
		return fmt.Errorf("layers.%s: %w", s.key, err)
	}
	s.mu.Lock()
	s.configured, s.link = resp, link
	s.mu.Unlock()
	return nil
}

// callConfigure runs the plugin's Configure with dir as its data dir. A
// value the plugin rejects comes back as a ConfigError under the layer's
// config key.
func (s *slot) callConfigure(ctx context.Context, dir string) (*commonv1.ConfigureResponse, error) {
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layers.%s: data dir: %w", s.key, err)
	}
	if err := s.handOver(dir); err != nil {
		return nil, err
	}
	req := &commonv1.ConfigureRequest{ConfigJson: s.configJSON, DataDir: dir, NodeName: s.n.cfg.Node.Name}
	if s.n.id != nil { // nil in Check, which loads no identity
		req.NodeIdentity = s.n.id.Public()
	}
	layerKey, err := identity.LayerKey(s.n.atRest, s.key)
	if err != nil {
		return nil, fmt.Errorf("layers.%s: at-rest key: %w", s.key, err)
	}
	req.AtRestKey = layerKey.Bytes()
	layerKey.Wipe()
	defer clear(req.AtRestKey)
	resp, err := conn.Configure(ctx, req)
	if err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return nil, ce.WithPrefix("layers." + s.key + ".config")
		}
		return nil, fmt.Errorf("layers.%s: configure %q: %w", s.key, s.layer.Plugin, err)
	}
	return resp, nil
}

// handOver gives a plugin that runs as another user (plugins.run_as) its
// data directory, <base>/<layer>/<plugin>: the directory becomes that
// user's, and <base> and <base>/<layer> become traversable by others
// (mode o+x: they can pass through, not list; the host's own folder,
// <base>/host, stays 0700). Only the plugin's directory itself changes
// owner, never what is in it: a plugin could have put a hard link to
// another file there, and the host, as root, must not chown that file.
// State written before the key was set stays the host's; see
// docs/configuration.md.
func (s *slot) handOver(dir string) error {
	if s.layer.Mode == config.ModeInProc {
		return nil
	}
	runAs, err := plugins.RunAs(s.n.cfg)
	if err != nil || runAs == nil {
		return err
	}
	if err := os.Lchown(dir, int(runAs.UID), int(runAs.GID)); err != nil {
		return fmt.Errorf("layers.%s: give the data dir to %s (plugins.run_as): %w", s.key, runAs.Name, err)
	}
	for _, p := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("layers.%s: data dir: %w", s.key, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("layers.%s: let %s (plugins.run_as) reach its data dir: %w", s.key, runAs.Name, err)
			}
		}
	}
	return nil
}

// start makes the layer go live, given what the layers around it reported.
func (s *slot) start(ctx context.Context) error {
	req := &commonv1.StartRequest{}
	if below := s.n.below(s.index); below != nil {
		req.BelowAddress = below.localAddress()
	}
	if p, ok := s.adapter.(startPreparer); ok {
		p.prepareStart(req)
	}
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	resp, err := conn.Start(ctx, req)
	if err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return ce.WithPrefix("layers." + s.key + ".config")
		}
		return fmt.Errorf("layers.%s: start %q: %w", s.key, s.layer.Plugin, err)
	}
	// The layer gets the host's contacts and conversations before it
	// takes any traffic.
	s.mu.Lock()
	s.started = resp
	s.section = nil
	link := s.link
	s.mu.Unlock()
	s.n.install(ctx, s)
	s.n.router.Door(s.index).Open(ctx, link)
	s.log.Info("layer started", "plugin", s.layer.Plugin, "version", s.info.GetVersion(), "address", resp.GetDisplayAddress(), "mode", s.layer.Mode)
	return nil
}

func (s *slot) localAddress() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.started.GetLocalAddress()
}

func (s *slot) contactSection() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.section != nil {
		return s.section
	}
	return s.started.GetContactSection()
}

func (s *slot) protocols() []*commonv1.Protocol {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.configured.GetProtocols()
}

// running reports whether the slot has a live, started plugin.
func (s *slot) running() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.conn == nil || s.link == nil || s.started == nil {
		return false
	}
	select {
	case <-s.conn.Done():
		return false
	case <-s.link.Done():
		return false
	default:
		return true
	}
}

func (s *slot) counters() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.health
}

// pid returns the plugin's process id, or 0 in process-less modes.
func (s *slot) pid() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.conn.(interface{ Pid() int }); ok {
		return p.Pid()
	}
	return 0
}

// maxUnanswered is how many health checks in a row a running plugin may
// leave unanswered before the host takes it for hung and restarts it.
const maxUnanswered = 3

// pollHealth refreshes the slot's counters from the plugin. A plugin that
// is alive but answers no health check maxUnanswered times in a row is
// hung: pollHealth ends it, and the supervisor restarts it.
func (s *slot) pollHealth(ctx context.Context) {
	s.mu.RLock()
	conn, started := s.conn, s.started != nil
	s.mu.RUnlock()
	if conn == nil || !started {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.n.opts.HealthTimeout)
	defer cancel()
	h, err := conn.Health(ctx)
	if err != nil {
		if ctx.Err() != nil && s.unanswered.Add(1) >= maxUnanswered && !s.n.closing.Load() {
			s.unanswered.Store(0)
			s.log.Error("plugin does not answer health checks; restarting it", "plugin", s.layer.Plugin, "checks", maxUnanswered)
			conn.Close()
		}
		return
	}
	s.unanswered.Store(0)
	s.mu.Lock()
	s.health = h.GetCounters()
	s.mu.Unlock()
}

// stop ends the layer cleanly, then its plugin.
func (s *slot) stop(ctx context.Context) {
	s.mu.Lock()
	conn, link := s.conn, s.link
	s.started = nil
	s.mu.Unlock()
	s.n.router.Door(s.index).Shut()
	if conn == nil {
		return
	}
	if err := conn.Stop(ctx); err != nil {
		s.log.Warn("layer did not stop cleanly", "error", err)
	}
	if link != nil {
		link.Close()
	}
	conn.Close()
}

// supervise restarts the plugin whenever it dies, with exponential backoff,
// until the node closes. Every crash and every failed restart attempt
// counts toward the restart limit; when more than Limit of them fall within
// Window the node gives up. The backoff starts again from Initial once a
// plugin has stayed up for a whole Window.
func (s *slot) supervise() {
	policy := s.n.cfg.Plugins.Restart
	var failures []time.Time
	backoff := policy.Initial
	upSince := time.Now()
	// failed records a failure and reports whether the limit is exceeded.
	failed := func() bool {
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > policy.Window {
			failures = failures[1:]
		}
		return policy.Limit > 0 && len(failures) > policy.Limit
	}
	for {
		s.mu.RLock()
		conn, link := s.conn, s.link
		s.mu.RUnlock()
		select {
		case <-s.n.ctx.Done():
			return
		case <-conn.Done():
		case <-link.Done():
		}
		if s.n.ctx.Err() != nil || s.n.closing.Load() {
			return
		}
		s.log.Error("plugin died; restarting", "plugin", s.layer.Plugin, "stream_error", link.Err())
		s.mu.Lock()
		s.started = nil
		s.mu.Unlock()
		s.n.router.Door(s.index).Shut()
		link.Close()
		conn.Close()
		if time.Since(upSince) > policy.Window {
			backoff = policy.Initial
		}
		for {
			if failed() {
				s.n.fail(fmt.Errorf("layers.%s: plugin %q failed %d times within %v; giving up", s.key, s.layer.Plugin, len(failures), policy.Window))
				return
			}
			select {
			case <-s.n.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, policy.Max)
			err := s.restart()
			if err == nil {
				break
			}
			s.log.Error("restart failed", "error", err, "next_try", backoff)
		}
		upSince = time.Now()
		s.restarts.Add(1)
		s.n.afterRestart(s)
	}
}

// restart loads, configures and starts a fresh instance.
func (s *slot) restart() error {
	ctx, cancel := context.WithTimeout(s.n.ctx, time.Minute)
	defer cancel()
	conn, _, err := s.load(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	if err := s.configure(ctx); err != nil {
		conn.Close()
		return err
	}
	if err := s.start(ctx); err != nil {
		s.mu.RLock()
		link := s.link
		s.mu.RUnlock()
		link.Close()
		conn.Close()
		return err
	}
	return nil
}

// checksumOf resolves the expected hash of a process-mode plugin, or nil if
// unverified binaries are allowed and none is recorded.
func checksumOf(cfg *config.Config, lock *plugins.LockFile, name, path string, allowUnverified bool) ([]byte, error) {
	want, err := plugins.Expected(name, cfg.Plugins.Checksums, lock)
	if err != nil {
		if allowUnverified && errors.Is(err, plugins.ErrNoChecksum) {
			return nil, nil
		}
		return nil, err
	}
	if err := plugins.Verify(path, want); err != nil {
		return nil, err
	}
	return hex.DecodeString(want)
}
