package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
)

// chatter writes chat payloads for one node.
type chatter struct {
	*fullNode
	clock chat.Clock
}

// payload encodes a chat payload for conv, written now.
func (c *chatter) payload(t *testing.T, conv []byte, kind chatv1.ChatType, p *chatv1.ChatPayload) []byte {
	t.Helper()
	p.Version, p.ChatId, p.ChatType = chat.Version, conv, kind
	p.Clock, p.Timestamp = c.clock.Next(time.Now())
	b, err := chat.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send sends a chat payload through Node.Send.
func (c *chatter) send(t *testing.T, conv []byte, kind chatv1.ChatType, p *chatv1.ChatPayload) []byte {
	t.Helper()
	m, err := c.Send(context.Background(), conv, c.payload(t, conv, kind, p), node.SendOptions{})
	if err != nil {
		t.Fatalf("%s sends: %v", c.Name(), err)
	}
	return m.MessageID
}

func textBody(s string) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}}}
}

func eventBody(t chatv1.MembershipType, actor ed25519.PublicKey, members ...ed25519.PublicKey) *chatv1.ChatPayload {
	ev := &chatv1.MembershipEvent{Type: t, Actor: actor}
	for _, m := range members {
		ev.Members = append(ev.Members, m)
	}
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP, Body: &chatv1.ChatPayload_Membership{Membership: ev}}
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedIDs returns the ids of n's history of conv.
func storedIDs(t *testing.T, n *node.Node, conv []byte) map[string]*conversations.Message {
	t.Helper()
	msgs, err := n.History(context.Background(), conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*conversations.Message{}
	for _, m := range msgs {
		out[string(m.MessageID)] = m
	}
	return out
}

func memberState(t *testing.T, n *node.Node, conv []byte) map[string]string {
	t.Helper()
	ms, _, err := n.Members(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		s := "member"
		switch {
		case m.Invited:
			s = "invited"
		case m.Admin:
			s = "admin"
		}
		out[string(m.Identity)] = s
	}
	return out
}

// reaches sends probes from one node in conv until one is in the other's
// history (each waited for 2 s), for at most 30 s.
func reaches(t *testing.T, from, to *chatter, conv []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for try := 0; ; try++ {
		id := from.send(t, conv, chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP, textBody(fmt.Sprintf("probe %d", try)))
		for wait := time.Now().Add(2 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			if storedIDs(t, to.Node, conv)[string(id)] != nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s's messages reach %s", from.Name(), to.Name())
		}
	}
}

// TestNodeRunsChat: three nodes on the full stack (libp2p, none,
// doubleratchet, mvds; in process). A 1:1 chat with delivered and read
// receipts and read state; a payload that does not conform refused and
// counted, an unknown content type kept and flagged, raw bytes stored as
// before; a private group whose members follow its events, in which a
// forged event and a removed member's message are refused and counted.
func TestNodeRunsChat(t *testing.T) {
	dir := t.TempDir()
	var nodes []*fullNode
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, startFull(t, fullCfg(t, dir, name, config.ModeInProc, ""), nil))
	}
	logOnFailure(t, nodes...)
	ctx := context.Background()
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				if _, err := x.AddContact(ctx, y.CardText()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, x := range nodes {
		waitPeers(t, x.Node, 2)
	}
	a, b, c := &chatter{fullNode: nodes[0]}, &chatter{fullNode: nodes[1]}, &chatter{fullNode: nodes[2]}
	oneToOne, group := chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP

	// 1:1: a writes to b; b's node sends a delivered receipt by itself.
	dm := conversations.DirectID(a.Identity(), b.Identity())
	if err := a.SetConversation(ctx, dm, []ed25519.PublicKey{b.Identity()}); err != nil {
		t.Fatal(err)
	}
	hi := a.send(t, dm, oneToOne, textBody("hi b"))
	eventually(t, "b has a's message", func() bool { return storedIDs(t, b.Node, dm)[string(hi)] != nil })
	eventually(t, "a sees hi delivered to b", func() bool {
		rs, err := a.Receipts(ctx, dm, [][]byte{hi})
		return err == nil && len(rs) == 1 && len(rs[0].DeliveredTo) == 1 && bytes.Equal(rs[0].DeliveredTo[0], b.Identity()) && rs[0].Recipients == 1
	})
	if u, err := b.Unread(ctx, dm); err != nil || u != 1 {
		t.Fatalf("b's unread = %d, %v; want 1", u, err)
	}
	res, err := b.MarkRead(ctx, dm, nil, false)
	if err != nil || res.Marked != 1 || res.Unread != 0 || res.Receipts != 1 {
		t.Fatalf("b marks read: %+v, %v", res, err)
	}
	eventually(t, "a sees hi read by b", func() bool {
		rs, err := a.Receipts(ctx, dm, [][]byte{hi})
		return err == nil && len(rs) == 1 && len(rs[0].ReadBy) == 1
	})

	// What does not conform is refused on receipt (SendBatch does not
	// check, as another implementation would not), counted, not stored.
	bad := a.payload(t, dm, oneToOne, textBody(""))
	if _, err := a.Send(ctx, dm, bad, node.SendOptions{}); err == nil {
		t.Fatal("Send took a chat payload with an empty text")
	}
	sentBad, err := a.SendBatch(ctx, []node.Outgoing{{Conversation: dm, Payload: bad}})
	if err != nil {
		t.Fatal(err)
	}
	// Unknown content: kept and flagged. Raw bytes: an application's own.
	future := a.send(t, dm, oneToOne, &chatv1.ChatPayload{ContentType: 42})
	raw, err := a.Send(ctx, dm, []byte("raw bytes"), node.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "b has the raw message", func() bool { return storedIDs(t, b.Node, dm)[string(raw.MessageID)] != nil })
	got := storedIDs(t, b.Node, dm)
	if got[string(sentBad[0].MessageID)] != nil {
		t.Fatal("b stored a chat payload with an empty text")
	}
	if m := got[string(future)]; m == nil {
		t.Fatal("b did not keep the payload of an unknown content type")
	} else if isChat, why := node.ChatFlags(m); !isChat || why == "" {
		t.Fatalf("the unknown content type is flagged %v %q", isChat, why)
	}
	if isChat, _ := node.ChatFlags(got[string(raw.MessageID)]); isChat {
		t.Fatal("raw bytes flagged as a chat payload")
	}
	if st := b.MessageStats(); st["dropped_chat_text"] != 1 || st["dropped_chat"] != 1 || st["chat_unsupported"] != 1 {
		t.Fatalf("b's counters %v: want dropped_chat_text 1, dropped_chat 1, chat_unsupported 1", nonZero(st))
	}

	// A private group: a creates it, b and c join.
	g := []byte("chat group")
	if err := a.SetConversation(ctx, g, []ed25519.PublicKey{b.Identity(), c.Identity()}, node.WithName("friends")); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*chatter{b, c} {
		eventually(t, x.Name()+" knows the group", func() bool { _, _, err := x.Members(ctx, g); return err == nil })
	}
	create := eventBody(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, a.Identity(), b.Identity(), c.Identity())
	create.GetMembership().Name = "friends"
	a.send(t, g, group, create)
	for _, x := range []*chatter{b, c} {
		eventually(t, x.Name()+" has the create event", func() bool { return memberState(t, x.Node, g)[string(x.Identity())] == "invited" })
		x.send(t, g, group, eventBody(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, x.Identity()))
	}
	for _, x := range []*chatter{a, b, c} {
		eventually(t, x.Name()+" sees a admin, b and c members", func() bool {
			s := memberState(t, x.Node, g)
			return len(s) == 3 && s[string(a.Identity())] == "admin" && s[string(b.Identity())] == "member" && s[string(c.Identity())] == "member"
		})
	}
	hello := c.send(t, g, group, textBody("hello all"))
	eventually(t, "hello is delivered to a and b", func() bool {
		rs, err := c.Receipts(ctx, g, [][]byte{hello})
		return err == nil && len(rs) == 1 && len(rs[0].DeliveredTo) == 2 && rs[0].Recipients == 2
	})
	// A message whose place in the order (its clock, a minute back) is
	// before c's join: the events a and b hold do not make c a member
	// there, as when an invitation or a join has not arrived yet; their
	// conversations let c in, and only a removal is final. Taken.
	early := textBody("by my clock, before I joined")
	early.Version, early.ChatId, early.ChatType = chat.Version, g, group
	back := uint64(time.Now().Add(-time.Minute).UnixMilli())
	early.Clock, early.Timestamp = back, back
	earlyPayload, err := chat.Encode(early)
	if err != nil {
		t.Fatal(err)
	}
	earlyMsg, err := c.Send(ctx, g, earlyPayload, node.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*chatter{a, b} {
		eventually(t, x.Name()+" stores c's back-dated message", func() bool { return storedIDs(t, x.Node, g)[string(earlyMsg.MessageID)] != nil })
		if n := x.MessageStats()["dropped_chat_not_member"]; n != 0 {
			t.Fatalf("%s refused %d messages as not a member's", x.Name(), n)
		}
	}

	// A member's SetConversation, announced, does not outlast the events:
	// the group's next message sets the conversation back on every node.
	convMembers := func(x *chatter) int {
		convs, err := x.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range convs {
			if bytes.Equal(cv.ID, g) {
				return len(cv.Members)
			}
		}
		return 0
	}
	// a's two members last until a's node next applies the group's events
	// (100 ms after a message of the group), which a slow poll can miss:
	// what a did with the announcement is counted.
	accepted := a.AnnouncementStats()["accepted"]
	if err := b.SetConversation(ctx, g, []ed25519.PublicKey{a.Identity()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a takes b's announcement of two members", func() bool { return a.AnnouncementStats()["accepted"] > accepted })
	b.send(t, g, group, textBody("back to three"))
	for _, x := range []*chatter{a, b} {
		eventually(t, x.Name()+"'s conversation follows the events again", func() bool { return convMembers(x) == 3 })
	}
	// A node stores a conversation's members before it gives them to its
	// layers, and a layer sends a message to the members it had when the
	// message was sent: b's next messages reach c once its layers have c.
	reaches(t, b, c, g)

	// A forged event: b invites in a's name. a and c refuse it.
	b.send(t, g, group, eventBody(chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_ADD, a.Identity(), b.Identity()))
	for _, x := range []*chatter{a, c} {
		eventually(t, x.Name()+" refuses the forged event", func() bool { return x.MessageStats()["dropped_chat_forged_actor"] == 1 })
	}

	// a removes c: the nodes' conversation follows; c's next message is
	// refused by a and b.
	a.send(t, g, group, eventBody(chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE, a.Identity(), c.Identity()))
	for _, x := range []*chatter{a, b} {
		eventually(t, x.Name()+"'s conversation drops c", func() bool {
			convs, err := x.Conversations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, cv := range convs {
				if bytes.Equal(cv.ID, g) {
					return len(cv.Members) == 2
				}
			}
			return false
		})
	}
	eventually(t, "c learns it was removed", func() bool { _, ok := memberState(t, c.Node, g)[string(c.Identity())]; return !ok })
	// A removed member who keeps sending is refused by the first layer
	// that knows the group's members: the secure layer (doubleratchet
	// refuses a sender the conversation does not have, counted as its
	// dropped_not_member), or else the host (dropped_chat_removed).
	refusedBefore := map[string]uint64{}
	for _, x := range []*chatter{a, b} {
		refusedBefore[x.Name()] = refusedRemoved(x.Node)
	}
	late := c.send(t, g, group, textBody("still here"))
	for _, x := range []*chatter{a, b} {
		eventually(t, x.Name()+" refuses the removed member", func() bool { return refusedRemoved(x.Node) > refusedBefore[x.Name()] })
		if storedIDs(t, x.Node, g)[string(late)] != nil {
			t.Fatalf("%s stored the removed member's message", x.Name())
		}
	}
	// The members left still talk.
	bye := b.send(t, g, group, textBody("just us"))
	eventually(t, "a has b's message", func() bool { return storedIDs(t, a.Node, g)[string(bye)] != nil })

	// b restarts: its timelines are rebuilt from the history and its read
	// mark from its file: the 1:1 chat stays read, the group's members
	// are as the events made them, the receipts of a's message are kept.
	b.Close(ctx)
	b.fullNode = startFull(t, b.cfg, nil)
	if u, err := b.Unread(ctx, dm); err != nil || u != 0 {
		t.Fatalf("after a restart, b's unread in the 1:1 chat = %d, %v; want 0", u, err)
	}
	if s := memberState(t, b.Node, g); len(s) != 2 || s[string(a.Identity())] != "admin" || s[string(b.Identity())] != "member" {
		t.Fatalf("after a restart, b's group members %v", s)
	}
	if rs, err := b.Receipts(ctx, dm, [][]byte{hi}); err != nil || len(rs) != 1 || !rs[0].Seen {
		t.Fatalf("after a restart, b's receipts of a's message %+v, %v: want it seen", rs, err)
	}

	// A host from before the store kept the read marks left them in
	// chat-read.json: the next start moves them into the store and
	// removes the file.
	b.Close(ctx)
	dbPath := filepath.Join(b.cfg.Node.DataDir, "host", conversations.FileName)
	store, err := conversations.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	marks, err := store.ReadMarks(ctx)
	if err != nil || len(marks) != 1 || !bytes.Equal(marks[string(dm)], hi) {
		t.Fatalf("b's stored read marks %x, %v; want the 1:1 chat read up to hi", marks, err)
	}
	store.Close()
	clearMarks(t, dbPath)
	legacy := filepath.Join(b.cfg.Node.DataDir, "host", "chat-read.json")
	if err := os.WriteFile(legacy, []byte(fmt.Sprintf(`{%q: %q}`, hex.EncodeToString(dm), hex.EncodeToString(hi))), 0o600); err != nil {
		t.Fatal(err)
	}
	b.fullNode = startFull(t, b.cfg, nil)
	if u, err := b.Unread(ctx, dm); err != nil || u != 0 {
		t.Fatalf("after a restart with the legacy file, b's unread in the 1:1 chat = %d, %v; want 0", u, err)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the legacy read marks file is still there: %v", err)
	}
}

// clearMarks deletes every read mark from the conversation store at path.
func clearMarks(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM read_marks`); err != nil {
		t.Fatal(err)
	}
}

// refusedRemoved counts what n refused of a removed member's messages:
// the host's dropped_chat_removed and the secure layer's
// dropped_not_member.
func refusedRemoved(n *node.Node) uint64 {
	k := n.MessageStats()["dropped_chat_removed"]
	for _, l := range n.Layers() {
		if l.Key == "secure" {
			k += l.Counters["dropped_not_member"]
		}
	}
	return k
}
