// Package cli is the `strata` command line: run a node, check a config,
// manage plugins and contacts, and run the demo.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/plugins"
)

// Version is the host's version.
const Version = "0.1.0-dev"

// Env is what the commands need from the process: built-in layers and the
// standard streams. Tests build their own.
type Env struct {
	// Catalog holds the layers compiled into this binary.
	Catalog plugins.Catalog
	Stdout  io.Writer
	Stderr  io.Writer
	// Environ is the process environment (for STRATA_ variables).
	Environ []string
}

// Execute runs the command line with args and returns the exit code.
func Execute(ctx context.Context, env Env, args []string) int {
	root := NewRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		// An error may quote remote text (a name, a node's answer).
		fmt.Fprintln(env.Stderr, "strata:", escapeLines(err.Error()))
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a peer-to-peer secure-messaging stack whose every layer is a plugin",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("strata {{.Version}}\n")
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(
		initCmd(env),
		runCmd(env),
		configCmd(env),
		pluginsCmd(env),
		contactCmd(env),
		sendCmd(env),
		listenCmd(env),
		conversationCmd(env),
		chatCmd(env),
	)
	root.AddCommand(ChatAPICommands(env)...)
	root.AddCommand(
		demoCmd(env),
		compareCmd(env),
		testnetCmd(env),
		versionCmd(env),
	)
	return root
}

// configFlags are the flags every command that reads a node config takes.
type configFlags struct {
	file            string
	set             []string
	allowUnverified bool
}

// register adds -c and --set.
func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "", "node config file (YAML or TOML)")
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "override a config key: --set layers.p2p.config.listen=/ip4/127.0.0.1/tcp/4001 (repeatable)")
}

// registerRun is register for the commands that start plugins: it adds
// --allow-unverified too.
func (f *configFlags) registerRun(cmd *cobra.Command) {
	f.register(cmd)
	cmd.Flags().BoolVar(&f.allowUnverified, "allow-unverified", false, "start plugin binaries that have no recorded checksum (development only)")
}

func (f *configFlags) load(env Env) (*config.Config, error) {
	if f.file == "" {
		return nil, fmt.Errorf("no config file: pass -c FILE (ready stacks are in configs/)")
	}
	return config.Load(config.Sources{File: f.file, Environ: env.Environ, Set: f.set})
}

// newLogger builds the host log from the config's log section.
func newLogger(cfg *config.Config, w io.Writer) hclog.Logger {
	level := hclog.LevelFromString(cfg.Log.Level)
	if strings.EqualFold(cfg.Log.Level, "off") {
		level = hclog.Off
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       cfg.Node.Name,
		Level:      level,
		JSONFormat: cfg.Log.Format == "json",
		Output:     w,
	})
}

func versionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the host version and the plugin API version it speaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "strata %s\n", versionString())
			return nil
		},
	}
}

// versionString is the host version and the plugin API version it speaks,
// as `strata version` and `strata --version` print them.
func versionString() string {
	return fmt.Sprintf("%s (plugin API v%d)", Version, sdk.ProtocolVersion)
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
