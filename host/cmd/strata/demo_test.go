package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestDemoOnShippedWhisperStack runs `strata demo --stack` on the shipped
// libp2p + whisper stack, as the demo's help suggests. That config reaches
// contacts through relays only (node.dial_contacts: false), and the demo
// has none: its two nodes must dial each other all the same.
func TestDemoOnShippedWhisperStack(t *testing.T) {
	// Its own plugin directory: the other tests count what pluginDir holds.
	plugins := t.TempDir()
	for name, pkg := range map[string]string{
		"libp2p":        "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p",
		"whisper":       "github.com/strata-msg/strata/plugins/whisper/cmd/strata-plugin-whisper",
		"doubleratchet": "github.com/strata-msg/strata/plugins/doubleratchet/cmd/strata-plugin-doubleratchet",
		"mvds":          "github.com/strata-msg/strata/plugins/mvds/cmd/strata-plugin-mvds",
	} {
		if _, err := sdktest.Build(plugins, pkg, name); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("../../../configs/libp2p-whisper-dr-mvds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, "dial_contacts: false") {
		t.Fatal("the shipped whisper stack no longer sets dial_contacts: false; this test is about that")
	}
	text = strings.Replace(text, "dir: ../bin/plugins", "dir: "+plugins, 1)
	stack := filepath.Join(t.TempDir(), "whisper.yaml")
	if err := os.WriteFile(stack, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := strata(t, "demo", "--stack", stack, "-n", "3", "--allow-unverified")
	if err != nil || !strings.Contains(out, "demo ok") {
		t.Fatalf("strata demo --stack (whisper): %v\n%s", err, out)
	}
}
