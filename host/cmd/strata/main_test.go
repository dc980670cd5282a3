package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

var (
	strataBin string
	pluginDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginDir = filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build strata: %v\n%s", err, out)
		os.Exit(1)
	}
	for name, pkg := range map[string]string{
		"libp2p": "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p",
		"none":   "github.com/strata-msg/strata/plugins/none/cmd/strata-plugin-none",
	} {
		if _, err := sdktest.Build(pluginDir, pkg, name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// strata runs the CLI and returns its combined output.
func strata(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeConfig(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(`node:
  name: %s
  data_dir: %s
  role: relay
plugins:
  dir: %s
layers:
  p2p:
    plugin: libp2p
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
`, name, filepath.Join(dir, name), pluginDir)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPluginsLockAndVerify locks the plugin directory, verifies it, then
// tampers with a binary: verify fails and names it, and run refuses it.
func TestPluginsLockAndVerify(t *testing.T) {
	out, err := strata(t, "plugins", "lock", "--dir", pluginDir)
	if err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	if out, err := strata(t, "plugins", "verify", "--dir", pluginDir); err != nil || strings.Count(out, " ok") != 2 {
		t.Fatalf("verify after lock: %v\n%s", err, out)
	}
	out, err = strata(t, "plugins", "list", "--dir", pluginDir)
	if err != nil || !strings.Contains(out, "libp2p") || !strings.Contains(out, "privacy") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	cfg := writeConfig(t, t.TempDir(), "n")
	if out, err := strata(t, "config", "check", "-c", cfg); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "n")); !os.IsNotExist(err) {
		t.Fatalf("config check touched the node's data dir: %v", err)
	}
	bad := writeConfig(t, t.TempDir(), "bad")
	if out, err := strata(t, "config", "check", "-c", bad, "--set", "layers.p2p.config.listen=/ip4/nonsense"); err == nil || !strings.Contains(out, "layers.p2p.config.listen") {
		t.Fatalf("config check of a bad listen address: %v\n%s", err, out)
	}

	// Tamper with a copy, so the other tests keep a good directory.
	dir := t.TempDir()
	for _, name := range []string{"strata-plugin-libp2p", "strata-plugin-none", "strata.lock"} {
		b, err := os.ReadFile(filepath.Join(pluginDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "strata-plugin-none" {
			b = append(b, 0)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err = strata(t, "plugins", "verify", "--dir", dir)
	if err == nil || !strings.Contains(out, "none") || !strings.Contains(out, "MISMATCH") {
		t.Fatalf("verify of a tampered binary: %v\n%s", err, out)
	}
	out, err = strata(t, "run", "-c", cfg, "--set", "plugins.dir="+dir)
	if err == nil || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "layers.privacy.plugin") {
		t.Fatalf("run with a tampered binary: %v\n%s", err, out)
	}
}

// runNode starts `strata run` and returns it once the node is up, with the
// pids of its plugin processes.
func runNode(t *testing.T) (*exec.Cmd, []int) {
	t.Helper()
	h := startHost(t)
	return h.cmd, h.kids
}

// host is a running `strata run` process.
type host struct {
	cmd    *exec.Cmd
	kids   []int         // plugin pids
	cfg    string        // config file
	stderr *bytes.Buffer // read only after cmd.Wait
}

// runNodeConfig is runNode that also returns the node's config file.
func runNodeConfig(t *testing.T) (*exec.Cmd, []int, string) {
	t.Helper()
	h := startHost(t)
	return h.cmd, h.kids, h.cfg
}

// startHost starts `strata run` in a process group of its own (so a test
// can signal the group) and returns once the node is up.
func startHost(t *testing.T) host {
	t.Helper()
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	cfg := writeConfig(t, t.TempDir(), "n")
	cmd := exec.Command(strataBin, "run", "-c", cfg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "strata:card:") && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("node did not start:\n%s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node did not start in time:\n%s", stderr.String())
	}
	kids := children(cmd.Process.Pid)
	if len(kids) != 2 {
		t.Fatalf("host has %d child processes, want 2 plugins", len(kids))
	}
	return host{cmd: cmd, kids: kids, cfg: cfg, stderr: &stderr}
}

// children lists the pids whose parent is pid, from /proc.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 {
			if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
				out = append(out, child)
			}
		}
	}
	return out
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func waitGone(t *testing.T, pids []int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Fatalf("plugin processes %v outlived their host by more than %v", left, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSIGTERMLeavesNoPlugin(t *testing.T) {
	cmd, kids := runNode(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("host exited with %v after SIGTERM, want a clean exit", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("host did not exit after SIGTERM")
	}
	waitGone(t, kids, 2*time.Second)
}

func TestKill9OfHostLeavesNoPlugin(t *testing.T) {
	cmd, kids := runNode(t)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, kids, 2*time.Second)
}

func TestVersion(t *testing.T) {
	out, err := strata(t, "version")
	if err != nil || !strings.Contains(out, "plugin API v1") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}

// TestContactExportImport moves a running node's card to another node's
// contacts through the CLI, and refuses a damaged card.
func TestContactExportImport(t *testing.T) {
	_, _, cfgA := runNodeConfig(t)
	card, err := strata(t, "contact", "export", "-c", cfgA)
	if err != nil || !strings.HasPrefix(card, "strata:card:") {
		t.Fatalf("export: %v\n%s", err, card)
	}
	cfgB := writeConfig(t, t.TempDir(), "b")
	if out, err := strata(t, "contact", "export", "-c", cfgB); err == nil || !strings.Contains(out, "no card yet") {
		t.Fatalf("export before the first start: %v\n%s", err, out)
	}
	card = strings.TrimSpace(card)
	out, err := strata(t, "contact", "import", "-c", cfgB, "--alias", "first", card)
	if err != nil || !strings.Contains(out, "imported n") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = strata(t, "contact", "list", "-c", cfgB)
	if err != nil || !strings.Contains(out, "first") || !strings.Contains(out, "p2p=libp2p") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	damaged := card[:len(card)-6] + "AAAAAA"
	if out, err := strata(t, "contact", "import", "-c", cfgB, damaged); err == nil {
		t.Fatalf("a damaged card was imported:\n%s", out)
	}
}

// TestGroupSIGTERMStopsInOrder signals the host's whole process group, as
// Ctrl-C or GNU timeout do: only the host receives it, and it stops its
// plugins in order, each cleanly.
func TestGroupSIGTERMStopsInOrder(t *testing.T) {
	h := startHost(t)
	if err := syscall.Kill(-h.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("host exited with %v", err)
	}
	waitGone(t, h.kids, 2*time.Second)
	log := h.stderr.String()
	if strings.Contains(log, "did not stop cleanly") || strings.Contains(log, "reason=SIGTERM") {
		t.Fatalf("a plugin received the group's signal instead of an ordered stop:\n%s", log)
	}
	if strings.Count(log, `reason="the host asked"`) != 2 {
		t.Fatalf("want both plugins stopped by the host:\n%s", log)
	}
}

// TestSameConfigTwice: `strata run` on the config of a running node fails
// at once, naming node.data_dir, and starts no plugin on the running
// node's state; the running node keeps its plugins.
func TestSameConfigTwice(t *testing.T) {
	h := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, "run", "-c", h.cfg)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second `strata run` did not stop by itself:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "node.data_dir") || !strings.Contains(string(out), "in use") {
		t.Fatalf("second run: %v\n%s\nwant a failure naming node.data_dir as in use", err, out)
	}
	if strings.Contains(string(out), "plugin") && strings.Contains(string(out), "started") {
		t.Fatalf("the second run started plugins:\n%s", out)
	}
	if kids := children(h.cmd.Process.Pid); len(kids) != len(h.kids) {
		t.Fatalf("the running node has %d plugins now, had %d", len(kids), len(h.kids))
	}
}

// TestPortInUseNamesTheKey: a p2p port that is in use stops `strata run`
// with the config key, what is wrong and the fix, carried across the
// plugin boundary as a structured error, not as gRPC's text.
func TestPortInUseNamesTheKey(t *testing.T) {
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	cfg := writeConfig(t, t.TempDir(), "n")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "/ip4/127.0.0.1/tcp/0", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), 1)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, strataBin, "run", "-c", cfg).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("run on a busy port: %v\n%s", err, out)
	}
	want := fmt.Sprintf("\"layers.p2p.config.listen\": /ip4/127.0.0.1/tcp/%d is in use; choose another port", port)
	if !strings.Contains(string(out), want) || strings.Contains(string(out), "rpc error") {
		t.Fatalf("run on a busy port said:\n%s\nwant %s and no rpc error", out, want)
	}
}
