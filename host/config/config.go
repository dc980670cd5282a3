// Package config loads and checks a node's configuration: a YAML or TOML
// file, then STRATA_ environment variables, then --set flags, in that order
// of precedence (later wins). Every mistake is a *sdk.ConfigError that names
// the key and says how to fix it.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/faults"
)

// Roles a node can take.
const (
	// RoleClient runs p2p, privacy and secure, and usually sync, and serves
	// applications. Without a sync layer, delivery to the application is
	// best effort.
	RoleClient = "client"
	// RoleRelay runs p2p and privacy only: a forwarding node.
	RoleRelay = "relay"
)

// Plugin run modes.
const (
	// ModeProcess runs a layer as its own plugin process (the default).
	ModeProcess = "process"
	// ModeInProc runs a layer compiled into the host, for tests and benchmarks.
	ModeInProc = "inproc"
)

// LayerOrder lists the layer keys bottom to top.
var LayerOrder = []string{"p2p", "privacy", "secure", "sync"}

// Config is a node's whole configuration.
type Config struct {
	// Node says who the node is.
	Node Node
	// Plugins says where plugin binaries live and how they are verified.
	Plugins Plugins
	// Layers holds the choice per layer key ("p2p", "privacy", ...). A relay
	// has p2p and privacy only; a client has p2p, privacy, secure and
	// optionally sync.
	Layers map[string]Layer
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics
	// API configures the messaging API endpoint.
	API API
	// Faults are the faults the host injects at layer boundaries (tests
	// and comparisons); empty for a normal node.
	Faults faults.Config
	// Log configures the host log (plugin logs are merged into it).
	Log Log
	// Public bounds what the node keeps of public chats.
	Public Public
	// Source is the file the config was read from, "" when none.
	Source string
}

// Node is the node section.
type Node struct {
	Name    string
	DataDir string
	Role    string
	// DialContacts asks the p2p layer to keep a connection to every contact
	// (the default). Off, the node reaches contacts only through the peers
	// its overlay is configured with (relays), so that contacts do not learn
	// its network address.
	DialContacts bool
	// Peers are nodes the overlay keeps a connection to whatever
	// DialContacts says: relays and bootstrap nodes, each given by its
	// contact card (text form); only the card's p2p section is used.
	Peers []string
	// PassphraseFile names a file holding the passphrase that encrypts the
	// node's secrets at rest (the identity key, each layer's keys and
	// state) under a key derived from it with Argon2id. KeyFile names a
	// file of at least 32 random bytes used as that key instead, for
	// machines with no one to type a passphrase. At most one is set; with
	// neither, file modes are the only protection of secrets at rest.
	PassphraseFile string
	KeyFile        string
}

// Plugins is the plugins section.
type Plugins struct {
	// Dir is the first directory of Dirs, for callers that know one.
	Dir string
	// Dirs are the directories that hold plugin binaries, named
	// strata-plugin-<name>, searched in order (plugins.dir: one directory
	// or a list). A layer's own dir (layers.<layer>.dir) replaces them for
	// that layer.
	Dirs []string
	// LockFile, when set, is the one lock file that vouches for every
	// binary, wherever it is found. When it is not set, a binary is vouched
	// for by the strata.lock of the directory it is found in.
	LockFile string
	// Checksums overrides the lock file: plugin name → hex SHA-256.
	Checksums map[string]string
	// AllowUnverified starts binaries that have no checksum. Development
	// only: the file checks still apply, and every such launch logs a
	// warning that names the binary.
	AllowUnverified bool
	// RunAs, when set, is the user (name or uid) every plugin process runs
	// as (plugins.run_as). The host must run as root.
	RunAs string
	// Restart is the crash-restart policy.
	Restart Restart
}

// Restart is the policy for restarting a crashed plugin.
type Restart struct {
	// Initial is the first backoff; it doubles up to Max.
	Initial time.Duration
	Max     time.Duration
	// Limit is how many restarts within Window give up on the node; 0 = never.
	Limit  int
	Window time.Duration
}

// Layer is one layer's choice.
type Layer struct {
	// Plugin is the implementation's name ("libp2p", "none", ...).
	Plugin string
	// Mode is ModeProcess or ModeInProc.
	Mode string
	// Dir, when set, is the only directory searched for this layer's
	// plugin binary (layers.<layer>.dir).
	Dir string
	// Config is the plugin's own section, checked against its schema when
	// the plugin is loaded.
	Config map[string]any
}

// Metrics is the metrics section.
type Metrics struct {
	// Listen is the address of the /metrics endpoint; "" (or "off" in the
	// file) turns it off. Loopback only unless AllowRemote.
	Listen string
	// AllowRemote lets Listen be an address that other machines reach.
	// The endpoint has no authentication, and its counters tell when and
	// how much the node sends and receives.
	AllowRemote bool
}

// checkMetrics validates metrics.listen.
func (c *Config) checkMetrics() error {
	l := c.Metrics.Listen
	if l == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(l)
	if err != nil {
		return &sdk.ConfigError{Key: "metrics.listen", Problem: fmt.Sprintf("%q is not host:port", l), Fix: "use 127.0.0.1:9464, or off"}
	}
	if c.Metrics.AllowRemote {
		return nil
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		problem := fmt.Sprintf("%q is not a loopback address", host)
		if host == "" {
			problem = fmt.Sprintf("%q has no host, which listens on every interface", l)
		}
		return &sdk.ConfigError{Key: "metrics.listen", Problem: problem,
			Fix: "serve metrics on 127.0.0.1 or ::1; to serve them to other machines on purpose (they have no authentication, and show when and how much this node sends), also set metrics.allow_remote: true"}
	}
	return nil
}

// API is the api section: where the host serves the messaging API
// (core/api/app/v1).
type API struct {
	// Listen is "" for the default, a Unix socket at
	// <data_dir>/host/api.sock; "unix:<path>" for another socket; a
	// loopback "host:port" for TCP; or "off".
	Listen string
}

// maxSocketPath is the longest Unix socket path the platforms accept
// (sun_path is 104 bytes on the BSDs, 108 on Linux, with a terminator).
const maxSocketPath = 103

// APIEndpoint returns the network ("unix" or "tcp") and address where the
// messaging API is served, or "" and "" when it is off.
func (c *Config) APIEndpoint() (network, address string) {
	switch l := c.API.Listen; {
	case l == "off":
		return "", ""
	case l == "":
		return "unix", filepath.Join(c.Node.DataDir, "host", "api.sock")
	case strings.HasPrefix(l, "unix:"):
		return "unix", strings.TrimPrefix(l, "unix:")
	default:
		return "tcp", l
	}
}

// checkAPI validates api.listen.
func (c *Config) checkAPI() error {
	network, addr := c.APIEndpoint()
	switch network {
	case "":
		return nil
	case "unix":
		if addr == "" {
			return &sdk.ConfigError{Key: "api.listen", Problem: "names no socket path", Fix: "write unix:/path/to/api.sock"}
		}
		if len(addr) > maxSocketPath {
			return &sdk.ConfigError{Key: "api.listen", Problem: fmt.Sprintf("the socket path %s is %d bytes, longer than the %d a Unix socket allows", addr, len(addr), maxSocketPath), Fix: "set api.listen to unix:<a shorter path>, or move node.data_dir"}
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &sdk.ConfigError{Key: "api.listen", Problem: fmt.Sprintf("%q is not host:port or unix:<path>", addr), Fix: "use 127.0.0.1:7400, unix:/path/api.sock, or off"}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return &sdk.ConfigError{Key: "api.listen", Problem: fmt.Sprintf("%q is not a loopback address", host), Fix: "the API is for this machine only (its token travels in the clear): serve it on 127.0.0.1 or ::1, or on a Unix socket (the default)"}
	}
	return nil
}

// Log is the log section.
type Log struct {
	Level  string
	Format string
}

// Sources are the inputs to Load besides the file.
type Sources struct {
	// File is the YAML (.yaml, .yml) or TOML (.toml) config file.
	File string
	// Environ is the environment; nil means os.Environ().
	Environ []string
	// Set holds key=value overrides from --set flags (dotted keys).
	Set []string
}

// topKeys are the keys a config may have, with the fix to show for a typo.
var topKeys = map[string]bool{
	"node.name": true, "node.data_dir": true, "node.role": true, "node.dial_contacts": true, "node.peers": true,
	"node.passphrase_file": true, "node.key_file": true,
	"plugins.dir": true, "plugins.lock_file": true, "plugins.allow_unverified": true, "plugins.run_as": true,
	"plugins.restart.initial": true, "plugins.restart.max": true,
	"plugins.restart.limit": true, "plugins.restart.window": true,
	"metrics.listen": true, "metrics.allow_remote": true, "log.level": true, "log.format": true,
	"api.listen": true, "public.max_messages_per_chat": true, "public.max_bytes_per_chat": true, "public.retention": true,
}

// Load reads, merges and checks a config. When a file is given, relative
// paths (node.data_dir, plugins.dir, plugins.lock_file, from whichever
// source) are relative to the file's directory. It does not look at plugins; the
// host checks each plugin's own section against the plugin's schema when it
// loads it.
func Load(src Sources) (*Config, error) {
	k := koanf.New(".")
	if src.File != "" {
		parser, err := parserFor(src.File)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(src.File); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := k.Load(file.Provider(src.File), parser); err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, locateYAMLError(src.File, err))
		}
	}
	environ := src.Environ
	if environ == nil {
		environ = os.Environ()
	}
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix:        "STRATA_",
		TransformFunc: envKey,
		EnvironFunc:   func() []string { return environ },
	}), nil); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if len(src.Set) > 0 {
		set := make(map[string]any, len(src.Set))
		for _, kv := range src.Set {
			key, val, ok := strings.Cut(kv, "=")
			if !ok || key == "" {
				return nil, &sdk.ConfigError{Key: kv, Problem: "is not key=value", Fix: "write --set layers.p2p.config.listen=/ip4/127.0.0.1/tcp/0"}
			}
			set[key] = val
		}
		if err := k.Load(confmap.Provider(set, "."), nil); err != nil {
			return nil, fmt.Errorf("--set: %w", err)
		}
	}
	cfg, err := fromKoanf(k)
	if err != nil {
		return nil, err
	}
	cfg.Source = src.File
	if src.File != "" {
		base := filepath.Dir(src.File)
		paths := []*string{&cfg.Node.DataDir, &cfg.Node.PassphraseFile, &cfg.Node.KeyFile, &cfg.Plugins.Dir, &cfg.Plugins.LockFile}
		for i := range cfg.Plugins.Dirs {
			paths = append(paths, &cfg.Plugins.Dirs[i])
		}
		for key, l := range cfg.Layers {
			if l.Dir != "" && !filepath.IsAbs(l.Dir) {
				l.Dir = filepath.Join(base, l.Dir)
				cfg.Layers[key] = l
			}
		}
		for _, p := range paths {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
		if sock, ok := strings.CutPrefix(cfg.API.Listen, "unix:"); ok && sock != "" && !filepath.IsAbs(sock) {
			cfg.API.Listen = "unix:" + filepath.Join(base, sock)
		}
	}
	// Paths are final now: check the socket's length again.
	if err := cfg.checkAPI(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// envKey maps STRATA_NODE__DATA_DIR to node.data_dir: a double underscore
// separates levels, since keys themselves contain single underscores. The
// reserved STRATA_PLUGIN and STRATA_LOG_LEVEL variables of plugin
// processes are ignored.
func envKey(k, v string) (string, any) {
	k = strings.TrimPrefix(k, "STRATA_")
	if !strings.Contains(k, "__") {
		return "", nil
	}
	return strings.ToLower(strings.ReplaceAll(k, "__", ".")), v
}

func parserFor(path string) (koanf.Parser, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return yaml.Parser(), nil
	case ".toml":
		return toml.Parser(), nil
	}
	return nil, fmt.Errorf("config file %s: unknown format; name it .yaml, .yml or .toml", path)
}

func fromKoanf(k *koanf.Koanf) (*Config, error) {
	if err := checkKeys(k); err != nil {
		return nil, err
	}
	cfg := &Config{Layers: map[string]Layer{}}
	var err error
	// One value decoder for every key (sdk.Loose): numbers, bools and
	// durations may come as strings from the environment and flags.
	var d sdk.Loose
	str := func(key, def string) string {
		if err != nil || !k.Exists(key) {
			return def
		}
		var v string
		v, err = d.String(key, k.Get(key))
		return v
	}
	dur := func(key string, def time.Duration) time.Duration {
		if err != nil || !k.Exists(key) || k.Get(key) == "" {
			return def
		}
		v, derr := d.Duration(key, k.Get(key))
		if derr == nil && v < 0 {
			derr = &sdk.ConfigError{Key: key, Problem: "is " + sdk.DescribeValue(k.Get(key)) + ", below zero", Fix: `write a duration such as "500ms" or "30s"`}
		}
		err = derr
		return v
	}
	boolean := func(key string) bool {
		if err != nil || !k.Exists(key) {
			return false
		}
		var v bool
		v, err = d.Bool(key, k.Get(key))
		return v
	}
	integer := func(key string) int {
		if err != nil || !k.Exists(key) {
			return 0
		}
		v, ierr := d.Int(key, k.Get(key))
		if ierr == nil && int64(int(v)) != v {
			ierr = &sdk.ConfigError{Key: key, Problem: "is " + sdk.DescribeValue(k.Get(key)) + ", out of range"}
		}
		err = ierr
		return int(v)
	}

	cfg.Node.Name = str("node.name", "strata")
	cfg.Node.Role = str("node.role", RoleClient)
	cfg.Node.DialContacts = !k.Exists("node.dial_contacts") || boolean("node.dial_contacts")
	cfg.Node.DataDir = str("node.data_dir", "")
	cfg.Node.PassphraseFile = str("node.passphrase_file", "")
	cfg.Node.KeyFile = str("node.key_file", "")
	if err == nil && k.Exists("node.peers") {
		cfg.Node.Peers, err = stringList(k.Get("node.peers"), "node.peers")
	}
	if err == nil && k.Exists("plugins.dir") {
		cfg.Plugins.Dirs, err = stringList(k.Get("plugins.dir"), "plugins.dir")
		if err == nil && slices.Contains(cfg.Plugins.Dirs, "") {
			err = &sdk.ConfigError{Key: "plugins.dir", Problem: "names an empty directory", Fix: "remove the empty entry"}
		}
		if len(cfg.Plugins.Dirs) > 0 {
			cfg.Plugins.Dir = cfg.Plugins.Dirs[0]
		}
	}
	cfg.Plugins.LockFile = str("plugins.lock_file", "")
	cfg.Plugins.AllowUnverified = boolean("plugins.allow_unverified")
	cfg.Plugins.RunAs = str("plugins.run_as", "")
	cfg.Plugins.Restart = Restart{
		Initial: dur("plugins.restart.initial", 200*time.Millisecond),
		Max:     dur("plugins.restart.max", 30*time.Second),
		Limit:   integer("plugins.restart.limit"),
		Window:  dur("plugins.restart.window", 5*time.Minute),
	}
	cfg.Metrics.Listen = str("metrics.listen", "")
	if cfg.Metrics.Listen == "off" {
		cfg.Metrics.Listen = ""
	}
	cfg.Metrics.AllowRemote = boolean("metrics.allow_remote")
	cfg.API.Listen = str("api.listen", "")
	if err == nil && k.Exists("faults") {
		cfg.Faults, err = faults.Parse(k.Cut("faults").All())
	}
	cfg.Public = Public{
		MaxMessagesPerChat: DefaultPublicMaxMessages,
		MaxBytesPerChat:    DefaultPublicMaxBytes,
		Retention:          dur("public.retention", DefaultPublicRetention),
	}
	if k.Exists("public.max_messages_per_chat") {
		cfg.Public.MaxMessagesPerChat = integer("public.max_messages_per_chat")
	}
	if k.Exists("public.max_bytes_per_chat") {
		cfg.Public.MaxBytesPerChat = int64(integer("public.max_bytes_per_chat"))
	}
	cfg.Log.Level = str("log.level", "info")
	cfg.Log.Format = str("log.format", "text")
	if err != nil {
		return nil, err
	}
	if k.Exists("plugins.checksums") {
		cfg.Plugins.Checksums = map[string]string{}
		for name, v := range k.Cut("plugins.checksums").All() {
			s, ok := v.(string)
			if !ok {
				return nil, &sdk.ConfigError{Key: "plugins.checksums." + name, Problem: "want a hex SHA-256 string"}
			}
			cfg.Plugins.Checksums[name] = s
		}
	}
	for _, key := range LayerOrder {
		prefix := "layers." + key
		if !k.Exists(prefix) {
			continue
		}
		l := Layer{
			Plugin: str(prefix+".plugin", ""),
			Mode:   str(prefix+".mode", ModeProcess),
			Dir:    str(prefix+".dir", ""),
		}
		if err != nil {
			return nil, err
		}
		if k.Exists(prefix + ".config") {
			sub, ok := k.Get(prefix + ".config").(map[string]any)
			if !ok {
				return nil, &sdk.ConfigError{Key: prefix + ".config", Problem: "is not a section", Fix: "write the plugin's keys under it, or remove it"}
			}
			l.Config = sub
		}
		cfg.Layers[key] = l
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKeys refuses keys the host does not know, outside the plugins' own
// sections and the checksum table.
func checkKeys(k *koanf.Koanf) error {
	keys := k.Keys()
	sort.Strings(keys)
	for _, key := range keys {
		if k.Get(key) == nil && isSection(key) {
			continue // an empty section, such as "plugins:" with nothing under it
		}
		if topKeys[key] || strings.HasPrefix(key, "plugins.checksums.") || key == "faults" || strings.HasPrefix(key, "faults.") {
			continue // the faults section is checked by faults.Parse
		}
		if rest, ok := strings.CutPrefix(key, "layers."); ok {
			layer, sub, _ := strings.Cut(rest, ".")
			if !isLayer(layer) {
				return &sdk.ConfigError{Key: "layers." + layer, Problem: "is not a layer", Fix: "layers are " + strings.Join(LayerOrder, ", ")}
			}
			if sub == "plugin" || sub == "mode" || sub == "dir" || sub == "config" || strings.HasPrefix(sub, "config.") {
				continue
			}
		}
		return &sdk.ConfigError{Key: key, Problem: "unknown key", Fix: suggest(key)}
	}
	return nil
}

// isSection reports whether key names a section (a key with keys below
// it) rather than a value.
func isSection(key string) bool {
	for k := range topKeys {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	if key == "layers" || key == "plugins.checksums" {
		return true
	}
	if rest, ok := strings.CutPrefix(key, "layers."); ok {
		layer, sub, _ := strings.Cut(rest, ".")
		return isLayer(layer) && (sub == "" || sub == "config")
	}
	return false
}

func isLayer(s string) bool {
	for _, l := range LayerOrder {
		if l == s {
			return true
		}
	}
	return false
}

// suggest names the known key closest to key.
func suggest(key string) string {
	best, bestD := "", 4
	cands := make([]string, 0, len(topKeys)+8)
	for k := range topKeys {
		cands = append(cands, k)
	}
	for _, l := range LayerOrder {
		cands = append(cands, "layers."+l+".plugin", "layers."+l+".mode", "layers."+l+".dir", "layers."+l+".config")
	}
	sort.Strings(cands)
	for _, c := range cands {
		if d := sdk.EditDistance(key, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return "remove it; see docs/configuration.md for the keys"
	}
	return "did you mean " + best + "?"
}

// Check validates what can be validated without loading plugins.
func (c *Config) Check() error {
	if c.Node.Name == "" {
		return &sdk.ConfigError{Key: "node.name", Problem: "is empty", Fix: "give the node a name"}
	}
	if strings.ContainsAny(c.Node.Name, `/\`) {
		return &sdk.ConfigError{Key: "node.name", Problem: fmt.Sprintf("%q contains a path separator", c.Node.Name)}
	}
	if c.Node.DataDir == "" {
		return &sdk.ConfigError{Key: "node.data_dir", Problem: "is not set", Fix: "name the directory where the node keeps its keys and state"}
	}
	if err := c.Public.check(); err != nil {
		return err
	}
	if c.Node.PassphraseFile != "" && c.Node.KeyFile != "" {
		return &sdk.ConfigError{Key: "node.key_file", Problem: "is set together with node.passphrase_file", Fix: "keep one of the two: a passphrase, or a key file"}
	}
	var need []string
	switch c.Node.Role {
	case RoleClient:
		need = LayerOrder[:3]
		if _, ok := c.Layers["sync"]; ok {
			need = LayerOrder
		}
	case RoleRelay:
		need = LayerOrder[:2]
		for _, extra := range LayerOrder[2:] {
			if _, ok := c.Layers[extra]; ok {
				return &sdk.ConfigError{Key: "layers." + extra, Problem: "is set on a relay", Fix: "a relay runs p2p and privacy only; remove it or set node.role: client"}
			}
		}
	default:
		return &sdk.ConfigError{Key: "node.role", Problem: fmt.Sprintf("is %q", c.Node.Role), Fix: "use client or relay"}
	}
	for _, key := range need {
		l, ok := c.Layers[key]
		if !ok {
			fix := fmt.Sprintf("set layers.%s.plugin", key)
			if c.Node.Role == RoleClient && key == "secure" {
				fix += "; a client runs p2p, privacy and secure (and usually sync), a relay (node.role: relay) p2p and privacy only"
			}
			return &sdk.ConfigError{Key: "layers." + key, Problem: "is missing", Fix: fix}
		}
		if l.Plugin == "" {
			return &sdk.ConfigError{Key: "layers." + key + ".plugin", Problem: "is not set", Fix: "name the implementation, e.g. `strata plugins list`"}
		}
		if l.Mode != ModeProcess && l.Mode != ModeInProc {
			return &sdk.ConfigError{Key: "layers." + key + ".mode", Problem: fmt.Sprintf("is %q", l.Mode), Fix: "use process or inproc"}
		}
	}
	if c.usesProcess() && c.Plugins.Dir == "" {
		for _, key := range LayerOrder {
			if l, ok := c.Layers[key]; ok && l.Mode == ModeProcess && l.Dir == "" {
				return &sdk.ConfigError{Key: "plugins.dir", Problem: "is not set", Fix: "name the directory, or a list of them, with the plugin binaries (make plugins builds them into bin/plugins), or set layers." + key + ".dir"}
			}
		}
	}
	for name, sum := range c.Plugins.Checksums {
		if len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" {
			return &sdk.ConfigError{Key: "plugins.checksums." + name, Problem: "is not a hex SHA-256", Fix: "use `strata plugins lock` or sha256sum"}
		}
	}
	r := c.Plugins.Restart
	if r.Initial <= 0 || r.Max < r.Initial {
		return &sdk.ConfigError{Key: "plugins.restart", Problem: "initial must be positive and max at least initial"}
	}
	if r.Limit < 0 {
		return &sdk.ConfigError{Key: "plugins.restart.limit", Problem: "is negative", Fix: "use 0 for no limit"}
	}
	if err := c.checkAPI(); err != nil {
		return err
	}
	if err := c.checkMetrics(); err != nil {
		return err
	}
	for b := range c.Faults.Boundaries {
		if _, ok := c.Layers[b]; !ok {
			return &sdk.ConfigError{Key: "faults." + b, Problem: fmt.Sprintf("names the boundary above the %s layer, which this stack does not have", b), Fix: "name a layer of the stack: " + strings.Join(c.Stack(), ", ")}
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "error", "off":
	default:
		return &sdk.ConfigError{Key: "log.level", Problem: fmt.Sprintf("is %q", c.Log.Level), Fix: "use trace, debug, info, warn, error or off"}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return &sdk.ConfigError{Key: "log.format", Problem: fmt.Sprintf("is %q", c.Log.Format), Fix: "use text or json"}
	}
	return nil
}

func (c *Config) usesProcess() bool {
	for _, l := range c.Layers {
		if l.Mode == ModeProcess {
			return true
		}
	}
	return false
}

// Stack returns the configured layer keys, bottom to top.
func (c *Config) Stack() []string {
	var out []string
	for _, key := range LayerOrder {
		if _, ok := c.Layers[key]; ok {
			out = append(out, key)
		}
	}
	return out
}

// LockPath is the path of the lock file of the first plugin directory
// (or plugins.lock_file): the one `strata plugins lock` writes.
func (c *Config) LockPath() string {
	if c.Plugins.LockFile != "" {
		return c.Plugins.LockFile
	}
	return filepath.Join(c.Plugins.Dir, "strata.lock")
}

// PluginDirs are the directories searched, in order, for the plugin
// binary of the layer key: the layer's own dir, else plugins.dir.
func (c *Config) PluginDirs(key string) []string {
	if l, ok := c.Layers[key]; ok && l.Dir != "" {
		return []string{l.Dir}
	}
	if len(c.Plugins.Dirs) == 0 && c.Plugins.Dir != "" {
		return []string{c.Plugins.Dir}
	}
	return c.Plugins.Dirs
}

// LockPathFor is the lock file that vouches for the plugin binary at
// path: plugins.lock_file when set, else the strata.lock beside the
// binary. Each plugin directory thus carries its own lock, and a binary is
// never vouched for by another directory's.
func (c *Config) LockPathFor(binary string) string {
	if c.Plugins.LockFile != "" {
		return c.Plugins.LockFile
	}
	return filepath.Join(filepath.Dir(binary), "strata.lock")
}

// IsConfigError reports whether err is (or wraps) a config mistake.
func IsConfigError(err error) bool {
	var ce *sdk.ConfigError
	return errors.As(err, &ce)
}

// stringList reads a list of strings; one string counts as a list of one.
func stringList(v any, key string) ([]string, error) {
	l, err := sdk.Loose{}.StringList(key, v)
	var ce *sdk.ConfigError
	if errors.As(err, &ce) && ce.Key == key {
		ce.Fix = `write it as ["strata:card:...", ...]`
	}
	if err != nil || len(l) == 0 {
		return nil, err
	}
	return l, nil
}
