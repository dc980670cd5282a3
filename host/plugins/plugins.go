// Package plugins finds layer implementations for the host: plugin binaries
// in a directory, verified against a lock file of SHA-256 checksums, and the
// implementations compiled into the host for in-process mode.
package plugins

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// BinaryPrefix starts the file name of every plugin binary:
// strata-plugin-<name>.
const BinaryPrefix = "strata-plugin-"

// ErrNotFound is returned when no binary or built-in has a plugin's name.
var ErrNotFound = errors.New("plugin not found")

// ErrChecksum is returned when a binary does not match its recorded hash
// (here, or by sdk.Launch right before it runs the binary).
var ErrChecksum = sdk.ErrChecksumMismatch

// ErrNoChecksum is returned when a binary has no recorded hash.
var ErrNoChecksum = errors.New("plugin has no recorded checksum")

// Factory makes a fresh instance of a built-in layer.
type Factory func() sdk.Layer

// Catalog holds the layers compiled into the host, by kind and name, for
// in-process mode. The host's main package fills it; there is no global
// registry.
type Catalog map[commonv1.LayerKind]map[string]Factory

// Add registers f under its own kind and name and returns the catalog.
func (c Catalog) Add(f Factory) Catalog {
	info := f().Describe()
	if c[info.GetKind()] == nil {
		c[info.GetKind()] = map[string]Factory{}
	}
	c[info.GetKind()][info.GetName()] = f
	return c
}

// Lookup returns the factory for a kind and name.
func (c Catalog) Lookup(kind commonv1.LayerKind, name string) (Factory, error) {
	if f, ok := c[kind][name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("%w: no built-in %s layer %q (built in: %s)", ErrNotFound, sdk.KindName(kind), name, strings.Join(c.Names(kind), ", "))
}

// Names lists the built-in names of a kind, sorted.
func (c Catalog) Names(kind commonv1.LayerKind) []string {
	var out []string
	for n := range c[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// BinaryPath is where a plugin's binary lives in dir.
func BinaryPath(dir, name string) string {
	return filepath.Join(dir, BinaryPrefix+name)
}

// Locate finds a plugin's binary in the first of dirs that has one and
// returns its path, checked by CheckBinary. A directory earlier in dirs
// shadows the later ones, so a third party's directory listed first may
// replace a stock plugin of the same name. The error wraps ErrNotFound when
// no directory has the binary, naming every directory searched. The binary
// found is vouched for by its own directory's lock (config.LockPathFor),
// never by another's.
func Locate(dirs []string, name string) (string, error) {
	if len(dirs) == 0 {
		return "", fmt.Errorf("%w: no plugin directory to search for %s", ErrNotFound, BinaryPrefix+name)
	}
	for _, dir := range dirs {
		path := BinaryPath(dir, name)
		err := CheckBinary(path)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		return path, nil
	}
	return "", fmt.Errorf("%w: %s is in none of %s", ErrNotFound, BinaryPrefix+name, strings.Join(dirs, ", "))
}

// Binaries lists the plugin names that have a binary in dir, sorted.
func Binaries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
		if !ok || name == "" || e.IsDir() {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Hash returns the hex SHA-256 of a plugin binary, opened as sdk.Launch
// opens it (sdk.OpenBinary): a binary that someone else could have written
// is refused, not hashed.
func Hash(path string) (string, error) {
	f, err := openBinary(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, err := sdk.HashFile(f)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum), nil
}

// CheckBinary refuses a binary that is missing (ErrNotFound), a symlink
// (one could be swapped between check and exec), not a regular file, not
// executable, owned by neither this user nor root, writable by group or
// others, or in a directory (or below one) that someone else could write:
// the checks of sdk.OpenBinary, which sdk.Launch repeats on every launch.
func CheckBinary(path string) error {
	f, err := openBinary(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// openBinary is sdk.OpenBinary with a missing file as ErrNotFound.
func openBinary(path string) (*os.File, error) {
	f, err := sdk.OpenBinary(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %s refused: %w", path, err)
	}
	return f, nil
}

// LockFile records the SHA-256 of every plugin binary the node may run.
// `strata plugins lock` writes it; the host refuses a binary that does not
// match it.
type LockFile struct {
	// Version is the lock file format version, 1.
	Version int `json:"version"`
	// Plugins maps plugin name to its entry.
	Plugins map[string]LockEntry `json:"plugins"`
}

// LockEntry is one plugin's record.
type LockEntry struct {
	// File is the binary's file name in the plugin directory.
	File string `json:"file"`
	// SHA256 is the binary's hex SHA-256.
	SHA256 string `json:"sha256"`
	// Kind and Version are what the plugin described itself as when locked.
	Kind    string `json:"kind,omitempty"`
	Version string `json:"version,omitempty"`
}

// maxLockBytes bounds a lock file: a few hundred bytes per plugin.
const maxLockBytes = 4 << 20

// ReadLock reads a lock file. A missing file is an empty lock. The lock
// decides which binaries run, so it is opened as sdk.OpenTrusted opens a
// file: a symlink, a file owned by neither this user nor root, a file that
// group or others may write, or one in a directory that someone else could
// write, is refused (a missing lock in such a directory too: anyone could
// put one there).
func ReadLock(path string) (*LockFile, error) {
	f, err := sdk.OpenTrusted(path)
	if errors.Is(err, os.ErrNotExist) {
		return &LockFile{Version: 1, Plugins: map[string]LockEntry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file refused: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLockBytes+1))
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if len(b) > maxLockBytes {
		return nil, fmt.Errorf("lock file %s is larger than %d bytes", path, maxLockBytes)
	}
	var l LockFile
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("lock file %s does not parse: %w (delete it and run `strata plugins lock`)", path, err)
	}
	if l.Version != 1 {
		return nil, fmt.Errorf("lock file %s has version %d; this host reads version 1", path, l.Version)
	}
	if l.Plugins == nil {
		l.Plugins = map[string]LockEntry{}
	}
	return &l, nil
}

// Write saves the lock file atomically, mode 0644: through a new temporary
// file in the same directory, renamed over path.
func (l *LockFile) Write(path string) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// Expected returns the recorded hex SHA-256 for a plugin: the override
// table first, then the lock file.
func Expected(name string, overrides map[string]string, lock *LockFile) (string, error) {
	if sum, ok := overrides[name]; ok {
		return strings.ToLower(sum), nil
	}
	if e, ok := lock.Plugins[name]; ok && e.SHA256 != "" {
		return strings.ToLower(e.SHA256), nil
	}
	return "", fmt.Errorf("%w: %q (run `strata plugins lock`, or start with --allow-unverified for development)", ErrNoChecksum, name)
}

// Verify hashes a binary and compares it with want (hex).
func Verify(path, want string) error {
	got, err := Hash(path)
	if err != nil {
		return err
	}
	if got != strings.ToLower(want) {
		return fmt.Errorf("%w: %s has sha256 %s, the lock records %s (rebuild, or re-run `strata plugins lock` if you trust this binary)", ErrChecksum, path, got, want)
	}
	return nil
}
