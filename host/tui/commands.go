package tui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// helpText is what /help shows.
var helpText = []string{
	"Commands:",
	"  /add CARD              add a contact from its card (strata:card:... or STRATA:CARD:...)",
	"  /group NAME MEMBER...  create a private group with contacts (alias, name, fingerprint or hex key)",
	"  /invite MEMBER...      invite contacts to the open group (admins only)",
	"  /join NAME             join the public chat NAME",
	"  /help                  this help",
	"  /quit                  leave (so do Ctrl+C and Ctrl+D)",
	"Keys: Enter sends, Tab / Shift+Tab (Ctrl+N / Ctrl+P) open the next / previous conversation,",
	"  PgUp / PgDn scroll the messages, Esc clears the input and closes this help.",
	"Marks: ✓ sent · ✓✓ delivered to n of m · ✓✓ read by n of m · ✓✓ read (by all) ·",
	"  (late) arrived after later messages and was slotted in where it belongs · (edited)",
}

// command runs a /command.
func (m *Model) command(line string) (tea.Model, tea.Cmd) {
	f := strings.Fields(line)
	name, args := f[0], f[1:]
	switch name {
	case "/quit", "/exit":
		return m.quit()
	case "/help":
		m.help = true
		return m, nil
	case "/add":
		if len(args) == 0 {
			return m.usage("/add CARD")
		}
		return m, m.addContact(strings.Join(args, ""))
	case "/join":
		if len(args) != 1 {
			return m.usage("/join NAME")
		}
		return m, m.join(args[0])
	case "/group":
		if len(args) < 2 {
			return m.usage("/group NAME MEMBER...")
		}
		return m, m.group(args[0], args[1:])
	case "/invite":
		if len(args) == 0 {
			return m.usage("/invite MEMBER...")
		}
		return m, m.invite(args)
	}
	m.status = "error: unknown command " + clean(name) + " (/help lists them)"
	return m, nil
}

// usage says how a command is used.
func (m *Model) usage(u string) (tea.Model, tea.Cmd) {
	m.status = "usage: " + u
	return m, nil
}

// addContact imports a card.
func (m *Model) addContact(card string) tea.Cmd {
	if m.cardText != nil {
		text, err := m.cardText(card)
		if err != nil {
			m.status = "error: add contact: " + clean(err.Error())
			return nil
		}
		card = text
	}
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		ct, err := b.AddContact(ctx, card)
		if err != nil {
			return doneMsg{err: fmt.Errorf("add contact: %w", err)}
		}
		return doneMsg{status: fmt.Sprintf("added %s (%s)", clean(ct.GetName()), clean(ct.GetFingerprint())), refresh: true}
	}
}

// join joins a public chat and opens it.
func (m *Model) join(name string) tea.Cmd {
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		c, err := b.JoinPublicChat(ctx, name)
		if err != nil {
			return doneMsg{err: fmt.Errorf("join %s: %w", name, err)}
		}
		return doneMsg{status: "joined the public chat #" + clean(c.GetPublicChat()), open: c}
	}
}

// resolve finds contacts by alias, name, fingerprint or hex key.
func (m *Model) resolve(refs []string) ([][]byte, error) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	var out [][]byte
	for _, ref := range refs {
		var found []*appv1.Contact
		for _, ct := range m.contacts {
			if ct.GetAlias() == ref || ct.GetName() == ref || norm(ct.GetFingerprint()) == norm(ref) ||
				hex.EncodeToString(ct.GetIdentity()) == strings.ToLower(ref) {
				found = append(found, ct)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no contact %q (/add their card first)", ref)
		case 1:
			out = append(out, found[0].GetIdentity())
		default:
			return nil, fmt.Errorf("%q names %d contacts: use the fingerprint", ref, len(found))
		}
	}
	return out, nil
}

// group creates a private group: the node's conversation with the
// members and the name (which the node announces to them), then the
// group's create event, which invites them. The group's id is random, as
// the node would pick it, and picked here so that the create event can be
// written at once, in its place in the outbox.
func (m *Model) group(name string, refs []string) tea.Cmd {
	members, err := m.resolve(refs)
	if err != nil {
		m.status = "error: " + clean(err.Error())
		return nil
	}
	id := make([]byte, 16)
	rand.Read(id)
	v := newConv(m.self, &appv1.Conversation{Id: id, Name: name})
	p, err := v.payload(m.self, m.now(), membershipPayload(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, m.self, name, members...))
	if err != nil {
		m.status = "error: " + clean(err.Error())
		return nil
	}
	m.add(v)
	return m.queue(&job{set: &appv1.SetConversationRequest{Id: id, Members: members, Name: name}, open: true, conv: id, payload: p,
		chain: m.syncLayer, ok: fmt.Sprintf("created the group %s, %s invited", clean(name), plural(len(members), "member"))})
}

// invite invites contacts to the open group with an invite event; the
// node, which follows the group's events, adds them to its conversation
// (so that the stack brings them the group's messages) and announces it.
func (m *Model) invite(refs []string) tea.Cmd {
	v := m.open()
	if v == nil || v.kind != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP || v.plain() {
		m.status = "error: /invite is for a private group: open one first"
		return nil
	}
	if !m.isAdmin(v) {
		m.status = "error: only an admin of the group invites"
		return nil
	}
	add, err := m.resolve(refs)
	if err != nil {
		m.status = "error: " + clean(err.Error())
		return nil
	}
	return m.send(v, membershipPayload(chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE, m.self, "", add...),
		plural(len(add), "member")+" invited")
}

// isAdmin reports whether this node is an admin of the group v: as the
// node says (Members), or as the client's timeline of the group's events
// says until the node's answer came.
func (m *Model) isAdmin(v *conv) bool {
	if v.roster != nil {
		for _, mb := range v.roster.GetMembers() {
			if mb.GetSelf() {
				return mb.GetRole() == appv1.MemberRole_MEMBER_ROLE_ADMIN
			}
		}
		return false
	}
	return v.tl.Group().State().IsAdmin(m.self)
}

// plural is n and the noun, in the plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
