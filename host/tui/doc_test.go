package tui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocCaptures: the captures in docs/chat.md are the golden files the
// UI tests check, so the page shows what the UI draws.
func TestDocCaptures(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "chat.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"TestUISend", "TestUIReceive", "TestUIJoinPublicChat", "TestUICreateGroup"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```\n"+string(b)+"```\n") {
			t.Errorf("docs/chat.md does not show testdata/%s.golden as it is", name)
		}
	}
}
