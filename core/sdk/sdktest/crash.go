package sdktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CrashImage copies the regular files of a plugin's data directory as
// they are on disk at this moment into dir, as a kill -9 would leave them:
// a SQLite database and its write-ahead log, without the shared-memory
// index (-shm), which SQLite rebuilds. Called from inside a layer's
// hand-over (an Emit), it shows what a crash at that point keeps; a layer
// opened on dir then starts from it.
func CrashImage(t testing.TB, from, dir string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "-shm") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
