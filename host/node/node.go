// Package node is the Strata host's runtime: it loads one plugin per layer,
// wires adjacent layers through itself (plugins never talk to each other),
// translates addresses where their meaning changes, counts every frame at
// every boundary, restarts crashed plugins, and owns the node's identity and
// contacts.
package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/faults"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/plugins"
)

// Options configures a Node beyond its config file.
type Options struct {
	// Catalog holds the built-in layers for in-process mode.
	Catalog plugins.Catalog
	// Logger is the host log; plugin logs are merged into it.
	Logger hclog.Logger
	// AllowUnverified starts plugin binaries that have no recorded checksum
	// (the --allow-unverified flag); a recorded checksum that does not match
	// is refused regardless.
	AllowUnverified bool
	// Deliver receives every message that reaches the application, once
	// it is in the history, in cursor order. It is called from the host's
	// history writer (writer.go) and must not block long: the next writes
	// wait for it.
	Deliver func(Delivery)
	// Batch bounds the batches the host sends to each plugin.
	Batch sdk.BatchOptions
	// StallTimeout bounds how long a hand between two layers may stay
	// blocked with no frame taken before its frames are dropped and counted
	// as stalled; default pipeline.DefaultStallTimeout. A slow layer slows
	// the layers that feed it (flow control); only a stall drops.
	StallTimeout time.Duration
	// HealthInterval is how often plugin counters are refreshed and
	// liveness is checked; default 2 s.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; a plugin that misses three in a
	// row is taken for hung and restarted. Default 5 s.
	HealthTimeout time.Duration
	// PruneInterval is how often public chats' histories are pruned to
	// public.retention and the quotas; default 1 minute.
	PruneInterval time.Duration
	// Registerer receives the node's metrics; nil means none.
	Registerer prometheus.Registerer
	// Tap, if set, sees every frame as it crosses a layer boundary (named
	// as in Boundaries), after address translation and before the next
	// layer takes it. It is for tests and tracing: it is called on the
	// routing path, must be quick, and must neither change nor keep the
	// frame (copy what it needs).
	Tap func(boundary string, f *commonv1.Frame)
}

// Delivery is a message that reached the top of the stack.
type Delivery struct {
	// From is the sender's identity key, or nil when the sender's address
	// matched no contact.
	From ed25519.PublicKey
	// FromName is the contact's alias or card name, when known.
	FromName     string
	Conversation []byte
	Payload      []byte
	MessageID    []byte
	TraceID      uint64
	// Cursor is the message's position in the node's history.
	Cursor uint64
}

// Node is one running Strata host.
type Node struct {
	cfg  *config.Config
	opts Options
	log  hclog.Logger

	id *identity.Identity
	// atRest is the master key for secrets at rest (node.passphrase_file,
	// node.key_file), nil when the user set neither. Each layer gets a
	// subkey of it at Configure; Close wipes it.
	atRest   *atrest.Key
	contacts *contacts.Store
	convs    *conversations.Store
	hist     *history
	writer   *writer
	acks     *acker
	book     *addressBook

	slots  []*slot
	router *pipeline.Router
	// faults are the fault injectors of each boundary, by index.
	faults map[int][]*faults.Injector

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	failed  chan error
	once    sync.Once
	closing atomic.Bool
	card    atomic.Pointer[contacts.Card]
	// cardMu orders the card's refreshes (refreshCard).
	cardMu sync.Mutex
	// peers are the cards of node.peers: relays and bootstrap nodes.
	peers []*contacts.Card
	// unlock releases the data directory's lock (datalock.go).
	unlock func()
	// directStored holds the ids of 1:1 conversations known to be stored.
	directStored sync.Map
	// announced counts the conversation announcements received.
	announced announcements
	// events holds what layers told the host through events until the
	// host acts on it (layerevents.go).
	events *layerEvents
	// msgStats counts the messages refused and removed (MessageStats).
	msgStats messageStats
	// wrapHistory, when set before Start, wraps the history's store (a
	// test stands for a slow disk with it: export_test.go).
	wrapHistory func(historyStore) historyStore
}

// ErrUnknownContact is returned by Send when the recipient is not a contact
// with an address at the privacy layer.
var ErrUnknownContact = errors.New("unknown contact")

// New checks the config against the plugins it names and prepares the node:
// identity and contacts opened, binaries resolved and verified. Nothing runs
// until Start.
func New(cfg *config.Config, opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = 2 * time.Second
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = 5 * time.Second
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = time.Minute
	}
	n := &Node{cfg: cfg, opts: opts, log: opts.Logger, failed: make(chan error, 1), events: newLayerEvents()}
	allow := opts.AllowUnverified || cfg.Plugins.AllowUnverified
	for i, key := range cfg.Stack() {
		l := cfg.Layers[key]
		kind, err := sdk.ParseKind(key)
		if err != nil {
			return nil, err
		}
		s := &slot{n: n, index: i, key: key, kind: kind, layer: l, log: opts.Logger.Named(key)}
		s.adapter = adapterFor(n, s)
		if l.Mode == config.ModeInProc {
			f, err := opts.Catalog.Lookup(kind, l.Plugin)
			if err != nil {
				return nil, &sdk.ConfigError{Key: "layers." + key + ".plugin", Problem: err.Error(), Fix: "use mode: process, or a built-in plugin"}
			}
			s.factory = f
		} else {
			dirs := cfg.PluginDirs(key)
			if s.path, err = plugins.Locate(dirs, l.Plugin); errors.Is(err, plugins.ErrNotFound) {
				return nil, plugins.NotFoundError(cfg, key, err)
			} else if err != nil {
				return nil, &sdk.ConfigError{Key: "layers." + key + ".plugin", Problem: fmt.Sprintf("plugin binary refused: %v", err)}
			}
			// The lock that vouches for a binary is its own directory's
			// (or plugins.lock_file), never another directory's.
			lock, err := plugins.ReadLock(cfg.LockPathFor(s.path))
			if err != nil {
				return nil, err
			}
			if s.checksum, err = checksumOf(cfg, lock, l.Plugin, s.path, allow); errors.Is(err, plugins.ErrNoChecksum) {
				return nil, fmt.Errorf("layers.%s.plugin: %w; %s is not in %s: if you trust it, lock it there: strata plugins lock --dir %s %s",
					key, err, s.path, cfg.LockPathFor(s.path), filepath.Dir(s.path), l.Plugin)
			} else if err != nil {
				return nil, fmt.Errorf("layers.%s.plugin: %w", key, err)
			}
		}
		n.slots = append(n.slots, s)
	}
	if err := n.readPeers(); err != nil {
		return nil, err
	}
	if err := n.buildRouter(); err != nil {
		return nil, err
	}
	return n, nil
}

// Start loads every plugin, checks each one's config section and that
// adjacent layers fit, then configures them and starts them bottom up.
func (n *Node) Start(ctx context.Context) (err error) {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()
	hostDir := filepath.Join(n.cfg.Node.DataDir, "host")
	if err := os.MkdirAll(hostDir, 0o700); err != nil {
		return fmt.Errorf("node.data_dir: %w", err)
	}
	// Before anything else: a second node on this data directory must fail
	// before it starts plugins on the first one's state and ports.
	if n.unlock, err = lockDataDir(n.cfg.Node.DataDir, hostDir); err != nil {
		return err
	}
	if n.atRest, err = identity.MasterKey(hostDir, n.cfg.Node.PassphraseFile, n.cfg.Node.KeyFile); err != nil {
		return err
	}
	hostKey, err := identity.HostKey(n.atRest)
	if err != nil {
		return err
	}
	n.id, err = identity.LoadSealed(hostDir, hostKey)
	hostKey.Wipe()
	if err != nil {
		if errors.Is(err, atrest.ErrLocked) {
			return fmt.Errorf("identity: %w (fix: set node.passphrase_file or node.key_file to the one it was encrypted with)", err)
		}
		return fmt.Errorf("identity: %w", err)
	}
	if n.contacts, err = contacts.Open(ctx, filepath.Join(hostDir, "contacts.db")); err != nil {
		return fmt.Errorf("contacts: %w", err)
	}
	if n.convs, err = conversations.Open(ctx, filepath.Join(hostDir, conversations.FileName)); err != nil {
		return err
	}
	n.convs.SetPublicQuota(conversations.Quota{
		MaxMessages: n.cfg.Public.MaxMessagesPerChat,
		MaxBytes:    n.cfg.Public.MaxBytesPerChat,
		Retention:   n.cfg.Public.Retention,
	})
	var store historyStore = n.convs
	if n.wrapHistory != nil {
		store = n.wrapHistory(store)
	}
	n.hist = newHistory(n.ctx, store)
	n.writer = newWriter(n)
	// Before any layer starts: the top layer delivers from its start on.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.writer.run(n.ctx)
	}()
	ackPort, _ := n.slots[len(n.slots)-1].adapter.(appAcker)
	n.acks = newAcker(ackPort)
	kind, plugin := n.addressSection()
	if n.book, err = loadAddressBook(ctx, n.contacts, kind, plugin); err != nil {
		return err
	}
	for _, s := range n.slots {
		if err := s.prepare(ctx); err != nil {
			return err
		}
	}
	if err := n.checkFit(); err != nil {
		return err
	}
	for i := len(n.slots) - 1; i >= 0; i-- {
		if err := n.slots[i].configure(ctx); err != nil {
			return err
		}
	}
	for _, s := range n.slots {
		if err := s.start(ctx); err != nil {
			return err
		}
	}
	if err := n.refreshCard(); err != nil {
		return err
	}
	if n.opts.Registerer != nil {
		if err := n.opts.Registerer.Register(newCollector(n)); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := n.opts.Registerer.Register(newMessageCollector(n)); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	for _, s := range n.slots {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			s.supervise()
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.pollHealth()
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runLayerEvents(n.ctx)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.acks.run(n.ctx, n.opts.HealthTimeout, n.log)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.prunePublic()
	}()
	n.connectContacts(n.book.all())
	n.connectPeers()
	n.log.Info("node started", "name", n.cfg.Node.Name, "identity", n.id.Fingerprint(), "stack", n.cfg.Stack())
	return nil
}

// checkFit refuses a stack whose layers do not fit: each layer's
// requirements must be among what the layer below provides.
func (n *Node) checkFit() error {
	for i := 1; i < len(n.slots); i++ {
		upper, lower := n.slots[i], n.slots[i-1]
		have := map[string]bool{}
		for _, p := range lower.info.GetProvides() {
			have[p] = true
		}
		for _, req := range upper.info.GetRequires() {
			if !anyOf(req, have) {
				return &sdk.ConfigError{
					Key:     "layers." + upper.key + ".plugin",
					Problem: fmt.Sprintf("%s %q needs a %s layer that provides %q, and %s %q provides %v", upper.key, upper.layer.Plugin, lower.key, req, lower.key, lower.layer.Plugin, lower.info.GetProvides()),
					Fix:     fmt.Sprintf("choose a %s plugin that provides it, or another %s plugin", lower.key, upper.key),
				}
			}
		}
	}
	return nil
}

// anyOf reports whether one of the "|"-separated alternatives is in have.
func anyOf(req string, have map[string]bool) bool {
	for _, alt := range strings.Split(req, "|") {
		if have[alt] {
			return true
		}
	}
	return false
}

func (n *Node) below(i int) *slot {
	if i > 0 {
		return n.slots[i-1]
	}
	return nil
}

// Identity returns the node's public identity key.
func (n *Node) Identity() ed25519.PublicKey { return n.id.Public() }

// Fingerprint returns the short human form of the node's identity.
func (n *Node) Fingerprint() string { return n.id.Fingerprint() }

// Name returns the node's configured name.
func (n *Node) Name() string { return n.cfg.Node.Name }

// Card returns the node's current signed contact card.
func (n *Node) Card() *contacts.Card { return n.card.Load() }

// CardText returns the node's contact card in its text form.
func (n *Node) CardText() string { return contacts.EncodeText(n.card.Load().Signed()) }

// refreshCard signs a card from the layers' current contact sections and
// writes it to <data_dir>/host/card.txt.
func (n *Node) refreshCard() error {
	// Health polls and a layer's SectionChanged event both refresh.
	n.cardMu.Lock()
	defer n.cardMu.Unlock()
	c := &contacts.Card{
		IdentityKey: n.id.Public(),
		Name:        n.cfg.Node.Name,
		Issued:      time.Now(),
		Sections:    map[commonv1.LayerKind]contacts.Section{},
	}
	if prev := n.card.Load(); prev != nil && !c.Issued.After(prev.Issued) {
		c.Issued = prev.Issued.Add(time.Second)
	}
	for _, s := range n.slots {
		if sec := s.contactSection(); len(sec) > 0 {
			c.Sections[s.kind] = contacts.Section{Plugin: s.layer.Plugin, Data: sec}
		}
	}
	if b, s := adapterOf[addressBinder](n); b != nil {
		if sec, ok := c.Sections[s.kind]; ok {
			ctx, cancel := context.WithTimeout(context.Background(), n.opts.HealthTimeout)
			binding, err := b.bind(ctx, n.id.Public())
			cancel()
			if err != nil {
				return fmt.Errorf("contact card: %w", err)
			}
			sec.Binding = binding
			c.Sections[s.kind] = sec
		}
	}
	signed, err := c.Sign(n.id)
	if err != nil {
		return fmt.Errorf("contact card: %w", err)
	}
	n.card.Store(c)
	// Written whole or not at all: `strata contact export` may read it at
	// any moment.
	path := filepath.Join(n.cfg.Node.DataDir, "host", "card.txt")
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(contacts.EncodeText(signed)+"\n"), 0o644); err != nil {
		return fmt.Errorf("contact card: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("contact card: %w", err)
	}
	return nil
}

// AddContact verifies and stores a contact card (text form), and connects
// to the contact's overlay node.
func (n *Node) AddContact(ctx context.Context, text string) (*contacts.Card, error) {
	c, err := contacts.DecodeText(text)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(c.IdentityKey, n.id.Public()) {
		return nil, errors.New("that is this node's own card")
	}
	if err := n.checkAddress(ctx, c); err != nil {
		return nil, err
	}
	if err := n.contacts.Put(ctx, c); errors.Is(err, contacts.ErrStale) {
		// The store holds a newer card for this contact: keep using it.
		if c, err = n.contacts.Get(ctx, c.IdentityKey); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	n.book.put(c)
	// A layer that is down now gets the card, and the 1:1 conversation,
	// from install when it is back.
	for _, s := range n.slots {
		if t, ok := s.adapter.(contactTaker); ok {
			if err := t.addContact(ctx, c); err != nil {
				return c, fmt.Errorf("layers.%s: the contact's key material was refused: %w", s.key, err)
			}
		}
	}
	d := n.direct(c.IdentityKey)
	if stored, err := n.convs.Get(ctx, d.ID); err == nil {
		d = *stored
	}
	for _, s := range n.slots {
		if m, ok := s.adapter.(memberTaker); ok {
			if err := m.setMembers(ctx, d.ID, d.Members); err != nil {
				return c, fmt.Errorf("layers.%s: the 1:1 conversation with the contact was refused: %w", s.key, err)
			}
		}
	}
	n.connectContacts([]*contacts.Card{c})
	return c, nil
}

// ErrAddressTaken reports a card whose privacy address another contact's
// card already has: two identities on one address would make frames from
// it nobody's.
var ErrAddressTaken = errors.New("another contact's card has the same privacy address")

// checkAddress refuses a card whose privacy section is not bound to its
// identity (when the privacy layer binds addresses) or whose address
// another contact already has.
func (n *Node) checkAddress(ctx context.Context, c *contacts.Card) error {
	b, s := adapterOf[addressBinder](n)
	if b == nil {
		return nil
	}
	sec, ok := c.Sections[s.kind]
	if !ok || sec.Plugin != s.layer.Plugin {
		return nil
	}
	if err := b.checkBinding(ctx, c.IdentityKey, sec); err != nil {
		return err
	}
	for _, other := range n.book.claimants(sec.Data, c.IdentityKey) {
		name := n.book.name(other)
		return fmt.Errorf("%w: %q (%s) has it; the card of %s is refused", ErrAddressTaken, name, identity.Fingerprint(other), identity.Fingerprint(c.IdentityKey))
	}
	return nil
}

// ContactName returns a contact's alias, or its card name, or "" when the
// identity is not a contact.
func (n *Node) ContactName(id []byte) string { return n.book.name(id) }

// Contacts lists the stored contacts.
func (n *Node) Contacts(ctx context.Context) ([]*contacts.Card, error) { return n.contacts.List(ctx) }

// connectContacts asks the overlay to keep a connection to each contact
// whose card has a section for this node's overlay plugin.
func (n *Node) connectContacts(cards []*contacts.Card) {
	if !n.cfg.Node.DialContacts {
		return // contacts are reached through the overlay's own peers
	}
	if d, _ := adapterOf[dialer](n); d != nil {
		d.dial(cards, true)
	}
}

// connectPeers asks the overlay to keep a connection to each of
// node.peers.
func (n *Node) connectPeers() {
	if d, _ := adapterOf[dialer](n); d != nil {
		d.dial(n.peers, false)
	}
}

// afterRestart brings a restarted layer back into the node: the overlay
// reconnects to contacts, and the card is re-signed if an address changed.
func (n *Node) afterRestart(s *slot) {
	if _, ok := s.adapter.(dialer); ok {
		n.connectContacts(n.book.all())
		n.connectPeers()
	}
	if err := n.refreshCard(); err != nil {
		n.log.Warn("could not refresh contact card", "error", err)
	}
}

// PluginPID returns the process id of the plugin running a layer, or 0.
func (n *Node) PluginPID(layer string) int {
	for _, s := range n.slots {
		if s.key == layer {
			return s.pid()
		}
	}
	return 0
}

// Restarts returns how many times a layer's plugin was restarted.
func (n *Node) Restarts(layer string) uint64 {
	for _, s := range n.slots {
		if s.key == layer {
			return s.restarts.Load()
		}
	}
	return 0
}

// Running reports whether every layer is up.
func (n *Node) Running() bool {
	for _, s := range n.slots {
		if !s.running() {
			return false
		}
	}
	return true
}

// LayerInfo describes one layer of the stack as it runs now.
type LayerInfo struct {
	// Key is the config key ("p2p", ...), Plugin and Mode the layer's
	// config.
	Key, Plugin, Mode string
	// PID is the plugin's process id, 0 in process-less modes or while
	// it is down.
	PID int
	// Restarts counts restarts by the supervisor.
	Restarts uint64
	// Counters are what the plugin reported at its last health check.
	Counters map[string]uint64
}

// Layers describes the stack's layers, bottom up, with the counters of the
// last health check (Options.HealthInterval).
func (n *Node) Layers() []LayerInfo {
	out := make([]LayerInfo, len(n.slots))
	for i, s := range n.slots {
		out[i] = LayerInfo{Key: s.key, Plugin: s.layer.Plugin, Mode: s.layer.Mode, PID: s.pid(), Restarts: s.restarts.Load(), Counters: s.counters()}
	}
	return out
}

// Role is the node's role: config.RoleClient or config.RoleRelay.
func (n *Node) Role() string { return n.cfg.Node.Role }

// Boundaries returns a snapshot of every boundary's counters, bottom up.
func (n *Node) Boundaries() []BoundaryStats {
	bounds := n.router.Boundaries()
	out := make([]BoundaryStats, len(bounds))
	for i, b := range bounds {
		out[i] = snapshot(b)
	}
	return out
}

// LayerCounters returns the counters a layer's plugin last reported.
func (n *Node) LayerCounters(ctx context.Context, layer string) (map[string]uint64, error) {
	for _, s := range n.slots {
		if s.key == layer {
			s.pollHealth(ctx)
			return s.counters(), nil
		}
	}
	return nil, fmt.Errorf("no layer %q", layer)
}

// Control returns the control connection of a layer's current plugin, for
// its typed control client.
func (n *Node) Control(layer string) (sdk.Conn, error) {
	for _, s := range n.slots {
		if s.key == layer {
			s.mu.RLock()
			defer s.mu.RUnlock()
			if s.conn == nil {
				return nil, fmt.Errorf("layer %q is not running", layer)
			}
			return s.conn, nil
		}
	}
	return nil, fmt.Errorf("no layer %q", layer)
}

// Failed is closed-with-value when the node gives up (a plugin exceeded its
// restart limit). Run loops select on it.
func (n *Node) Failed() <-chan error { return n.failed }

func (n *Node) fail(err error) {
	select {
	case n.failed <- err:
	default:
	}
}

func (n *Node) pollHealth() {
	t := time.NewTicker(n.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			for _, s := range n.slots {
				s.pollHealth(n.ctx)
			}
			n.refreshSections(n.ctx)
		}
	}
}

// Close stops every layer top down, while the layers below can still take
// what a stopping layer flushes, then ends every plugin process.
func (n *Node) Close(ctx context.Context) error {
	n.once.Do(func() {
		n.closing.Store(true)
		for _, injs := range n.faults {
			for _, inj := range injs {
				inj.Close()
			}
		}
		for i := len(n.slots) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n.slots[i].stop(sctx)
			cancel()
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.contacts != nil {
			n.contacts.Close()
		}
		if n.convs != nil {
			n.convs.Close()
		}
		if n.id != nil {
			n.id.Close()
		}
		n.atRest.Wipe()
		if n.unlock != nil {
			n.unlock()
		}
	})
	return nil
}

// Check loads every plugin, checks each one's config section against its
// schema and that adjacent layers fit, lets each plugin judge its values in
// Configure, then stops them. It is what `strata config check` runs. The
// plugins are configured in a scratch directory, so the node's own data
// dir is not touched, and Configure does no network I/O.
func (n *Node) Check(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer n.cancel()
	defer func() {
		for _, s := range n.slots {
			s.mu.Lock()
			conn := s.conn
			s.conn = nil
			s.mu.Unlock()
			if conn != nil {
				conn.Close()
			}
		}
	}()
	for _, s := range n.slots {
		if err := s.prepare(ctx); err != nil {
			return err
		}
	}
	if err := n.checkFit(); err != nil {
		return err
	}
	scratch, err := os.MkdirTemp("", "strata-config-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	for _, s := range n.slots {
		if _, err := s.callConfigure(ctx, s.layerDir(scratch)); err != nil {
			return err
		}
	}
	return nil
}

// Stack describes the loaded layers, bottom up, once Start or Check ran.
func (n *Node) Stack() []*commonv1.PluginInfo {
	out := make([]*commonv1.PluginInfo, 0, len(n.slots))
	for _, s := range n.slots {
		out = append(out, s.info)
	}
	return out
}
