package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/conversations"
)

// apiFlags locate a running node's messaging API: its config (api.listen,
// or the default socket in its data directory), or --api. On TCP, the
// node's token is read from its data directory (or --api-token).
type apiFlags struct {
	configFlags
	api   string
	token string
}

func (f *apiFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
	cmd.Flags().StringVar(&f.api, "api", "", "the node's API endpoint (unix:/path or 127.0.0.1:port); default: from the config")
	cmd.Flags().StringVar(&f.token, "api-token", "", "the token file of a node's API on TCP; default: <node.data_dir>/host/"+api.TokenFileName+" from the config")
}

// dial connects to the node's API.
func (f *apiFlags) dial(env Env) (appv1.MessagingClient, func(), error) {
	target, tokenFile := f.api, f.token
	if target == "" || (tokenFile == "" && f.file != "" && !strings.HasPrefix(target, "unix:")) {
		cfg, err := f.load(env)
		if err != nil {
			return nil, nil, err
		}
		if target == "" {
			network, addr := cfg.APIEndpoint()
			switch network {
			case "":
				return nil, nil, fmt.Errorf("the node's API is off (api.listen: off)")
			case "unix":
				target = "unix:" + addr
			default:
				target = addr
			}
		}
		if tokenFile == "" {
			tokenFile = api.TokenPath(cfg.Node.DataDir)
		}
	}
	conn, err := api.Dial(target, tokenFile)
	if err != nil {
		return nil, nil, err
	}
	return appv1.NewMessagingClient(conn), func() { conn.Close() }, nil
}

// callTimeout bounds the calls of one command to the node's API.
const callTimeout = 30 * time.Second

// call dials the node's API, runs do with a context that callTimeout
// bounds, and hangs up.
func (f *apiFlags) call(cmd *cobra.Command, env Env, do func(ctx context.Context, c appv1.MessagingClient) error) error {
	c, done, err := f.dial(env)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
	defer cancel()
	return do(ctx, c)
}

// resolveContact finds a contact by alias, name, fingerprint or hex key.
func resolveContact(ctx context.Context, c appv1.MessagingClient, ref string) (*appv1.Contact, error) {
	resp, err := c.Contacts(ctx, &appv1.ContactsRequest{})
	if err != nil {
		return nil, err
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	var found []*appv1.Contact
	for _, ct := range resp.GetContacts() {
		if ct.GetAlias() == ref || ct.GetName() == ref || norm(ct.GetFingerprint()) == norm(ref) || hex.EncodeToString(ct.GetIdentity()) == strings.ToLower(ref) {
			found = append(found, ct)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no contact %q (strata contact list shows them)", ref)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%q names %d contacts; use the fingerprint", ref, len(found))
	}
}

// conversationID turns a conversation given on the command line into its
// bytes: "hex:..." for raw bytes, "public:NAME" for a public chat,
// otherwise the text itself.
func conversationID(s string) ([]byte, error) {
	if h, ok := strings.CutPrefix(s, "hex:"); ok {
		return hex.DecodeString(h)
	}
	if name, ok := strings.CutPrefix(s, "public:"); ok && name != "" {
		return conversations.PublicChatID(name), nil
	}
	if s == "" {
		return nil, errors.New("empty conversation id")
	}
	return []byte(s), nil
}

// showID prints an id as text when that text is safe to print and reads
// back as the same id (see conversationID), else as hex:...
func showID(b []byte) string {
	if len(b) > 0 && utf8.Valid(b) && !bytes.HasPrefix(b, []byte("hex:")) && !bytes.HasPrefix(b, []byte("public:")) &&
		escapeText(string(b)) == string(b) {
		return string(b)
	}
	return "hex:" + hex.EncodeToString(b)
}

func sendCmd(env Env) *cobra.Command {
	var f apiFlags
	var to, conv string
	var parents []string
	var ephemeral, lines bool
	cmd := &cobra.Command{
		Use:   "send [-c FILE] (--to CONTACT | --conversation ID) MESSAGE...",
		Short: "Send a message through a running node",
		Long: `Send a message through a running node's API. --to sends to one contact, in
the 1:1 conversation both sides derive from their identities (created on
first use); --conversation sends to a conversation made with
"strata conversation create". The message is the arguments joined by
spaces, or standard input when the only argument is "-". Prints the
message id. With --lines and "-", every line of standard input is a message
of its own: they are sent in batches (the API's SendBatch, one durable
commit per batch with a sync layer), and their ids printed one per line.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (to == "") == (conv == "") {
				return errors.New("give exactly one of --to and --conversation")
			}
			if lines && (len(args) != 1 || args[0] != "-") {
				return errors.New("--lines reads the messages from standard input: give \"-\" as the only argument")
			}
			payload := []byte(strings.Join(args, " "))
			if len(args) == 1 && args[0] == "-" && !lines {
				var err error
				if payload, err = io.ReadAll(io.LimitReader(os.Stdin, 4<<20)); err != nil {
					return err
				}
			}
			return f.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
				var id []byte
				var err error
				if to != "" {
					ct, err := resolveContact(ctx, c, to)
					if err != nil {
						return err
					}
					me, err := c.Node(ctx, &appv1.NodeRequest{})
					if err != nil {
						return err
					}
					id = conversations.DirectID(me.GetIdentity(), ct.GetIdentity())
					if _, err := c.SetConversation(ctx, &appv1.SetConversationRequest{Id: id, Members: [][]byte{ct.GetIdentity()}}); err != nil {
						return err
					}
				} else if id, err = conversationID(conv); err != nil {
					return err
				}
				var rawParents [][]byte
				for _, p := range parents {
					b, err := hex.DecodeString(p)
					if err != nil {
						return fmt.Errorf("--parent %q: not hex", p)
					}
					rawParents = append(rawParents, b)
				}
				if lines {
					return sendLines(cmd.Context(), c, os.Stdin, cmd.OutOrStdout(), &appv1.SendRequest{Conversation: id, Parents: rawParents, Ephemeral: ephemeral})
				}
				req := &appv1.SendRequest{Conversation: id, Payload: payload, Ephemeral: ephemeral, Parents: rawParents}
				resp, err := c.Send(ctx, req)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%x\n", resp.GetMessageId())
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "a contact: alias, name, fingerprint or hex identity")
	cmd.Flags().StringVar(&conv, "conversation", "", "a conversation id (text, or hex:...)")
	cmd.Flags().StringArrayVar(&parents, "parent", nil, "id (hex) of a message this one depends on (repeatable)")
	cmd.Flags().BoolVar(&ephemeral, "ephemeral", false, "not stored or retransmitted by the sync layer")
	cmd.Flags().BoolVar(&lines, "lines", false, `with "-": each line of standard input is a message, sent in batches`)
	return cmd
}

// linesBatch is how many lines `strata send --lines` sends per SendBatch,
// and linesWait how long it waits for the next line before it sends a
// batch that is not full.
const (
	linesBatch = 256
	linesWait  = 5 * time.Millisecond
)

// sendLines sends every line of in (without its newline; empty lines are
// skipped) as a message like tmpl, in batches of linesBatch, and prints
// each message's id on a line of out. A batch is sent once it is full or
// when no further line comes within linesWait, so lines typed or piped
// slowly go out as they come.
func sendLines(ctx context.Context, c appv1.MessagingClient, in io.Reader, out io.Writer, tmpl *appv1.SendRequest) error {
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			select {
			case lines <- bytes.Clone(sc.Bytes()):
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	flush := func(batch []*appv1.SendRequest) error {
		if len(batch) == 0 {
			return nil
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		resp, err := c.SendBatch(sctx, &appv1.SendBatchRequest{Messages: batch})
		if err != nil {
			return err
		}
		for _, r := range resp.GetResults() {
			fmt.Fprintf(out, "%x\n", r.GetMessageId())
		}
		return nil
	}
	var batch []*appv1.SendRequest
	for {
		var line []byte
		var ok bool
		if len(batch) == 0 {
			line, ok = <-lines
		} else {
			select {
			case line, ok = <-lines:
			case <-time.After(linesWait):
				if err := flush(batch); err != nil {
					return err
				}
				batch = batch[:0]
				continue
			}
		}
		if !ok {
			if err := flush(batch); err != nil {
				return err
			}
			select {
			case err := <-readErr:
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
			default:
			}
			return ctx.Err()
		}
		batch = append(batch, &appv1.SendRequest{Conversation: tmpl.GetConversation(), Payload: line, Parents: tmpl.GetParents(), Ephemeral: tmpl.GetEphemeral()})
		if len(batch) == linesBatch {
			if err := flush(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
}

func listenCmd(env Env) *cobra.Command {
	var f apiFlags
	var conv string
	var after uint64
	var outgoing, asJSON, noFollow bool
	cmd := &cobra.Command{
		Use:   "listen [-c FILE] [--conversation ID] [--after CURSOR]",
		Short: "Print the messages a running node receives",
		Long: `Print a running node's messages in history order: first the stored ones
after --after, then each new one as it arrives, until interrupted or until
the node stops (then it prints "node stopped" on standard error and exits
0). Each line starts with the message's cursor: pass the last one seen as
--after to resume without missing or repeating a message.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := f.dial(env)
			if err != nil {
				return err
			}
			defer done()
			var id []byte
			if conv != "" {
				if id, err = conversationID(conv); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			var who *names
			if !asJSON {
				if who, err = newNames(cmd.Context(), c); err != nil {
					return err
				}
			}
			print := func(m *appv1.Message) error {
				if asJSON {
					line, err := json.Marshal(map[string]any{
						"cursor": m.GetCursor(), "conversation": showID(m.GetConversation()), "id": hex.EncodeToString(m.GetMessageId()),
						"author": hex.EncodeToString(m.GetAuthor()), "author_name": m.GetAuthorName(), "payload": string(m.GetPayload()),
						"outgoing": m.GetOutgoing(), "time": time.Unix(0, m.GetTimeUnixNano()).UTC().Format(time.RFC3339Nano),
					})
					if err != nil {
						return err
					}
					_, err = out.Write(append(jsonLine(line), '\n'))
					return err
				}
				author := m.GetAuthor()
				if m.GetOutgoing() && len(author) == 0 {
					author = who.self
				}
				// Every field but the cursor is remote text, escaped: a
				// payload cannot end its line or add one of its own.
				_, err := fmt.Fprintf(out, "%d\t%s\t%s\t%s\n", m.GetCursor(), showID(m.GetConversation()),
					who.show(cmd.Context(), author, m.GetAuthorName()), escapeText(string(m.GetPayload())))
				return err
			}
			if noFollow {
				for {
					resp, err := c.History(cmd.Context(), &appv1.HistoryRequest{Conversation: id, After: after})
					if err != nil {
						return err
					}
					for _, m := range resp.GetMessages() {
						after = m.GetCursor()
						if m.GetOutgoing() && !outgoing {
							continue
						}
						if err := print(m); err != nil {
							return err
						}
					}
					if len(resp.GetMessages()) == 0 {
						return nil
					}
				}
			}
			stream, err := c.Subscribe(cmd.Context(), &appv1.SubscribeRequest{Conversation: id, After: after, Outgoing: outgoing})
			if err != nil {
				// A node that answered for the names and is gone now
				// stopped in between; without a call before (--json) an
				// unreachable node is an error.
				if who != nil && status.Code(err) == codes.Unavailable {
					fmt.Fprintln(cmd.ErrOrStderr(), "node stopped")
					return nil
				}
				return err
			}
			for {
				m, err := stream.Recv()
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					if nodeStopped(err) {
						fmt.Fprintln(cmd.ErrOrStderr(), "node stopped")
						return nil
					}
					return fmt.Errorf("listen: %w", err)
				}
				if err := print(m); err != nil {
					return err
				}
			}
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&conv, "conversation", "", "only this conversation (text, or hex:...)")
	cmd.Flags().Uint64Var(&after, "after", 0, "start after this cursor")
	cmd.Flags().BoolVar(&outgoing, "outgoing", false, "include the messages this node sent")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	cmd.Flags().BoolVar(&noFollow, "no-follow", false, "print the stored messages and exit")
	return cmd
}

// nodeStopped reports whether err, from a stream of the node's API, means
// that the node went away: the stream ended, or the connection closed.
func nodeStopped(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable
}

func conversationCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "conversation", Short: "Create, join and list a running node's conversations"}
	var cf apiFlags
	var members []string
	create := &cobra.Command{
		Use:   "create [-c FILE] ID --member CONTACT...",
		Short: "Create a conversation (or change its members); every member must create it too",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := conversationID(args[0])
			if err != nil {
				return err
			}
			return cf.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
				req := &appv1.SetConversationRequest{Id: id}
				for _, m := range members {
					ct, err := resolveContact(ctx, c, m)
					if err != nil {
						return err
					}
					req.Members = append(req.Members, ct.GetIdentity())
				}
				conv, err := c.SetConversation(ctx, req)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d members\n", showID(conv.GetId()), len(conv.GetMembers()))
				return nil
			})
		},
	}
	cf.register(create)
	create.Flags().StringArrayVar(&members, "member", nil, "a member: alias, name, fingerprint or hex identity (repeatable; the node itself is always one)")
	var lf apiFlags
	list := &cobra.Command{
		Use:   "list [-c FILE]",
		Short: "List conversations and their members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lf.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
				resp, err := c.Conversations(ctx, &appv1.ConversationsRequest{})
				if err != nil {
					return err
				}
				cts, err := c.Contacts(ctx, &appv1.ContactsRequest{})
				if err != nil {
					return err
				}
				me, err := c.Node(ctx, &appv1.NodeRequest{})
				if err != nil {
					return err
				}
				who := namesOf(me, cts.GetContacts())
				for _, conv := range resp.GetConversations() {
					if conv.GetPublicChat() != "" {
						fmt.Fprintf(cmd.OutOrStdout(), "public:%s\tpublic chat\n", escapeText(conv.GetPublicChat()))
						continue
					}
					var names []string
					for _, m := range conv.GetMembers() {
						names = append(names, who.member(ctx, m))
					}
					slices.Sort(names)
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", showID(conv.GetId()), strings.Join(names, ", "))
				}
				return nil
			})
		},
	}
	lf.register(list)
	var jf apiFlags
	join := &cobra.Command{
		Use:   "join [-c FILE] NAME",
		Short: "Join a public chat; send to it and listen to it as public:NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return jf.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
				conv, err := c.JoinPublicChat(ctx, &appv1.JoinPublicChatRequest{Name: args[0]})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "joined public:%s (%s)\n", escapeText(conv.GetPublicChat()), showID(conv.GetId()))
				return nil
			})
		},
	}
	jf.register(join)
	cmd.AddCommand(create, list, join)
	return cmd
}
