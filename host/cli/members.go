package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// ChatAPICommands returns the commands over the messaging API's chat
// calls (docs/messaging-api.md): strata members, read, unread and
// receipts.
func ChatAPICommands(env Env) []*cobra.Command {
	return []*cobra.Command{membersCmd(env), readCmd(env), unreadCmd(env), receiptsCmd(env)}
}

// convFlags name one conversation: --conversation ID or --to CONTACT.
type convFlags struct {
	apiFlags
	conversation string
	to           string
}

func (f *convFlags) register(cmd *cobra.Command) {
	f.apiFlags.register(cmd)
	cmd.Flags().StringVar(&f.conversation, "conversation", "", "the conversation: its id, hex:..., or public:NAME")
	cmd.Flags().StringVar(&f.to, "to", "", "the 1:1 conversation with this contact (alias, name, fingerprint or hex identity)")
}

// resolve returns the conversation's id.
func (f *convFlags) resolve(ctx context.Context, c appv1.MessagingClient) ([]byte, error) {
	switch {
	case f.conversation != "" && f.to != "":
		return nil, errors.New("give --conversation or --to, not both")
	case f.conversation != "":
		return conversationID(f.conversation)
	case f.to != "":
		ct, err := resolveContact(ctx, c, f.to)
		if err != nil {
			return nil, err
		}
		me, err := c.Node(ctx, &appv1.NodeRequest{})
		if err != nil {
			return nil, err
		}
		return conversations.DirectID(me.GetIdentity(), ct.GetIdentity()), nil
	}
	return nil, errors.New("which conversation? --conversation ID or --to CONTACT")
}

// run dials the API and runs do on the named conversation.
func (f *convFlags) run(cmd *cobra.Command, env Env, do func(ctx context.Context, c appv1.MessagingClient, conv []byte, out io.Writer) error) error {
	return f.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
		conv, err := f.resolve(ctx, c)
		if err != nil {
			return err
		}
		return do(ctx, c, conv, cmd.OutOrStdout())
	})
}

var roleNames = map[appv1.MemberRole]string{
	appv1.MemberRole_MEMBER_ROLE_MEMBER:  "member",
	appv1.MemberRole_MEMBER_ROLE_ADMIN:   "admin",
	appv1.MemberRole_MEMBER_ROLE_INVITED: "invited",
}

func membersCmd(env Env) *cobra.Command {
	var f convFlags
	cmd := &cobra.Command{
		Use:   "members [-c FILE] (--conversation ID | --to CONTACT)",
		Short: "List a conversation's members and their roles (admin, member, invited)",
		Long: `List a conversation's members. In a private group (a conversation whose
chat membership events the node runs) they are as the events make them:
admins, members, and those invited who have not joined; elsewhere every
member is a member.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, env, func(ctx context.Context, c appv1.MessagingClient, conv []byte, out io.Writer) error {
				resp, err := c.Members(ctx, &appv1.MembersRequest{Conversation: conv})
				if err != nil {
					return err
				}
				if resp.GetPrivateGroup() {
					fmt.Fprintf(out, "private group %q\n", escapeText(resp.GetGroupName()))
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "MEMBER\tFINGERPRINT\tROLE")
				for _, m := range resp.GetMembers() {
					name := escapeText(m.GetName())
					if name == "" {
						name = "-"
					}
					if m.GetSelf() {
						name += " (this node)"
					}
					role := roleNames[m.GetRole()]
					if role == "" {
						role = m.GetRole().String()
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", name, m.GetFingerprint(), role)
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	return cmd
}

func readCmd(env Env) *cobra.Command {
	var f convFlags
	var message string
	var noReceipts bool
	cmd := &cobra.Command{
		Use:   "read [-c FILE] (--conversation ID | --to CONTACT) [--message ID] [--no-receipts]",
		Short: "Mark a conversation's chat messages read, and send read receipts",
		Long: `Mark the chat messages of a conversation read, up to the last one or up to
--message ID (hex, as strata listen --json shows it), and send a read
receipt for those newly marked to the chat (1:1 chats and private groups;
--no-receipts sends none). The mark is kept across restarts of the node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id []byte
			if message != "" {
				var err error
				if id, err = hex.DecodeString(message); err != nil || len(id) == 0 {
					return fmt.Errorf("--message %q: a message id in hex", message)
				}
			}
			return f.run(cmd, env, func(ctx context.Context, c appv1.MessagingClient, conv []byte, out io.Writer) error {
				resp, err := c.MarkRead(ctx, &appv1.MarkReadRequest{Conversation: conv, MessageId: id, NoReceipts: noReceipts})
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: marked %d read, %d unread, %d read receipt%s sent\n", showID(conv), resp.GetMarked(), resp.GetUnread(), resp.GetReceiptsSent(), plural(int(resp.GetReceiptsSent())))
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&message, "message", "", "mark up to this message (hex id); default: the last one")
	cmd.Flags().BoolVar(&noReceipts, "no-receipts", false, "send no read receipts")
	return cmd
}

func unreadCmd(env Env) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "unread [-c FILE]",
		Short: "List the conversations with unread chat messages, and how many",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, env, func(ctx context.Context, c appv1.MessagingClient) error {
				resp, err := c.Conversations(ctx, &appv1.ConversationsRequest{})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				found := false
				for _, conv := range resp.GetConversations() {
					if conv.GetUnread() == 0 {
						continue
					}
					found = true
					id := showID(conv.GetId())
					if conv.GetPublicChat() != "" {
						id = "public:" + escapeText(conv.GetPublicChat())
					}
					fmt.Fprintf(out, "%s\t%d unread\n", id, conv.GetUnread())
				}
				if !found {
					fmt.Fprintln(out, "no unread messages")
				}
				return nil
			})
		},
	}
	f.register(cmd)
	return cmd
}

func receiptsCmd(env Env) *cobra.Command {
	var f convFlags
	var messages []string
	cmd := &cobra.Command{
		Use:   "receipts [-c FILE] (--conversation ID | --to CONTACT) [--message ID...]",
		Short: "Show what the delivery and read receipts say of chat messages",
		Long: `Show, for each chat message of a conversation (the newest 1000, or those
named with --message, hex ids), to how many of its recipients it was
delivered and who read it: "delivered 2/3" and the names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &appv1.ReceiptsRequest{}
			for _, m := range messages {
				id, err := hex.DecodeString(m)
				if err != nil || len(id) == 0 {
					return fmt.Errorf("--message %q: a message id in hex", m)
				}
				req.MessageIds = append(req.MessageIds, id)
			}
			return f.run(cmd, env, func(ctx context.Context, c appv1.MessagingClient, conv []byte, out io.Writer) error {
				req.Conversation = conv
				resp, err := c.Receipts(ctx, req)
				if err != nil {
					return err
				}
				who, err := newNames(ctx, c)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "MESSAGE\tDELIVERED\tREAD BY")
				for _, r := range resp.GetReceipts() {
					var readers []string
					for _, k := range r.GetReadBy() {
						readers = append(readers, who.member(ctx, k))
					}
					read := strings.Join(readers, ", ")
					if read == "" {
						read = "-"
					}
					delivered := fmt.Sprintf("%d/%d", len(r.GetDeliveredTo()), r.GetRecipients())
					if r.GetRecipients() == 0 {
						delivered = "-" // a public chat: no receipts
					}
					fmt.Fprintf(w, "%x\t%s\t%s\n", r.GetMessageId(), delivered, read)
				}
				return w.Flush()
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&messages, "message", nil, "a message id in hex (repeatable); default: the newest 1000")
	return cmd
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
