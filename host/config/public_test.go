package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// TestPublicSection: the public section's defaults, values from the file,
// the environment and --set, 0 for no bound, and its mistakes, each named
// by its key.
func TestPublicSection(t *testing.T) {
	cfg, err := Load(Sources{File: write(t, "n.yaml", base), Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Public{MaxMessagesPerChat: 10000, MaxBytesPerChat: 64 << 20, Retention: 720 * time.Hour}); cfg.Public != want {
		t.Fatalf("defaults %+v, want %+v", cfg.Public, want)
	}
	cfg, err = Load(Sources{
		File:    write(t, "n.yaml", base+"public:\n  max_messages_per_chat: 50\n  retention: 48h\n"),
		Environ: []string{"STRATA_PUBLIC__MAX_BYTES_PER_CHAT=1048576"},
		Set:     []string{"public.retention=0s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Public{MaxMessagesPerChat: 50, MaxBytesPerChat: 1 << 20, Retention: 0}); cfg.Public != want {
		t.Fatalf("public %+v, want %+v", cfg.Public, want)
	}
	for _, tt := range []struct {
		set, key, fix string
	}{
		{"public.max_messages_per_chat=-1", "public.max_messages_per_chat", "0 for no bound"},
		{"public.max_bytes_per_chat=-5", "public.max_bytes_per_chat", "0 for no bound"},
		{"public.max_bytes_per_chat=lots", "public.max_bytes_per_chat", ""},
		{"public.retention=-1h", "public.retention", "duration"},
		{"public.retention=30", "public.retention", ""},
		{"public.max_message_per_chat=5", "public.max_message_per_chat", "did you mean public.max_messages_per_chat?"},
	} {
		_, err := Load(Sources{File: write(t, "n.yaml", base), Environ: []string{}, Set: []string{tt.set}})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(ce.Fix+ce.Problem, tt.fix) {
			t.Errorf("--set %s: %v, want a ConfigError for %s mentioning %q", tt.set, err, tt.key, tt.fix)
		}
	}
}
