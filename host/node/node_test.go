package node_test

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
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/direct"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/bsp"
	"github.com/strata-msg/strata/plugins/devp2p"
	"github.com/strata-msg/strata/plugins/doubleratchet"
	libp2pplugin "github.com/strata-msg/strata/plugins/libp2p"
	"github.com/strata-msg/strata/plugins/mvds"
	"github.com/strata-msg/strata/plugins/none"
	"github.com/strata-msg/strata/plugins/whisper"
)

// pluginDir holds the plugin binaries built by TestMain, with a lock file.
var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "node-test-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginDir = dir
	for name, pkg := range map[string]string{
		"libp2p":        "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p",
		"none":          "github.com/strata-msg/strata/plugins/none/cmd/strata-plugin-none",
		"echo":          "github.com/strata-msg/strata/core/sdk/internal/echolayer/cmd/strata-plugin-echo",
		"doubleratchet": "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet",
		"mvds":          "github.com/strata-msg/strata/plugins/mvds/cmd/strata-plugin-mvds",
		"bsp":           "github.com/strata-msg/strata/plugins/bsp/cmd/strata-plugin-bsp",
		"devp2p":        "github.com/strata-msg/strata/plugins/devp2p/cmd/strata-plugin-devp2p",
		"whisper":       "github.com/strata-msg/strata/plugins/whisper/cmd/strata-plugin-whisper",
	} {
		if _, err := sdktest.Build(dir, pkg, name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := writeLock(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeLock(dir string) error {
	names, err := plugins.Binaries(dir)
	if err != nil {
		return err
	}
	lock := &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{}}
	for _, name := range names {
		sum, err := plugins.Hash(plugins.BinaryPath(dir, name))
		if err != nil {
			return err
		}
		lock.Plugins[name] = plugins.LockEntry{File: plugins.BinaryPrefix + name, SHA256: sum}
	}
	return lock.Write(filepath.Join(dir, "strata.lock"))
}

func catalog() plugins.Catalog {
	return plugins.Catalog{}.
		Add(func() sdk.Layer { return libp2pplugin.New() }).
		Add(func() sdk.Layer { return none.New() }).
		Add(func() sdk.Layer { return doubleratchet.New() }).
		Add(func() sdk.Layer { return mvds.New() }).
		Add(func() sdk.Layer { return bsp.New() }).
		Add(func() sdk.Layer { return devp2p.New() }).
		Add(func() sdk.Layer { return whisper.New() })
}

const relayConfig = `
node:
  name: %s
  data_dir: %s
  role: relay
plugins:
  dir: %s
  restart:
    initial: 50ms
    max: 1s
layers:
  p2p:
    plugin: libp2p
    mode: %s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
    mode: %s
`

// loadConfig writes a relay config for name and loads it.
func loadConfig(t *testing.T, name, mode, dir, extra string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(relayConfig, name, filepath.Join(dir, name), pluginDir, mode, mode) + extra
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// inbox collects what a node delivers.
type inbox struct {
	mu   sync.Mutex
	msgs []node.Delivery
	cond *sync.Cond
}

func newInbox() *inbox {
	in := &inbox{}
	in.cond = sync.NewCond(&in.mu)
	return in
}

func (in *inbox) deliver(d node.Delivery) {
	in.mu.Lock()
	in.msgs = append(in.msgs, d)
	in.mu.Unlock()
	in.cond.Broadcast()
}

// waitFor waits until at least n messages arrived or the timeout passed.
func (in *inbox) waitFor(n int, timeout time.Duration) []node.Delivery {
	deadline := time.Now().Add(timeout)
	wake := time.AfterFunc(timeout, in.cond.Broadcast)
	defer wake.Stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(in.msgs) < n && time.Now().Before(deadline) {
		in.cond.Wait()
	}
	return append([]node.Delivery(nil), in.msgs...)
}

type testNode struct {
	*node.Node
	inbox *inbox
}

func startNode(t *testing.T, cfg *config.Config) testNode {
	t.Helper()
	in := newInbox()
	n, err := node.New(cfg, node.Options{
		Catalog: catalog(),
		Logger:  hclog.New(&hclog.LoggerOptions{Name: cfg.Node.Name, Level: hclog.Warn, Output: os.Stderr}),
		Deliver: in.deliver,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return testNode{n, in}
}

// pair starts two relay nodes that know each other and are connected.
func pair(t *testing.T, mode string) (a, b testNode) {
	t.Helper()
	dir := t.TempDir()
	a = startNode(t, loadConfig(t, "a", mode, dir, ""))
	b = startNode(t, loadConfig(t, "b", mode, dir, ""))
	ctx := context.Background()
	if _, err := a.AddContact(ctx, b.CardText()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddContact(ctx, a.CardText()); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a.Node, 1)
	waitPeers(t, b.Node, 1)
	converse(t, testConv, a, b)
	return a, b
}

// testConv is the conversation of the two nodes of pair.
var testConv = []byte("conv")

// converse creates the conversation id of the nodes on each of them.
func converse(t testing.TB, id []byte, nodes ...testNode) {
	t.Helper()
	var members []ed25519.PublicKey
	for _, n := range nodes {
		members = append(members, n.Identity())
	}
	for _, n := range nodes {
		if err := n.SetConversation(context.Background(), id, members); err != nil {
			t.Fatal(err)
		}
	}
}

func waitPeers(t testing.TB, n *node.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := n.Control("p2p"); err == nil {
			resp, err := p2pv1.NewControlClient(conn.Control()).Peers(context.Background(), &p2pv1.PeersRequest{})
			if err == nil && len(resp.GetPeers()) >= want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s has fewer than %d peers", n.Name(), want)
}

func msg(from string, i int) []byte {
	return []byte(fmt.Sprintf("%s-%05d-%s", from, i, strings.Repeat("x", i%700)))
}

// TestExchangeBothWays is the framework's end-to-end check: two hosts on
// 127.0.0.1 exchange 1,000 frames in each direction at the same time; all
// arrive intact and in order, and every host's boundary counters agree with
// what was sent. It runs the same in both plugin modes.
func TestExchangeBothWays(t *testing.T) {
	for _, mode := range []string{config.ModeProcess, config.ModeInProc} {
		t.Run(mode, func(t *testing.T) {
			a, b := pair(t, mode)
			const n = 1000
			ctx := context.Background()
			var wg sync.WaitGroup
			var bytesA, bytesB uint64
			for _, s := range []struct {
				from, to testNode
				name     string
				bytes    *uint64
			}{{a, b, "a", &bytesA}, {b, a, "b", &bytesB}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n {
						p := msg(s.name, i)
						*s.bytes += uint64(len(p))
						if _, err := s.from.Send(ctx, testConv, p, node.SendOptions{}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for _, r := range []struct {
				at   testNode
				from testNode
				name string
			}{{b, a, "a"}, {a, b, "b"}} {
				got := r.at.inbox.waitFor(n, 30*time.Second)
				if len(got) != n {
					t.Fatalf("%s received %d of %d frames", r.at.Name(), len(got), n)
				}
				for i, d := range got {
					if !bytes.Equal(d.Payload, msg(r.name, i)) {
						t.Fatalf("%s: frame %d is %q, want %q", r.at.Name(), i, d.Payload[:min(20, len(d.Payload))], msg(r.name, i)[:20])
					}
					if d.TraceID == 0 {
						t.Fatalf("%s: frame %d arrived without a trace id", r.at.Name(), i)
					}
					if !bytes.Equal(d.From, r.from.Identity()) || d.FromName != r.from.Name() || string(d.Conversation) != "conv" {
						t.Fatalf("%s: frame %d from %x (%q) in %q", r.at.Name(), i, d.From, d.FromName, d.Conversation)
					}
				}
			}
			// What one host sent down is what the other took up, byte for
			// byte.
			if a.Boundaries()[1].BytesDown != b.Boundaries()[1].BytesUp || b.Boundaries()[1].BytesDown != a.Boundaries()[1].BytesUp {
				t.Errorf("app boundary bytes: a sent %d, b took %d; b sent %d, a took %d", a.Boundaries()[1].BytesDown, b.Boundaries()[1].BytesUp, b.Boundaries()[1].BytesDown, a.Boundaries()[1].BytesUp)
			}
			// Counters: every frame crossed each boundary of both hosts once,
			// downward at its sender and upward at its receiver.
			for _, h := range []struct {
				n         testNode
				sentBytes uint64
				recvBytes uint64
			}{{a, bytesA, bytesB}, {b, bytesB, bytesA}} {
				bs := h.n.Boundaries()
				if len(bs) != 2 || bs[0].Name != "p2p|privacy" || bs[1].Name != "privacy|app" {
					t.Fatalf("%s boundaries: %+v", h.n.Name(), bs)
				}
				for _, bd := range bs {
					if bd.FramesDown != n || bd.FramesUp != n || len(bd.Dropped) != 0 || bd.UnknownSender != 0 {
						t.Errorf("%s %s: down %d up %d dropped %v unknown %d; want %d each way and no drops", h.n.Name(), bd.Name, bd.FramesDown, bd.FramesUp, bd.Dropped, bd.UnknownSender, n)
					}
				}
				// Each payload crosses in its signed envelope: the signature
				// and more, at most node.EnvelopeOverhead.
				if d := bs[1].BytesDown - h.sentBytes; bs[1].BytesDown < h.sentBytes || d <= n*ed25519.SignatureSize || d > n*node.EnvelopeOverhead {
					t.Errorf("%s app boundary bytes down %d for %d bytes of payloads", h.n.Name(), bs[1].BytesDown, h.sentBytes)
				}
				if d := bs[1].BytesUp - h.recvBytes; bs[1].BytesUp < h.recvBytes || d <= n*ed25519.SignatureSize || d > n*node.EnvelopeOverhead {
					t.Errorf("%s app boundary bytes up %d for %d bytes of payloads", h.n.Name(), bs[1].BytesUp, h.recvBytes)
				}
				// Below the privacy layer each payload carries the none envelope.
				if bs[0].BytesDown <= h.sentBytes || bs[0].BytesUp <= h.recvBytes {
					t.Errorf("%s p2p boundary bytes down %d up %d, want more than the payloads", h.n.Name(), bs[0].BytesDown, bs[0].BytesUp)
				}
				c, err := h.n.LayerCounters(ctx, "p2p")
				if err != nil {
					t.Fatal(err)
				}
				if c["frames_sent"] != n || c["frames_received"] != n {
					t.Errorf("%s libp2p counted sent %d received %d, want %d", h.n.Name(), c["frames_sent"], c["frames_received"], n)
				}
			}
		})
	}
}

// TestPluginKilledAndRestarted kills the libp2p plugin with SIGKILL during
// traffic: the host notices, restarts it, and traffic resumes.
func TestPluginKilledAndRestarted(t *testing.T) {
	a, b := pair(t, config.ModeProcess)
	ctx := context.Background()
	stop := make(chan struct{})
	var sent sync.WaitGroup
	sent.Add(1)
	go func() {
		defer sent.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = a.Send(ctx, testConv, msg("a", i), node.SendOptions{})
			time.Sleep(time.Millisecond)
		}
	}()
	b.inbox.waitFor(50, 10*time.Second)
	pid := a.PluginPID("p2p")
	if pid <= 0 {
		t.Fatal("no plugin pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for a.Restarts("p2p") == 0 || !a.Running() {
		if time.Now().After(deadline) {
			t.Fatal("the killed plugin was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if newPid := a.PluginPID("p2p"); newPid == pid || newPid <= 0 {
		t.Fatalf("plugin pid after restart %d (was %d)", newPid, pid)
	}
	waitPeers(t, a.Node, 1)
	close(stop)
	sent.Wait()

	// Traffic resumes: a fresh run of numbered messages all arrives.
	before := len(b.inbox.waitFor(0, 0))
	for i := range 100 {
		if _, err := a.Send(ctx, testConv, []byte(fmt.Sprintf("after-%d", i)), node.SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Old messages still in flight may arrive among them: count only ours.
	after := 0
	for deadline := time.Now().Add(20 * time.Second); after < 100 && time.Now().Before(deadline); {
		got := b.inbox.waitFor(before+100, 100*time.Millisecond)
		after = 0
		for _, d := range got[before:] {
			if bytes.HasPrefix(d.Payload, []byte("after-")) {
				after++
			}
		}
	}
	if after != 100 {
		t.Fatalf("after the restart %d of 100 messages arrived", after)
	}
	if bd := a.Boundaries()[0]; bd.Dropped["layer_down"] == 0 {
		t.Logf("no frames were dropped while the layer was down (the kill fell between sends)")
	}
}

// TestRefusesTamperedPlugin changes one byte of a locked binary: the node
// refuses to start it. A binary missing from the lock is refused unless
// unverified binaries are allowed.
func TestRefusesTamperedPlugin(t *testing.T) {
	dir := t.TempDir()
	plugdir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"libp2p", "none"} {
		b, err := os.ReadFile(plugins.BinaryPath(pluginDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(plugins.BinaryPath(plugdir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFor := func() *config.Config {
		cfg := loadConfig(t, "t", config.ModeProcess, dir, "")
		cfg.Plugins.Dir, cfg.Plugins.Dirs = plugdir, []string{plugdir}
		return cfg
	}
	// No lock at all.
	if _, err := node.New(cfgFor(), node.Options{Catalog: catalog()}); !errors.Is(err, plugins.ErrNoChecksum) {
		t.Fatalf("unlocked binary: got %v, want ErrNoChecksum", err)
	}
	if _, err := node.New(cfgFor(), node.Options{Catalog: catalog(), AllowUnverified: true}); err != nil {
		t.Fatalf("unlocked binary with AllowUnverified: %v", err)
	}
	if err := writeLock(plugdir); err != nil {
		t.Fatal(err)
	}
	if _, err := node.New(cfgFor(), node.Options{Catalog: catalog()}); err != nil {
		t.Fatalf("locked binaries: %v", err)
	}
	path := plugins.BinaryPath(plugdir, "none")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 1
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, allow := range []bool{false, true} {
		_, err := node.New(cfgFor(), node.Options{Catalog: catalog(), AllowUnverified: allow})
		if !errors.Is(err, plugins.ErrChecksum) || !strings.Contains(err.Error(), "layers.privacy.plugin") {
			t.Fatalf("tampered binary (allow unverified %v): got %v, want ErrChecksum naming layers.privacy.plugin", allow, err)
		}
	}
}

// needsSphinx is a privacy layer that needs a capability no overlay here
// provides, to test the composition check.
type needsSphinx struct{ *direct.Layer }

func (l needsSphinx) Describe() *commonv1.PluginInfo {
	info := l.Layer.Describe()
	info.Name = "needs-sphinx"
	info.Requires = []string{"sphinx-links|mix-transport"}
	return info
}

// TestConfigMistakes checks that each kind of mistake fails at start with a
// message naming the key.
func TestConfigMistakes(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(text string) string
		wantKey string
	}{
		{"unknown plugin", func(s string) string { return strings.Replace(s, "plugin: none", "plugin: nonee", 1) }, "layers.privacy.plugin"},
		{"missing layer", func(s string) string { return s[:strings.Index(s, "  privacy:")] }, "layers.privacy"},
		{"client without secure layer", func(s string) string { return strings.Replace(s, "role: relay", "role: client", 1) }, "layers.secure"},
		{"wrong type", func(s string) string { return strings.Replace(s, "role: relay", "role: 7", 1) }, "node.role"},
		{"unknown top-level key", func(s string) string { return s + "metrics:\n  lisen: 127.0.0.1:9\n" }, "metrics.lisen"},
		{"bad mode", func(s string) string { return strings.Replace(s, "mode: process", "mode: thread", 1) }, "layers.p2p.mode"},
		{"plugin config: unknown key", func(s string) string {
			return strings.Replace(s, "listen: [", "lissten: [", 1)
		}, "layers.p2p.config.lissten"},
		{"plugin config: wrong type", func(s string) string {
			return strings.Replace(s, "listen: [\"/ip4/127.0.0.1/tcp/0\"]", "listen: [\"/ip4/127.0.0.1/tcp/0\"]\n      conn_low: many", 1)
		}, "layers.p2p.config.conn_low"},
		{"plugin config: bad value", func(s string) string {
			return strings.Replace(s, "/ip4/127.0.0.1/tcp/0", "not-a-multiaddr", 1)
		}, "layers.p2p.config.listen"},
		{"privacy layer the overlay cannot carry", func(s string) string {
			return strings.Replace(s, "plugin: none\n    mode: process", "plugin: needs-sphinx\n    mode: inproc", 1)
		}, "layers.privacy.plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			text := tt.edit(fmt.Sprintf(relayConfig, "m", filepath.Join(dir, "m"), pluginDir, config.ModeProcess, config.ModeProcess))
			path := filepath.Join(dir, "m.yaml")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			cat := catalog().Add(func() sdk.Layer { return needsSphinx{none.New()} })
			err := func() error {
				cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
				if err != nil {
					return err
				}
				n, err := node.New(cfg, node.Options{Catalog: cat})
				if err != nil {
					return err
				}
				// `strata config check` must catch every mistake, without
				// starting the node.
				return n.Check(context.Background())
			}()
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a config error for %s", err, tt.wantKey)
			}
			if ce.Key != tt.wantKey {
				t.Fatalf("error names %q, want %q (%v)", ce.Key, tt.wantKey, err)
			}
			if ce.Problem == "" {
				t.Fatalf("error has no problem text: %v", err)
			}
		})
	}
}

// TestFaultsAtBoundary injects loss and duplication below a's privacy
// layer, downward only: what b receives is exactly what a's injector let
// through, each message once, and the boundary's counters say so.
func TestFaultsAtBoundary(t *testing.T) {
	dir := t.TempDir()
	faults := `faults:
  seed: 7
  p2p:
    drop: 0.5
    duplicate: 0.2
    direction: down
`
	a := startNode(t, loadConfig(t, "a", config.ModeInProc, dir, faults))
	b := startNode(t, loadConfig(t, "b", config.ModeInProc, dir, ""))
	ctx := context.Background()
	if _, err := a.AddContact(ctx, b.CardText()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddContact(ctx, a.CardText()); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a.Node, 1)
	converse(t, testConv, a, b)
	const n = 400
	for i := range n {
		if _, err := a.Send(ctx, testConv, msg("a", i), node.SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every frame has met the injector.
	var bd node.BoundaryStats
	for deadline := time.Now().Add(20 * time.Second); ; {
		bd = a.Boundaries()[0]
		if bd.Name != "p2p|privacy" || bd.Faults == nil {
			t.Fatalf("boundary %+v has no fault counters", bd)
		}
		if int(bd.FramesDown)+int(bd.Faults["dropped"])-int(bd.Faults["duplicated"]) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := n - int(bd.Faults["dropped"]) + int(bd.Faults["duplicated"])
	if bd.Faults["dropped"] < n/3 || bd.Faults["dropped"] > 2*n/3 || bd.Faults["duplicated"] == 0 {
		t.Fatalf("faults %v for %d frames at drop 0.5, duplicate 0.2", bd.Faults, n)
	}
	if int(bd.FramesDown) != want {
		t.Fatalf("%d frames went down past the injector, want %d", bd.FramesDown, want)
	}
	// Every copy reaches b's application boundary; the history takes each
	// message once (a message without a sync layer is named by its signed
	// envelope), so a copy is not delivered again.
	for deadline := time.Now().Add(20 * time.Second); b.Boundaries()[1].FramesUp < uint64(want); {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames reached b's application boundary, want %d", b.Boundaries()[1].FramesUp, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	distinct := n - int(bd.Faults["dropped"])
	if got := b.inbox.waitFor(distinct, 20*time.Second); len(got) != distinct {
		t.Fatalf("b received %d, want %d", len(got), distinct)
	}
	if got := b.inbox.waitFor(distinct+1, 200*time.Millisecond); len(got) != distinct {
		t.Fatalf("b received %d, want %d: a duplicate was delivered", len(got), distinct)
	}
	// Nothing was injected on the way up, nor at b.
	if a.Boundaries()[1].Faults != nil || b.Boundaries()[0].Faults != nil {
		t.Fatal("fault counters on a boundary without faults")
	}
}

// TestDataDirLocked: a second node on a running node's data directory
// fails at start, naming the key, before it starts any plugin; once the
// first node is closed, the directory is free again.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "a", config.ModeInProc, dir, "")
	first, err := node.New(cfg, node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, err := node.New(cfg, node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "node.data_dir") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second node on the same data_dir: %v, want an error naming node.data_dir and the holder's pid", err)
	}
	if pid := second.PluginPID("p2p"); pid != 0 || second.Running() {
		t.Fatalf("the refused node runs layers (p2p pid %d)", pid)
	}
	first.Close(context.Background())
	third, err := node.New(cfg, node.Options{Catalog: catalog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Start(context.Background()); err != nil {
		t.Fatalf("after the first node closed: %v", err)
	}
	third.Close(context.Background())
}

// TestSendRefusesCardOfAnotherStack: a contact whose card was made on a
// stack with another privacy plugin cannot be reached here; a send to a
// conversation with it fails and says what to re-import, instead of being
// taken and delivered to nobody.
func TestSendRefusesCardOfAnotherStack(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, loadConfig(t, "a", config.ModeInProc, dir, ""))
	id, err := identity.Load(filepath.Join(dir, "bob-host"))
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	card := &contacts.Card{IdentityKey: id.Public(), Name: "bob", Issued: time.Now(), Sections: map[commonv1.LayerKind]contacts.Section{
		commonv1.LayerKind_LAYER_KIND_P2P:     {Plugin: "libp2p", Data: []byte("not dialled in this test")},
		commonv1.LayerKind_LAYER_KIND_PRIVACY: {Plugin: "whisper", Data: []byte("a whisper address")},
	}}
	signed, err := card.Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.AddContact(ctx, contacts.EncodeText(signed)); err != nil {
		t.Fatal(err)
	}
	if err := a.SetConversation(ctx, testConv, []ed25519.PublicKey{id.Public()}); err != nil {
		t.Fatal(err)
	}
	_, err = a.Send(ctx, testConv, []byte("hello"), node.SendOptions{})
	if !errors.Is(err, node.ErrStaleCard) || !strings.Contains(err.Error(), `"whisper"`) || !strings.Contains(err.Error(), "contact import") {
		t.Fatalf("send to a contact with a whisper card on a none stack: %v, want ErrStaleCard naming the card's plugin and what to re-import", err)
	}
	if b := a.Boundaries(); b[len(b)-1].FramesDown != 0 {
		t.Fatalf("the refused message crossed the top boundary: %+v", b[len(b)-1])
	}
}

// TestPluginStateSeparate: each plugin keeps its state in its own folder,
// <data_dir>/<layer>/<plugin>/, and the state of the layout before that
// (files in <data_dir>/<layer>/) moves into the plugin's folder once.
func TestPluginStateSeparate(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "a", config.ModeInProc, dir, "")
	// The old layout: libp2p's key directly in <data_dir>/p2p/.
	old := filepath.Join(cfg.Node.DataDir, "p2p")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, cfg)
	// With none, the privacy address is the overlay peer id.
	first := a.Card().Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]
	a.Close(context.Background())
	entries, err := os.ReadDir(filepath.Join(old, "libp2p"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("libp2p's folder %s: %v, %d entries", filepath.Join(old, "libp2p"), err, len(entries))
	}
	// Move libp2p's state back to the old layout: the next start moves it
	// into libp2p's folder again, and the node keeps its overlay identity.
	for _, e := range entries {
		if err := os.Rename(filepath.Join(old, "libp2p", e.Name()), filepath.Join(old, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(old, "libp2p")); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, loadConfig(t, "a", config.ModeInProc, dir, ""))
	again := b.Card().Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]
	if len(first.Data) == 0 || !bytes.Equal(first.Data, again.Data) {
		t.Fatal("the overlay identity changed across the move to the plugin's folder")
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(old, e.Name())); !os.IsNotExist(err) {
			t.Fatalf("%s is still in the old layout (%v)", e.Name(), err)
		}
	}
}
