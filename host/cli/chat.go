package cli

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-msg/strata/host/tui"
)

func chatCmd(env Env) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "chat [-c FILE]",
		Short: "Chat in the terminal through a running node",
		Long: `Chat in the terminal through a running node's API: the conversations on
the left, with their unread counts; the open conversation on the right, in
causal order, with a delivery mark on each message you wrote (sent,
delivered to n of m, read); an input line below. Enter sends; Tab and
Shift+Tab open the next and previous conversation; /help lists the
commands (/add CARD, /group NAME MEMBER..., /invite MEMBER..., /join NAME,
/quit). Messages are chat payloads (docs/chat.md); what does not conform
is never shown. It needs a terminal; Ctrl+C leaves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !isTerminal(cmd.OutOrStdout()) {
				return errors.New("strata chat needs a terminal: run it in one (strata send and strata listen work in scripts)")
			}
			c, done, err := f.dial(env)
			if err != nil {
				return err
			}
			defer done()
			return tui.Run(cmd.Context(), tui.APIBackend{C: c}, os.Stdin, cmd.OutOrStdout(), tui.Options{CardText: cardFromText})
		},
	}
	f.register(cmd)
	return cmd
}
