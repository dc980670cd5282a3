package tui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/identity"
)

// The captures of these tests (testdata/*.golden, shown in docs/chat.md)
// are the UI's View as text; `go test ./host/tui -run TestUI -update`
// writes them again.

const (
	oneToOne = chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE
	private  = chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP
	public   = chatv1.ChatType_CHAT_TYPE_PUBLIC
)

// probe wraps the UI for a test: a viewMsg asks for its View, taken in
// the program's own goroutine.
type probe struct{ m *Model }

type viewMsg chan string

func (p probe) Init() tea.Cmd { return p.m.Init() }
func (p probe) View() string  { return p.m.View() }
func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if ch, ok := msg.(viewMsg); ok {
		ch <- p.m.View()
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

// ui is a running UI on a backend, driven as a terminal would drive it.
type ui struct {
	t  *testing.T
	tm *teatest.TestModel
}

// startUI runs the UI on b in a 90x22 terminal without colours.
func startUI(t *testing.T, b Backend, now func() time.Time) *ui {
	t.Helper()
	return startUIWith(t, b, Options{Now: now})
}

// startUIWith is startUI with options.
func startUIWith(t *testing.T, b Backend, opts Options) *ui {
	t.Helper()
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.Ascii)
	opts.Location, opts.Renderer = time.UTC, r
	m := New(context.Background(), b, opts)
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(90, 22))
	u := &ui{t: t, tm: tm}
	t.Cleanup(func() {
		tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	u.waitFor("Tab: next conversation")
	return u
}

// view returns the UI's View now.
func (u *ui) view() string {
	ch := make(viewMsg, 1)
	u.tm.Send(ch)
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		u.t.Fatal("the UI does not answer")
		return ""
	}
}

// waitView waits until the View satisfies cond, and returns it.
func (u *ui) waitView(what string, cond func(string) bool) string {
	u.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := u.view()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("timed out waiting for %s; the view:\n%s", what, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor waits until the View holds every one of want.
func (u *ui) waitFor(want ...string) string {
	u.t.Helper()
	return u.waitView(strings.Join(want, ", "), func(v string) bool {
		for _, w := range want {
			if !strings.Contains(v, w) {
				return false
			}
		}
		return true
	})
}

// enter types a line and presses Enter.
func (u *ui) enter(line string) {
	u.tm.Type(line)
	u.tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
}

// capture checks the View against testdata/<test>.golden.
func (u *ui) capture(v string) {
	u.t.Helper()
	golden.RequireEqual(u.t, []byte(v+"\n"))
}

// unreadCount finds carol's unread count in the list.
var unreadCount = regexp.MustCompile(`carol +1 │`)

var (
	alice = newPerson("alice")
	bob   = newPerson("bob")
	carol = newPerson("carol")
	dave  = newPerson("dave")
)

// TestUISend: alice writes to bob, whose node has not seen the 1:1 chat
// yet: the UI sets it on the node, sends a chat payload that conforms,
// and the message's mark goes from sent to delivered to read as bob's
// receipts come in.
func TestUISend(t *testing.T) {
	f := newFake(alice, bob)
	u := startUI(t, f, f.clock)
	u.waitFor("> bob")
	u.enter("hello bob")
	dm := conversations.DirectID(alice.key, bob.key)
	waitFake(t, "alice's message", func() bool { return len(f.sent(dm)) == 1 })
	p := f.sent(dm)[0]
	if p.GetText().GetText() != "hello bob" || p.GetChatType() != oneToOne || p.GetVersion() != chat.Version || string(p.GetChatId()) != string(dm) {
		t.Fatalf("sent payload: %v", p)
	}
	u.waitFor("alice: hello bob  ✓ sent")
	id := f.sentID("hello bob")
	b := peer{bob, f}
	f.advance(time.Minute)
	b.receipt(dm, oneToOne, chatv1.ReceiptType_RECEIPT_TYPE_DELIVERED, id)
	u.waitFor("alice: hello bob  ✓✓ delivered to 1 of 1")
	u.enter("are you there?")
	u.waitFor("alice: are you there?  ✓ sent")
	f.advance(time.Minute)
	b.receipt(dm, oneToOne, chatv1.ReceiptType_RECEIPT_TYPE_READ, id)
	u.capture(u.waitFor("alice: hello bob  ✓✓ read"))
}

// TestUIReceive: bob's messages arrive in the open 1:1 chat, carol's in
// another; a message that arrives after a later one is slotted in and
// marked late; a payload that does not conform is not shown; one of a
// future content type shows as unsupported; one that is not a chat
// payload is counted apart. Alice's client marks read on the node what it
// shows (the node sends the read receipts) and nothing else; it sends no
// receipt itself (delivery receipts are the node's).
func TestUIReceive(t *testing.T) {
	f := newFake(alice, bob, carol)
	u := startUI(t, f, f.clock)
	dmBob, dmCarol := conversations.DirectID(alice.key, bob.key), conversations.DirectID(alice.key, carol.key)
	b, c := peer{bob, f}, peer{carol, f}
	first := b.text(dmBob, oneToOne, "hi alice")
	u.waitFor("> bob", "bob: hi alice")
	f.advance(2 * time.Minute)
	b.text(dmBob, oneToOne, "lunch at noon?")
	// Written before "lunch at noon?" (its clock is lower), arriving after.
	b.send(dmBob, oneToOne, uint64(t0.Add(time.Minute).UnixMilli()), textPayload("I am back"))
	f.advance(time.Second)
	// Not conforming: an empty text. Never shown.
	b.send(dmBob, oneToOne, 0, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT,
		Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{}}})
	f.advance(time.Second)
	// A content type of a later version of the payload.
	b.send(dmBob, oneToOne, 0, &chatv1.ChatPayload{ContentType: chatv1.ContentType(42)})
	// Not a chat payload: an application's own bytes (strata send).
	f.deliverRaw(bob, dmBob, []byte("raw bytes"))
	c.text(dmCarol, oneToOne, "call me")
	u.waitFor("I am back  (late)", "unsupported message (content type 42)", "1 message not a chat payload")
	v := u.waitView("carol's unread count", func(v string) bool { return unreadCount.MatchString(v) })
	waitFake(t, "alice's chat with bob marked read", func() bool {
		ids := f.marked(dmBob)
		return len(ids) > 0 && string(ids[0]) == string(first)
	})
	if n := len(f.marked(dmCarol)); n != 0 || len(f.sent(dmBob))+len(f.sent(dmCarol)) != 0 {
		t.Errorf("alice's client marked carol's chat read %d times, sent %d payloads", n, len(f.sent(dmBob))+len(f.sent(dmCarol)))
	}
	if strings.Count(v, "bob:") != 4 {
		t.Errorf("bob's shown entries: want 4 (3 texts, 1 unsupported):\n%s", v)
	}
	u.capture(v)
	// Opening carol's chat reads her message: its unread count goes.
	u.tm.Send(tea.KeyMsg{Type: tea.KeyTab})
	u.waitView("carol's chat open", func(v string) bool {
		return strings.Contains(v, "> carol") && !unreadCount.MatchString(v)
	})
	waitFake(t, "carol's chat marked read", func() bool { return len(f.marked(dmCarol)) == 1 })
}

// TestUIJoinPublicChat: /join opens a public chat, where anyone's
// messages show (a stranger's under its key) and alice's are sent with no
// receipts.
func TestUIJoinPublicChat(t *testing.T) {
	f := newFake(alice, bob)
	u := startUI(t, f, f.clock)
	u.enter("/join status")
	u.waitFor("> #status", "#status · public chat", "joined the public chat #status")
	id := conversations.PublicChatID("status")
	peer{dave, f}.text(id, public, "gm #status")
	u.waitFor(identity.Fingerprint(dave.key)[:9] + ": gm #status")
	f.advance(time.Minute)
	u.enter("hello #status")
	v := u.waitFor("alice: hello #status  ✓ sent")
	for _, p := range f.sent(id) {
		if p.GetChatType() != public || p.GetContentType() != chatv1.ContentType_CONTENT_TYPE_TEXT {
			t.Errorf("alice sent %v to a public chat", p)
		}
	}
	u.capture(v)
}

// TestUICreateGroup: /group creates the node's conversation and the
// group's create event; bob joins and writes; /invite adds dave.
func TestUICreateGroup(t *testing.T) {
	f := newFake(alice, bob, carol, dave)
	u := startUI(t, f, f.clock)
	u.enter("/group friends bob carol")
	u.waitFor("> friends (group)", "created the group friends, 2 members invited")
	f.mu.Lock()
	group := f.convs[len(f.convs)-1].Id
	f.mu.Unlock()
	ps := f.sent(group)
	if len(ps) != 1 || ps[0].GetMembership().GetType() != chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE ||
		len(ps[0].GetMembership().GetMembers()) != 2 || ps[0].GetMembership().GetName() != "friends" {
		t.Fatalf("alice's create event: %v", ps)
	}
	f.advance(time.Minute)
	b := peer{bob, f}
	b.send(group, private, 0, membershipPayload(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, bob.key, ""))
	b.text(group, private, "hi all")
	// A stranger's message in the group is refused: never shown.
	peer{dave, f}.text(group, private, "let me in")
	u.waitFor("* bob joined", "bob: hi all")
	f.advance(time.Minute)
	u.enter("welcome bob")
	u.waitFor("alice: welcome bob  ✓ sent")
	b.receipt(group, private, chatv1.ReceiptType_RECEIPT_TYPE_READ, f.sentID("welcome bob"))
	u.waitFor("alice: welcome bob  ✓✓ read")
	u.enter("/invite dave")
	v := u.waitFor("* alice invited dave", "1 member invited", "2 members, 2 invited")
	if strings.Contains(v, "let me in") {
		t.Errorf("a non-member's message is shown:\n%s", v)
	}
	ps = f.sent(group)
	if ev := ps[len(ps)-1].GetMembership(); ev.GetType() != chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE ||
		len(ev.GetMembers()) != 1 || string(ev.GetMembers()[0]) != string(dave.key) {
		t.Fatalf("alice's invite event: %v", ev)
	}
	u.capture(v)
}

// TestUICommands: /add, /help and the commands' refusals, each shown on
// the status line.
func TestUICommands(t *testing.T) {
	f := newFake(alice, bob)
	f.cards["strata:card:dave"] = dave.contact()
	// The CLI passes its own: the QR form to the text form.
	cardText := func(s string) (string, error) {
		if rest, ok := strings.CutPrefix(s, "STRATA:CARD:"); ok {
			if rest == "" {
				return "", errors.New("contacts: decode card: empty")
			}
			return "strata:card:" + strings.ToLower(rest), nil
		}
		return s, nil
	}
	u := startUIWith(t, f, Options{Now: f.clock, CardText: cardText})
	for _, tc := range []struct{ line, want string }{
		{"/add STRATA:CARD:DAVE", "added dave (" + identity.Fingerprint(dave.key) + ")"},
		{"/add STRATA:CARD:", "error: add contact: contacts: decode card: empty"},
		{"/add strata:card:mallory", "error: add contact: contacts: not a card"},
		{"/add", "usage: /add CARD"},
		{"/group friends mallory", `error: no contact "mallory" (/add their card first)`},
		{"/group friends", "usage: /group NAME MEMBER..."},
		{"/invite dave", "error: /invite is for a private group: open one first"},
		{"/join", "usage: /join NAME"},
		{"/frobnicate", "error: unknown command /frobnicate (/help lists them)"},
		{"/help", "/group NAME MEMBER...  create a private group"},
	} {
		u.enter(tc.line)
		u.waitFor(tc.want)
	}
	u.waitFor("  dave")
	u.tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	u.waitView("the help closed", func(v string) bool { return !strings.Contains(v, "Commands:") })
}

// TestUIResume: the UI starts on a node that holds read marks of an
// earlier session: what alice read stays read and is not marked again;
// carol's message, never read, stays unread.
func TestUIResume(t *testing.T) {
	f := newFake(alice, bob, carol)
	dmBob, dmCarol := conversations.DirectID(alice.key, bob.key), conversations.DirectID(alice.key, carol.key)
	for _, p := range []person{bob, carol} {
		dm := conversations.DirectID(alice.key, p.key)
		if _, err := f.SetConversation(t.Context(), &appv1.SetConversationRequest{Id: dm, Members: [][]byte{p.key}}); err != nil {
			t.Fatal(err)
		}
	}
	peer{carol, f}.text(dmCarol, oneToOne, "new from carol")
	f.advance(time.Minute)
	b := peer{bob, f}
	seen := b.text(dmBob, oneToOne, "seen before")
	f.advance(time.Minute)
	// Alice's earlier session read it.
	if _, err := f.MarkRead(t.Context(), dmBob, seen); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Minute)
	u := startUI(t, f, f.clock)
	u.waitFor("> bob", "bob: seen before", "carol              1")
	// Whatever the UI would do, it has done by the time it answers a
	// second time.
	u.view()
	if n := len(f.marked(dmBob)); n != 1 {
		t.Errorf("bob's chat marked read %d times, want only the earlier session's", n)
	}
	if n := len(f.marked(dmCarol)); n != 0 {
		t.Errorf("carol's chat, not open, marked read %d times", n)
	}
}

// TestUIScroll: the view shows the newest messages; PgUp goes back to the
// first, no further, and PgDn comes back.
func TestUIScroll(t *testing.T) {
	f := newFake(alice, bob)
	dm := conversations.DirectID(alice.key, bob.key)
	if _, err := f.SetConversation(t.Context(), &appv1.SetConversationRequest{Id: dm, Members: [][]byte{bob.key}}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		peer{bob, f}.text(dm, oneToOne, fmt.Sprintf("message %02d", i))
		f.advance(time.Second)
	}
	u := startUI(t, f, f.clock)
	v := u.waitFor("message 39")
	if strings.Contains(v, "message 00") {
		t.Fatalf("the first message shows at the start:\n%s", v)
	}
	for range 5 {
		u.tm.Send(tea.KeyMsg{Type: tea.KeyPgUp})
	}
	v = u.waitFor("message 00")
	if strings.Contains(v, "message 39") {
		t.Fatalf("the last message shows at the top:\n%s", v)
	}
	u.tm.Send(tea.KeyMsg{Type: tea.KeyPgDown})
	u.waitView("one page down", func(v string) bool { return !strings.Contains(v, "message 00") })
	for range 5 {
		u.tm.Send(tea.KeyMsg{Type: tea.KeyPgDown})
	}
	u.waitFor("message 39")
}
