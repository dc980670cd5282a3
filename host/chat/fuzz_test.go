package chat

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// FuzzDecode feeds Decode arbitrary bytes: it never panics, a refusal is
// an *Error with a reason and no message, and an accepted payload is
// accepted again after a round trip through its re-encoding.
func FuzzDecode(f *testing.F) {
	seeds := []*chatv1.ChatPayload{
		text(),
		event(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, bob, carol),
		event(chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE, bob),
		with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "👍"}}
		}),
		with(func(p *chatv1.ChatPayload) { p.ContentType = 42 }),
		receipt(chatv1.ReceiptType_RECEIPT_TYPE_READ, "a", "b"),
	}
	for _, p := range seeds {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append([]byte(Marker), b...))
	}
	f.Add([]byte(Marker))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, env(groupID))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" || m != nil {
				t.Fatalf("refusal %v (%T) with message %v", err, err, m)
			}
			return
		}
		var p chatv1.ChatPayload
		if err := proto.Unmarshal(bytes.TrimPrefix(b, []byte(Marker)), &p); err != nil {
			t.Fatalf("accepted bytes that do not unmarshal: %v", err)
		}
		if err := Validate(&p, env(groupID)); err != nil {
			t.Fatalf("accepted payload refused after a round trip: %v", err)
		}
		if m.Event != nil {
			if _, err := EventOf([]byte("id"), alice, m); err != nil {
				t.Fatal(err)
			}
			g := NewGroup()
			e, _ := EventOf([]byte("id"), alice, m)
			g.Add(e)
			_ = g.CheckMessage(alice, m.Clock, []byte("id2"))
		}
	})
}

// FuzzTimeline feeds a timeline three arbitrary payloads, from two
// authors: it never panics, and shows only what conforms.
func FuzzTimeline(f *testing.F) {
	create := mustMarshal(f, event(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, bob))
	hello := mustMarshal(f, text())
	edit := mustMarshal(f, with(func(p *chatv1.ChatPayload) {
		p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_EDIT, []byte("b")
		p.Body = &chatv1.ChatPayload_Edit{Edit: &chatv1.Edit{Text: "x"}}
	}))
	f.Add(create, hello, edit)
	f.Add(hello, mustMarshal(f, receipt(chatv1.ReceiptType_RECEIPT_TYPE_DELIVERED, "a")), create)
	f.Add(hello, edit, create)
	f.Add([]byte{}, hello, hello)
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		tl := NewTimeline(groupID, bob, "")
		for i, p := range [][]byte{a, b, c} {
			author := alice
			if i == 1 {
				author = bob
			}
			_, _ = tl.Add(Incoming{ID: []byte{'a' + byte(i)}, Author: author, Sent: sent, Payload: p})
		}
		for _, e := range tl.Entries() {
			if e.Message == nil {
				t.Fatal("an entry without its message")
			}
		}
	})
}
