package tui

import (
	"context"
	"errors"
	"io"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// Backend is everything the UI asks of a node: the calls of the messaging
// API it uses, and nothing else. APIBackend is the one on a node's API;
// tests drive the UI with a fake. A call the API gains later (members with
// their role, read state) becomes a method here.
type Backend interface {
	// Node describes the local node.
	Node(ctx context.Context) (*appv1.NodeResponse, error)
	// Contacts lists the node's contacts.
	Contacts(ctx context.Context) ([]*appv1.Contact, error)
	// AddContact imports a contact card (text or QR form).
	AddContact(ctx context.Context, card string) (*appv1.Contact, error)
	// Conversations lists the node's conversations.
	Conversations(ctx context.Context) ([]*appv1.Conversation, error)
	// SetConversation creates a conversation or changes its members.
	SetConversation(ctx context.Context, req *appv1.SetConversationRequest) (*appv1.Conversation, error)
	// JoinPublicChat joins the public chat of a name.
	JoinPublicChat(ctx context.Context, name string) (*appv1.Conversation, error)
	// Send sends a payload to a conversation and returns the message id;
	// parents are ids of messages it depends on (with a sync layer only).
	Send(ctx context.Context, conversation, payload []byte, parents [][]byte) ([]byte, error)
	// History returns up to limit stored messages after the cursor, in
	// cursor order, the node's own included.
	History(ctx context.Context, after uint64, limit uint32) ([]*appv1.Message, error)
	// Subscribe calls each for every message after the cursor, the node's
	// own included, in cursor order, as the node takes them; it returns
	// when ctx ends (nil), each fails, or the stream does.
	Subscribe(ctx context.Context, after uint64, each func(*appv1.Message) error) error
	// Members returns a conversation's members with their roles (a
	// private group's as its membership events make them).
	Members(ctx context.Context, conversation []byte) (*appv1.MembersResponse, error)
	// Receipts returns what the receipts say of the newest chat messages
	// of a conversation, and which ones the user marked read.
	Receipts(ctx context.Context, conversation []byte) ([]*appv1.MessageReceipts, error)
	// MarkRead marks a conversation's chat messages read up to and
	// including upTo; the node sends the read receipts.
	MarkRead(ctx context.Context, conversation, upTo []byte) (*appv1.MarkReadResponse, error)
}

// APIBackend is a Backend on a node's messaging API.
type APIBackend struct {
	C appv1.MessagingClient
}

// Node implements Backend.
func (b APIBackend) Node(ctx context.Context) (*appv1.NodeResponse, error) {
	return b.C.Node(ctx, &appv1.NodeRequest{})
}

// Contacts implements Backend.
func (b APIBackend) Contacts(ctx context.Context) ([]*appv1.Contact, error) {
	resp, err := b.C.Contacts(ctx, &appv1.ContactsRequest{})
	return resp.GetContacts(), err
}

// AddContact implements Backend.
func (b APIBackend) AddContact(ctx context.Context, card string) (*appv1.Contact, error) {
	return b.C.AddContact(ctx, &appv1.AddContactRequest{Card: card})
}

// Conversations implements Backend.
func (b APIBackend) Conversations(ctx context.Context) ([]*appv1.Conversation, error) {
	resp, err := b.C.Conversations(ctx, &appv1.ConversationsRequest{})
	return resp.GetConversations(), err
}

// SetConversation implements Backend.
func (b APIBackend) SetConversation(ctx context.Context, req *appv1.SetConversationRequest) (*appv1.Conversation, error) {
	return b.C.SetConversation(ctx, req)
}

// JoinPublicChat implements Backend.
func (b APIBackend) JoinPublicChat(ctx context.Context, name string) (*appv1.Conversation, error) {
	return b.C.JoinPublicChat(ctx, &appv1.JoinPublicChatRequest{Name: name})
}

// Send implements Backend.
func (b APIBackend) Send(ctx context.Context, conversation, payload []byte, parents [][]byte) ([]byte, error) {
	resp, err := b.C.Send(ctx, &appv1.SendRequest{Conversation: conversation, Payload: payload, Parents: parents})
	return resp.GetMessageId(), err
}

// History implements Backend.
func (b APIBackend) History(ctx context.Context, after uint64, limit uint32) ([]*appv1.Message, error) {
	resp, err := b.C.History(ctx, &appv1.HistoryRequest{After: after, Limit: limit})
	return resp.GetMessages(), err
}

// Subscribe implements Backend.
func (b APIBackend) Subscribe(ctx context.Context, after uint64, each func(*appv1.Message) error) error {
	stream, err := b.C.Subscribe(ctx, &appv1.SubscribeRequest{After: after, Outgoing: true})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			return errors.New("the node ended the stream")
		case err != nil:
			return err
		}
		if err := each(m); err != nil {
			return err
		}
	}
}

// Members implements Backend.
func (b APIBackend) Members(ctx context.Context, conversation []byte) (*appv1.MembersResponse, error) {
	return b.C.Members(ctx, &appv1.MembersRequest{Conversation: conversation})
}

// Receipts implements Backend.
func (b APIBackend) Receipts(ctx context.Context, conversation []byte) ([]*appv1.MessageReceipts, error) {
	resp, err := b.C.Receipts(ctx, &appv1.ReceiptsRequest{Conversation: conversation})
	return resp.GetReceipts(), err
}

// MarkRead implements Backend.
func (b APIBackend) MarkRead(ctx context.Context, conversation, upTo []byte) (*appv1.MarkReadResponse, error) {
	return b.C.MarkRead(ctx, &appv1.MarkReadRequest{Conversation: conversation, MessageId: upTo})
}
