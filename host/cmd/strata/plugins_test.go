package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// markerPlugin builds, as dir/strata-plugin-NAME, a program that creates
// the file marker when it runs: a stand-in for a binary nobody vouched for.
func markerPlugin(t *testing.T, dir, name, marker string) string {
	t.Helper()
	src := t.TempDir()
	prog := fmt.Sprintf("package main\n\nimport \"os\"\n\nfunc main() {\n\t_ = os.WriteFile(%q, []byte(\"ran\"), 0o644)\n\tos.Exit(1)\n}\n", marker)
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "strata-plugin-"+name)
	build := exec.Command("go", "build", "-o", bin, "main.go")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build marker plugin: %v\n%s", err, out)
	}
	return bin
}

// copyPlugins copies the stock test plugins into a new directory.
func copyPlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(pluginDir, "strata-plugin-"+name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "strata-plugin-"+name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ran(marker string) bool {
	_, err := os.Stat(marker)
	return err == nil
}

// TestPluginsNeverRunUnverified: list, verify and lock do not execute a
// binary the lock file does not vouch for (unlocked, or whose checksum
// does not match), in any directory of a config; lock runs one only when
// it is named, and says so.
func TestPluginsNeverRunUnverified(t *testing.T) {
	stock := copyPlugins(t, "libp2p", "none")
	if out, err := strata(t, "plugins", "lock", "--dir", stock); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	extra := filepath.Join(t.TempDir(), "extra")
	if err := os.MkdirAll(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "marker")
	evil := markerPlugin(t, extra, "evil", marker)
	cfg := filepath.Join(t.TempDir(), "n.yaml")
	text := fmt.Sprintf("node:\n  name: n\n  data_dir: %s\n  role: relay\nplugins:\n  dir: [%s, %s]\nlayers:\n  p2p:\n    plugin: libp2p\n  privacy:\n    plugin: none\n",
		filepath.Join(t.TempDir(), "data"), stock, extra)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	// Unlocked.
	out, _ := strata(t, "plugins", "list", "--dir", extra)
	if ran(marker) {
		t.Fatalf("plugins list ran an unlocked binary:\n%s", out)
	}
	// Unlocked, in the config's second directory.
	out, err := strata(t, "plugins", "list", "-c", cfg)
	if ran(marker) {
		t.Fatalf("plugins list ran an unlocked binary:\n%s", out)
	}
	if err != nil || !strings.Contains(out, extra) || !strings.Contains(out, "evil") || !strings.Contains(out, "unlocked") || !strings.Contains(out, "libp2p") {
		t.Fatalf("plugins list -c: %v\n%s\nwant both directories, evil unlocked", err, out)
	}
	if out, err := strata(t, "plugins", "verify", "-c", cfg); err == nil || ran(marker) || !strings.Contains(out, "evil") || !strings.Contains(out, "unlocked") {
		t.Fatalf("plugins verify -c: %v (ran: %v)\n%s", err, ran(marker), out)
	}

	// lock without names records the checksum without running it.
	out, err = strata(t, "plugins", "lock", "-c", cfg)
	if ran(marker) {
		t.Fatalf("plugins lock ran a new binary nobody named:\n%s", out)
	}
	if err != nil || !strings.Contains(out, "not run") || !strings.Contains(out, filepath.Join(extra, "strata.lock")) {
		t.Fatalf("plugins lock -c: %v\n%s", err, out)
	}

	// Changed after it was locked: a mismatch, still not run.
	b, err := os.ReadFile(evil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evil, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = strata(t, "plugins", "list", "--dir", extra, "-v")
	if ran(marker) {
		t.Fatalf("plugins list ran a binary whose checksum does not match:\n%s", out)
	}
	if err != nil || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "not run") {
		t.Fatalf("plugins list of a mismatched binary: %v\n%s", err, out)
	}
	if out, err := strata(t, "plugins", "verify", "--dir", extra); err == nil || ran(marker) || !strings.Contains(out, "MISMATCH") {
		t.Fatalf("plugins verify of a mismatched binary: %v\n%s", err, out)
	}

	// Named, it runs, and lock says what it ran.
	before, err := os.ReadFile(filepath.Join(extra, "strata.lock"))
	if err != nil {
		t.Fatal(err)
	}
	out, err = strata(t, "plugins", "lock", "--dir", extra, "evil")
	if !ran(marker) {
		t.Fatalf("plugins lock evil did not run the binary it was asked to describe:\n%s", out)
	}
	if err == nil || !strings.Contains(out, evil) || !strings.Contains(out, "nothing written") {
		t.Fatalf("plugins lock of a binary that is not a plugin: %v\n%s\nwant it named and nothing written", err, out)
	}
	if after, _ := os.ReadFile(filepath.Join(extra, "strata.lock")); string(after) != string(before) {
		t.Fatalf("a failed lock changed the lock file")
	}

	// A named good plugin is run to describe it, and the output says so.
	out, err = strata(t, "plugins", "lock", "--dir", stock, "none")
	if err != nil || !strings.Contains(out, "ran "+filepath.Join(stock, "strata-plugin-none")) || !strings.Contains(out, "privacy") {
		t.Fatalf("plugins lock none: %v\n%s", err, out)
	}
}

// TestPluginsListVerboseFits: every line of `plugins list -v` fits in 100
// columns.
func TestPluginsListVerboseFits(t *testing.T) {
	if out, err := strata(t, "plugins", "lock", "--dir", pluginDir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	out, err := strata(t, "plugins", "list", "--dir", pluginDir, "-v")
	if err != nil || !strings.Contains(out, "max_payload") {
		t.Fatalf("plugins list -v: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("%d columns: %s", n, line)
		}
	}
}
