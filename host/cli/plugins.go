package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/plugins"
)

// pluginDirFlags locate the plugin directories and their lock files: every
// directory of a node config, or directories given directly.
type pluginDirFlags struct {
	configFlags
	dirs []string
	lock string
}

func (f *pluginDirFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
	cmd.Flags().StringArrayVar(&f.dirs, "dir", nil, "plugin directory, instead of a config's (repeatable)")
	cmd.Flags().StringVar(&f.lock, "lock", "", "one lock file for every directory (default <dir>/strata.lock)")
}

// resolve returns the directories to work on, each with its lock file,
// and the config when one was given (for its plugins.checksums).
func (f *pluginDirFlags) resolve(env Env) ([]plugins.Dir, *config.Config, error) {
	var dirs []plugins.Dir
	var cfg *config.Config
	switch {
	case len(f.dirs) > 0:
		for _, d := range f.dirs {
			dirs = append(dirs, plugins.Dir{Path: d, Lock: filepath.Join(d, "strata.lock")})
		}
	case f.file != "":
		var err error
		if cfg, err = f.load(env); err != nil {
			return nil, nil, err
		}
		if dirs = plugins.ConfigDirs(cfg); len(dirs) == 0 {
			return nil, nil, fmt.Errorf("%s names no plugin directory (plugins.dir)", f.file)
		}
	default:
		return nil, nil, errors.New("pass --dir DIR or -c FILE")
	}
	if f.lock != "" {
		for i := range dirs {
			dirs[i].Lock = f.lock
		}
	}
	return dirs, cfg, nil
}

// listWidth is the width `strata plugins list` keeps its lines within.
const listWidth = 100

func pluginsCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List, verify and lock plugin binaries",
		Long: `List, verify and lock plugin binaries. No command here runs a binary that
the lock file does not vouch for, except "lock" when you name the binary
or pass --describe.`,
	}

	var listFlags pluginDirFlags
	var verbose bool
	list := &cobra.Command{
		Use:   "list (--dir DIR... | -c FILE) [-v]",
		Short: "List plugin binaries, their lock state and built-in layers",
		Long: `List the plugin binaries of every directory (a config's plugins.dir and
layers' dirs, or --dir), each with its lock state, and the layers built
into this host. A binary whose checksum matches the lock is started to ask
what it is; any other binary is not run: its kind and version are the lock
file's record, and the line says why it was not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dirs, cfg, err := listFlags.resolve(env)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			var configs []pluginConfig
			for _, dir := range dirs {
				bins, err := plugins.Inspect(dir, overrides(cfg))
				if err != nil {
					return err
				}
				fmt.Fprintf(&buf, "%s (lock %s):\n", dir.Path, dir.Lock)
				w := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tKIND\tVERSION\tCHECKSUM\tDESCRIPTION")
				for _, b := range bins {
					kind, version, desc := orDash(b.Entry.Kind), orDash(b.Entry.Version), b.Detail
					if b.Status == plugins.StatusOK {
						info, err := plugins.Describe(cmd.Context(), b)
						if err != nil {
							desc = "does not start as a plugin: " + err.Error()
						} else {
							kind, version, desc = sdk.KindName(info.GetKind()), info.GetVersion(), info.GetDescription()
							configs = append(configs, pluginConfig{name: b.Name, fields: info.GetConfig()})
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", b.Name, kind, version, b.Status, desc)
				}
				if len(bins) == 0 {
					fmt.Fprintln(w, "(none)\t\t\t\t")
				}
				if err := w.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(&buf)
			}
			fmt.Fprintln(&buf, "built in (mode: inproc):")
			w := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tVERSION\tDESCRIPTION")
			for _, kind := range []commonv1.LayerKind{
				commonv1.LayerKind_LAYER_KIND_P2P, commonv1.LayerKind_LAYER_KIND_PRIVACY,
				commonv1.LayerKind_LAYER_KIND_SECURE, commonv1.LayerKind_LAYER_KIND_SYNC,
			} {
				for _, name := range env.Catalog.Names(kind) {
					info := env.Catalog[kind][name]().Describe()
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", name, sdk.KindName(kind), info.GetVersion(), info.GetDescription())
					if !slices.ContainsFunc(configs, func(c pluginConfig) bool { return c.name == name }) {
						configs = append(configs, pluginConfig{name: name + " (built in)", fields: info.GetConfig()})
					}
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if verbose {
				for _, c := range configs {
					writeConfigKeys(&buf, c)
				}
			}
			out := cmd.OutOrStdout()
			for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
				if _, err := io.WriteString(out, wrapLine(line, listWidth)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	listFlags.register(list)
	list.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list each plugin's config keys")

	var verifyFlags pluginDirFlags
	verify := &cobra.Command{
		Use:   "verify (--dir DIR... | -c FILE)",
		Short: "Check every plugin binary against its directory's lock file, without running any",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dirs, cfg, err := verifyFlags.resolve(env)
			if err != nil {
				return err
			}
			bad := 0
			for _, dir := range dirs {
				bins, err := plugins.Inspect(dir, overrides(cfg))
				if err != nil {
					return err
				}
				if len(dirs) > 1 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s (lock %s):\n", dir.Path, dir.Lock)
				}
				for _, b := range bins {
					state := b.Status.String()
					switch b.Status {
					case plugins.StatusOK:
					case plugins.StatusMissing:
						bad++
						state = "locked but missing"
					case plugins.StatusRefused:
						bad++
						state += " (" + b.Detail + ")"
					default:
						bad++
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%-20s %s\n", b.Name, state)
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d plugin(s) do not match their lock file", bad)
			}
			return nil
		},
	}
	verifyFlags.register(verify)

	var lockFlags pluginDirFlags
	var describe bool
	lockCmd := &cobra.Command{
		Use:   "lock [NAME...] (--dir DIR... | -c FILE) [--describe]",
		Short: "Record the SHA-256 of plugin binaries in their directory's lock file",
		Long: `Record the SHA-256 of plugin binaries in the lock file of their directory
(every directory of a config, or --dir). Without NAME, every binary is
recorded and entries without a binary are dropped; with NAME, only the
named binaries are recorded and the other entries are kept.

Recording a checksum is what lets the host run a binary: lock only binaries
you trust. A binary the lock does not vouch for yet is run (once, to ask
its kind and version) only when you name it or pass --describe, and the
output says so; otherwise its kind and version are left out, or kept from
the lock when its checksum has not changed.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			dirs, _, err := lockFlags.resolve(env)
			if err != nil {
				return err
			}
			return lockPlugins(cmd, dirs, names, describe)
		},
	}
	lockFlags.register(lockCmd)
	lockCmd.Flags().BoolVar(&describe, "describe", false, "run every binary whose checksum is new, to record its kind and version")

	cmd.AddCommand(list, verify, lockCmd)
	return cmd
}

// lockPlugins writes the lock file of every directory (a lock file shared
// by several directories records the first binary of each name, as
// Locate finds it). Named binaries, or every new one with describe, are
// run to ask what they are.
func lockPlugins(cmd *cobra.Command, dirs []plugins.Dir, names []string, describe bool) error {
	out := cmd.OutOrStdout()
	locks := map[string]*plugins.LockFile{} // by path
	var order []string
	seen := map[string]bool{} // named plugins found
	for _, dir := range dirs {
		old, err := plugins.ReadLock(dir.Lock)
		if err != nil {
			return err
		}
		lock := locks[dir.Lock]
		if lock == nil {
			lock = &plugins.LockFile{Version: 1, Plugins: map[string]plugins.LockEntry{}}
			if len(names) > 0 {
				for n, e := range old.Plugins {
					lock.Plugins[n] = e
				}
			}
			locks[dir.Lock] = lock
			order = append(order, dir.Lock)
		}
		bins, err := plugins.Binaries(dir.Path)
		if err != nil {
			return err
		}
		for _, name := range bins {
			named := slices.Contains(names, name)
			if len(names) > 0 && !named {
				continue
			}
			if seen[dir.Lock+"\x00"+name] {
				continue // an earlier directory with the same lock file has it
			}
			seen[dir.Lock+"\x00"+name] = true
			seen[name] = true
			path := plugins.BinaryPath(dir.Path, name)
			if err := plugins.CheckBinary(path); err != nil {
				return fmt.Errorf("nothing written: %w", err)
			}
			sum, err := plugins.Hash(path)
			if err != nil {
				return fmt.Errorf("nothing written: %w", err)
			}
			entry := plugins.LockEntry{File: plugins.BinaryPrefix + name, SHA256: sum}
			prev, had := old.Plugins[name]
			var note string
			switch {
			case named || (describe && !(had && strings.EqualFold(prev.SHA256, sum))):
				info, err := plugins.DescribeNew(cmd.Context(), path)
				if err != nil {
					return fmt.Errorf("nothing written: %w", err)
				}
				entry.Kind, entry.Version = sdk.KindName(info.GetKind()), info.GetVersion()
				note = "ran " + path + " to ask what it is"
			case had && strings.EqualFold(prev.SHA256, sum):
				entry.Kind, entry.Version = prev.Kind, prev.Version
				note = "unchanged"
			default:
				note = "new; not run (name it, or pass --describe, to record its kind and version)"
			}
			lock.Plugins[name] = entry
			fmt.Fprintf(out, "%-16s %s  %s %s  %s\n", name, sum[:16], orDash(entry.Kind), orDash(entry.Version), note)
		}
	}
	for _, n := range names {
		if !seen[n] {
			return fmt.Errorf("nothing written: no %s in %s", plugins.BinaryPrefix+n, dirList(dirs))
		}
	}
	for _, path := range order {
		if err := locks[path].Write(path); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s\n", path)
	}
	return nil
}

// dirList names the directories, comma separated.
func dirList(dirs []plugins.Dir) string {
	var s []string
	for _, d := range dirs {
		s = append(s, d.Path)
	}
	return strings.Join(s, ", ")
}

// pluginConfig is one plugin's config keys, for `plugins list -v`.
type pluginConfig struct {
	name   string
	fields []*commonv1.ConfigField
}

// writeConfigKeys writes a plugin's config keys, one block per key: the
// key, its type and default, then its description indented below.
func writeConfigKeys(w io.Writer, c pluginConfig) {
	fmt.Fprintf(w, "\n%s config keys:\n", c.name)
	if len(c.fields) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, f := range c.fields {
		def := "default " + f.GetDefaultJson()
		if f.GetRequired() {
			def = "required"
		} else if f.GetDefaultJson() == "" {
			def = "no default"
		}
		typ := strings.ToLower(strings.TrimPrefix(f.GetType().String(), "FIELD_TYPE_"))
		fmt.Fprintf(w, "  %s (%s, %s)\n", f.GetName(), typ, def)
		if d := f.GetDescription(); d != "" {
			fmt.Fprintf(w, "      %s\n", d)
		}
	}
}

// wrapLine returns line, ending in a newline, folded at spaces to width
// columns: continuation lines are indented to where the line's text
// starts after its leading blanks, or, for a table row, to its last
// column (two or more spaces before it), when that leaves room.
func wrapLine(line string, width int) string {
	if len(line) <= width {
		return line + "\n"
	}
	indent := len(line) - len(strings.TrimLeft(line, " "))
	if i := strings.LastIndex(line[:width], "  "); i > indent {
		indent = i + 2
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
	}
	if indent > width/2 {
		indent = 4
	}
	var b strings.Builder
	rest := line
	first := true
	for len(rest) > 0 {
		limit := width
		prefix := ""
		if !first {
			prefix = strings.Repeat(" ", indent)
			limit = width - indent
			rest = strings.TrimLeft(rest, " ")
		}
		if len(rest) <= limit {
			b.WriteString(prefix + rest + "\n")
			break
		}
		cut := strings.LastIndex(rest[:limit+1], " ")
		if cut <= 0 || (first && cut <= indent) {
			cut = limit // one word longer than the line: break it
		}
		b.WriteString(prefix + strings.TrimRight(rest[:cut], " ") + "\n")
		rest = rest[cut:]
		first = false
	}
	return b.String()
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// overrides returns the config's checksum table, or nil without a config.
func overrides(cfg *config.Config) map[string]string {
	if cfg == nil {
		return nil
	}
	return cfg.Plugins.Checksums
}
