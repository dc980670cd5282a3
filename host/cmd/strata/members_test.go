package main_test

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
)

// sendMarked sends a chat payload, marked (chat.Encode), written now.
func (c *chatClient) sendMarked(t *testing.T, clock *chat.Clock, conv []byte, ct chatv1.ChatType, p *chatv1.ChatPayload) []byte {
	t.Helper()
	p.Version, p.ChatId, p.ChatType = chat.Version, conv, ct
	p.Clock, p.Timestamp = clock.Next(time.Now())
	b, err := chat.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.api.Send(t.Context(), &appv1.SendRequest{Conversation: conv, Payload: b})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.GetMessageId()
}

// until polls cond for up to 30 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// TestChatCallsThroughTheAPI: the calls a chat UI needs, through the
// API's socket of two running nodes (libp2p, none, doubleratchet): unread
// counts, receipts (delivered by the node, read on MarkRead), members
// with their roles in a 1:1 chat and in a private group the node runs
// from its events, the chat and unsupported flags of History, a chat
// payload that does not conform refused at Send, and the chat counters
// in Stats.
func TestChatCallsThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	plugins := secureStack(t)
	aliceHost := startSecureHost(t, dir, plugins, "alice")
	bobHost := startSecureHost(t, dir, plugins, "bob")
	for _, p := range []struct{ at, card string }{{aliceHost.cfg, bobHost.card}, {bobHost.cfg, aliceHost.card}} {
		if out, err := strata(t, "contact", "import", "-c", p.at, p.card); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	alice, bob := dialChat(t, aliceHost, "alice"), dialChat(t, bobHost, "bob")
	ctx := t.Context()
	dm := conversations.DirectID(alice.self, bob.self)
	const oneToOne, group = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP
	for _, p := range [][2]*chatClient{{alice, bob}, {bob, alice}} {
		if _, err := p[0].api.SetConversation(ctx, &appv1.SetConversationRequest{Id: dm, Members: [][]byte{p[1].self}}); err != nil {
			t.Fatal(err)
		}
	}
	var aliceClock, bobClock chat.Clock
	history := func(c *chatClient, conv []byte) []*appv1.Message {
		resp, err := c.api.History(ctx, &appv1.HistoryRequest{Conversation: conv})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMessages()
	}
	conversation := func(c *chatClient, id []byte) *appv1.Conversation {
		resp, err := c.api.Conversations(ctx, &appv1.ConversationsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range resp.GetConversations() {
			if bytes.Equal(cv.GetId(), id) {
				return cv
			}
		}
		return nil
	}
	receipts := func(c *chatClient, conv, id []byte) *appv1.MessageReceipts {
		resp, err := c.api.Receipts(ctx, &appv1.ReceiptsRequest{Conversation: conv, MessageIds: [][]byte{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetReceipts()) != 1 {
			return nil
		}
		return resp.GetReceipts()[0]
	}

	// The overlay may not be connected at first: send until bob has one.
	var hello []byte
	until(t, "bob receives alice's message", func() bool {
		if len(history(bob, dm)) > 0 {
			return true
		}
		hello = alice.sendMarked(t, &aliceClock, dm, oneToOne, textBody("hello bob"))
		time.Sleep(300 * time.Millisecond)
		return false
	})
	// Bob's history holds alice's messages and the delivered receipts
	// his node sent.
	fromAlice := func() []*appv1.Message {
		var out []*appv1.Message
		for _, m := range history(bob, dm) {
			if !m.GetOutgoing() {
				out = append(out, m)
			}
		}
		return out
	}
	until(t, "bob has every copy alice sent", func() bool {
		cv := conversation(bob, dm)
		return cv != nil && cv.GetUnread() == uint32(len(fromAlice()))
	})
	msgs := fromAlice()
	if m := msgs[0]; !m.GetChat() || m.GetUnsupported() != "" {
		t.Fatalf("bob's history flags a chat text as chat=%v unsupported=%q", m.GetChat(), m.GetUnsupported())
	}
	until(t, "alice sees her last message delivered to bob, 1 of 1", func() bool {
		r := receipts(alice, dm, hello)
		return r != nil && len(r.GetDeliveredTo()) == 1 && bytes.Equal(r.GetDeliveredTo()[0], bob.self) && r.GetRecipients() == 1 && len(r.GetReadBy()) == 0
	})
	read, err := bob.api.MarkRead(ctx, &appv1.MarkReadRequest{Conversation: dm})
	if err != nil || read.GetMarked() != uint32(len(msgs)) || read.GetUnread() != 0 || read.GetReceiptsSent() != 1 {
		t.Fatalf("bob's MarkRead: %v, %v (he has %d messages)", read, err, len(msgs))
	}
	if cv := conversation(bob, dm); cv.GetUnread() != 0 {
		t.Fatalf("bob's unread after MarkRead: %d", cv.GetUnread())
	}
	until(t, "alice sees it read by bob", func() bool {
		r := receipts(alice, dm, hello)
		return r != nil && len(r.GetReadBy()) == 1 && bytes.Equal(r.GetReadBy()[0], bob.self)
	})
	if _, err := bob.api.MarkRead(ctx, &appv1.MarkReadRequest{Conversation: dm, MessageId: []byte("no such message")}); status.Code(err) != codes.NotFound {
		t.Fatalf("MarkRead of an unknown message: %v, want NotFound", err)
	}

	// Members of a 1:1 chat: both, no admin.
	mem, err := alice.api.Members(ctx, &appv1.MembersRequest{Conversation: dm})
	if err != nil || mem.GetPrivateGroup() || len(mem.GetMembers()) != 2 {
		t.Fatalf("members of the 1:1 chat: %v, %v", mem, err)
	}
	for _, m := range mem.GetMembers() {
		self := bytes.Equal(m.GetIdentity(), alice.self)
		if m.GetRole() != appv1.MemberRole_MEMBER_ROLE_MEMBER || m.GetSelf() != self || (self && m.GetName() != "alice") || (!self && m.GetName() != "bob") {
			t.Fatalf("member %v", m)
		}
	}

	// A chat payload that does not conform is refused at Send and
	// SendBatch; one of an unknown content type is sent, kept, flagged.
	bad := &chatv1.ChatPayload{Version: 1, ChatId: dm, ChatType: oneToOne, ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{}}}
	bad.Clock, bad.Timestamp = aliceClock.Next(time.Now())
	badBytes, _ := chat.Encode(bad)
	if _, err := alice.api.Send(ctx, &appv1.SendRequest{Conversation: dm, Payload: badBytes}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Send of an empty chat text: %v, want InvalidArgument", err)
	}
	if _, err := alice.api.SendBatch(ctx, &appv1.SendBatchRequest{Messages: []*appv1.SendRequest{{Conversation: dm, Payload: badBytes}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SendBatch of an empty chat text: %v, want InvalidArgument", err)
	}
	future := alice.sendMarked(t, &aliceClock, dm, oneToOne, &chatv1.ChatPayload{ContentType: 42})
	until(t, "bob keeps the unsupported message, flagged", func() bool {
		for _, m := range history(bob, dm) {
			if bytes.Equal(m.GetMessageId(), future) {
				if m.GetUnsupported() != "content type 42" {
					t.Fatalf("unsupported = %q", m.GetUnsupported())
				}
				return true
			}
		}
		return false
	})

	// A private group: the node runs its events. alice creates it and
	// invites bob; bob is invited, then joins.
	g := []byte("api-group")
	if _, err := alice.api.SetConversation(ctx, &appv1.SetConversationRequest{Id: g, Members: [][]byte{bob.self}, Name: "pair"}); err != nil {
		t.Fatal(err)
	}
	until(t, "bob's node has the group", func() bool { return conversation(bob, g) != nil })
	create := &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP, Body: &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{
		Type: chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, Actor: alice.self, Members: [][]byte{bob.self}, Name: "pair"}}}
	alice.sendMarked(t, &aliceClock, g, group, create)
	roles := func(c *chatClient) map[string]appv1.MemberRole {
		resp, err := c.api.Members(ctx, &appv1.MembersRequest{Conversation: g})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]appv1.MemberRole{}
		for _, m := range resp.GetMembers() {
			out[string(m.GetIdentity())] = m.GetRole()
		}
		if resp.GetPrivateGroup() && (resp.GetGroupName() != "pair" || !bytes.Equal(resp.GetCreator(), alice.self)) {
			t.Fatalf("group %q by %x", resp.GetGroupName(), resp.GetCreator())
		}
		return out
	}
	until(t, "bob sees himself invited", func() bool {
		r := roles(bob)
		return r[string(alice.self)] == appv1.MemberRole_MEMBER_ROLE_ADMIN && r[string(bob.self)] == appv1.MemberRole_MEMBER_ROLE_INVITED
	})
	if cv := conversation(bob, g); !cv.GetPrivateGroup() {
		t.Fatal("Conversations does not mark the group a private group")
	}
	bob.sendMarked(t, &bobClock, g, group, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP, Body: &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{
		Type: chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, Actor: bob.self}}})
	until(t, "alice sees bob a member", func() bool { return roles(alice)[string(bob.self)] == appv1.MemberRole_MEMBER_ROLE_MEMBER })
	hi := bob.sendMarked(t, &bobClock, g, group, textBody("hi group"))
	until(t, "bob sees hi delivered to 1 of 1 in the group", func() bool {
		r := receipts(bob, g, hi)
		return r != nil && len(r.GetDeliveredTo()) == 1 && r.GetRecipients() == 1
	})

	st, err := bob.api.Stats(ctx, &appv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.GetMessages()["dropped_chat_text"]; !ok || st.GetMessages()["chat_unsupported"] != 1 {
		t.Fatalf("bob's message counters %v: want dropped_chat_text listed and chat_unsupported 1", st.GetMessages())
	}
}

func textBody(s string) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}}}
}
