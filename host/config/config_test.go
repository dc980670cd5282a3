package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

const base = `
node:
  name: alice
  data_dir: state
  role: relay
plugins:
  dir: plugins
layers:
  p2p:
    plugin: libp2p
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
`

func write(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrecedenceAndPaths(t *testing.T) {
	path := write(t, "n.yaml", base+"metrics:\nlog:\n")
	cfg, err := Load(Sources{
		File:    path,
		Environ: []string{"STRATA_NODE__NAME=bob", "STRATA_LOG__LEVEL=debug", "STRATA_PLUGIN=cookie", "HOME=/root"},
		Set:     []string{"log.level=warn", "layers.p2p.config.mdns=true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "bob" {
		t.Errorf("environment did not override the file: name %q", cfg.Node.Name)
	}
	if cfg.Log.Level != "warn" {
		t.Errorf("--set did not override the environment: level %q", cfg.Log.Level)
	}
	if want := filepath.Join(filepath.Dir(path), "state"); cfg.Node.DataDir != want {
		t.Errorf("data_dir %q, want %q (relative to the file)", cfg.Node.DataDir, want)
	}
	if got := cfg.Layers["p2p"].Config["mdns"]; got != "true" {
		t.Errorf("plugin key from --set: %v", got)
	}
	if got := cfg.Stack(); strings.Join(got, ",") != "p2p,privacy" {
		t.Errorf("stack %v", got)
	}
	if cfg.LockPath() != filepath.Join(filepath.Dir(path), "plugins", "strata.lock") {
		t.Errorf("lock path %q", cfg.LockPath())
	}
}

func TestLoadTOML(t *testing.T) {
	path := write(t, "n.toml", `
[node]
name = "t"
data_dir = "d"
role = "relay"
[plugins]
dir = "p"
[layers.p2p]
plugin = "libp2p"
[layers.privacy]
plugin = "none"
mode = "inproc"
`)
	cfg, err := Load(Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Layers["privacy"].Mode != ModeInProc || cfg.Layers["p2p"].Mode != ModeProcess {
		t.Fatalf("modes: %+v", cfg.Layers)
	}
}

func TestLoadMistakes(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		set     []string
		wantKey string
		wantFix string
	}{
		{"typo suggests the key", base + "metrics:\n  listn: x\n", nil, "metrics.listn", "did you mean metrics.listen?"},
		{"unknown layer", base + "  transport:\n    plugin: x\n", nil, "layers.transport", "layers are"},
		{"unknown layer key", strings.Replace(base, "plugin: none", "plugin: none\n    modus: x", 1), nil, "layers.privacy.modus", ""},
		{"bad role", strings.Replace(base, "role: relay", "role: server", 1), nil, "node.role", "client or relay"},
		{"relay with a secure layer", base + "  secure:\n    plugin: x\n", nil, "layers.secure", "relay runs p2p and privacy only"},
		{"no data dir", strings.Replace(base, "data_dir: state", "", 1), nil, "node.data_dir", ""},
		{"no plugin dir", strings.Replace(base, "dir: plugins", "", 1), nil, "plugins.dir", "make plugins"},
		{"bad duration", base, []string{"plugins.restart.initial=soon"}, "plugins.restart.initial", "duration"},
		{"bad checksum", base, []string{"plugins.checksums.none=xyz"}, "plugins.checksums.none", ""},
		{"bad set", base, []string{"novalue"}, "novalue", "key=value"},
		{"bad log level", base, []string{"log.level=loud"}, "log.level", "trace, debug"},
		{"misspelled key with no value", base + "log:\n  levl:\n", nil, "log.levl", "did you mean log.level?"},
		{"peers not strings", strings.Replace(base, "role: relay", "role: relay\n  peers: [1, 2]", 1), nil, "node.peers[0]", "quoted string"},
		{"peers not a list", strings.Replace(base, "role: relay", "role: relay\n  peers: 5", 1), nil, "node.peers", "strata:card"},
		{"plugin config not a section", strings.Replace(base, "plugin: none", "plugin: none\n    config: 5", 1), nil, "layers.privacy.config", ""},
		{"metrics on every interface", base + "metrics:\n  listen: \":9464\"\n", nil, "metrics.listen", "metrics.allow_remote: true"},
		{"metrics on a network address", base + "metrics:\n  listen: 192.0.2.7:9464\n", nil, "metrics.listen", "metrics.allow_remote: true"},
		{"metrics on a host name", base, []string{"metrics.listen=metrics.example:9464"}, "metrics.listen", "127.0.0.1"},
		{"metrics not host:port", base, []string{"metrics.listen=9464"}, "metrics.listen", "127.0.0.1:9464"},
		{"metrics remote allowed by a typo", base + "metrics:\n  listen: 0.0.0.0:9464\n  allow_remot: true\n", nil, "metrics.allow_remot", "did you mean metrics.allow_remote?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Sources{File: write(t, "n.yaml", tt.text), Environ: []string{}, Set: tt.set})
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if ce.Key != tt.wantKey || !strings.Contains(ce.Fix+ce.Problem, tt.wantFix) {
				t.Fatalf("got key %q (%v), want %q mentioning %q", ce.Key, err, tt.wantKey, tt.wantFix)
			}
		})
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := Load(Sources{File: write(t, "n.ini", base), Environ: []string{}}); err == nil || !strings.Contains(err.Error(), ".yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestFaultsSection(t *testing.T) {
	dir := t.TempDir()
	base := `node: {name: a, data_dir: ./a, role: relay}
plugins: {dir: ./p}
layers:
  p2p: {plugin: libp2p}
  privacy: {plugin: none}
`
	write := func(extra string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(base+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := Load(Sources{File: write("faults: {seed: 3, p2p: {drop: 0.3, delay: 10ms}}\n"), Environ: []string{"STRATA_FAULTS__P2P__DUPLICATE=0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Faults.Seed != 3 || cfg.Faults.Boundaries["p2p"].Drop != 0.3 || cfg.Faults.Boundaries["p2p"].Duplicate != 0.1 {
		t.Fatalf("faults %+v", cfg.Faults)
	}
	for extra, key := range map[string]string{
		"faults: {p2p: {drop: 2}}\n":    "faults.p2p.drop",
		"faults: {wire: {drop: 0.1}}\n": "faults.wire",
		"faults: {sync: {drop: 0.1}}\n": "faults.sync",
	} {
		_, err := Load(Sources{File: write(extra), Environ: []string{}})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%q: %v, want a ConfigError for %s", extra, err, key)
		}
	}
}

// TestMetricsListen: metrics are served on loopback unless the config says
// explicitly that other machines may reach them; "off" turns them off.
func TestMetricsListen(t *testing.T) {
	for _, tt := range []struct {
		set  []string
		want string
	}{
		{[]string{"metrics.listen=127.0.0.1:9464"}, "127.0.0.1:9464"},
		{[]string{"metrics.listen=[::1]:9464"}, "[::1]:9464"},
		{[]string{"metrics.listen=localhost:0"}, "localhost:0"},
		{[]string{"metrics.listen=off"}, ""},
		{[]string{"metrics.listen=0.0.0.0:9464", "metrics.allow_remote=true"}, "0.0.0.0:9464"},
		{[]string{"metrics.listen=:9464", "metrics.allow_remote=yes"}, ":9464"},
	} {
		cfg, err := Load(Sources{File: write(t, "n.yaml", base), Environ: []string{}, Set: tt.set})
		if err != nil {
			t.Errorf("%v: %v", tt.set, err)
			continue
		}
		if cfg.Metrics.Listen != tt.want {
			t.Errorf("%v: metrics.listen %q, want %q", tt.set, cfg.Metrics.Listen, tt.want)
		}
	}
	_, err := Load(Sources{File: write(t, "n.yaml", base), Environ: []string{}, Set: []string{"metrics.listen=0.0.0.0:9464", "metrics.allow_remote=false"}})
	if !IsConfigError(err) || !strings.Contains(err.Error(), "metrics.allow_remote") {
		t.Errorf("0.0.0.0 with metrics.allow_remote false: %v, want a ConfigError naming metrics.allow_remote", err)
	}
}
