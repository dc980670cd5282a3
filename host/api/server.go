// Package api serves the host's messaging API (core/api/app/v1) for a
// running node, on a Unix socket or a loopback TCP address, and dials it
// for the CLI (Dial).
//
// Whoever may call the API acts as the node: reads its history, sends as
// it. So:
//
//   - The Unix socket is created under umask 077 (no access for group or
//     others from its first instant) in a directory of the node's user
//     that group and others cannot write to, and every connection is
//     checked by the peer's credentials: a process of another user is
//     refused even if it got past the file's mode.
//   - On TCP, which any local user can connect to, every call must carry a
//     token that the node makes at each start (32 random bytes) and writes
//     to <data_dir>/host/api.token with mode 0600; the CLI reads it there.
//     A non-loopback address is refused by the config check.
package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/identity"
	"github.com/strata-msg/strata/host/node"
)

// maxMessage bounds a request or response on the API (a payload plus its
// envelope).
const maxMessage = 8 << 20

// Options are the choices of Listen.
type Options struct {
	// TokenFile is where a server on TCP writes the token its clients
	// must send: TokenPath of the node's data directory. Required for TCP.
	TokenFile string
	// Logger, when set, logs the connections refused on the Unix socket.
	Logger hclog.Logger
}

// Server is the messaging API of one node.
type Server struct {
	grp *grpc.Server
	lis net.Listener
	// sock is the socket file to remove at Close, if any.
	sock string
	// token is the token file to remove at Close, if any.
	token string
}

// Listen serves the API for n at network ("unix" or "tcp") and address.
func Listen(n *node.Node, network, address string, opts Options) (*Server, error) {
	return listen(&service{n: n}, network, address, opts)
}

// listen serves svc: Listen without the node.
func listen(svc appv1.MessagingServer, network, address string, opts Options) (*Server, error) {
	s := &Server{}
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage)}
	var err error
	switch network {
	case "unix":
		if s.lis, err = listenUnix(address, opts.Logger); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		s.sock = address
	case "tcp":
		if opts.TokenFile == "" {
			return nil, errors.New("api: a TCP endpoint needs a token file")
		}
		// The token is on disk before the port opens: a client that can
		// connect finds it.
		token, err := writeToken(opts.TokenFile)
		if err != nil {
			return nil, err
		}
		s.token = opts.TokenFile
		if s.lis, err = net.Listen("tcp", address); err != nil {
			os.Remove(s.token)
			return nil, fmt.Errorf("api: %w", err)
		}
		check := tokenCheck{want: []byte(token), path: opts.TokenFile}
		gopts = append(gopts, grpc.ChainUnaryInterceptor(check.unary), grpc.ChainStreamInterceptor(check.stream))
	default:
		return nil, fmt.Errorf("api: network %q is not unix or tcp", network)
	}
	s.grp = grpc.NewServer(gopts...)
	appv1.RegisterMessagingServer(s.grp, svc)
	go s.grp.Serve(s.lis) // returns when Close stops the server
	return s, nil
}

// Addr is where the server listens, in the form Dial takes.
func (s *Server) Addr() string {
	if s.sock != "" {
		return "unix:" + s.sock
	}
	return s.lis.Addr().String()
}

// Close stops the server: streams end, the socket and token files are
// removed.
func (s *Server) Close() {
	s.grp.Stop()
	if s.sock != "" {
		os.Remove(s.sock)
	}
	if s.token != "" {
		os.Remove(s.token)
	}
}

// service implements appv1.MessagingServer on a node.
type service struct {
	n *node.Node
}

func (s *service) Node(context.Context, *appv1.NodeRequest) (*appv1.NodeResponse, error) {
	resp := &appv1.NodeResponse{
		Name:        s.n.Name(),
		Identity:    s.n.Identity(),
		Fingerprint: s.n.Fingerprint(),
		Card:        s.n.CardText(),
	}
	for _, info := range s.n.Stack() {
		resp.Stack = append(resp.Stack, strings.ToLower(strings.TrimPrefix(info.GetKind().String(), "LAYER_KIND_"))+"="+info.GetName())
	}
	return resp, nil
}

func contactOf(c *contacts.Card) *appv1.Contact {
	return &appv1.Contact{Identity: c.IdentityKey, Name: c.Name, Alias: c.Alias, Fingerprint: identity.Fingerprint(c.IdentityKey)}
}

func (s *service) Contacts(ctx context.Context, _ *appv1.ContactsRequest) (*appv1.ContactsResponse, error) {
	cards, err := s.n.Contacts(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &appv1.ContactsResponse{}
	for _, c := range cards {
		resp.Contacts = append(resp.Contacts, contactOf(c))
	}
	return resp, nil
}

// AddContact implements appv1.MessagingServer. A card older than the one
// the node holds for the same identity is not taken: the call fails with
// FailedPrecondition, naming both issue times, rather than answer with
// the stored card as if the new one had been added.
func (s *service) AddContact(ctx context.Context, req *appv1.AddContactRequest) (*appv1.Contact, error) {
	text := strings.TrimSpace(req.GetCard())
	card, err := contacts.DecodeText(text)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	c, err := s.n.AddContact(ctx, text)
	if errors.Is(err, contacts.ErrStale) {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if c.Issued.After(card.Issued) {
		// The node kept the newer card it had.
		return nil, status.Errorf(codes.FailedPrecondition, "%v: this card was issued %s, the stored one %s; the stored card stays",
			contacts.ErrStale, card.Issued.UTC().Format(time.RFC3339), c.Issued.UTC().Format(time.RFC3339))
	}
	return contactOf(c), nil
}

func (s *service) SetConversation(ctx context.Context, req *appv1.SetConversationRequest) (*appv1.Conversation, error) {
	id := req.GetId()
	if len(id) == 0 {
		id = make([]byte, 16)
		rand.Read(id)
	}
	members := make([]ed25519.PublicKey, len(req.GetMembers()))
	for i, m := range req.GetMembers() {
		members[i] = m
	}
	if err := s.n.SetConversation(ctx, id, members, node.WithName(req.GetName())); err != nil {
		code := codes.InvalidArgument
		if !errors.Is(err, node.ErrUnknownContact) && !strings.Contains(err.Error(), "conversation") {
			code = codes.Internal
		}
		return nil, status.Error(code, err.Error())
	}
	convs, err := s.n.Conversations(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, c := range convs {
		if string(c.ID) == string(id) {
			return conversationOf(c), nil
		}
	}
	return nil, status.Error(codes.Internal, "the conversation was not stored")
}

// JoinPublicChat implements appv1.MessagingServer.
func (s *service) JoinPublicChat(ctx context.Context, req *appv1.JoinPublicChatRequest) (*appv1.Conversation, error) {
	c, err := s.n.JoinPublicChat(ctx, req.GetName())
	switch {
	case errors.Is(err, node.ErrNoPublicChats):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return conversationOf(c), nil
}

func conversationOf(c *conversations.Conversation) *appv1.Conversation {
	out := &appv1.Conversation{Id: c.ID, PublicChat: c.PublicChat, Name: c.Name}
	for _, m := range c.Members {
		out.Members = append(out.Members, m)
	}
	return out
}

// Conversations implements appv1.MessagingServer: the stored
// conversations, each with its unread count and whether it is a private
// group.
func (s *service) Conversations(ctx context.Context, _ *appv1.ConversationsRequest) (*appv1.ConversationsResponse, error) {
	convs, err := s.n.Conversations(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &appv1.ConversationsResponse{}
	for _, c := range convs {
		out := conversationOf(c)
		unread, err := s.n.Unread(ctx, c.ID)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		out.Unread = uint32(unread)
		if c.PublicChat == "" {
			_, group, err := s.n.Members(ctx, c.ID)
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			out.PrivateGroup = group != nil
		}
		resp.Conversations = append(resp.Conversations, out)
	}
	return resp, nil
}

// Members implements appv1.MessagingServer.
func (s *service) Members(ctx context.Context, req *appv1.MembersRequest) (*appv1.MembersResponse, error) {
	members, group, err := s.n.Members(ctx, req.GetConversation())
	if errors.Is(err, node.ErrUnknownConversation) {
		return nil, status.Error(codes.NotFound, err.Error())
	} else if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &appv1.MembersResponse{}
	if group != nil {
		resp.PrivateGroup, resp.GroupName, resp.Creator = true, group.Name, group.Creator
	}
	self := s.n.Identity()
	for _, m := range members {
		out := &appv1.Member{Identity: m.Identity, Fingerprint: identity.Fingerprint(m.Identity), Role: appv1.MemberRole_MEMBER_ROLE_MEMBER}
		switch {
		case m.Invited:
			out.Role = appv1.MemberRole_MEMBER_ROLE_INVITED
		case m.Admin:
			out.Role = appv1.MemberRole_MEMBER_ROLE_ADMIN
		}
		if m.Identity.Equal(self) {
			out.Self, out.Name = true, s.n.Name()
		} else {
			out.Name = s.n.ContactName(m.Identity)
		}
		resp.Members = append(resp.Members, out)
	}
	return resp, nil
}

// Receipts implements appv1.MessagingServer.
func (s *service) Receipts(ctx context.Context, req *appv1.ReceiptsRequest) (*appv1.ReceiptsResponse, error) {
	rs, err := s.n.Receipts(ctx, req.GetConversation(), req.GetMessageIds())
	switch {
	case errors.Is(err, node.ErrUnknownConversation):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil && len(req.GetMessageIds()) > node.MaxReceipts:
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &appv1.ReceiptsResponse{}
	for _, r := range rs {
		out := &appv1.MessageReceipts{MessageId: r.MessageID, Recipients: uint32(r.Recipients), Seen: r.Seen}
		for _, k := range r.DeliveredTo {
			out.DeliveredTo = append(out.DeliveredTo, k)
		}
		for _, k := range r.ReadBy {
			out.ReadBy = append(out.ReadBy, k)
		}
		resp.Receipts = append(resp.Receipts, out)
	}
	return resp, nil
}

// MarkRead implements appv1.MessagingServer.
func (s *service) MarkRead(ctx context.Context, req *appv1.MarkReadRequest) (*appv1.MarkReadResponse, error) {
	var id []byte
	if len(req.GetMessageId()) > 0 {
		id = req.GetMessageId()
	}
	res, err := s.n.MarkRead(ctx, req.GetConversation(), id, req.GetNoReceipts())
	resp := &appv1.MarkReadResponse{Marked: uint32(res.Marked), Unread: uint32(res.Unread), ReceiptsSent: uint32(res.Receipts)}
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, node.ErrUnknownConversation), errors.Is(err, node.ErrUnknownMessage):
		return nil, status.Error(codes.NotFound, err.Error())
	case res.Marked > 0:
		// Marked, but the receipts did not go: say so, with what was done.
		return resp, status.Error(codes.Unavailable, err.Error())
	}
	return nil, status.Error(codes.Internal, err.Error())
}

func (s *service) Send(ctx context.Context, req *appv1.SendRequest) (*appv1.SendResponse, error) {
	m, err := s.n.Send(ctx, req.GetConversation(), req.GetPayload(), node.SendOptions{Parents: req.GetParents(), Ephemeral: req.GetEphemeral()})
	if errors.Is(err, node.ErrUnknownConversation) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if errors.Is(err, node.ErrChatPayload) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		if m != nil {
			// Sent, but the history write failed: say so, with the id.
			return &appv1.SendResponse{MessageId: m.MessageID}, status.Error(codes.DataLoss, err.Error())
		}
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &appv1.SendResponse{MessageId: m.MessageID, Cursor: m.Cursor}, nil
}

func (s *service) SendBatch(ctx context.Context, req *appv1.SendBatchRequest) (*appv1.SendBatchResponse, error) {
	msgs := req.GetMessages()
	if len(msgs) > node.MaxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "a batch is at most %d messages, got %d: split it", node.MaxBatch, len(msgs))
	}
	batch := make([]node.Outgoing, len(msgs))
	for i, m := range msgs {
		if err := s.n.CheckChatPayload(m.GetConversation(), m.GetPayload()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "message %d of the batch: %v", i, err)
		}
		batch[i] = node.Outgoing{
			Conversation: m.GetConversation(),
			Payload:      m.GetPayload(),
			Options:      node.SendOptions{Parents: m.GetParents(), Ephemeral: m.GetEphemeral()},
		}
	}
	sent, err := s.n.SendBatch(ctx, batch)
	resp := &appv1.SendBatchResponse{}
	for _, m := range sent {
		resp.Results = append(resp.Results, &appv1.SendResponse{MessageId: m.MessageID, Cursor: m.Cursor})
	}
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, node.ErrUnknownConversation):
		return nil, status.Error(codes.NotFound, err.Error())
	case sent != nil:
		// Sent, but the history write failed: say so, with the ids.
		return resp, status.Error(codes.DataLoss, err.Error())
	}
	return nil, status.Error(codes.Unavailable, err.Error())
}

func (s *service) message(m *conversations.Message) *appv1.Message {
	out := &appv1.Message{
		Cursor:       m.Cursor,
		Conversation: m.Conversation,
		MessageId:    m.MessageID,
		Author:       m.Author,
		Payload:      m.Payload,
		Parents:      m.Parents,
		Outgoing:     m.Outgoing,
		TimeUnixNano: m.Time.UnixNano(),
		TraceId:      m.TraceID,
	}
	out.Chat, out.Unsupported = node.ChatFlags(m)
	if m.Outgoing {
		out.AuthorName = s.n.Name()
	} else if len(m.Author) > 0 {
		out.AuthorName = s.n.ContactName(m.Author)
	}
	return out
}

func (s *service) History(ctx context.Context, req *appv1.HistoryRequest) (*appv1.HistoryResponse, error) {
	msgs, err := s.n.History(ctx, req.GetConversation(), req.GetAfter(), int(req.GetLimit()))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &appv1.HistoryResponse{}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, s.message(m))
	}
	return resp, nil
}

func (s *service) Subscribe(req *appv1.SubscribeRequest, stream grpc.ServerStreamingServer[appv1.Message]) error {
	var conv []byte
	if len(req.GetConversation()) > 0 {
		conv = req.GetConversation()
	}
	err := s.n.Follow(stream.Context(), conv, req.GetAfter(), req.GetOutgoing(), func(m *conversations.Message) error {
		return stream.Send(s.message(m))
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// Stats implements appv1.MessagingServer.
func (s *service) Stats(context.Context, *appv1.StatsRequest) (*appv1.StatsResponse, error) {
	resp := &appv1.StatsResponse{Pid: int32(os.Getpid()), Running: s.n.Running(), Role: s.n.Role(), Messages: s.n.MessageStats()}
	resp.HeapAllocs, resp.HeapAllocBytes = sdk.HeapAllocs()
	for _, b := range s.n.Boundaries() {
		resp.Boundaries = append(resp.Boundaries, &appv1.BoundaryStats{
			Name: b.Name, FramesDown: b.FramesDown, FramesUp: b.FramesUp, BytesDown: b.BytesDown, BytesUp: b.BytesUp,
			Dropped: b.Dropped, UnknownSender: b.UnknownSender, Faults: b.Faults,
		})
	}
	for _, l := range s.n.Layers() {
		resp.Layers = append(resp.Layers, &appv1.LayerStats{
			Layer: l.Key, Plugin: l.Plugin, Mode: l.Mode, Pid: int32(l.PID), Restarts: l.Restarts, Counters: l.Counters,
		})
	}
	return resp, nil
}
