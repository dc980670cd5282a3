package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// testnetOptions are the flags of `strata testnet`.
type testnetOptions struct {
	stack           string
	nodes           int
	relays          int
	dir             string
	keep            bool
	allowUnverified bool
	set             []string
	// The mixnet's shape and epoch, for a mixnet stack (0: the defaults).
	mixLayers, mixesPerLayer, providers int
	mixEpoch                            time.Duration
}

func testnetCmd(env Env) *cobra.Command {
	var o testnetOptions
	cmd := &cobra.Command{
		Use:   "testnet -c STACK.yaml [--nodes N] [--relays K]",
		Short: "Run a local network of nodes on loopback until SIGINT or SIGTERM",
		Long: `Run a network of nodes on 127.0.0.1, all on one stack config: --nodes
clients (n0, n1, ...) and --relays relays (r0, ...; p2p and privacy only; by
default one when the stack's privacy layer provides "relayed", as whisper does). Each node is a
"strata run" process with its own config, data directory and messaging API
socket under --dir. Every client gets every other client as a contact and
keeps a connection to every relay. The command prints each node's API
endpoint and example commands, then waits for Ctrl-C and stops every node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTestnet(cmd, env, o)
		},
	}
	cmd.Flags().StringVarP(&o.stack, "config", "c", "", "the stack: a client node config (configs/*.yaml)")
	cmd.Flags().IntVar(&o.nodes, "nodes", 3, "number of client nodes")
	cmd.Flags().IntVar(&o.relays, "relays", testnet.AutoRelays, "number of relays; -1: what the stack's privacy layer needs: a whole mixnet for mixnet, one relay for a layer that provides \"relayed\" (whisper), else none")
	cmd.Flags().StringVar(&o.dir, "dir", "", "directory for the nodes' configs, data and logs (default: a temporary directory, removed at exit unless --keep)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the temporary directory at exit")
	cmd.Flags().BoolVar(&o.allowUnverified, "allow-unverified", false, "start plugin binaries that have no recorded checksum (development only)")
	cmd.Flags().StringArrayVar(&o.set, "set", nil, "override a config key on every node, as strata run --set does (repeatable)")
	cmd.Flags().IntVar(&o.mixLayers, "mix-layers", 0, fmt.Sprintf("mixnet stack: mix layers (0: %d, or the stack's layers.privacy.config.layers)", testnet.DefaultMixLayers))
	cmd.Flags().IntVar(&o.mixesPerLayer, "mixes-per-layer", 0, fmt.Sprintf("mixnet stack: mixes in each layer (0: %d)", testnet.DefaultMixesPerLayer))
	cmd.Flags().IntVar(&o.providers, "providers", 0, fmt.Sprintf("mixnet stack: providers, which the clients are spread over (0: %d)", testnet.DefaultProviders))
	cmd.Flags().DurationVar(&o.mixEpoch, "mix-epoch", 0, fmt.Sprintf("mixnet stack: epoch period, whole seconds; the testnet publishes each epoch's PKI document (0: %v, or the stack's epoch_period)", testnet.DefaultEpochPeriod))
	return cmd
}

func runTestnet(cmd *cobra.Command, env Env, o testnetOptions) error {
	if o.stack == "" {
		return fmt.Errorf("no stack config: pass -c FILE (ready stacks are in configs/)")
	}
	out := cmd.OutOrStdout()
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	dir, temp := o.dir, o.dir == ""
	if temp {
		d, err := os.MkdirTemp("", "strata-testnet-")
		if err != nil {
			return err
		}
		dir = d
	}
	cleanup := func() {
		switch {
		case temp && !o.keep:
			if err := os.RemoveAll(dir); err == nil {
				fmt.Fprintf(out, "removed %s\n", dir)
			} else {
				fmt.Fprintf(env.Stderr, "strata: %v\n", err)
			}
		default:
			fmt.Fprintf(out, "kept %s (configs, data and logs of every node)\n", dir)
		}
	}
	fmt.Fprintf(out, "starting a testnet of %d client(s) on %s in %s ...\n", o.nodes, o.stack, dir)
	net, err := testnet.Start(ctx, testnet.Options{
		Stack:           o.stack,
		Nodes:           o.nodes,
		Relays:          o.relays,
		Dir:             dir,
		AllowUnverified: o.allowUnverified,
		Set:             o.set,
		Catalog:         env.Catalog,
		Mixnet:          testnet.MixnetOptions{Layers: o.mixLayers, MixesPerLayer: o.mixesPerLayer, Providers: o.providers, EpochPeriod: o.mixEpoch},
	})
	if err != nil {
		cleanup()
		return err
	}
	closeNet := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := net.Close(cctx)
		if err == nil {
			fmt.Fprintf(out, "stopped %d node(s); no process of theirs is left\n", len(net.Clients())+len(net.Relays()))
		}
		cleanup()
		return err
	}
	if err := net.IntroduceAll(ctx); err != nil {
		return errors.Join(err, closeNet())
	}
	if err := testnetConversations(ctx, net); err != nil {
		return errors.Join(err, closeNet())
	}
	printTestnet(out, net)

	// Report a node that dies, and wait for Ctrl-C.
	died := make(chan *testnet.Member)
	for _, m := range append(net.Relays(), net.Clients()...) {
		go func() {
			select {
			case <-m.Exited():
				select {
				case died <- m:
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping the testnet ...")
			return closeNet()
		case m := <-died:
			if err := m.ExitErr(); err != nil {
				fmt.Fprintf(env.Stderr, "strata: %v\n", err)
			}
		}
	}
}

// groupConversation is the conversation of every client of a testnet.
const groupConversation = "all"

// testnetConversations creates the group of all clients on the first
// client, as a user would, and waits until its announcement has reached
// every other client's node (the 1:1 conversations need nothing: each node
// knows the one with every contact from the card's import on). Without a
// sync layer an announcement is best effort, like any message: it is made
// again every announceRetry until every member has the group.
func testnetConversations(ctx context.Context, net *testnet.Net) error {
	cs := net.Clients()
	if len(cs) < 2 {
		return nil
	}
	var others [][]byte
	for _, b := range cs[1:] {
		others = append(others, b.Identity())
	}
	announce := func() error {
		_, err := cs[0].Client().SetConversation(ctx, &appv1.SetConversationRequest{Id: []byte(groupConversation), Members: others, Name: groupConversation})
		if err != nil {
			return fmt.Errorf("testnet: %s: conversation %q: %w", cs[0].Name, groupConversation, err)
		}
		return nil
	}
	if err := announce(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	last := time.Now()
	for _, b := range cs[1:] {
		for {
			resp, err := b.Client().Conversations(ctx, &appv1.ConversationsRequest{})
			if err != nil {
				return fmt.Errorf("testnet: %s: conversations: %w", b.Name, err)
			}
			if slices.ContainsFunc(resp.GetConversations(), func(c *appv1.Conversation) bool { return string(c.GetId()) == groupConversation }) {
				break
			}
			if time.Since(last) > announceRetry {
				if err := announce(); err != nil {
					return err
				}
				last = time.Now()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testnet: the announcement of conversation %q did not reach %s", groupConversation, b.Name)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// announceRetry is how often a testnet announces its group again while a
// member has not got it.
const announceRetry = 2 * time.Second

// printTestnet prints the table of nodes and example commands.
func printTestnet(w io.Writer, net *testnet.Net) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tAPI\tFINGERPRINT\tPIDS")
	for _, m := range append(net.Relays(), net.Clients()...) {
		pids := make([]string, 0, 4)
		for _, p := range m.PIDs() {
			pids = append(pids, strconv.Itoa(p))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Role, m.API, m.Fingerprint(), strings.Join(pids, ","))
	}
	tw.Flush()

	self := "strata"
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == "strata" {
		self = os.Args[0]
	}
	cs := net.Clients()
	fmt.Fprintf(w, "\nLogs: %s/<name>.log.\n", net.Dir())
	if len(cs) >= 2 {
		a, b := cs[0], cs[1]
		fmt.Fprintf(w, "Every client has every other client as a contact, a 1:1 conversation with each\n")
		fmt.Fprintf(w, "(strata send --to NAME) and the conversation %q of all clients. Try, in another terminal:\n", groupConversation)
		fmt.Fprintf(w, "  %s listen --api %s\n", self, b.API)
		fmt.Fprintf(w, "  %s send --api %s --to %s 'hello %s'\n", self, a.API, b.Name, b.Name)
		fmt.Fprintf(w, "  %s send --api %s --conversation %s 'hello everyone'\n", self, a.API, groupConversation)
		fmt.Fprintf(w, "  %s conversation list --api %s\n", self, a.API)
	}
	fmt.Fprintln(w, "Ctrl-C stops the testnet.")
}
