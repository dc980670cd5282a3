package chat

import (
	"bytes"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// receipt returns a receipt payload in the private group.
func receipt(t chatv1.ReceiptType, ids ...string) *chatv1.ChatPayload {
	r := &chatv1.Receipt{Type: t}
	for _, id := range ids {
		r.MessageIds = append(r.MessageIds, []byte(id))
	}
	return with(func(p *chatv1.ChatPayload) {
		p.ContentType = chatv1.ContentType_CONTENT_TYPE_RECEIPT
		p.Body = &chatv1.ChatPayload_Receipt{Receipt: r}
	})
}

const (
	delivered = chatv1.ReceiptType_RECEIPT_TYPE_DELIVERED
	read      = chatv1.ReceiptType_RECEIPT_TYPE_READ
)

func TestDecodeReceipt(t *testing.T) {
	m, err := Decode(mustMarshal(t, receipt(read, "a", "b")), env(groupID))
	if err != nil || m.Receipt == nil || m.Receipt.Type != read || len(m.Receipt.IDs) != 2 {
		t.Fatalf("Decode: %+v, %v", m, err)
	}
	m, err = Decode(mustMarshal(t, receipt(9, "a")), env(groupID))
	if err != nil || !m.Unsupported || m.Receipt != nil {
		t.Fatalf("a future receipt type: %+v, %v", m, err)
	}
	many := make([]string, MaxReceiptIDs+1)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	tests := []struct {
		name string
		p    *chatv1.ChatPayload
		env  Envelope
		want Reason
	}{
		{"no type", receipt(0, "a"), env(groupID), ReasonReceipt},
		{"no ids", receipt(read), env(groupID), ReasonReceipt},
		{"too many ids", receipt(read, many...), env(groupID), ReasonReceipt},
		{"repeated id", receipt(read, "a", "a"), env(groupID), ReasonReceipt},
		{"empty id", receipt(read, ""), env(groupID), ReasonReceipt},
		{"long id", receipt(read, strings.Repeat("i", MaxMessageIDSize+1)), env(groupID), ReasonReceipt},
		{"with response_to", with(func(p *chatv1.ChatPayload) {
			*p = *receipt(read, "a")
			p.ResponseTo = []byte("a")
		}), env(groupID), ReasonResponseTo},
		{"in a public chat", with(func(p *chatv1.ChatPayload) {
			*p = *receipt(read, "a")
			p.ChatId, p.ChatType = publicID, chatv1.ChatType_CHAT_TYPE_PUBLIC
		}), env(publicID), ReasonChatType},
		{"without body", with(func(p *chatv1.ChatPayload) { p.ContentType = chatv1.ContentType_CONTENT_TYPE_RECEIPT }), env(groupID), ReasonBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReasonOf(Validate(tt.p, tt.env)); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// Receipts give "delivered to n of m" and "read by k" per message, in a
// group; a receipt that arrives before its message waits for it.
func TestTimelineReceipts(t *testing.T) {
	tl := NewTimeline(groupID, alice, "")
	add := func(id string, author ed25519.PublicKey, p *chatv1.ChatPayload) {
		t.Helper()
		if _, err := tl.Add(Incoming{ID: []byte(id), Author: author, Sent: sent, Payload: mustMarshal(t, p)}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	add("1", alice, at(1, member(create, alice, bob, carol)))
	add("2", bob, at(2, member(join, bob)))
	add("3", carol, at(3, member(join, carol)))
	add("r0", carol, at(5, receipt(delivered, "m"))) // before its message
	add("m", alice, at(4, textMsg("hello")))
	add("r1", bob, at(6, receipt(read, "m")))
	add("r2", alice, at(7, receipt(read, "m"))) // the author's own: ignored
	var m *Entry
	for _, e := range tl.Entries() {
		if string(e.ID) == "m" {
			m = e
		}
	}
	if m == nil {
		t.Fatal("no message m")
	}
	if len(m.DeliveredTo) != 2 || len(m.ReadBy) != 1 || !m.ReadBy[string(bob)] || tl.Recipients(m) != 2 {
		t.Fatalf("delivered to %d of %d, read by %d", len(m.DeliveredTo), tl.Recipients(m), len(m.ReadBy))
	}
	// A stranger's receipt is refused: it is not a member.
	if _, err := tl.Add(Incoming{ID: []byte("r3"), Author: dave, Sent: sent, Payload: mustMarshal(t, at(8, receipt(read, "m")))}); ReasonOf(err) != ReasonNotMember {
		t.Fatalf("a stranger's receipt: %v", err)
	}
	if len(m.ReadBy) != 1 {
		t.Fatal("a stranger's receipt counted")
	}
}

// MarkRead and Unread: the local read state, and the ids to send read
// receipts for.
func TestTimelineReadState(t *testing.T) {
	tl := NewTimeline(dmID, bob, "")
	add := func(id string, author ed25519.PublicKey, ms uint64) {
		t.Helper()
		p := at(ms, textMsg("text "+id))
		p.ChatId, p.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
		if _, err := tl.Add(Incoming{ID: []byte(id), Author: author, Sent: sent, Payload: mustMarshal(t, p)}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	add("a", alice, 1)
	add("b", bob, 2) // our own
	add("c", alice, 3)
	add("d", alice, 4)
	if n := tl.Unread(); n != 3 {
		t.Fatalf("unread %d, want 3", n)
	}
	ids := tl.MarkRead([]byte("c"))
	if len(ids) != 2 || !bytes.Equal(ids[0], []byte("a")) || !bytes.Equal(ids[1], []byte("c")) {
		t.Fatalf("MarkRead returned %q", ids)
	}
	if n := tl.Unread(); n != 1 {
		t.Fatalf("unread %d, want 1", n)
	}
	add("late", alice, 2) // arrives late, before the mark
	if n := tl.Unread(); n != 2 {
		t.Fatalf("a late message is not unread: %d", n)
	}
	if ids := tl.MarkRead([]byte("d")); len(ids) != 2 {
		t.Fatalf("second MarkRead returned %q", ids)
	}
	if tl.Unread() != 0 || tl.MarkRead([]byte("nothing")) != nil {
		t.Fatal("after reading everything")
	}
	var c *Entry
	for _, e := range tl.Entries() {
		if string(e.ID) == "c" {
			c = e
		}
	}
	if tl.Recipients(c) != 1 {
		t.Fatalf("a 1:1 message is for %d", tl.Recipients(c))
	}
}
