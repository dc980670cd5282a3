package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/plugins"
)

// pluginDirFlags locate the plugin directory and lock file: from a node
// config, or given directly.
type pluginDirFlags struct {
	configFlags
	dir  string
	lock string
}

func (f *pluginDirFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
	cmd.Flags().StringVar(&f.dir, "dir", "", "plugin directory (instead of a config's plugins.dir)")
	cmd.Flags().StringVar(&f.lock, "lock", "", "lock file (default <dir>/strata.lock)")
}

func (f *pluginDirFlags) resolve(env Env) (dir, lock string, cfg *config.Config, err error) {
	if f.dir != "" {
		dir = f.dir
	} else if f.file != "" {
		if cfg, err = f.load(env); err != nil {
			return "", "", nil, err
		}
		dir = cfg.Plugins.Dir
	} else {
		return "", "", nil, errors.New("pass --dir DIR or -c FILE")
	}
	switch {
	case f.lock != "":
		lock = f.lock
	case cfg != nil && f.dir == "":
		lock = cfg.LockPath()
	default:
		lock = filepath.Join(dir, "strata.lock")
	}
	return dir, lock, cfg, nil
}

// describeBinary starts a binary just long enough to ask what it is. It
// does not need a checksum: nothing is configured or started.
func describeBinary(ctx context.Context, path string) (*commonv1.PluginInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var info *commonv1.PluginInfo
	var lastErr error
	for _, kind := range []commonv1.LayerKind{
		commonv1.LayerKind_LAYER_KIND_P2P, commonv1.LayerKind_LAYER_KIND_PRIVACY,
		commonv1.LayerKind_LAYER_KIND_SECURE, commonv1.LayerKind_LAYER_KIND_SYNC,
	} {
		conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path, Kind: kind, AllowUnverified: true, Logger: hclog.NewNullLogger()})
		if err != nil {
			lastErr = err
			continue
		}
		info, err = conn.Describe(ctx)
		conn.Close()
		return info, err
	}
	return nil, lastErr
}

func pluginsCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "List, verify and lock plugin binaries"}

	var listFlags pluginDirFlags
	var verbose bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List plugin binaries and built-in layers with what they describe themselves as",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, lockPath, cfg, err := listFlags.resolve(env)
			if err != nil {
				return err
			}
			names, err := plugins.Binaries(dir)
			if err != nil {
				return err
			}
			lock, err := plugins.ReadLock(lockPath)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tVERSION\tCHECKSUM\tDESCRIPTION")
			for _, name := range names {
				path := plugins.BinaryPath(dir, name)
				info, err := describeBinary(cmd.Context(), path)
				if err != nil {
					fmt.Fprintf(w, "%s\t?\t?\t-\tdoes not start as a plugin: %v\n", name, err)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, sdk.KindName(info.GetKind()), info.GetVersion(), lockState(path, name, overrides(cfg), lock), info.GetDescription())
				if verbose {
					for _, f := range info.GetConfig() {
						def := f.GetDefaultJson()
						if f.GetRequired() {
							def = "(required)"
						}
						fmt.Fprintf(w, "\t  %s\t%s\t%s\t%s\n", f.GetName(), f.GetType().String()[len("FIELD_TYPE_"):], def, f.GetDescription())
					}
				}
			}
			for kind, byName := range env.Catalog {
				for _, name := range env.Catalog.Names(kind) {
					info := byName[name]().Describe()
					fmt.Fprintf(w, "%s\t%s\t%s\tbuilt in\t%s (mode: inproc)\n", name, sdk.KindName(kind), info.GetVersion(), info.GetDescription())
				}
			}
			return w.Flush()
		},
	}
	listFlags.register(list)
	list.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list each plugin's config keys")

	var verifyFlags pluginDirFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every plugin binary against the lock file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, lockPath, cfg, err := verifyFlags.resolve(env)
			if err != nil {
				return err
			}
			lock, err := plugins.ReadLock(lockPath)
			if err != nil {
				return err
			}
			names, err := plugins.Binaries(dir)
			if err != nil {
				return err
			}
			bad := 0
			for _, name := range names {
				state := lockState(plugins.BinaryPath(dir, name), name, overrides(cfg), lock)
				if state != "ok" {
					bad++
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %s\n", name, state)
			}
			for name := range lock.Plugins {
				if !exists(plugins.BinaryPath(dir, name)) {
					bad++
					fmt.Fprintf(cmd.OutOrStdout(), "%-20s locked but missing\n", name)
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d plugin(s) do not match %s", bad, lockPath)
			}
			return nil
		},
	}
	verifyFlags.register(verify)

	var lockFlags pluginDirFlags
	lockCmd := &cobra.Command{
		Use:   "lock",
		Short: "Record the SHA-256 of every plugin binary in the lock file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, lockPath, _, err := lockFlags.resolve(env)
			if err != nil {
				return err
			}
			names, err := plugins.Binaries(dir)
			if err != nil {
				return err
			}
			lock := &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{}}
			for _, name := range names {
				path := plugins.BinaryPath(dir, name)
				if err := plugins.CheckBinary(path); err != nil {
					return err
				}
				sum, err := plugins.Hash(path)
				if err != nil {
					return err
				}
				info, err := describeBinary(cmd.Context(), path)
				if err != nil {
					return fmt.Errorf("%s does not start as a plugin: %w", path, err)
				}
				lock.Plugins[name] = plugins.LockEntry{File: plugins.BinaryPrefix + name, SHA256: sum, Kind: sdk.KindName(info.GetKind()), Version: info.GetVersion()}
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %s %s\n", name, sum, info.GetVersion())
			}
			if err := lock.Write(lockPath); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", lockPath)
			return nil
		},
	}
	lockFlags.register(lockCmd)

	cmd.AddCommand(list, verify, lockCmd)
	return cmd
}

// lockState says how a binary compares with its recorded checksum (the
// config's plugins.checksums first, then the lock file).
func lockState(path, name string, overrides map[string]string, lock *plugins.LockFile) string {
	if err := plugins.CheckBinary(path); err != nil {
		return "REFUSED (" + err.Error() + ")"
	}
	want, err := plugins.Expected(name, overrides, lock)
	if err != nil {
		return "unlocked"
	}
	if err := plugins.Verify(path, want); err != nil {
		if errors.Is(err, plugins.ErrChecksum) {
			return "MISMATCH"
		}
		return "unreadable"
	}
	return "ok"
}

// overrides returns the config's checksum table, or nil without a config.
func overrides(cfg *config.Config) map[string]string {
	if cfg == nil {
		return nil
	}
	return cfg.Plugins.Checksums
}
