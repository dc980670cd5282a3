package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// secureStack builds a plugin directory with the secure layer besides the
// two the other tests use, and locks it.
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
	if _, err := sdktest.Build(dir, "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet", "doubleratchet"); err != nil {
		t.Fatal(err)
	}
	if out, err := strata(t, "plugins", "lock", "--dir", dir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	return dir
}

func startSecureHost(t *testing.T, dir, plugins, name string) *secureHost {
	t.Helper()
	cfg := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(`node:
  name: %s
  data_dir: %s
plugins:
  dir: %s
layers:
  p2p:
    plugin: libp2p
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
  secure:
    plugin: doubleratchet
`, name, filepath.Join(dir, name), plugins)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &secureHost{cmd: exec.Command(strataBin, "run", "-c", cfg), cfg: cfg, errs: &bytes.Buffer{}}
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
