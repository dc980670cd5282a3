package chat

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// key returns a deterministic identity key for tests.
func key(seed byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

// sent is the envelope time of the test messages.
var sent = time.UnixMilli(1_800_000_000_000)

var (
	alice, bob, carol = key(1), key(2), key(3)
	groupID           = []byte("friends")
	dmID              = conversations.DirectID(alice, bob)
	publicID          = conversations.PublicChatID("status")
)

// env is the envelope of a message by alice in conv, as bob's node sees it.
func env(conv []byte) Envelope {
	return Envelope{Author: alice, Conversation: conv, Sent: sent, Self: bob}
}

// text returns a conforming text payload in the private group.
func text() *chatv1.ChatPayload {
	return &chatv1.ChatPayload{
		Version:     Version,
		Clock:       uint64(sent.UnixMilli()),
		Timestamp:   uint64(sent.UnixMilli()),
		ChatId:      groupID,
		ChatType:    chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP,
		ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT,
		Body:        &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: "hello"}},
	}
}

// with returns text() changed by f.
func with(f func(p *chatv1.ChatPayload)) *chatv1.ChatPayload {
	p := text()
	f(p)
	return p
}

// event returns a membership payload of alice's.
func event(t chatv1.MembershipType, members ...ed25519.PublicKey) *chatv1.ChatPayload {
	ev := &chatv1.MembershipEvent{Type: t, Actor: alice}
	for _, m := range members {
		ev.Members = append(ev.Members, m)
	}
	return with(func(p *chatv1.ChatPayload) {
		p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
		p.Body = &chatv1.ChatPayload_Membership{Membership: ev}
	})
}

var target = bytes.Repeat([]byte{7}, 32)

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		p     *chatv1.ChatPayload
		env   Envelope
		check func(*Message) bool
	}{
		{"text", text(), env(groupID), func(m *Message) bool { return m.Text == "hello" && !m.Unsupported }},
		{"reply", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REPLY, target
		}), env(groupID), func(m *Message) bool { return bytes.Equal(m.ResponseTo, target) && m.Text == "hello" }},
		{"reaction", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "👍🏽", Retracted: true}}
		}), env(groupID), func(m *Message) bool { return m.Emoji == "👍🏽" && m.Retracted }},
		{"zwj emoji", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "👩\u200d💻"}}
		}), env(groupID), func(m *Message) bool { return m.Emoji == "👩\u200d💻" }},
		{"edit", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_EDIT, target
			p.Body = &chatv1.ChatPayload_Edit{Edit: &chatv1.Edit{Text: "hello again"}}
		}), env(groupID), func(m *Message) bool { return m.Text == "hello again" }},
		{"delete", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_DELETE, target
			p.Body = &chatv1.ChatPayload_Delete{Delete: &chatv1.Delete{}}
		}), env(groupID), func(m *Message) bool { return m.ContentType == chatv1.ContentType_CONTENT_TYPE_DELETE }},
		{"create", event(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, bob, carol), env(groupID),
			func(m *Message) bool { return m.Event != nil && len(m.Event.Members) == 2 }},
		{"join", event(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN), env(groupID), func(m *Message) bool { return m.Event != nil }},
		{"1:1", with(func(p *chatv1.ChatPayload) {
			p.ChatId, p.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
		}), env(dmID), nil},
		{"1:1 of our own", with(func(p *chatv1.ChatPayload) {
			p.ChatId, p.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
		}), Envelope{Author: bob, Conversation: dmID, Sent: sent, Self: bob}, nil},
		{"public", with(func(p *chatv1.ChatPayload) {
			p.ChatId, p.ChatType = publicID, chatv1.ChatType_CHAT_TYPE_PUBLIC
		}), Envelope{Author: carol, Conversation: publicID, Sent: sent, Self: bob, PublicChat: "status"}, nil},
		{"clock ahead within skew", with(func(p *chatv1.ChatPayload) { p.Clock += uint64(MaxClockSkew.Milliseconds()) }), env(groupID), nil},
		{"timestamp behind within skew", with(func(p *chatv1.ChatPayload) { p.Timestamp -= uint64(MaxClockSkew.Milliseconds()) }), env(groupID), nil},
		{"no envelope time", with(func(p *chatv1.ChatPayload) { p.Clock, p.Timestamp = 5, 3 }),
			Envelope{Author: alice, Conversation: groupID}, nil},
		{"text at the limit", with(func(p *chatv1.ChatPayload) {
			p.Body = &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: strings.Repeat("a", MaxTextSize)}}
		}), env(groupID), nil},
		// Unsupported: kept, not refused.
		{"future content type", with(func(p *chatv1.ChatPayload) { p.ContentType = 99; p.Body = nil }), env(groupID),
			func(m *Message) bool { return m.Unsupported && strings.Contains(m.UnsupportedWhy, "content type 99") }},
		{"future version", with(func(p *chatv1.ChatPayload) { p.Version = 2 }), env(groupID),
			func(m *Message) bool { return m.Unsupported && strings.Contains(m.UnsupportedWhy, "version 2") }},
		{"future chat type", with(func(p *chatv1.ChatPayload) { p.ChatType = 9 }), env(groupID),
			func(m *Message) bool { return m.Unsupported }},
		{"future membership type", with(func(p *chatv1.ChatPayload) {
			p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
			p.Body = &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: 40, Actor: alice}}
		}), env(groupID), func(m *Message) bool { return m.Unsupported && m.Event == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.p, tt.env); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b, err := proto.Marshal(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(b, tt.env)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if tt.check != nil && !tt.check(m) {
				t.Fatalf("decoded %+v", m)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	ms := uint64(sent.UnixMilli())
	skew := uint64(MaxClockSkew.Milliseconds())
	tests := []struct {
		name string
		p    *chatv1.ChatPayload
		env  Envelope
		want Reason
	}{
		{"no version", with(func(p *chatv1.ChatPayload) { p.Version = 0 }), env(groupID), ReasonVersion},
		{"no clock", with(func(p *chatv1.ChatPayload) { p.Clock = 0 }), env(groupID), ReasonClock},
		{"clock below timestamp", with(func(p *chatv1.ChatPayload) { p.Clock = ms - 1 }), env(groupID), ReasonClock},
		{"clock far ahead", with(func(p *chatv1.ChatPayload) { p.Clock = ms + skew + 1 }), env(groupID), ReasonClock},
		{"clock at the end of time", with(func(p *chatv1.ChatPayload) { p.Clock = 1<<64 - 1 }), env(groupID), ReasonClock},
		{"no timestamp", with(func(p *chatv1.ChatPayload) { p.Timestamp = 0 }), env(groupID), ReasonTimestamp},
		{"timestamp ahead", with(func(p *chatv1.ChatPayload) { p.Timestamp = ms + skew + 1; p.Clock = p.Timestamp }), env(groupID), ReasonTimestamp},
		{"timestamp behind", with(func(p *chatv1.ChatPayload) { p.Timestamp = ms - skew - 1 }), env(groupID), ReasonTimestamp},
		{"timestamp out of range", with(func(p *chatv1.ChatPayload) { p.Timestamp, p.Clock = 1<<63, 1<<64-1 }), env(groupID), ReasonTimestamp},
		{"other conversation", text(), env([]byte("other")), ReasonChatID},
		{"no chat id", with(func(p *chatv1.ChatPayload) { p.ChatId = nil }), env(nil), ReasonChatID},
		{"no chat type", with(func(p *chatv1.ChatPayload) { p.ChatType = 0 }), env(groupID), ReasonChatType},
		{"no content type", with(func(p *chatv1.ChatPayload) { p.ContentType = 0 }), env(groupID), ReasonContentType},
		{"1:1 with a group id", with(func(p *chatv1.ChatPayload) { p.ChatType = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE }), env(groupID), ReasonChatID},
		{"1:1 of someone else", with(func(p *chatv1.ChatPayload) {
			p.ChatType, p.ChatId = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, conversations.DirectID(alice, carol)
		}), env(conversations.DirectID(alice, carol)), ReasonChatID},
		{"group with a 1:1 id", with(func(p *chatv1.ChatPayload) { p.ChatId = dmID }), env(dmID), ReasonChatID},
		{"public of the wrong length", with(func(p *chatv1.ChatPayload) { p.ChatType = chatv1.ChatType_CHAT_TYPE_PUBLIC }), env(groupID), ReasonChatID},
		{"public of another name", with(func(p *chatv1.ChatPayload) {
			p.ChatType, p.ChatId = chatv1.ChatType_CHAT_TYPE_PUBLIC, publicID
		}), Envelope{Author: alice, Conversation: publicID, Sent: sent, PublicChat: "other"}, ReasonChatID},
		{"empty text", with(func(p *chatv1.ChatPayload) { p.Body = &chatv1.ChatPayload_Text{Text: &chatv1.Text{}} }), env(groupID), ReasonText},
		{"long text", with(func(p *chatv1.ChatPayload) {
			p.Body = &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: strings.Repeat("a", MaxTextSize+1)}}
		}), env(groupID), ReasonText},
		{"text without body", with(func(p *chatv1.ChatPayload) { p.Body = nil }), env(groupID), ReasonBody},
		{"text with an edit body", with(func(p *chatv1.ChatPayload) { p.Body = &chatv1.ChatPayload_Edit{Edit: &chatv1.Edit{Text: "x"}} }), env(groupID), ReasonBody},
		{"text with response_to", with(func(p *chatv1.ChatPayload) { p.ResponseTo = target }), env(groupID), ReasonResponseTo},
		{"reply without response_to", with(func(p *chatv1.ChatPayload) { p.ContentType = chatv1.ContentType_CONTENT_TYPE_REPLY }), env(groupID), ReasonResponseTo},
		{"long response_to", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REPLY, make([]byte, MaxMessageIDSize+1)
		}), env(groupID), ReasonResponseTo},
		{"reaction without target", with(func(p *chatv1.ChatPayload) {
			p.ContentType = chatv1.ContentType_CONTENT_TYPE_REACTION
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "x"}}
		}), env(groupID), ReasonResponseTo},
		{"empty reaction", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{}}
		}), env(groupID), ReasonEmoji},
		{"reaction with an escape", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "\x1b[2J"}}
		}), env(groupID), ReasonEmoji},
		{"reaction with a bidi control", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: "\u202e"}}
		}), env(groupID), ReasonEmoji},
		{"long reaction", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo = chatv1.ContentType_CONTENT_TYPE_REACTION, target
			p.Body = &chatv1.ChatPayload_Reaction{Reaction: &chatv1.Reaction{Emoji: strings.Repeat("👍", 9)}}
		}), env(groupID), ReasonEmoji},
		{"delete without body", with(func(p *chatv1.ChatPayload) {
			p.ContentType, p.ResponseTo, p.Body = chatv1.ContentType_CONTENT_TYPE_DELETE, target, nil
		}), env(groupID), ReasonBody},
		{"membership in a 1:1", with(func(p *chatv1.ChatPayload) {
			p.ChatId, p.ChatType = dmID, chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
			p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
			p.Body = &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: 3, Actor: alice}}
		}), env(dmID), ReasonChatType},
		{"membership without type", event(0), env(groupID), ReasonEvent},
		{"invite of no one", event(chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE), env(groupID), ReasonEvent},
		{"join naming members", event(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, bob), env(groupID), ReasonEvent},
		{"repeated member", event(chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE, bob, bob), env(groupID), ReasonEvent},
		{"short member key", event(chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE, bob[:31]), env(groupID), ReasonEvent},
		{"short actor", with(func(p *chatv1.ChatPayload) {
			p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
			p.Body = &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: 3, Actor: alice[:5]}}
		}), env(groupID), ReasonEvent},
		{"invite naming the group", with(func(p *chatv1.ChatPayload) {
			p.ContentType = chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP
			p.Body = &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: 2, Actor: alice, Members: [][]byte{bob}, Name: "x"}}
		}), env(groupID), ReasonEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.p, tt.env)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "chat: "+string(tt.want)+": ") {
				t.Fatalf("error %q does not name its reason", err)
			}
		})
	}
}

func TestDecodeRefusesBytes(t *testing.T) {
	good, err := proto.Marshal(text())
	if err != nil {
		t.Fatal(err)
	}
	// chat_id's tag with a length that runs past the end.
	truncated := protowire.AppendTag(nil, 4, protowire.BytesType)
	truncated = protowire.AppendVarint(truncated, 100)
	badUTF8 := protowire.AppendTag(bytes.Clone(good), 10, protowire.BytesType)
	inner := protowire.AppendTag(nil, 1, protowire.BytesType)
	inner = protowire.AppendBytes(inner, []byte{0xff, 0xfe})
	badUTF8 = protowire.AppendBytes(badUTF8, inner)
	tests := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"oversize", make([]byte, MaxPayloadSize+1), ReasonOversize},
		{"truncated", truncated, ReasonMalformed},
		{"text not UTF-8", badUTF8, ReasonMalformed},
		{"empty", nil, ReasonVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.b, env(groupID))
			if got := ReasonOf(err); got != tt.want || m != nil {
				t.Fatalf("reason %q (%v), message %v; want %q", got, err, m, tt.want)
			}
		})
	}
}

// An unknown field (a body a later version added) in a known content type
// is ignored: the body the content type names is still required.
func TestDecodeIgnoresUnknownFields(t *testing.T) {
	b, err := proto.Marshal(text())
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("from the future"))
	m, err := Decode(b, env(groupID))
	if err != nil || m.Text != "hello" {
		t.Fatalf("Decode: %v, %+v", err, m)
	}
}

// Against the time of receipt: a message delivered late is fine, one
// from the future is not.
func TestDecodeReceived(t *testing.T) {
	skew := uint64(MaxClockSkew.Milliseconds())
	ms := uint64(sent.UnixMilli())
	recv := func(d time.Duration) Envelope {
		return Envelope{Author: alice, Conversation: groupID, Received: sent.Add(d)}
	}
	tests := []struct {
		name string
		p    *chatv1.ChatPayload
		env  Envelope
		want Reason
	}{
		{"delivered a day late", text(), recv(24 * time.Hour), ""},
		{"received at once", text(), recv(0), ""},
		{"clock ahead within skew", with(func(p *chatv1.ChatPayload) { p.Clock = ms + skew }), recv(0), ""},
		{"clock from the future", with(func(p *chatv1.ChatPayload) { p.Clock = ms + skew + 1 }), recv(0), ReasonClock},
		{"timestamp from the future", with(func(p *chatv1.ChatPayload) { p.Timestamp, p.Clock = ms+skew+1, ms+skew+1 }), recv(0), ReasonTimestamp},
		{"received before 1970", text(), Envelope{Author: alice, Conversation: groupID, Received: time.UnixMilli(-5)}, ReasonTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReasonOf(Validate(tt.p, tt.env)); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMarker: Encode writes the marker, IsPayload finds it, Decode takes
// the payload with and without it, and neither a text nor a host message
// is taken for a chat payload.
func TestMarker(t *testing.T) {
	b, err := Encode(text())
	if err != nil {
		t.Fatal(err)
	}
	if !IsPayload(b) {
		t.Fatalf("Encode's output %q is not marked", b[:20])
	}
	raw, err := proto.Marshal(text())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{b, raw} {
		m, err := Decode(p, env(groupID))
		if err != nil || m.Text != text().GetBody().(*chatv1.ChatPayload_Text).Text.GetText() {
			t.Errorf("Decode(%q...) = %v, %v", p[:4], m, err)
		}
	}
	for _, p := range []string{"", "hello", "\x00strata-host-v1\x00x", Marker[:len(Marker)-1]} {
		if IsPayload([]byte(p)) {
			t.Errorf("IsPayload(%q) = true", p)
		}
	}
	if IsPayload(raw) {
		t.Error("an unmarked protobuf encoding is taken as marked")
	}
	// The size bound is on what follows the marker.
	over := append([]byte(Marker), make([]byte, MaxPayloadSize+1)...)
	if _, err := Decode(over, env(groupID)); ReasonOf(err) != ReasonOversize {
		t.Errorf("oversize with marker: %v", err)
	}
}
