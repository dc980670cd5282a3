package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
	"golang.org/x/sys/unix"
)

// namedHost is a `strata run` whose first output line was read: the
// fingerprint it printed and its card.
type namedHost struct {
	cmd         *exec.Cmd
	cfg         string
	fingerprint string
	card        string
}

var runningLine = regexp.MustCompile(`^node (\S+) \(([0-9a-f ]+)\) running; contact card:$`)

// startNamed starts `strata run` on a relay config named name and returns
// once it has printed its fingerprint and card.
func startNamed(t *testing.T, name string) *namedHost {
	t.Helper()
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	h := &namedHost{cfg: writeConfig(t, t.TempDir(), name)}
	h.cmd = exec.Command(strataBin, "run", "-c", h.cfg)
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	h.cmd.Stderr = &stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cmd.Process.Kill(); _ = h.cmd.Wait() })
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(60 * time.Second)
	for h.card == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("node %s did not start:\n%s", name, stderr.String())
			}
			if m := runningLine.FindStringSubmatch(line); m != nil {
				h.fingerprint = m[2]
			} else if strings.HasPrefix(line, "strata:card:") {
				h.card = line
			}
		case <-deadline:
			t.Fatalf("node %s did not start in time", name)
		}
	}
	if h.fingerprint == "" {
		t.Fatalf("node %s printed its card without a fingerprint line", name)
	}
	return h
}

// TestContactImportSaysWhereAndFingerprints: `contact import` says whether
// the card went into the running node or into the store of a node that is
// not running, and `contact list` shows each contact by the fingerprint
// its own `strata run` printed.
func TestContactImportSaysWhereAndFingerprints(t *testing.T) {
	a := startNamed(t, "a")
	c := startNamed(t, "c")

	cfgB := writeConfig(t, t.TempDir(), "b")
	out, err := strata(t, "contact", "import", "-c", cfgB, a.card)
	if err != nil || !strings.Contains(out, "imported a ("+a.fingerprint+")") || !strings.Contains(out, "not running") {
		t.Fatalf("import into a stopped node: %v\n%s\nwant the fingerprint and that b is not running", err, out)
	}
	out, err = strata(t, "contact", "list", "-c", cfgB)
	if err != nil || !strings.Contains(out, "FINGERPRINT") || !strings.Contains(out, a.fingerprint) {
		t.Fatalf("contact list: %v\n%s\nwant a's fingerprint %q as its run printed it", err, out, a.fingerprint)
	}

	out, err = strata(t, "contact", "import", "-c", a.cfg, "--alias", "cee", c.card)
	if err != nil || !strings.Contains(out, "into the running node a") || !strings.Contains(out, c.fingerprint) {
		t.Fatalf("import into a running node: %v\n%s", err, out)
	}
	out, err = strata(t, "contact", "list", "-c", a.cfg)
	if err != nil || !strings.Contains(out, "cee") || !strings.Contains(out, c.fingerprint) {
		t.Fatalf("contact list of the running node: %v\n%s", err, out)
	}
}

// TestListenEndsWhenTheNodeStops: `strata listen` says "node stopped"
// and exits 0 when its node stops.
func TestListenEndsWhenTheNodeStops(t *testing.T) {
	h := startNamed(t, "l")
	// listen follows the node's own messages too; one sent to a public
	// chat and printed shows it subscribed. Stopping the node before that
	// would test a listen that never reached it.
	if out, err := strata(t, "conversation", "join", "-c", h.cfg, "lobby"); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	listen := exec.Command(strataBin, "listen", "-c", h.cfg, "--outgoing")
	out := &sdktest.SyncBuffer{}
	listen.Stdout, listen.Stderr = out, out
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listen.Process.Kill() })
	if o, err := strata(t, "send", "-c", h.cfg, "--conversation", "public:lobby", "are you there"); err != nil {
		t.Fatalf("send: %v\n%s", err, o)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "are you there"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("listen did not print the node's message:\n%s", out.String())
		}
	}
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- listen.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "node stopped") || strings.Contains(out.String(), "rpc error") {
			t.Fatalf("listen after its node stopped: %v\n%s\nwant \"node stopped\" and exit 0", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("listen did not end after its node stopped:\n%s", out.String())
	}
}

// openPTY opens a pseudo-terminal and returns its master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	return m, s
}

// screen renders terminal output as the lines a terminal would show:
// a carriage return moves to the line's start, later text overwrites,
// ESC[2K erases the line.
func screen(raw string) []string {
	var lines []string
	var cur []rune
	col := 0
	rs := []rune(raw)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\r':
			col = 0
		case r == '\n':
			lines = append(lines, strings.TrimRight(string(cur), " "))
			cur, col = nil, 0
		case r == 0x1b && i+1 < len(rs) && rs[i+1] == '[':
			j := i + 2
			for j < len(rs) && (rs[j] < '@' || rs[j] > '~') {
				j++
			}
			if j < len(rs) && rs[j] == 'K' {
				cur = nil
			}
			i = j
		default:
			for len(cur) <= col {
				cur = append(cur, ' ')
			}
			cur[col] = r
			col++
		}
	}
	if len(cur) > 0 {
		lines = append(lines, strings.TrimRight(string(cur), " "))
	}
	return lines
}

const tinyScenario = `name: tiny
seed: 1
nodes: 2
duration: 3s
settle: 30s
groups:
  - {name: pair, size: 2}
traffic:
  rate: 1
`

// TestCompareOnATerminal runs `strata compare` with its output on a
// terminal: the progress bar shows while it runs and is gone before the
// table; the report goes to the default directory, which is in the
// working directory and ignored by git.
func TestCompareOnATerminal(t *testing.T) {
	work, stack, sc, nets := compareFiles(t, tinyScenario)

	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(strataBin, "compare", stack, "--scenario", sc, "--dir", nets)
	cmd.Dir = work
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TERM=xterm"}
	cmd.Stdout, cmd.Stderr = slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var raw bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&raw, master); close(copied) }() // ends with EIO once the command exits
	werr := cmd.Wait()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal output did not end")
	}
	if werr != nil {
		t.Fatalf("compare: %v\n%s", werr, raw.String())
	}
	if !strings.Contains(raw.String(), "run 1/1") {
		t.Fatalf("no progress bar on the terminal:\n%q", raw.String())
	}
	lines := screen(raw.String())
	for _, line := range lines {
		if strings.Contains(line, "run 1/1") {
			t.Fatalf("the progress bar is still on the screen: %q\nscreen:\n%s", line, strings.Join(lines, "\n"))
		}
	}
	if !slicesHasPrefix(lines, "offered send rate (msg/s)") || !slicesHasPrefix(lines, "achieved send rate (msg/s)") {
		t.Fatalf("the table has no send rates:\n%s", strings.Join(lines, "\n"))
	}
	if !slicesHasPrefix(lines, "scenario: ") {
		t.Fatalf("the table's first line does not start a line of the screen:\n%s", strings.Join(lines, "\n"))
	}

	outs, _ := filepath.Glob(filepath.Join(work, "strata-compare-tiny-*", "report.json"))
	if len(outs) != 1 {
		t.Fatalf("want one report in ./strata-compare-tiny-<time>/, found %v", outs)
	}
	rel, _ := filepath.Rel(work, outs[0])
	repo, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	if out, err := exec.Command("git", "-C", repo, "check-ignore", "--no-index", "-q", rel).CombinedOutput(); err != nil {
		t.Fatalf("git does not ignore compare's default output %s in the repository: %v\n%s", rel, err, out)
	}
}

// compareFiles writes, in a new working directory, the shipped
// libp2p-none-dr-mvds stack on this test's plugins and the scenario text,
// and makes a short directory for the testnets.
func compareFiles(t *testing.T, scenario string) (work, stack, sc, nets string) {
	t.Helper()
	plugins := secureStack(t)
	work = t.TempDir()
	stackText, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "libp2p-none-dr-mvds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stack = filepath.Join(work, "libp2p-none-dr-mvds.yaml")
	text := strings.Replace(string(stackText), "dir: ../bin/plugins", "dir: "+plugins, 1)
	if err := os.WriteFile(stack, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sc = filepath.Join(work, "scenario.yaml")
	if err := os.WriteFile(sc, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	if nets, err = os.MkdirTemp("", "sc-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(nets) })
	return work, stack, sc, nets
}

// slicesHasPrefix reports whether a line of lines starts with prefix.
func slicesHasPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
