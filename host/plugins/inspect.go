package plugins

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
)

// Dir is a plugin directory and the lock file that vouches for the
// binaries in it.
type Dir struct {
	// Path is the directory.
	Path string
	// Lock is the lock file: <Path>/strata.lock, or plugins.lock_file.
	Lock string
}

// ConfigDirs returns every plugin directory a config names, each with its
// lock file: plugins.dir's directories in order, then each layer's own dir
// (layers.<layer>.dir), without repeats. These are the directories the
// node may start a binary from.
func ConfigDirs(cfg *config.Config) []Dir {
	var paths []string
	add := func(p string) {
		if p != "" && !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	for _, d := range cfg.Plugins.Dirs {
		add(d)
	}
	add(cfg.Plugins.Dir)
	for _, key := range config.LayerOrder {
		if l, ok := cfg.Layers[key]; ok {
			add(l.Dir)
		}
	}
	out := make([]Dir, len(paths))
	for i, p := range paths {
		out[i] = Dir{Path: p, Lock: cfg.LockPathFor(BinaryPath(p, "x"))}
	}
	return out
}

// Status is how a plugin binary compares with the lock that vouches for
// it. Inspect finds it by reading and hashing files, never by running
// anything.
type Status int

// The statuses of a binary.
const (
	// StatusOK: the binary's SHA-256 is the recorded one.
	StatusOK Status = iota
	// StatusUnlocked: nothing records a checksum for the binary.
	StatusUnlocked
	// StatusMismatch: the binary's SHA-256 differs from the recorded one.
	StatusMismatch
	// StatusRefused: the binary fails the file checks of CheckBinary.
	StatusRefused
	// StatusUnreadable: the binary could not be hashed.
	StatusUnreadable
	// StatusMissing: the lock lists the plugin, the directory has no binary.
	StatusMissing
)

// String is the status as `strata plugins list` and `verify` print it.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnlocked:
		return "unlocked"
	case StatusMismatch:
		return "MISMATCH"
	case StatusRefused:
		return "REFUSED"
	case StatusUnreadable:
		return "unreadable"
	case StatusMissing:
		return "MISSING"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Binary is one plugin of a directory as the directory and its lock file
// describe it.
type Binary struct {
	// Name is the plugin's name, Path its binary (which may not exist:
	// StatusMissing).
	Name, Path string
	// Status compares the binary with its recorded checksum; Detail says
	// more when it is not StatusOK.
	Status Status
	Detail string
	// Entry is what the lock file records for the plugin (zero when it
	// records nothing).
	Entry LockEntry
	// Checksum is the verified SHA-256 when Status is StatusOK.
	Checksum []byte
}

// Inspect returns every plugin of dir, sorted by name: each binary with
// its status against the checksum recorded for it (overrides first, as
// plugins.checksums, then the lock file), then each plugin the lock lists
// that has no binary, as StatusMissing. It never runs a binary.
func Inspect(dir Dir, overrides map[string]string) ([]Binary, error) {
	names, err := Binaries(dir.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir.Path, err)
	}
	lock, err := ReadLock(dir.Lock)
	if err != nil {
		return nil, err
	}
	var out []Binary
	for _, name := range names {
		out = append(out, inspect(BinaryPath(dir.Path, name), name, overrides, lock))
	}
	for name, e := range lock.Plugins {
		if slices.Contains(names, name) {
			continue
		}
		// With one lock file for several directories, an entry belongs to
		// the directory that has the binary; a missing one is reported
		// once per directory that could hold it.
		out = append(out, Binary{Name: name, Path: BinaryPath(dir.Path, name), Status: StatusMissing, Entry: e,
			Detail: fmt.Sprintf("%s lists it, %s has no %s", dir.Lock, dir.Path, BinaryPrefix+name)})
	}
	slices.SortFunc(out, func(a, b Binary) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// inspect checks one binary against its recorded checksum.
func inspect(path, name string, overrides map[string]string, lock *LockFile) Binary {
	b := Binary{Name: name, Path: path, Entry: lock.Plugins[name]}
	if err := CheckBinary(path); err != nil {
		b.Status, b.Detail = StatusRefused, err.Error()
		return b
	}
	want, err := Expected(name, overrides, lock)
	if err != nil {
		b.Status, b.Detail = StatusUnlocked, "no recorded checksum: not run; `strata plugins lock "+name+"` records it (and runs it once to ask what it is)"
		return b
	}
	if err := Verify(path, want); err != nil {
		if errors.Is(err, ErrChecksum) {
			b.Status, b.Detail = StatusMismatch, "its SHA-256 is not the recorded one: not run; rebuild it, or `strata plugins lock "+name+"` if you trust it"
			return b
		}
		b.Status, b.Detail = StatusUnreadable, err.Error()
		return b
	}
	sum, err := hex.DecodeString(want)
	if err != nil {
		b.Status, b.Detail = StatusUnreadable, fmt.Sprintf("recorded checksum %q: %v", want, err)
		return b
	}
	b.Status, b.Checksum = StatusOK, sum
	return b
}

// Describe starts a verified binary (StatusOK) just long enough to ask
// what it is. The launch checks the binary's SHA-256 against b.Checksum
// again right before it executes it; a binary of any other status is
// refused without being run.
func Describe(ctx context.Context, b Binary) (*commonv1.PluginInfo, error) {
	if b.Status != StatusOK {
		return nil, fmt.Errorf("describe %s: not run: it is %s", b.Path, b.Status)
	}
	return describe(ctx, b.Path, b.Checksum, b.Entry.Kind)
}

// DescribeNew starts a binary that no lock vouches for yet, to ask what it
// is. It is for `strata plugins lock` when the user has named the binary
// or asked for it: nothing else may run an unverified binary.
func DescribeNew(ctx context.Context, path string) (*commonv1.PluginInfo, error) {
	if err := CheckBinary(path); err != nil {
		return nil, err
	}
	return describe(ctx, path, nil, "")
}

// describe launches path once per layer kind, the recorded kind first,
// until one handshake succeeds, and asks it to describe itself. A nil
// checksum launches it unverified.
func describe(ctx context.Context, path string, checksum []byte, kindHint string) (*commonv1.PluginInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kinds := []commonv1.LayerKind{
		commonv1.LayerKind_LAYER_KIND_P2P, commonv1.LayerKind_LAYER_KIND_PRIVACY,
		commonv1.LayerKind_LAYER_KIND_SECURE, commonv1.LayerKind_LAYER_KIND_SYNC,
	}
	if k, err := sdk.ParseKind(kindHint); err == nil {
		kinds = append([]commonv1.LayerKind{k}, slices.DeleteFunc(kinds, func(x commonv1.LayerKind) bool { return x == k })...)
	}
	var lastErr error
	for _, kind := range kinds {
		conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path, Kind: kind, Checksum: checksum, AllowUnverified: checksum == nil, Logger: hclog.NewNullLogger()})
		if err != nil {
			lastErr = err
			continue
		}
		info, err := conn.Describe(ctx)
		conn.Close()
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", path, err)
		}
		return info, nil
	}
	return nil, fmt.Errorf("%s does not start as a plugin: %w", filepath.Base(path), lastErr)
}

// NotFoundError is the config error for the plugin binary of layer key
// that Locate did not find (err wraps ErrNotFound). When a lock file of
// the directories searched lists the plugin, the binary is missing, not
// unknown: the error says so and how to build it. Otherwise the plugin is
// unknown, and the error lists the plugins the directories do have.
func NotFoundError(cfg *config.Config, key string, err error) error {
	name := cfg.Layers[key].Plugin
	dirs := cfg.PluginDirs(key)
	for _, dir := range dirs {
		lockPath := cfg.LockPathFor(BinaryPath(dir, name))
		lock, lerr := ReadLock(lockPath)
		if lerr != nil {
			continue
		}
		if _, ok := lock.Plugins[name]; ok {
			return &sdk.ConfigError{
				Key:     "layers." + key + ".plugin",
				Problem: fmt.Sprintf("plugin %q is missing: %s lists it, but %s does not exist", name, lockPath, BinaryPath(dir, name)),
				Fix:     "build it: `make plugins` builds the shipped plugins into bin/plugins (a third-party plugin: its own build), then `strata plugins lock` if its checksum changed",
			}
		}
	}
	fix := fmt.Sprintf("build it (make plugins) or check plugins.dir (searched %v)", dirs)
	var found []string
	for _, dir := range dirs {
		if names, lerr := Binaries(dir); lerr == nil {
			found = append(found, names...)
		}
	}
	if len(found) > 0 {
		fix = fmt.Sprintf("plugins in %v: %v", dirs, found)
	}
	return &sdk.ConfigError{Key: "layers." + key + ".plugin", Problem: fmt.Sprintf("unknown plugin %q: %v", name, err), Fix: fix}
}
