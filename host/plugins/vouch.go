package plugins

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
)

// Vouch returns the SHA-256 that the binary at path must have for the
// layer key (whose kind it names) to run it as plugin name: the
// plugins.checksums override, else the record of the lock that covers
// path (config.LockPathFor), read now (ReadLock's checks apply). The host
// calls it on every launch, restarts included, and sdk.Launch compares the
// binary it is about to run with the result.
//
// A lock that records the plugin as another kind of layer is a
// *sdk.ConfigError naming layers.<key>.plugin: the binary is not what the
// config takes it for (a lock entry without a kind, from an older lock, is
// not checked; the plugin's own Describe is, after the launch). A binary
// that nothing records is ErrNoChecksum, unless allowUnverified: then the
// checksum is nil, and sdk.Launch runs the binary with a warning.
func Vouch(cfg *config.Config, key, name, path string, allowUnverified bool) ([]byte, error) {
	lockPath := cfg.LockPathFor(path)
	lock, err := ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	if e, ok := lock.Plugins[name]; ok && e.Kind != "" && e.Kind != key {
		return nil, &sdk.ConfigError{
			Key:     "layers." + key + ".plugin",
			Problem: fmt.Sprintf("plugin %q is recorded in %s as a %s layer, not a %s layer", name, lockPath, e.Kind, key),
			Fix:     fmt.Sprintf("choose a %s plugin for layers.%s; if the record is wrong, lock the binary again: strata plugins lock --dir %s %s", key, key, filepath.Dir(path), name),
		}
	}
	want, err := Expected(name, cfg.Plugins.Checksums, lock)
	if errors.Is(err, ErrNoChecksum) && allowUnverified {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sum, err := hex.DecodeString(want)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("the checksum recorded for plugin %q, %q, is not a hex SHA-256", name, want)
	}
	return sum, nil
}

// UnverifiedReason names what lets a node run a binary that no checksum
// vouches for, for the warning of every such launch; flag is whether
// --allow-unverified was given.
func UnverifiedReason(cfg *config.Config, flag bool) string {
	switch {
	case flag && cfg.Plugins.AllowUnverified:
		return "--allow-unverified and plugins.allow_unverified"
	case flag:
		return "--allow-unverified"
	}
	return "plugins.allow_unverified (set in the config file, by --set, or by STRATA_PLUGINS__ALLOW_UNVERIFIED in the environment)"
}

// RunAs resolves plugins.run_as: nil when it is not set. Only root can
// start a process as another user, so a host that is not root refuses the
// key rather than run plugins as itself.
func RunAs(cfg *config.Config) (*sdk.RunAs, error) {
	name := cfg.Plugins.RunAs
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, &sdk.ConfigError{Key: "plugins.run_as", Problem: fmt.Sprintf("no user %q: %v", name, err), Fix: "name an existing user (or uid) for the plugins, e.g. one made with useradd --system strata-plugins"}
	}
	uid, uerr := strconv.ParseUint(u.Uid, 10, 32)
	gid, gerr := strconv.ParseUint(u.Gid, 10, 32)
	if uerr != nil || gerr != nil {
		return nil, &sdk.ConfigError{Key: "plugins.run_as", Problem: fmt.Sprintf("user %q has uid %q and gid %q, which are not numbers", name, u.Uid, u.Gid)}
	}
	if euid := os.Geteuid(); euid != 0 {
		return nil, &sdk.ConfigError{Key: "plugins.run_as", Problem: fmt.Sprintf("the host runs as uid %d, not root, so it cannot start plugins as %q", euid, name),
			Fix: "run the host as root, or remove plugins.run_as (to keep plugins apart from your own files, run the whole host as that user instead)"}
	}
	if uid == 0 {
		return nil, &sdk.ConfigError{Key: "plugins.run_as", Problem: fmt.Sprintf("%q is root", name), Fix: "name an unprivileged user, or remove the key"}
	}
	return &sdk.RunAs{Name: u.Username, UID: uint32(uid), GID: uint32(gid)}, nil
}
