package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
)

// demoOptions are the flags of strata demo roundtrip.
type demoOptions struct {
	pluginDir       string
	dataDir         string
	messages        int
	interval        time.Duration
	mode            string
	allowUnverified bool
	verbose         bool
	timeout         time.Duration
	// stack, when set, is a node config whose layers and plugin
	// directories both nodes use instead of the default stack.
	stack string
}

func demoCmd(env Env) *cobra.Command {
	var o chatDemoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run three users on loopback: a 1:1 chat, a private group and a public chat",
		Long: `Run three users, alice, bob and carol, on 127.0.0.1, each a node (strata run)
with its plugins as processes, and the relays the stack's privacy layer needs
(as strata testnet builds them). Through each node's messaging API, as a chat
client would, they exchange contact cards and chat: alice and bob in a 1:1
chat, all three in a private group that alice creates and bob and carol join
(membership events the nodes run), and all three in the public chat
#strata-demo where the stack has public chats (whisper, mixnet, none over
libp2p). Each writes --messages chat messages in each chat; then each marks
everything read. The demo prints each conversation as each user's client
shows it (causal order, delivered and read receipts of one's own messages)
and a summary: messages arrived, latency, receipts. It exits 0 only if every
message arrived at every other member of its chat.

The default stack is the mission's second: libp2p + mixnet + mls + bsp (a
Loopix mixnet the demo builds: an authority, 3 layers of 2 mixes and 2
providers, each a relay; MLS groups; Briar's BSP), as
configs/libp2p-mixnet-mls-bsp.yaml has it. With --stack FILE the users run
the stack of a node config instead
(its layers, plugins.dir and settings), e.g.
strata demo --stack configs/devp2p-whisper-dr-mvds.yaml; --plugins and --mode
are then ignored. The stack must be a client stack with a sync layer.

strata demo roundtrip is the two-node demo of round-trip times.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runChatDemo(cmd.Context(), env, cmd.OutOrStdout(), o)
		},
	}
	def := ""
	if exe, err := os.Executable(); err == nil {
		def = filepath.Join(filepath.Dir(exe), "plugins")
	}
	cmd.Flags().StringVar(&o.pluginDir, "plugins", def, "plugin directory")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "keep the nodes' configs, state and logs here (default: a temporary directory, removed afterwards)")
	cmd.Flags().IntVarP(&o.messages, "messages", "n", 3, "messages each user writes in each chat")
	cmd.Flags().StringVar(&o.mode, "mode", config.ModeProcess, "plugin mode of the default stack: process or inproc")
	cmd.Flags().BoolVar(&o.allowUnverified, "allow-unverified", false, "start plugin binaries that are not in the lock file")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "show the nodes' logs")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up waiting for messages after this long")
	cmd.Flags().StringVar(&o.stack, "stack", "", "run this node config's stack instead of the default one")
	cmd.AddCommand(roundTripCmd(env))
	return cmd
}

func roundTripCmd(env Env) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "roundtrip",
		Short: "Run two nodes on loopback with the default stack and time round trips",
		Long: `Run two nodes, alice and bob, on 127.0.0.1 with the default stack: libp2p +
none + doubleratchet + mvds (p2p, privacy, end-to-end encryption, data sync),
each plugin its own process. They exchange contact cards and set up a
conversation; alice sends numbered messages, bob answers each, and the demo
prints delivery, round-trip times and the host's per-boundary counters of both
nodes. MVDS runs with a 20 ms epoch here, so that round trips are short.

With --stack FILE the nodes run the stack of a node config instead (its
layers, plugins.dir and plugin settings; name, data directory, role, API,
log level and dial_contacts, on since the demo has no relays, are the
demo's), so that a plugin author can demo a layer:
strata demo roundtrip --stack configs/libp2p-whisper-dr-mvds.yaml. The stack
must be a client stack (p2p, privacy, secure, sync) whose p2p layer listens
on a port the system picks, as the stacks in configs/ do; --plugins and
--mode are then ignored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), env, cmd.OutOrStdout(), o)
		},
	}
	def := ""
	if exe, err := os.Executable(); err == nil {
		def = filepath.Join(filepath.Dir(exe), "plugins")
	}
	cmd.Flags().StringVar(&o.pluginDir, "plugins", def, "plugin directory")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "keep the nodes' state here (default: a temporary directory, removed afterwards)")
	cmd.Flags().IntVarP(&o.messages, "messages", "n", 100, "messages alice sends")
	cmd.Flags().DurationVar(&o.interval, "interval", 2*time.Millisecond, "pause between alice's messages")
	cmd.Flags().StringVar(&o.mode, "mode", config.ModeProcess, "plugin mode: process or inproc")
	cmd.Flags().BoolVar(&o.allowUnverified, "allow-unverified", false, "start plugin binaries that are not in the lock file")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "show the nodes' logs")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "give up waiting for replies after this long")
	cmd.Flags().StringVar(&o.stack, "stack", "", "run this node config's stack instead of the default one")
	return cmd
}

const demoConfig = `# Written by strata demo: one node of the demo network.
node:
  name: %[1]s
  data_dir: %[2]s
  role: client
plugins:
  dir: %[3]s
  allow_unverified: %[5]t
layers:
  p2p:
    plugin: libp2p
    mode: %[4]s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]
  privacy:
    plugin: none
    mode: %[4]s
  secure:
    plugin: doubleratchet
    mode: %[4]s
  sync:
    plugin: mvds
    mode: %[4]s
    config:
      epoch: 20ms
api:
  listen: "off"
log:
  level: %[6]s
`

func runDemo(ctx context.Context, env Env, out io.Writer, o demoOptions) error {
	if o.messages < 1 {
		return fmt.Errorf("--messages must be at least 1")
	}
	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "strata-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	level := "warn"
	if o.verbose {
		level = "info"
	}
	pluginDir, err := filepath.Abs(o.pluginDir)
	if err != nil {
		return err
	}

	type peer struct {
		name string
		node *node.Node
	}
	var (
		mu       sync.Mutex
		sentAt   = map[int]time.Time{}
		rtts     []time.Duration
		gotPings int
		allDone  = make(chan struct{})
	)
	var alice, bob peer
	load := func(name string) (*config.Config, error) {
		if o.stack != "" {
			// The demo has no relays: the two nodes dial each other, whatever
			// the stack's node.dial_contacts says (the whisper configs reach
			// contacts through relays only).
			set := []string{"node.name=" + name, "node.data_dir=" + filepath.Join(dir, name), "node.role=client", "node.dial_contacts=true", "api.listen=off", "log.level=" + level}
			if o.allowUnverified {
				set = append(set, "plugins.allow_unverified=true")
			}
			cfg, err := config.Load(config.Sources{File: o.stack, Environ: []string{}, Set: set})
			if err != nil {
				return nil, fmt.Errorf("--stack %s: %w", o.stack, err)
			}
			return cfg, nil
		}
		path := filepath.Join(dir, name+".yaml")
		text := fmt.Sprintf(demoConfig, name, filepath.Join(dir, name), pluginDir, o.mode, o.allowUnverified, level)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
		return config.Load(config.Sources{File: path, Environ: []string{}})
	}
	start := func(p *peer, deliver func(node.Delivery)) error {
		cfg, err := load(p.name)
		if err != nil {
			return err
		}
		log := hclog.New(&hclog.LoggerOptions{Name: p.name, Level: hclog.LevelFromString(level), Output: env.Stderr})
		n, err := node.New(cfg, node.Options{Catalog: env.Catalog, Logger: log, AllowUnverified: o.allowUnverified, Deliver: deliver})
		if err != nil {
			return err
		}
		if err := n.Start(ctx); err != nil {
			return err
		}
		p.node = n
		return nil
	}

	alice.name, bob.name = "alice", "bob"
	if o.stack != "" {
		fmt.Fprintf(out, "starting alice and bob on 127.0.0.1 (the stack of %s)\n", o.stack)
	} else {
		fmt.Fprintf(out, "starting alice and bob on 127.0.0.1 (libp2p + none + doubleratchet + mvds, plugins as %s)\n", o.mode)
	}
	if err := start(&alice, func(d node.Delivery) {
		i, ok := parseNumbered(d.Payload, "re: hello #")
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sentAt[i]; ok {
			rtts = append(rtts, time.Since(t))
			delete(sentAt, i)
			if len(rtts) == o.messages {
				close(allDone)
			}
		}
	}); err != nil {
		return fmt.Errorf("alice: %w", err)
	}
	defer alice.node.Close(context.Background())
	// Bob answers from his own goroutine: Deliver runs on the host's
	// history writer, which must not wait for the sync layer's Send.
	pings := make(chan node.Delivery, o.messages)
	if err := start(&bob, func(d node.Delivery) {
		if _, ok := parseNumbered(d.Payload, "hello #"); ok && d.From != nil {
			pings <- d
		}
	}); err != nil {
		return fmt.Errorf("bob: %w", err)
	}
	defer bob.node.Close(context.Background())
	replied := make(chan struct{})
	go func() {
		defer close(replied)
		for d := range pings {
			i, _ := parseNumbered(d.Payload, "hello #")
			mu.Lock()
			gotPings++
			mu.Unlock()
			reply := []byte("re: hello #" + strconv.Itoa(i))
			if _, err := bob.node.Send(ctx, d.Conversation, reply, node.SendOptions{Parents: [][]byte{d.MessageID}}); err != nil {
				fmt.Fprintln(env.Stderr, "bob could not reply:", err)
			}
		}
	}()
	defer func() { close(pings); <-replied }()

	if _, err := alice.node.AddContact(ctx, bob.node.CardText()); err != nil {
		return fmt.Errorf("alice imports bob's card: %w", err)
	}
	if _, err := bob.node.AddContact(ctx, alice.node.CardText()); err != nil {
		return fmt.Errorf("bob imports alice's card: %w", err)
	}
	fmt.Fprintf(out, "alice %s and bob %s exchanged contact cards\n", alice.node.Fingerprint(), bob.node.Fingerprint())
	if err := waitConnected(ctx, alice.node, 20*time.Second); err != nil {
		return err
	}

	// Their 1:1 conversation: alice starts it; bob's node takes it from her
	// first message (both derive its id), as a user's would.
	conversation := conversations.DirectID(alice.node.Identity(), bob.node.Identity())
	if err := alice.node.SetConversation(ctx, conversation, []ed25519.PublicKey{bob.node.Identity()}); err != nil {
		return fmt.Errorf("alice starts the conversation: %w", err)
	}
	began := time.Now()
	for i := 1; i <= o.messages; i++ {
		mu.Lock()
		sentAt[i] = time.Now()
		mu.Unlock()
		if _, err := alice.node.Send(ctx, conversation, []byte("hello #"+strconv.Itoa(i)), node.SendOptions{}); err != nil {
			return fmt.Errorf("alice sends: %w", err)
		}
		if o.interval > 0 {
			time.Sleep(o.interval)
		}
	}
	select {
	case <-allDone:
	case <-time.After(o.timeout):
	case <-ctx.Done():
		return ctx.Err()
	}
	elapsed := time.Since(began)

	mu.Lock()
	got, answered := slices.Clone(rtts), gotPings
	mu.Unlock()
	slices.Sort(got)
	fmt.Fprintf(out, "\nalice sent %d, bob received %d and replied, alice received %d replies in %v\n", o.messages, answered, len(got), elapsed.Round(time.Millisecond))
	if len(got) > 0 {
		fmt.Fprintf(out, "round trip: p50 %v  p95 %v  max %v\n", pct(got, 50), pct(got, 95), pct(got, 100))
	}
	for _, p := range []peer{alice, bob} {
		fmt.Fprintf(out, "\n%s: frames across each boundary (host counters)\n", p.name)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "boundary\tdown\tup\tbytes down\tbytes up\tdropped\t")
		for _, b := range p.node.Boundaries() {
			var dropped uint64
			for _, v := range b.Dropped {
				dropped += v
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t\n", b.Name, b.FramesDown, b.FramesUp, b.BytesDown, b.BytesUp, dropped)
		}
		w.Flush()
	}
	if len(got) != o.messages || answered != o.messages {
		return fmt.Errorf("demo incomplete: %d of %d messages and %d of %d replies arrived", answered, o.messages, len(got), o.messages)
	}
	fmt.Fprintln(out, "\ndemo ok: every message and every reply arrived")
	return nil
}

// waitConnected waits until n's overlay has at least one peer.
func waitConnected(ctx context.Context, n *node.Node, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		conn, err := n.Control("p2p")
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := p2pv1.NewControlClient(conn.Control()).Peers(cctx, &p2pv1.PeersRequest{})
			cancel()
			if err == nil && len(resp.GetPeers()) > 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not connect to its peer within %v", n.Name(), limit)
}

func parseNumbered(b []byte, prefix string) (int, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(strings.TrimSpace(string(rest)))
	return i, err == nil
}

// pct returns the p-th percentile of sorted durations (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	idx := (len(sorted)*p + 99) / 100
	if idx < 1 {
		idx = 1
	}
	return sorted[idx-1].Round(10 * time.Microsecond)
}
