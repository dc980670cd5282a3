package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/host/plugins"
)

// lockEntry records the binary name of pluginDir (or dir) with kind.
func lockEntry(t *testing.T, dir, name, kind string) plugins.LockEntry {
	t.Helper()
	sum, err := plugins.Hash(plugins.BinaryPath(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return plugins.LockEntry{File: plugins.BinaryPrefix + name, SHA256: sum, Kind: kind}
}

// trustConfig loads a relay config whose p2p layer is plugin p2p from
// p2pDir (pluginDir when ""), with extra keys in its plugins section.
func trustConfig(t *testing.T, dir, p2p, p2pDir, extra string) *config.Config {
	t.Helper()
	if p2pDir == "" {
		p2pDir = pluginDir
	}
	text := fmt.Sprintf(`
node:
  name: trust
  data_dir: %s
  role: relay
plugins:
  dir: %s
%slayers:
  p2p:
    plugin: %s
    dir: %s
  privacy:
    plugin: none
`, filepath.Join(dir, "data"), pluginDir, extra, p2p, p2pDir)
	path := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestLockKindMismatchIsRefused: a lock that records the privacy layer's
// binary as a p2p layer stops the node at its launch, with the key.
func TestLockKindMismatchIsRefused(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "one.lock")
	lock := &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{
		"libp2p": lockEntry(t, pluginDir, "libp2p", "p2p"),
		"none":   lockEntry(t, pluginDir, "none", "p2p"),
	}}
	if err := lock.Write(lockPath); err != nil {
		t.Fatal(err)
	}
	cfg := trustConfig(t, dir, "libp2p", "", "  lock_file: "+lockPath+"\n")
	n, err := node.New(cfg, node.Options{Catalog: catalog(), Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	defer n.Close(context.Background())
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "layers.privacy.plugin" || !strings.Contains(ce.Problem, "p2p layer") {
		t.Fatalf("got %v, want a config error of layers.privacy.plugin", err)
	}
}

// TestRefusedFramesAreCountedAtTheBoundary runs the rogue layer as the
// overlay: the UP frames it emits beyond its declared max_payload and
// header bound are dropped by the host and counted as invalid at the
// p2p|privacy boundary.
func TestRefusedFramesAreCountedAtTheBoundary(t *testing.T) {
	dir := t.TempDir()
	rogueDir := filepath.Join(dir, "rogue")
	if err := os.Mkdir(rogueDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := sdktest.Build(rogueDir, "github.com/strata-msg/strata/core/sdk/internal/rogue/cmd/strata-plugin-rogue", "rogue"); err != nil {
		t.Fatal(err)
	}
	lock := &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{"rogue": lockEntry(t, rogueDir, "rogue", "p2p")}}
	if err := lock.Write(filepath.Join(rogueDir, "strata.lock")); err != nil {
		t.Fatal(err)
	}
	cfg := trustConfig(t, dir, "rogue", rogueDir, "")
	p2p := cfg.Layers["p2p"]
	p2p.Config = map[string]any{"attack": "frames"}
	cfg.Layers["p2p"] = p2p
	n := startNode(t, cfg).Node
	deadline := time.Now().Add(20 * time.Second)
	for {
		b := n.Boundaries()[0]
		if got := b.Dropped["invalid"]; got == 2 {
			return
		} else if got > 2 || time.Now().After(deadline) {
			t.Fatalf("%s counts %d invalid frames, want 2 (%v)", b.Name, got, b.Dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartChecksTheBinaryAgain: the supervisor's restart of a crashed
// plugin checks the binary as the first launch did. Once its directory
// has become writable by others, the restart is refused and says why.
func TestRestartChecksTheBinaryAgain(t *testing.T) {
	dir := t.TempDir()
	p2pDir := filepath.Join(dir, "p2p")
	if err := os.Mkdir(p2pDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(plugins.BinaryPath(pluginDir, "libp2p"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plugins.BinaryPath(p2pDir, "libp2p"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{"libp2p": lockEntry(t, p2pDir, "libp2p", "p2p")}}
	if err := lock.Write(filepath.Join(p2pDir, "strata.lock")); err != nil {
		t.Fatal(err)
	}
	cfg := trustConfig(t, dir, "libp2p", p2pDir, "")
	p2p := cfg.Layers["p2p"]
	p2p.Config = map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}}
	cfg.Layers["p2p"] = p2p
	cfg.Plugins.Restart = config.Restart{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Limit: 2, Window: time.Minute}
	var log sdktest.SyncBuffer
	n, err := node.New(cfg, node.Options{Catalog: catalog(), Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &log})})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if err := os.Chmod(p2pDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(n.PluginPID("p2p"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.Failed():
	case <-time.After(30 * time.Second):
		t.Fatalf("the node kept going; restarts: %d", n.Restarts("p2p"))
	}
	if n.Restarts("p2p") != 0 {
		t.Fatal("a binary in a world-writable directory was restarted")
	}
	if !strings.Contains(log.String(), "writable by group or others") {
		t.Fatalf("the log does not say why the restart was refused:\n%s", log.String())
	}
}

// TestRunAsNobody runs a relay's plugins as the user nobody (when the test
// runs as root and the user exists): each plugin process has nobody's uid,
// owns its data folder and works in it.
func TestRunAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can start plugins as another user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	dir := t.TempDir()
	// The data dir's parents must let the plugins' user pass (see
	// plugins.run_as in docs/configuration.md).
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cfg := trustConfig(t, dir, "libp2p", "", "  run_as: nobody\n")
	p2p := cfg.Layers["p2p"]
	p2p.Config = map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}}
	cfg.Layers["p2p"] = p2p
	n := startNode(t, cfg).Node
	for _, layer := range []string{"p2p", "privacy"} {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.PluginPID(layer)))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^Uid:\s+` + u.Uid + `\s`).Match(status) {
			t.Fatalf("the %s plugin does not run as nobody (uid %s):\n%s", layer, u.Uid, status)
		}
		fi, err := os.Stat(filepath.Join(cfg.Node.DataDir, layer, cfg.Layers[layer].Plugin))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.FormatUint(uint64(uid), 10) != u.Uid {
			t.Fatalf("the %s plugin's data folder belongs to uid %d", layer, uid)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Node.DataDir, "host")); err != nil {
		t.Fatal(err)
	}
}

// TestUnverifiedFromEnvironmentWarns: STRATA_PLUGINS__ALLOW_UNVERIFIED
// lets a binary without a recorded checksum run, but not silently: every
// launch, the restart after a crash included, logs a warning that names
// the binary and the variable.
func TestUnverifiedFromEnvironmentWarns(t *testing.T) {
	dir := t.TempDir()
	p2pDir := filepath.Join(dir, "p2p")
	if err := os.Mkdir(p2pDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(plugins.BinaryPath(pluginDir, "libp2p"))
	if err != nil {
		t.Fatal(err)
	}
	bin := plugins.BinaryPath(p2pDir, "libp2p")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	loaded := trustConfig(t, dir, "libp2p", p2pDir, "")
	cfg, err := config.Load(config.Sources{File: loaded.Source, Environ: []string{"STRATA_PLUGINS__ALLOW_UNVERIFIED=true"}})
	if err != nil {
		t.Fatal(err)
	}
	p2p := cfg.Layers["p2p"]
	p2p.Config = map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}}
	cfg.Layers["p2p"] = p2p
	cfg.Plugins.Restart = config.Restart{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Window: time.Minute}
	var log sdktest.SyncBuffer
	n, err := node.New(cfg, node.Options{Catalog: catalog(), Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &log})})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	warnings := func() int {
		c := 0
		for _, line := range strings.Split(log.String(), "\n") {
			if strings.Contains(line, "UNVERIFIED") && strings.Contains(line, bin) && strings.Contains(line, "STRATA_PLUGINS__ALLOW_UNVERIFIED") {
				c++
			}
		}
		return c
	}
	if w := warnings(); w != 1 {
		t.Fatalf("%d warnings after the first launch, want 1:\n%s", w, log.String())
	}
	if err := syscall.Kill(n.PluginPID("p2p"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.Restarts("p2p") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the plugin was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w := warnings(); w != 2 {
		t.Fatalf("%d warnings after the restart, want 2:\n%s", w, log.String())
	}
}
