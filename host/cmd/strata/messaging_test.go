package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// secureHost is a `strata run` of a libp2p+none+doubleratchet client.
type secureHost struct {
	cmd  *exec.Cmd
	cfg  string
	card string
	errs *bytes.Buffer
}

// secureStack builds a plugin directory with the secure and sync layers
// besides the two the other tests use, and locks it.
func secureStack(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"strata-plugin-libp2p", "strata-plugin-none"} {
		b, err := os.ReadFile(filepath.Join(pluginDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, pkg := range map[string]string{
		"doubleratchet": "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet",
		"mvds":          "github.com/strata-msg/strata/plugins/mvds/cmd/strata-plugin-mvds",
	} {
		if _, err := sdktest.Build(dir, pkg, name); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := strata(t, "plugins", "lock", "--dir", dir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	return dir
}

func startSecureHost(t *testing.T, dir, plugins, name string) *secureHost {
	t.Helper()
	return runHost(t, writeClientConfig(t, dir, plugins, name, "", 0), name)
}

// writeClientConfig writes a client config on libp2p+none+doubleratchet,
// plus whatever extra says (a sync layer).
func writeClientConfig(t *testing.T, dir, plugins, name, extra string, port int) string {
	t.Helper()
	cfg := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(`node:
  name: %s
  data_dir: %s
plugins:
  dir: %s
  restart:
    initial: 50ms
    max: 1s
layers:
  p2p:
    plugin: libp2p
    config:
      listen: ["/ip4/127.0.0.1/tcp/%d"]
  privacy:
    plugin: none
  secure:
    plugin: doubleratchet
%s`, name, filepath.Join(dir, name), plugins, port, extra)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runHost runs `strata run -c cfg` (and args) until the test ends, and
// returns once the node has printed its card.
func runHost(t *testing.T, cfg, name string, args ...string) *secureHost {
	t.Helper()
	h := &secureHost{cmd: exec.Command(strataBin, append([]string{"run", "-c", cfg}, args...)...), cfg: cfg, errs: &bytes.Buffer{}}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stderr = h.errs
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cmd.Process.Kill(); _ = h.cmd.Wait() })
	cards := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "strata:card:") {
				cards <- sc.Text()
				break
			}
		}
		close(cards)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case c, ok := <-cards:
		if !ok {
			t.Fatalf("%s did not start:\n%s", name, h.errs)
		}
		h.card = c
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start in time:\n%s", name, h.errs)
	}
	return h
}

// TestSendAndListen drives two running nodes through the messaging API
// with the CLI: contacts imported into the running nodes, `strata send
// --to`, `strata listen` (stored messages, then resuming after a cursor),
// and a group made with `strata conversation create`.
func TestSendAndListen(t *testing.T) {
	dir := t.TempDir()
	plugins := secureStack(t)
	alice := startSecureHost(t, dir, plugins, "alice")
	bob := startSecureHost(t, dir, plugins, "bob")
	for _, p := range []struct{ at, card string }{{alice.cfg, bob.card}, {bob.cfg, alice.card}} {
		out, err := strata(t, "contact", "import", "-c", p.at, p.card)
		if err != nil || !strings.Contains(out, "into the running node") {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	// The first send may find the overlay not yet connected; the secure
	// layer then has nowhere to send. Retry until bob has something.
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for i := 0; ; i++ {
		if out, err := strata(t, "send", "-c", alice.cfg, "--to", "bob", fmt.Sprintf("hello bob %d", i)); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
		out, err := strata(t, "listen", "-c", bob.cfg, "--no-follow")
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, out)
		}
		if strings.Contains(out, "hello bob") {
			// Every attempt sent so far will arrive: wait for all of them,
			// so that the cursor taken below is past each.
			for strings.Count(out, "hello bob") < i+1 {
				if time.Now().After(deadline) {
					t.Fatalf("bob has %d of the %d messages alice sent:\n%s", strings.Count(out, "hello bob"), i+1, out)
				}
				time.Sleep(100 * time.Millisecond)
				if out, err = strata(t, "listen", "-c", bob.cfg, "--no-follow"); err != nil {
					t.Fatalf("listen: %v\n%s", err, out)
				}
			}
			got = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob received nothing:\nalice: %s\nbob: %s", alice.errs, bob.errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	first := strings.Split(strings.TrimSpace(got), "\n")[0]
	fields := strings.Split(first, "\t")
	if len(fields) != 4 || fields[2] != "alice" || !strings.HasPrefix(fields[1], "dm:") {
		t.Fatalf("listen line %q: want cursor, dm:... conversation, alice, text", first)
	}
	// Bob answers in the same 1:1 conversation (both derive its id).
	if out, err := strata(t, "send", "-c", bob.cfg, "--to", "alice", "hello alice"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	waitListen(t, alice.cfg, "hello alice", "--conversation", fields[1])

	// Resuming after the last cursor seen shows only what came after.
	lines := strings.Split(strings.TrimSpace(got), "\n")
	last := strings.Split(lines[len(lines)-1], "\t")[0]
	if out, err := strata(t, "send", "-c", alice.cfg, "--to", "bob", "after the cursor"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	out := waitListen(t, bob.cfg, "after the cursor", "--after", last)
	if strings.Contains(out, "hello bob") {
		t.Fatalf("listen --after %s repeated older messages:\n%s", last, out)
	}

	// A group: each member creates it with the others.
	if out, err := strata(t, "conversation", "create", "-c", alice.cfg, "friends", "--member", "bob"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if out, err := strata(t, "conversation", "create", "-c", bob.cfg, "friends", "--member", "alice"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if out, err := strata(t, "conversation", "list", "-c", bob.cfg); err != nil || !strings.Contains(out, "friends\talice, bob (this node)") {
		t.Fatalf("conversation list: %v\n%s", err, out)
	}
	if out, err := strata(t, "send", "-c", alice.cfg, "--conversation", "friends", "to the group"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	out = waitListen(t, bob.cfg, "to the group", "--conversation", "friends", "--json")
	if !strings.Contains(out, `"conversation":"friends"`) || !strings.Contains(out, `"author_name":"alice"`) {
		t.Fatalf("listen --json:\n%s", out)
	}
	// --lines: each line of standard input a message, sent in batches
	// through SendBatch; an id printed per message.
	cmd := exec.Command(strataBin, "send", "-c", alice.cfg, "--conversation", "friends", "--lines", "-")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader("line one\nline two\n\nline three\n")
	if out, err := cmd.Output(); err != nil || len(strings.Fields(string(out))) != 3 {
		t.Fatalf("send --lines: %v, want three ids:\n%s", err, out)
	}
	out = waitListen(t, bob.cfg, "line three", "--conversation", "friends")
	for _, l := range []string{"line one", "line two"} {
		if !strings.Contains(out, "\t"+l+"\n") {
			t.Fatalf("send --lines: %q did not arrive as a message of its own:\n%s", l, out)
		}
	}
	if out, err := strata(t, "send", "-c", alice.cfg, "--conversation", "friends", "--lines", "x"); err == nil || !strings.Contains(out, "standard input") {
		t.Fatalf("send --lines without -: %v\n%s", err, out)
	}
	// Errors name what is wrong.
	if out, err := strata(t, "send", "-c", alice.cfg, "--to", "carol", "x"); err == nil || !strings.Contains(out, `no contact "carol"`) {
		t.Fatalf("send to a stranger: %v\n%s", err, out)
	}
	if out, err := strata(t, "send", "-c", alice.cfg, "--conversation", "nope", "x"); err == nil || !strings.Contains(out, "unknown conversation") {
		t.Fatalf("send to an unknown conversation: %v\n%s", err, out)
	}
}

// waitListen runs `strata listen --no-follow` until its output contains
// want, and returns the output.
func waitListen(t *testing.T, cfg, want string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := strata(t, append([]string{"listen", "-c", cfg, "--no-follow"}, args...)...)
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, out)
		}
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never arrived:\n%s", want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fullExtra adds the sync layer, with test-sized timings.
const fullExtra = `  sync:
    plugin: mvds
    config:
      epoch: 50ms
      backoff_max: 8
`

// TestKillHostDuringTraffic runs two `strata run` hosts on the full stack
// (libp2p+none+doubleratchet+mvds) and, while alice sends a chain of
// messages with `strata send`, kills bob's host with SIGKILL (its plugins
// die with it) and starts it again, then does the same to alice's host.
// Every message whose send returned reaches bob's history exactly once,
// after its parent.
func TestKillHostDuringTraffic(t *testing.T) {
	dir := t.TempDir()
	plugins := secureStack(t)
	// Port 0: the libp2p layer keeps the port it got (sticky_ports), so the
	// cards the two exchanged stay valid across the kills.
	aliceCfg := writeClientConfig(t, dir, plugins, "alice", fullExtra, 0)
	bobCfg := writeClientConfig(t, dir, plugins, "bob", fullExtra, 0)
	alice := runHost(t, aliceCfg, "alice")
	bob := runHost(t, bobCfg, "bob")
	for _, p := range []struct{ at, card string }{{aliceCfg, bob.card}, {bobCfg, alice.card}} {
		if out, err := strata(t, "contact", "import", "-c", p.at, p.card); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	for _, p := range []struct{ at, other string }{{aliceCfg, "bob"}, {bobCfg, "alice"}} {
		if out, err := strata(t, "conversation", "create", "-c", p.at, "chain", "--member", p.other); err != nil {
			t.Fatalf("create: %v\n%s", err, out)
		}
	}
	var ids []string // hex, in send order; each names the previous as parent
	send := func(i int) {
		args := []string{"send", "-c", aliceCfg, "--conversation", "chain"}
		if len(ids) > 0 {
			args = append(args, "--parent", ids[len(ids)-1])
		}
		out, err := strata(t, append(args, fmt.Sprintf("chain message %d", i))...)
		if err != nil {
			return // alice's host is down: this one was never acknowledged
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	kill := func(h **secureHost, cfg, name string) {
		(*h).cmd.Process.Signal(syscall.SIGKILL)
		(*h).cmd.Wait()
		*h = runHost(t, cfg, name)
	}
	for i := range 10 {
		send(i)
	}
	kill(&bob, bobCfg, "bob")
	for i := 10; i < 20; i++ {
		send(i)
	}
	kill(&alice, aliceCfg, "alice")
	for i := 20; i < 30; i++ {
		send(i)
	}
	if len(ids) < 25 {
		t.Fatalf("only %d of 30 sends succeeded", len(ids))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := strata(t, "listen", "-c", bobCfg, "--no-follow", "--json", "--conversation", "chain")
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, out)
		}
		seen := map[string]int{}
		var order []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m struct {
				ID string `json:"id"`
			}
			if line == "" {
				continue
			}
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("listen --json line %q: %v", line, err)
			}
			seen[m.ID]++
			order = append(order, m.ID)
		}
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
			if seen[id] > 1 {
				t.Fatalf("message %s is %d times in bob's history", id, seen[id])
			}
		}
		if missing == 0 {
			// Each after its parent: the sent order is the chain.
			pos := map[string]int{}
			for k, id := range order {
				pos[id] = k
			}
			for k := 1; k < len(ids); k++ {
				if pos[ids[k]] < pos[ids[k-1]] {
					t.Fatalf("message %d came before its parent", k)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's history lacks %d of %d messages\nalice: %s\nbob: %s", missing, len(ids), alice.errs, bob.errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
