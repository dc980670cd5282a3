package main_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
)

// chatClient is a chat client of one running node, through its API.
type chatClient struct {
	api  appv1.MessagingClient
	self ed25519.PublicKey
}

func dialChat(t *testing.T, h *secureHost, name string) *chatClient {
	t.Helper()
	dataDir := filepath.Join(filepath.Dir(h.cfg), name)
	conn, err := api.Dial("unix:"+filepath.Join(dataDir, "host", "api.sock"), api.TokenPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &chatClient{api: appv1.NewMessagingClient(conn)}
	me, err := c.api.Node(t.Context(), &appv1.NodeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.self = me.GetIdentity()
	return c
}

// send sends a chat payload, written now with the timeline's clock.
func (c *chatClient) send(t *testing.T, tl *chat.Timeline, conv []byte, ct chatv1.ChatType, p *chatv1.ChatPayload) {
	t.Helper()
	p.Version, p.ChatId, p.ChatType = chat.Version, conv, ct
	p.Clock, p.Timestamp = tl.Next(time.Now())
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.Send(t.Context(), &appv1.SendRequest{Conversation: conv, Payload: b}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// sync feeds a timeline what the node's history holds after cursor, and
// returns the new cursor.
func (c *chatClient) sync(t *testing.T, tl *chat.Timeline, conv []byte, cursor uint64) uint64 {
	t.Helper()
	for {
		resp, err := c.api.History(t.Context(), &appv1.HistoryRequest{Conversation: conv, After: cursor, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetMessages()) == 0 {
			return cursor
		}
		for _, m := range resp.GetMessages() {
			_, _ = tl.Add(chat.FromAPI(m))
			cursor = m.GetCursor()
		}
	}
}

// waitFor syncs until cond holds.
func (c *chatClient) waitFor(t *testing.T, tl *chat.Timeline, conv []byte, cursor *uint64, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		*cursor = c.sync(t, tl, conv, *cursor)
		if cond() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: timed out; timeline: %s", what, showTimeline(tl))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func showTimeline(tl *chat.Timeline) string {
	var out []string
	for _, e := range tl.Entries() {
		s := e.Text
		if e.Message.Event != nil {
			s = e.Message.Event.Type.String()
		}
		out = append(out, s)
	}
	return fmt.Sprintf("%q (refused %v)", out, tl.Counts())
}

func textPayload(s string) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}}}
}

// TestChatThroughTheAPI: chat payloads through two running nodes
// (libp2p+none+doubleratchet), as a chat client sends and reads them
// through the messaging API. A 1:1 chat with a reply, a reaction and
// receipts (delivered to 1 of 1, read); a payload that does not conform
// is stored by the host but never shown; a private group made of
// membership events.
func TestChatThroughTheAPI(t *testing.T) {
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
	dm := conversations.DirectID(alice.self, bob.self)
	const oneToOne = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
	// As `strata send --to` does: the 1:1 conversation, set up on both sides.
	for _, p := range [][2]*chatClient{{alice, bob}, {bob, alice}} {
		if _, err := p[0].api.SetConversation(t.Context(), &appv1.SetConversationRequest{Id: dm, Members: [][]byte{p[1].self}}); err != nil {
			t.Fatal(err)
		}
	}
	aliceTL, bobTL := chat.NewTimeline(dm, alice.self, ""), chat.NewTimeline(dm, bob.self, "")
	var aliceAt, bobAt uint64

	// The overlay may not be connected at first: send until bob has one.
	deadline := time.Now().Add(30 * time.Second)
	for len(bobTL.Entries()) == 0 {
		alice.send(t, aliceTL, dm, oneToOne, textPayload("hello bob"))
		time.Sleep(300 * time.Millisecond)
		bobAt = bob.sync(t, bobTL, dm, bobAt)
		if time.Now().After(deadline) {
			t.Fatalf("bob received nothing: %s\n%s", showTimeline(bobTL), aliceHost.errs)
		}
	}
	first := bobTL.Entries()[0]
	if first.Text != "hello bob" || string(first.Author) != string(alice.self) {
		t.Fatalf("bob's first entry: %q by %x", first.Text, first.Author)
	}

	// A payload that does not conform: the host takes it, the client
	// does not show it.
	bad, _ := proto.Marshal(&chatv1.ChatPayload{Version: 1, Clock: 1, Timestamp: 1, ChatId: dm, ChatType: oneToOne,
		ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{}}})
	if _, err := alice.api.Send(t.Context(), &appv1.SendRequest{Conversation: dm, Payload: bad}); err != nil {
		t.Fatal(err)
	}
	// Bob replies, and reacts to alice's first message.
	bob.send(t, bobTL, dm, oneToOne, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_REPLY, ResponseTo: first.ID,
		Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: "hello alice"}}})
	bob.send(t, bobTL, dm, oneToOne, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_REACTION, ResponseTo: first.ID,
		Body: &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "👋"}}})
	bobAt = bob.sync(t, bobTL, dm, bobAt)
	// Bob has read alice's messages: a read receipt.
	last := bobTL.Entries()[len(bobTL.Entries())-1]
	ids := bobTL.MarkRead(last.ID)
	if len(ids) == 0 || bobTL.Unread() != 0 {
		t.Fatalf("bob's MarkRead: %d ids, %d unread", len(ids), bobTL.Unread())
	}
	bob.send(t, bobTL, dm, oneToOne, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_RECEIPT,
		Body: &chatv1.ChatPayload_Receipt{Receipt: &chatv1.Receipt{Type: chatv1.ReceiptType_RECEIPT_TYPE_READ, MessageIds: ids}}})

	alice.waitFor(t, aliceTL, dm, &aliceAt, "alice sees the reply, the reaction and the receipt", func() bool {
		for _, e := range aliceTL.Entries() {
			if string(e.ID) == string(first.ID) {
				return len(e.ReadBy) == 1 && len(e.Reactions["👋"]) == 1 && strings.Contains(showTimeline(aliceTL), "hello alice")
			}
		}
		return false
	})
	for _, e := range aliceTL.Entries() {
		if string(e.ID) == string(first.ID) && (len(e.DeliveredTo) != 1 || aliceTL.Recipients(e) != 1) {
			t.Fatalf("delivered to %d of %d", len(e.DeliveredTo), aliceTL.Recipients(e))
		}
		if e.Text == "" {
			t.Fatalf("alice shows an empty message: %s", showTimeline(aliceTL))
		}
	}
	bob.waitFor(t, bobTL, dm, &bobAt, "bob refuses the empty text", func() bool { return bobTL.Counts()[chat.ReasonText] == 1 })
	for _, e := range bobTL.Entries() {
		if e.Text == "" {
			t.Fatalf("bob shows an empty message: %s", showTimeline(bobTL))
		}
	}

	// A private group, made of membership events.
	group := []byte("chat-test-group")
	const private = chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP
	for _, c := range []*chatClient{alice, bob} {
		other := bob.self
		if c == bob {
			other = alice.self
		}
		if _, err := c.api.SetConversation(t.Context(), &appv1.SetConversationRequest{Id: group, Members: [][]byte{other}}); err != nil {
			t.Fatal(err)
		}
	}
	aliceG, bobG := chat.NewTimeline(group, alice.self, ""), chat.NewTimeline(group, bob.self, "")
	var aliceGAt, bobGAt uint64
	membership := func(t chatv1.MembershipType, actor ed25519.PublicKey, members ...[]byte) *chatv1.ChatPayload {
		return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP, Body: &chatv1.ChatPayload_Membership{
			Membership: &chatv1.MembershipEvent{Type: t, Actor: actor, Members: members, Name: map[bool]string{true: "friends"}[t == chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE]}}}
	}
	alice.send(t, aliceG, group, private, membership(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, alice.self, bob.self))
	bob.waitFor(t, bobG, group, &bobGAt, "bob sees the group created", func() bool { return bobG.Group().State().Created })
	bob.send(t, bobG, group, private, membership(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, bob.self))
	bob.send(t, bobG, group, private, textPayload("hi group"))
	alice.waitFor(t, aliceG, group, &aliceGAt, "alice sees bob join and write", func() bool {
		return strings.Contains(showTimeline(aliceG), "hi group")
	})
	s := aliceG.Group().State()
	if !s.IsMember(bob.self) || !s.IsAdmin(alice.self) || s.IsAdmin(bob.self) || s.Name != "friends" {
		t.Fatalf("alice's view of the group: %s", showTimeline(aliceG))
	}
	// Bob is removed, and what he writes after that is refused.
	alice.send(t, aliceG, group, private, membership(chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE, alice.self, bob.self))
	bob.waitFor(t, bobG, group, &bobGAt, "bob sees his removal", func() bool { return !bobG.Group().State().IsMember(bob.self) })
	bob.send(t, bobG, group, private, textPayload("still here"))
	alice.send(t, aliceG, group, private, textPayload("after the removal"))
	alice.waitFor(t, aliceG, group, &aliceGAt, "alice refuses the removed member", func() bool {
		return aliceG.Counts()[chat.ReasonRemoved] == 1
	})
	if strings.Contains(showTimeline(aliceG), "still here") {
		t.Fatalf("a removed member's message is shown: %s", showTimeline(aliceG))
	}
}
