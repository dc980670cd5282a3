// Package plugins finds layer implementations for the host: plugin binaries
// in a directory, verified against a lock file of SHA-256 checksums, and the
// implementations compiled into the host for in-process mode.
package plugins

import (
	"crypto/sha256"
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

// ErrChecksum is returned when a binary does not match its recorded hash.
var ErrChecksum = errors.New("plugin checksum mismatch")

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

// Hash returns the hex SHA-256 of a file.
func Hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckBinary refuses a binary that is missing, not a regular file (a
// symlink could be swapped between check and exec), or writable by group or
// others.
func CheckBinary(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s does not exist", ErrNotFound, path)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("plugin %s is not a regular file (symlinks are refused)", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("plugin %s is writable by group or others (mode %v); chmod go-w it", path, fi.Mode().Perm())
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s is not executable", path)
	}
	return nil
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

// ReadLock reads a lock file. A missing file is an empty lock.
func ReadLock(path string) (*LockFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &LockFile{Version: 1, Plugins: map[string]LockEntry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
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

// Write saves the lock file atomically.
func (l *LockFile) Write(path string) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return os.Rename(tmp, path)
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
