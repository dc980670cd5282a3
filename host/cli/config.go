package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/node"
)

func configCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with node configs"}
	var flags configFlags
	check := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Check a config and every plugin section in it, without starting the node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(env)
			if err != nil {
				return err
			}
			n, err := node.New(cfg, node.Options{Catalog: env.Catalog, AllowUnverified: flags.allowUnverified})
			if err != nil {
				return err
			}
			if err := n.Check(cmd.Context()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: ok (node %s, role %s)\n", flags.file, cfg.Node.Name, cfg.Node.Role)
			for _, info := range n.Stack() {
				fmt.Fprintf(out, "  %-8s %s %s (%s)\n", sdk.KindName(info.GetKind()), info.GetName(), info.GetVersion(), cfg.Layers[sdk.KindName(info.GetKind())].Mode)
			}
			return nil
		},
	}
	flags.registerRun(check)
	cmd.AddCommand(check)
	return cmd
}
