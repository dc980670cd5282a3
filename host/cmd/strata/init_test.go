package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit: `strata init` writes a config that loads, with the node's
// name, its own data directory beside the file, the stack's plugin
// directory seen from the new file, metrics on a free port and the given
// peers; it refuses a bad name, a card that is not one, and replacing a
// file without --force.
func TestInit(t *testing.T) {
	root := t.TempDir()
	stacks := filepath.Join(root, "configs")
	if err := os.MkdirAll(stacks, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../../configs/libp2p-none-dr-mvds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stack := filepath.Join(stacks, "stack.yaml")
	if err := os.WriteFile(stack, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "nodes", "dave.yaml")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if o, err := strata(t, "init", "dave", "--stack", stack, "--out", out); err != nil {
		t.Fatalf("init: %v\n%s", err, o)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: dave", "data_dir: data/dave", "dir: ../bin/plugins", "listen: 127.0.0.1:0", "plugin: mvds", "# libp2p + none + doubleratchet + mvds"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the written config has no %q:\n%s", want, text)
		}
	}
	if o, err := strata(t, "init", "dave", "--stack", stack, "--out", out); err == nil || !strings.Contains(o, "--force") {
		t.Fatalf("init over an existing file: %v\n%s", err, o)
	}
	if o, err := strata(t, "init", "dave", "--stack", stack, "--out", out, "--force", "--peer", "strata:card:nonsense"); err == nil || !strings.Contains(o, "--peer 1") {
		t.Fatalf("init with a bad card: %v\n%s", err, o)
	}
	if o, err := strata(t, "init", "../dave", "--stack", stack); err == nil || !strings.Contains(o, "node name") {
		t.Fatalf("init with a path as name: %v\n%s", err, o)
	}
}
