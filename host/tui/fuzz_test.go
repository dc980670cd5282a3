package tui

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "hello"},
		{"a\nb\r\tc", `a\nb\r\tc`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"\x1b[2J", `\x1b[2J`},
		{"\u009b31m", `\u009B31m`},
		{"abc\u202edcba", `abc\u202Edcba`},
		{"zero\u200bwidth", `zero\u200Bwidth`},
		{"a\\x1b", `a\\x1b`},
		{"bad \xff byte", `bad \xff byte`},
		{"👩\u200d👩\u200d👧 ❤\ufe0f", "👩\u200d👩\u200d👧 ❤\ufe0f"},
		{"line\u2028sep", `line\u2028sep`},
		{"tag \U000E0041", `tag \U000E0041`},
	} {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkDrawable fails if s holds anything a terminal would act on, or
// that hides text, other than the newlines of a View.
func checkDrawable(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("not UTF-8: %q", s)
	}
	for _, r := range s {
		if r != '\n' && (r < 0x20 || r == 0x7f || unsafeRune(r)) {
			t.Fatalf("%U in %q", r, s)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "hello", "\x1b[2J", "\u009b", "\u202e", "\xff\xfe", "👩\u200d👩", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := clean(s)
		checkDrawable(t, c)
		if !strings.Contains(s, "\\") && utf8.ValidString(s) && c == s {
			for _, r := range s {
				if r < 0x20 || r == 0x7f || unsafeRune(r) {
					t.Fatalf("clean kept %U", r)
				}
			}
		}
	})
}

// FuzzView feeds the UI a message of arbitrary conversation, author and
// payload, as a node could deliver it, and checks that nothing panics and
// that its View holds nothing a terminal would act on.
func FuzzView(f *testing.F) {
	dm := conversations.DirectID(alice.key, bob.key)
	mk := func(p *chatv1.ChatPayload) []byte {
		p.Version, p.Clock, p.Timestamp = chat.Version, uint64(t0.UnixMilli()), uint64(t0.UnixMilli())
		b, _ := chat.Encode(p)
		return b
	}
	evil := "\x1b]0;owned\x07\x1b[2J\nalice: fake line\u202e"
	text := mk(&chatv1.ChatPayload{ChatId: dm, ChatType: oneToOne, ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT,
		Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: evil}}})
	group := mk(&chatv1.ChatPayload{ChatId: []byte("g\x1b[1m"), ChatType: private, ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP,
		Body: &chatv1.ChatPayload_Membership{Membership: &chatv1.MembershipEvent{Type: chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE,
			Actor: bob.key, Members: [][]byte{alice.key}, Name: evil}}})
	f.Add(dm, []byte(bob.key), text, false)
	f.Add([]byte("g\x1b[1m"), []byte(bob.key), group, false)
	f.Add(dm, []byte(nil), text, true)
	f.Add([]byte{}, []byte{1, 2}, []byte{0xff}, false)
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.Ascii)
	f.Fuzz(func(t *testing.T, conv, author, payload []byte, outgoing bool) {
		fake := newFake(alice, bob)
		m := New(context.Background(), fake, Options{Now: func() time.Time { return t0 }, Location: time.UTC, Renderer: r})
		defer m.cancel()
		m.Update(loadedMsg{node: &appv1.NodeResponse{Name: "alice", Identity: alice.key, Fingerprint: "f"},
			contacts: []*appv1.Contact{bob.contact()}})
		m.take(&appv1.Message{Cursor: 1, Conversation: conv, MessageId: []byte("id"), Author: author, Payload: payload,
			Outgoing: outgoing, TimeUnixNano: t0.UnixNano(), Chat: chat.IsPayload(payload)})
		m.sel = string(conv)
		checkDrawable(t, m.View())
		m.help = true
		checkDrawable(t, m.View())
	})
}
