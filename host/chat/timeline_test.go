package chat

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// msg is a message for a timeline test: id, author, clock and payload.
type msg struct {
	id     string
	author ed25519.PublicKey
	p      *chatv1.ChatPayload
}

// at returns p with its clock and timestamp set to sent + ms.
func at(ms uint64, p *chatv1.ChatPayload) *chatv1.ChatPayload {
	p.Timestamp = uint64(sent.UnixMilli())
	p.Clock = p.Timestamp + ms
	return p
}

func textMsg(s string) *chatv1.ChatPayload {
	return with(func(p *chatv1.ChatPayload) { p.Body = &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}} })
}

func change(ct chatv1.ContentType, target string, body func(p *chatv1.ChatPayload)) *chatv1.ChatPayload {
	return with(func(p *chatv1.ChatPayload) {
		p.ContentType, p.ResponseTo = ct, []byte(target)
		body(p)
	})
}

func editMsg(target, s string) *chatv1.ChatPayload {
	return change(chatv1.ContentType_CONTENT_TYPE_EDIT, target, func(p *chatv1.ChatPayload) {
		p.Body = &chatv1.ChatPayload_Edit{Edit: &chatv1.Edit{Text: s}}
	})
}

func deleteMsg(target string) *chatv1.ChatPayload {
	return change(chatv1.ContentType_CONTENT_TYPE_DELETE, target, func(p *chatv1.ChatPayload) {
		p.Body = &chatv1.ChatPayload_Delete{Delete: &chatv1.Delete{}}
	})
}

func react(target, emoji string, retracted bool) *chatv1.ChatPayload {
	return change(chatv1.ContentType_CONTENT_TYPE_REACTION, target, func(p *chatv1.ChatPayload) {
		p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: emoji, Retracted: retracted}}
	})
}

func member(t chatv1.MembershipType, actor ed25519.PublicKey, members ...ed25519.PublicKey) *chatv1.ChatPayload {
	ev := &chatv1.MembershipEvent{Type: t, Actor: actor}
	for _, m := range members {
		ev.Members = append(ev.Members, m)
	}
	return with(func(p *chatv1.ChatPayload) {
		p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
		p.Body = &chatv1.ChatPayload_Membership{Membership: ev}
	})
}

// show renders a timeline's entries in one line each.
func show(tl *Timeline) string {
	var out []string
	for _, e := range tl.Entries() {
		line := string(e.ID)
		switch {
		case e.Message.Unsupported:
			line += " unsupported"
		case e.Message.Event != nil:
			line += " " + strings.TrimPrefix(e.Message.Event.Type.String(), "MEMBERSHIP_TYPE_")
		default:
			line += " " + e.Text
		}
		if e.Edited {
			line += " (edited)"
		}
		if e.Late {
			line += " (late)"
		}
		for _, emoji := range slices.Sorted(mapsKeys(e.Reactions)) {
			line += fmt.Sprintf(" %s×%d", emoji, len(e.Reactions[emoji]))
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

func mapsKeys(m map[string]map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestTimeline(t *testing.T) {
	tests := []struct {
		name   string
		msgs   []msg
		want   string
		counts map[Reason]uint64
	}{
		{"causal order", []msg{
			{"b", alice, at(2, textMsg("two"))},
			{"a", bob, at(1, textMsg("one"))},
			{"c", alice, at(3, textMsg("three"))},
		}, "a one (late); b two; c three", nil},
		{"equal clocks by id", []msg{
			{"y", alice, at(1, textMsg("y"))},
			{"x", bob, at(1, textMsg("x"))},
		}, "x x (late); y y", nil},
		{"edit, latest clock wins", []msg{
			{"a", alice, at(1, textMsg("helo"))},
			{"e2", alice, at(3, editMsg("a", "hello!"))},
			{"e1", alice, at(2, editMsg("a", "hello"))},
		}, "a hello! (edited)", nil},
		{"edit before its target", []msg{
			{"e", alice, at(2, editMsg("a", "fixed"))},
			{"a", alice, at(1, textMsg("broken"))},
		}, "a fixed (edited)", nil},
		{"edit by someone else", []msg{
			{"a", alice, at(1, textMsg("mine"))},
			{"e", bob, at(2, editMsg("a", "yours"))},
		}, "a mine", map[Reason]uint64{ReasonNotAuthor: 1}},
		{"delete", []msg{
			{"a", alice, at(1, textMsg("oops"))},
			{"b", alice, at(2, textMsg("kept"))},
			{"d", alice, at(3, deleteMsg("a"))},
		}, "b kept", nil},
		{"delete by someone else", []msg{
			{"a", alice, at(1, textMsg("mine"))},
			{"d", bob, at(3, deleteMsg("a"))},
		}, "a mine", map[Reason]uint64{ReasonNotAuthor: 1}},
		{"reactions", []msg{
			{"a", alice, at(1, textMsg("hi"))},
			{"r1", bob, at(2, react("a", "👍", false))},
			{"r2", carol, at(3, react("a", "👍", false))},
			{"r3", bob, at(5, react("a", "👍", true))},
			{"r4", bob, at(4, react("a", "👍", false))}, // older than r3
			{"r5", alice, at(6, react("a", "🎉", false))},
		}, "a hi 🎉×1 👍×1", nil},
		{"reaction to a reaction", []msg{
			{"a", alice, at(1, textMsg("hi"))},
			{"r1", bob, at(2, react("a", "👍", false))},
			{"r2", carol, at(3, react("r1", "👍", false))},
		}, "a hi 👍×1", map[Reason]uint64{ReasonResponseTo: 1}},
		{"duplicate", []msg{
			{"a", alice, at(1, textMsg("hi"))},
			{"a", alice, at(1, textMsg("hi"))},
		}, "a hi", map[Reason]uint64{ReasonDuplicate: 1}},
		{"non-conforming is not shown", []msg{
			{"a", alice, at(1, textMsg(""))},
			{"b", alice, at(2, with(func(p *chatv1.ChatPayload) { p.ChatId = []byte("other") }))},
			{"c", alice, at(3, textMsg("ok"))},
		}, "c ok", map[Reason]uint64{ReasonText: 1, ReasonChatID: 1}},
		{"unsupported is kept", []msg{
			{"a", alice, at(1, with(func(p *chatv1.ChatPayload) { p.ContentType = 77; p.Body = nil }))},
		}, "a unsupported", nil},
		{"group: members speak, removed members do not", []msg{
			{"1", alice, at(1, member(create, alice, bob, carol))},
			{"2", bob, at(2, member(join, bob))},
			{"3", bob, at(3, textMsg("hi from bob"))},
			{"4", carol, at(4, textMsg("carol has not joined"))},
			{"5", alice, at(5, member(remove, alice, bob))},
			{"6", bob, at(6, textMsg("still here"))},
			{"7", dave, at(7, member(invite, dave, dave))},
		}, "1 CREATE; 2 JOIN; 3 hi from bob; 5 REMOVE",
			map[Reason]uint64{ReasonNotMember: 1, ReasonRemoved: 1, ReasonForgedActor: 0, ReasonNoGroup: 0, ReasonNotAdmin: 1}},
		{"group: a join before its invite shows once the invite arrives", []msg{
			{"1", alice, at(1, member(create, alice))},
			{"3", dave, at(3, member(join, dave))},
			{"2", alice, at(2, member(invite, alice, dave))},
		}, "1 CREATE; 2 INVITE (late); 3 JOIN", nil},
		{"group: forged event", []msg{
			{"1", alice, at(1, member(create, alice, bob))},
			{"2", bob, at(2, member(remove, alice, alice))},
		}, "1 CREATE", map[Reason]uint64{ReasonForgedActor: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Cases without membership events run in a public chat.
			group := slices.ContainsFunc(tt.msgs, func(m msg) bool { return m.p.GetMembership() != nil })
			tl := NewTimeline(publicID, bob, "status")
			if group {
				tl = NewTimeline(groupID, bob, "")
			}
			for _, m := range tt.msgs {
				if !group && m.p.GetChatId() != nil && string(m.p.GetChatId()) == string(groupID) {
					m.p.ChatId, m.p.ChatType = publicID, chatv1.ChatType_CHAT_TYPE_PUBLIC
				}
				_, _ = tl.Add(Incoming{ID: []byte(m.id), Author: m.author, Sent: sent, Payload: mustMarshal(t, m.p)})
			}
			if got := show(tl); got != tt.want {
				t.Errorf("timeline\n%s\nwant\n%s", got, tt.want)
			}
			counts := tl.Counts()
			for r, n := range tt.counts {
				if counts[r] != n {
					t.Errorf("count %q = %d, want %d (all: %v)", r, counts[r], n, counts)
				}
			}
			if tt.counts == nil {
				for r, n := range counts {
					if n != 0 {
						t.Errorf("unexpected refusal %q ×%d", r, n)
					}
				}
			}
		})
	}
}

func TestClock(t *testing.T) {
	var c Clock
	now := time.UnixMilli(1000)
	if clock, ts := c.Next(now); clock != 1000 || ts != 1000 {
		t.Fatalf("first: %d %d", clock, ts)
	}
	if clock, _ := c.Next(now); clock != 1001 {
		t.Fatalf("same millisecond: %d", clock)
	}
	c.Observe(5000) // someone's clock runs ahead
	if clock, ts := c.Next(now); clock != 5001 || ts != 1000 {
		t.Fatalf("after a clock ahead: %d %d", clock, ts)
	}
	c.Observe(10) // an old message changes nothing
	if clock, _ := c.Next(time.UnixMilli(9000)); clock != 9000 {
		t.Fatalf("wall time ahead again: %d", clock)
	}
}

// A timeline's own messages sort after everything it holds, and conform.
func TestTimelineNext(t *testing.T) {
	tl := NewTimeline(dmID, alice, "")
	first := at(60_000, textMsg("from a minute ahead"))
	first.ChatId, first.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
	if _, err := tl.Add(Incoming{ID: []byte("a"), Author: bob, Sent: sent, Payload: mustMarshal(t, first)}); err != nil {
		t.Fatal(err)
	}
	clock, ts := tl.Next(sent)
	p := textMsg("mine")
	p.ChatId, p.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
	p.Clock, p.Timestamp = clock, ts
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tl.Add(Incoming{ID: []byte("b"), Author: alice, Sent: sent, Payload: b})
	if err != nil || e.Late || show(tl) != "a from a minute ahead; b mine" {
		t.Fatalf("own message: %v, %s", err, show(tl))
	}
}

// TestTimelineEntryLast: Entry finds a shown message by id, Last is the
// last message in causal order (not an event, not a change), and both
// take marked payloads (Encode) as they take unmarked ones.
func TestTimelineEntryLast(t *testing.T) {
	tl := NewTimeline(groupID, alice, "")
	if tl.Last() != nil || tl.Entry([]byte("x")) != nil {
		t.Fatal("an empty timeline has a last message")
	}
	add := func(id string, author ed25519.PublicKey, p *chatv1.ChatPayload) {
		t.Helper()
		b, err := Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tl.Add(Incoming{ID: []byte(id), Author: author, Sent: sent, Payload: b}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	add("c", alice, at(1, member(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, alice, bob)))
	add("j", bob, at(2, member(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, bob)))
	add("m2", bob, at(20, textMsg("second")))
	add("m1", alice, at(10, textMsg("first"))) // late
	add("r", alice, at(30, react("m2", "👍", false)))
	if got := string(tl.Last()); got != "m2" {
		t.Fatalf("Last = %q, want m2", got)
	}
	if e := tl.Entry([]byte("m1")); e == nil || e.Text != "first" || !e.Late {
		t.Fatalf("Entry(m1) = %+v", e)
	}
	if tl.Entry([]byte("r")) != nil {
		t.Fatal("a reaction has an entry of its own")
	}
	if ids := tl.MarkRead(tl.Last()); len(ids) != 1 || string(ids[0]) != "m2" || tl.Unread() != 0 {
		t.Fatalf("MarkRead(Last) = %q, unread %d", ids, tl.Unread())
	}
}
