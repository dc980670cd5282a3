package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTraceFrames runs a node with `strata run --trace-frames FILE`,
// sends a message from it and receives one, and reads the file: a sent
// message crosses every boundary of the stack down, in order, under one
// trace id; the message received is there as delivered; no payload is.
func TestTraceFrames(t *testing.T) {
	dir := t.TempDir()
	plugins := secureStack(t)
	trace := filepath.Join(dir, "alice.frames")
	alice := runHost(t, writeClientConfig(t, dir, plugins, "alice", "", 0), "alice", "--trace-frames", trace)
	bob := startSecureHost(t, dir, plugins, "bob")
	for _, p := range []struct{ at, card string }{{alice.cfg, bob.card}, {bob.cfg, alice.card}} {
		if out, err := strata(t, "contact", "import", "-c", p.at, p.card); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if out, err := strata(t, "send", "-c", alice.cfg, "--to", "bob", fmt.Sprintf("secret words %d", i)); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
		out, err := strata(t, "listen", "-c", bob.cfg, "--no-follow")
		if err != nil {
			t.Fatalf("listen: %v\n%s", err, out)
		}
		if strings.Contains(out, "secret words") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob received nothing:\n%s", alice.errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := strata(t, "send", "-c", bob.cfg, "--to", "alice", "secret reply"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	waitListen(t, alice.cfg, "secret reply")
	if err := alice.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := alice.cmd.Wait(); err != nil {
		t.Fatalf("alice did not stop cleanly: %v\n%s", err, alice.errs)
	}

	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(trace); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the frame log's mode: %v %v", fi.Mode(), err)
	}
	text := string(raw)
	if strings.Contains(text, "secret") {
		t.Fatal("the frame log holds a payload")
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if lines[0] != "unix_ns\tboundary\tdirection\ttrace\tmessage_id\tbytes" {
		t.Fatalf("header %q", lines[0])
	}
	// when[trace][boundary] is the first time a DOWN frame of that trace
	// crossed that boundary.
	when := map[string]map[string]int64{}
	delivered := 0
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			t.Fatalf("line %q: %d fields", l, len(f))
		}
		at, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch f[2] {
		case "down":
			if when[f[3]] == nil {
				when[f[3]] = map[string]int64{}
			}
			if _, ok := when[f[3]][f[1]]; !ok {
				when[f[3]][f[1]] = at
			}
		case "delivered":
			if f[1] != "app" || f[4] == "" {
				t.Fatalf("delivery line %q", l)
			}
			delivered++
		}
	}
	if delivered == 0 {
		t.Fatal("no delivery in the frame log")
	}
	path := []string{"secure|app", "privacy|secure", "p2p|privacy"}
	traced := 0
	for _, b := range when {
		ok := true
		for i, name := range path {
			if _, has := b[name]; !has || (i > 0 && b[name] < b[path[i-1]]) {
				ok = false
			}
		}
		if ok {
			traced++
		}
	}
	if traced == 0 {
		t.Fatalf("no message crossed %v down under one trace id, in order:\n%s", path, text)
	}
}
