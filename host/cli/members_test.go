package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
)

// chatStub answers the chat calls as a node would, and records the
// requests.
type chatStub struct {
	appv1.UnimplementedMessagingServer
	markRead *appv1.MarkReadRequest
}

var (
	stubSelf  = bytes.Repeat([]byte{1}, 32)
	stubBob   = bytes.Repeat([]byte{2}, 32)
	stubCarol = bytes.Repeat([]byte{3}, 32)
)

func (s *chatStub) Node(context.Context, *appv1.NodeRequest) (*appv1.NodeResponse, error) {
	return &appv1.NodeResponse{Name: "alice", Identity: stubSelf}, nil
}

func (s *chatStub) Contacts(context.Context, *appv1.ContactsRequest) (*appv1.ContactsResponse, error) {
	return &appv1.ContactsResponse{Contacts: []*appv1.Contact{{Identity: stubBob, Name: "bob"}, {Identity: stubCarol, Name: "carol\x1b[31m"}}}, nil
}

func (s *chatStub) Members(_ context.Context, req *appv1.MembersRequest) (*appv1.MembersResponse, error) {
	return &appv1.MembersResponse{PrivateGroup: true, GroupName: "friends", Members: []*appv1.Member{
		{Identity: stubSelf, Name: "alice", Fingerprint: "aaaa", Role: appv1.MemberRole_MEMBER_ROLE_ADMIN, Self: true},
		{Identity: stubBob, Name: "bob", Fingerprint: "bbbb", Role: appv1.MemberRole_MEMBER_ROLE_MEMBER},
		{Identity: stubCarol, Name: "carol\x1b[31m", Fingerprint: "cccc", Role: appv1.MemberRole_MEMBER_ROLE_INVITED},
	}}, nil
}

func (s *chatStub) MarkRead(_ context.Context, req *appv1.MarkReadRequest) (*appv1.MarkReadResponse, error) {
	s.markRead = req
	return &appv1.MarkReadResponse{Marked: 3, Unread: 0, ReceiptsSent: 1}, nil
}

func (s *chatStub) Conversations(context.Context, *appv1.ConversationsRequest) (*appv1.ConversationsResponse, error) {
	return &appv1.ConversationsResponse{Conversations: []*appv1.Conversation{
		{Id: []byte("friends"), Unread: 2},
		{Id: []byte("quiet")},
		{Id: bytes.Repeat([]byte{9}, 16), PublicChat: "status", Unread: 5},
	}}, nil
}

func (s *chatStub) Receipts(_ context.Context, req *appv1.ReceiptsRequest) (*appv1.ReceiptsResponse, error) {
	return &appv1.ReceiptsResponse{Receipts: []*appv1.MessageReceipts{
		{MessageId: []byte{0xab, 0xcd}, Recipients: 2, DeliveredTo: [][]byte{stubBob, stubCarol}, ReadBy: [][]byte{stubBob}},
		{MessageId: []byte{0xef}, Recipients: 2},
	}}, nil
}

// serveStub serves s on a Unix socket and returns its --api value.
func serveStub(t *testing.T, s appv1.MessagingServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	appv1.RegisterMessagingServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return "unix:" + sock
}

// TestChatAPICommands runs members, read, unread and receipts against a
// stub of the API and checks what they ask and print (remote names
// escaped).
func TestChatAPICommands(t *testing.T) {
	stub := &chatStub{}
	addr := serveStub(t, stub)
	run := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		env := Env{Stdout: &out, Stderr: &errs}
		for _, cmd := range ChatAPICommands(env) {
			if cmd.Name() != args[0] {
				continue
			}
			cmd.SetArgs(append(args[1:], "--api", addr))
			cmd.SetOut(&out)
			cmd.SetErr(&errs)
			err := cmd.ExecuteContext(t.Context())
			return out.String(), err
		}
		t.Fatalf("no command %s", args[0])
		return "", nil
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"members", "--conversation", "friends"}, []string{`private group "friends"`, "alice (this node)", "admin", "bob", "member", `carol\x1b[31m`, "invited"}},
		{[]string{"read", "--to", "bob", "--message", "abcd", "--no-receipts"}, []string{"marked 3 read, 0 unread, 1 read receipt sent"}},
		{[]string{"unread"}, []string{"friends\t2 unread", "public:status\t5 unread"}},
		{[]string{"receipts", "--conversation", "friends"}, []string{"abcd", "2/2", "bob", "ef", "0/2"}},
	}
	for _, tt := range tests {
		out, err := run(tt.args...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, w, out)
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("%v: an escape reached the terminal:\n%q", tt.args, out)
		}
		if strings.Contains(out, "quiet") {
			t.Errorf("%v: a conversation without unread messages listed:\n%s", tt.args, out)
		}
	}
	if r := stub.markRead; r == nil || !bytes.Equal(r.GetMessageId(), []byte{0xab, 0xcd}) || !r.GetNoReceipts() {
		t.Fatalf("MarkRead asked %v", r)
	}
	for _, bad := range [][]string{
		{"read"},
		{"read", "--conversation", "x", "--to", "bob"},
		{"read", "--conversation", "x", "--message", "zz"},
		{"members", "--to", "nobody"},
	} {
		if _, err := run(bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
