package testnet

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-msg/strata/host/config"
)

func TestLoopbackListen(t *testing.T) {
	for _, c := range []struct {
		in     any
		plugin string
		want   any
		ok     bool
	}{
		{[]any{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, "libp2p", []any{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, true},
		{[]any{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"}, "libp2p", []any{"/ip4/127.0.0.1/tcp/0"}, true},
		{"/ip4/10.0.0.1/tcp/9,/dns4/example.org/udp/7/quic-v1", "libp2p", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1", true},
		{"0.0.0.0:30303", "devp2p", "127.0.0.1:0", true},
		{":30400", "devp2p", "127.0.0.1:0", true},
		{nil, "libp2p", []any{"/ip4/127.0.0.1/tcp/0"}, true},
		{nil, "devp2p", "127.0.0.1:0", true},
		{nil, "mixnet", nil, false},
		{42, "libp2p", nil, false},
	} {
		got, ok := loopbackListen(c.in, c.plugin)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("loopbackListen(%v, %s) = %v, %v; want %v, %v", c.in, c.plugin, got, ok, c.want, c.ok)
		}
	}
}

const testStack = `node:
  name: alice
  data_dir: ../data/alice
  peers: ["strata:card:elsewhere"]
plugins:
  dir: ../bin/plugins
  allow_unverified: true
layers:
  p2p:
    plugin: libp2p
    config:
      listen: ["/ip4/0.0.0.0/tcp/4001"]
      dht: "off"
  privacy:
    plugin: whisper
  secure:
    plugin: doubleratchet
  sync:
    plugin: mvds
    config:
      epoch: 300ms
metrics:
  listen: 127.0.0.1:9464
api:
  listen: "off"
faults:
  seed: 3
  p2p: {drop: 0.1}
  sync: {delay: 5ms}
`

func writeStack(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "configs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stack.yaml")
	if err := os.WriteFile(path, []byte(testStack), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNodeConfig checks the configs the testnet writes by loading them as
// the host does.
func TestNodeConfig(t *testing.T) {
	path := writeStack(t)
	st, err := readStack(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.plugin("privacy") != "whisper" {
		t.Fatalf("privacy plugin %q", st.plugin("privacy"))
	}
	out := t.TempDir()
	load := func(name, role string, peers []string, faults map[string]any) *config.Config {
		t.Helper()
		file := filepath.Join(out, name+".yaml")
		if err := writeConfig(file, st.path, name, role, st.nodeConfig(name, role, filepath.Join(out, name), peers, faults)); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Sources{File: file, Environ: []string{}})
		if err != nil {
			b, _ := os.ReadFile(file)
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		return cfg
	}

	c := load("n0", RoleClient, []string{"strata:card:r0"}, nil)
	if c.Node.Name != "n0" || c.Node.Role != RoleClient || c.Node.DataDir != filepath.Join(out, "n0") {
		t.Errorf("node section: %+v", c.Node)
	}
	if !slices.Equal(c.Node.Peers, []string{"strata:card:r0"}) {
		t.Errorf("peers %v", c.Node.Peers)
	}
	if want := filepath.Join(filepath.Dir(filepath.Dir(path)), "bin", "plugins"); c.Plugins.Dir != want {
		t.Errorf("plugins.dir %s, want %s (relative to the stack file)", c.Plugins.Dir, want)
	}
	if !c.Plugins.AllowUnverified {
		t.Error("plugins.allow_unverified of the stack was lost")
	}
	if c.Metrics.Listen != "" {
		t.Errorf("metrics.listen %q, want off", c.Metrics.Listen)
	}
	if network, addr := c.APIEndpoint(); network != "unix" || addr != filepath.Join(out, "n0", "host", "api.sock") {
		t.Errorf("API %s %s, want the default socket", network, addr)
	}
	if got := c.Layers["p2p"].Config["listen"]; !reflect.DeepEqual(got, []any{"/ip4/127.0.0.1/tcp/0"}) {
		t.Errorf("listen %v", got)
	}
	if c.Layers["p2p"].Config["dht"] != "off" || c.Layers["sync"].Config["epoch"] != "300ms" {
		t.Errorf("the stack's layer settings were not kept: %v %v", c.Layers["p2p"].Config, c.Layers["sync"].Config)
	}
	if len(c.Faults.Boundaries) != 2 || c.Faults.Seed != 3 {
		t.Errorf("a client without Options.Faults keeps the stack's faults: %+v", c.Faults)
	}

	c = load("n1", RoleClient, nil, map[string]any{"seed": 9, "privacy": map[string]any{"drop": 0.5}})
	if len(c.Node.Peers) != 0 {
		t.Errorf("peers %v, want none (the stack's are not the testnet's)", c.Node.Peers)
	}
	if c.Faults.Seed != nodeSeed(9, "n1") || len(c.Faults.Boundaries) != 1 || c.Faults.Boundaries["privacy"].Drop != 0.5 {
		t.Errorf("Options.Faults did not replace the stack's: %+v", c.Faults)
	}
	if nodeSeed(9, "n1") == nodeSeed(9, "n2") || nodeSeed(9, "n1") == nodeSeed(10, "n1") || nodeSeed(int64(9), "n1") != nodeSeed(9.0, "n1") {
		t.Error("node seeds do not depend on the seed and the node exactly")
	}

	if c := load("n2", RoleClient, nil, map[string]any{}); len(c.Faults.Boundaries) != 0 {
		t.Errorf("empty Options.Faults kept the stack's: %+v", c.Faults)
	}

	r := load("r0", RoleRelay, nil, nil)
	if r.Node.Role != RoleRelay || !slices.Equal(r.Stack(), []string{"p2p", "privacy"}) {
		t.Errorf("relay: role %s stack %v", r.Node.Role, r.Stack())
	}
	if _, ok := r.Faults.Boundaries["sync"]; ok || r.Faults.Boundaries["p2p"].Drop != 0.1 {
		t.Errorf("relay faults %+v: want the stack's p2p boundary only", r.Faults)
	}
}

func TestCheckSet(t *testing.T) {
	relay, err := checkSet([]string{"log.level=debug", "layers.sync.config.epoch=50ms", "faults.p2p.drop=0.1", "layers.p2p.config.dht=off"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(relay, []string{"log.level=debug", "layers.p2p.config.dht=off"}) {
		t.Errorf("relay set %v", relay)
	}
	for _, bad := range []string{"node.name=x", "node.data_dir=/tmp", "api.listen=127.0.0.1:1", "metrics.listen=:1", "noequals"} {
		if _, err := checkSet([]string{bad}); err == nil {
			t.Errorf("checkSet(%q) accepted it", bad)
		}
	}
}

func TestHostEnviron(t *testing.T) {
	got := hostEnviron([]string{"PATH=/bin", "STRATA_NODE__NAME=x", "STRATA_LOG_LEVEL=debug", "HOME=/h"})
	if !slices.Equal(got, []string{"PATH=/bin", "STRATA_LOG_LEVEL=debug", "HOME=/h"}) {
		t.Errorf("hostEnviron: %v", got)
	}
}

func TestReadStackErrors(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"", "no stack config"},
		{filepath.Join(t.TempDir(), "missing.yaml"), "no such file"},
		{"../../configs/libp2p-none.yaml", "layers.secure"},
	} {
		if _, err := readStack(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readStack(%q) = %v; want an error with %q", c.path, err, c.want)
		}
	}
}
