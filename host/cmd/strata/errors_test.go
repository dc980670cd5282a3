package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingLockedBinary: a plugin binary the lock file lists but that is
// gone is reported as missing, with how to build it, by run and config
// check; a plugin nobody knows is still "unknown".
func TestMissingLockedBinary(t *testing.T) {
	dir := copyPlugins(t, "libp2p", "none")
	if out, err := strata(t, "plugins", "lock", "--dir", dir); err != nil {
		t.Fatalf("lock: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "strata-plugin-none")); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, t.TempDir(), "m")
	for _, args := range [][]string{{"run"}, {"config", "check"}} {
		out, err := strata(t, append(args, "-c", cfg, "--set", "plugins.dir="+dir)...)
		if err == nil || !strings.Contains(out, "layers.privacy.plugin") || !strings.Contains(out, "missing") ||
			!strings.Contains(out, "make plugins") || strings.Contains(out, "unknown plugin") {
			t.Errorf("strata %s with a locked binary gone: %v\n%s\nwant it called missing, with `make plugins`", strings.Join(args, " "), err, out)
		}
	}
	out, err := strata(t, "config", "check", "-c", cfg, "--set", "plugins.dir="+dir, "--set", "layers.privacy.plugin=nonee")
	if err == nil || !strings.Contains(out, "unknown plugin") {
		t.Errorf("config check of a plugin nobody knows: %v\n%s", err, out)
	}
}

// TestYAMLErrorLine: a YAML mistake is reported at the line it is on.
func TestYAMLErrorLine(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string
	}{
		{"indent", "node:\n  name: a\n  data_dir: d\nplugins:\n  dir: p\nlayers:\n  p2p:\n    plugin: libp2p\n   config: x\n", "line 9"},
		{"unclosed list", "node:\n  name: a\n  data_dir: d\n  role: [client\nplugins:\n  dir: p\n", "line 4"},
		{"tab", "node:\n  name: a\n  data_dir: d\n\trole: client\n", "line 4"},
		{"two values", "node:\n  name: a\n  data_dir: d: e\n", "line 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := strata(t, "config", "check", "-c", path)
			if err == nil || !strings.Contains(out, tt.want+":") {
				t.Fatalf("config check: %v\n%s\nwant the mistake at %s", err, out, tt.want)
			}
		})
	}
}
