package plugins

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
)

// writeLockFile writes a lock for one plugin at path with mode.
func writeLockFile(t *testing.T, path string, mode os.FileMode, e LockEntry) {
	t.Helper()
	lock := &LockFile{Version: 1, Plugins: map[string]LockEntry{"x": e}}
	if err := lock.Write(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestReadLockRefusesUnsafeLock: the lock decides what runs, so one that
// someone else could have written is refused, not read.
func TestReadLockRefusesUnsafeLock(t *testing.T) {
	entry := LockEntry{File: BinaryPrefix + "x", SHA256: strings.Repeat("ab", 32)}
	t.Run("mode 0666", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "strata.lock")
		writeLockFile(t, path, 0o666, entry)
		if _, err := ReadLock(path); !errors.Is(err, sdk.ErrUnsafeFile) {
			t.Fatalf("got %v, want ErrUnsafeFile", err)
		}
	})
	t.Run("group-writable directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "plugins")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "strata.lock")
		writeLockFile(t, path, 0o644, entry)
		if err := os.Chmod(dir, 0o775); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLock(path); !errors.Is(err, sdk.ErrUnsafeFile) {
			t.Fatalf("got %v, want ErrUnsafeFile", err)
		}
		// Nor is a missing lock taken for an empty one there.
		if _, err := ReadLock(filepath.Join(dir, "other.lock")); !errors.Is(err, sdk.ErrUnsafeFile) {
			t.Fatalf("missing lock in an open directory: got %v, want ErrUnsafeFile", err)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "real.lock")
		writeLockFile(t, real, 0o644, entry)
		path := filepath.Join(dir, "strata.lock")
		if err := os.Symlink(real, path); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLock(path); !errors.Is(err, sdk.ErrUnsafeFile) {
			t.Fatalf("got %v, want ErrUnsafeFile", err)
		}
	})
	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file away")
		}
		path := filepath.Join(t.TempDir(), "strata.lock")
		writeLockFile(t, path, 0o644, entry)
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLock(path); !errors.Is(err, sdk.ErrUnsafeFile) {
			t.Fatalf("got %v, want ErrUnsafeFile", err)
		}
	})
	t.Run("mode 0644 is read", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "strata.lock")
		writeLockFile(t, path, 0o644, entry)
		if l, err := ReadLock(path); err != nil || l.Plugins["x"].SHA256 != entry.SHA256 {
			t.Fatalf("got %v, %v", l, err)
		}
	})
}

// TestCheckBinaryRefusesOpenDirectory: a binary in a directory that others
// may write is refused, whatever the binary's own mode.
func TestCheckBinaryRefusesOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := BinaryPath(dir, "x")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckBinary(bin); err != nil {
		t.Fatalf("a binary in a 0755 directory: %v", err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := CheckBinary(bin); !errors.Is(err, sdk.ErrUnsafeFile) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want ErrUnsafeFile naming %s", err, dir)
	}
	if _, err := Hash(bin); !errors.Is(err, sdk.ErrUnsafeFile) {
		t.Fatalf("Hash of a binary in an open directory: %v", err)
	}
}

// TestVouch: the checksum comes from the lock as it is when asked; a lock
// that records the binary as another kind of layer is a config error that
// names the layer's key and the fix.
func TestVouch(t *testing.T) {
	dir := t.TempDir()
	bin := BinaryPath(dir, "x")
	if err := os.WriteFile(bin, []byte("plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := Hash(bin)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	lockPath := filepath.Join(dir, "strata.lock")
	if _, err := Vouch(cfg, "privacy", "x", bin, false); !errors.Is(err, ErrNoChecksum) {
		t.Fatalf("no lock: %v", err)
	}
	if got, err := Vouch(cfg, "privacy", "x", bin, true); err != nil || got != nil {
		t.Fatalf("no lock, unverified allowed: %x, %v", got, err)
	}
	writeLockFile(t, lockPath, 0o644, LockEntry{File: BinaryPrefix + "x", SHA256: sum, Kind: "privacy"})
	if got, err := Vouch(cfg, "privacy", "x", bin, false); err != nil || len(got) != 32 {
		t.Fatalf("locked: %x, %v", got, err)
	}
	writeLockFile(t, lockPath, 0o644, LockEntry{File: BinaryPrefix + "x", SHA256: sum, Kind: "p2p"})
	_, err = Vouch(cfg, "privacy", "x", bin, true)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "layers.privacy.plugin" || !strings.Contains(ce.Problem, "p2p layer") || !strings.Contains(ce.Fix, "strata plugins lock") {
		t.Fatalf("kind mismatch: %v", err)
	}
}

// TestRunAsConfig: plugins.run_as names an existing, unprivileged user, and
// only a root host can honour it.
func TestRunAsConfig(t *testing.T) {
	if r, err := RunAs(&config.Config{}); r != nil || err != nil {
		t.Fatalf("unset: %v, %v", r, err)
	}
	var ce *sdk.ConfigError
	if _, err := RunAs(&config.Config{Plugins: config.Plugins{RunAs: "no-such-user-strata"}}); !errors.As(err, &ce) || ce.Key != "plugins.run_as" {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	r, err := RunAs(&config.Config{Plugins: config.Plugins{RunAs: "nobody"}})
	if os.Geteuid() != 0 {
		if !errors.As(err, &ce) || !strings.Contains(ce.Problem, "not root") {
			t.Fatalf("as uid %d: %v, want a config error", os.Geteuid(), err)
		}
		return
	}
	if err != nil || r.UID == 0 || r.Name != "nobody" {
		t.Fatalf("nobody: %+v, %v", r, err)
	}
	if _, err := RunAs(&config.Config{Plugins: config.Plugins{RunAs: "root"}}); !errors.As(err, &ce) {
		t.Fatalf("root: %v", err)
	}
}
