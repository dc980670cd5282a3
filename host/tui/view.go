package tui

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
)

// styles are the few styles of the UI; on a terminal without colours (and
// in tests) they draw plain text.
type styles struct {
	selected, dim, mark, status lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	return styles{
		selected: r.NewStyle().Bold(true).Reverse(true),
		dim:      r.NewStyle().Faint(true),
		mark:     r.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "28", Dark: "42"}),
		status:   r.NewStyle().Faint(true),
	}
}

// Layout.
const (
	listWidth = 22 // the conversation list's column
	gutter    = " │ "
)

// bodyHeight is the number of rows of the list and the message view.
func (m *Model) bodyHeight() int { return max(3, m.height-5) }

// View implements tea.Model: a header, the conversation list beside the
// open conversation, the input line and a status line.
func (m *Model) View() string {
	w := max(40, m.width)
	listW := min(listWidth, w/3)
	msgW := w - listW - len([]rune(gutter))
	h := m.bodyHeight()

	var b strings.Builder
	head := "strata chat"
	if m.selfName != "" {
		head += " · " + clean(m.selfName) + " · " + clean(m.fingerprint)
	}
	b.WriteString(fit(head, w) + "\n")
	b.WriteString(strings.Repeat("─", listW) + "─┬─" + strings.Repeat("─", msgW) + "\n")
	left, right := m.listLines(listW), m.messageLines(msgW, h)
	for i := range h {
		l, r := "", ""
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		b.WriteString(strings.TrimRight(pad(l, listW)+gutter+r, " ") + "\n")
	}
	b.WriteString(strings.Repeat("─", listW) + "─┴─" + strings.Repeat("─", msgW) + "\n")
	b.WriteString(fit(m.input.View(), w) + "\n")
	b.WriteString(m.styles.status.Render(fit(m.status, w)))
	return b.String()
}

// listLines are the conversation list: the open one marked ">", each
// with its count of unread messages.
func (m *Model) listLines(w int) []string {
	if len(m.convs) == 0 {
		return []string{m.styles.dim.Render(fit("no conversations", w))}
	}
	var out []string
	for _, v := range m.convs {
		marker := "  "
		if string(v.id) == m.sel {
			marker = "> "
		}
		count := ""
		if n := v.tl.Unread(); n > 0 {
			count = fmt.Sprintf(" %d", n)
		}
		name := m.title(v)
		if v.kind == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
			name += " (group)"
		}
		line := marker + ansi.Truncate(name, max(1, w-len(marker)-len(count)), "…")
		line = pad(line, w-len(count)) + count
		if string(v.id) == m.sel {
			line = m.styles.selected.Render(line)
		}
		out = append(out, line)
	}
	return out
}

// messageLines are the open conversation's title and the last lines of
// its messages that fit in h rows (less the scroll), or the help.
func (m *Model) messageLines(w, h int) []string {
	if m.help {
		var out []string
		for _, l := range helpText {
			out = append(out, wrap(l, w)...)
		}
		return out
	}
	v := m.open()
	if v == nil {
		return []string{"no conversation is open: /add a contact, /group or /join (/help)"}
	}
	out := []string{fit(m.heading(v), w), m.styles.dim.Render(fit(refused(v), w))}
	room := h - len(out)
	lines := m.entryLines(v, w, room+m.scroll)
	end := len(lines) - min(m.scroll, max(0, len(lines)-room))
	start := max(0, end-room)
	return append(out, lines[start:end]...)
}

// entryLines are the last lines of v's entries, wrapped at w cells: at
// least need of them when there are that many (need < 0: all), so that a
// long history costs only what is drawn.
func (m *Model) entryLines(v *conv, w, need int) []string {
	es := v.tl.Entries()
	var blocks [][]string
	n := 0
	for i := len(es) - 1; i >= 0 && (need < 0 || n < need); i-- {
		b := wrap(m.entryLine(v, es[i]), w)
		blocks = append(blocks, b)
		n += len(b)
	}
	lines := make([]string, 0, n)
	for i := len(blocks) - 1; i >= 0; i-- {
		lines = append(lines, blocks[i]...)
	}
	return lines
}

// messageWidth is the width of the message view.
func (m *Model) messageWidth() int {
	w := max(40, m.width)
	return w - min(listWidth, w/3) - len([]rune(gutter))
}

// scrollBy scrolls the message view up by d lines (down if negative),
// no further than its first line.
func (m *Model) scrollBy(d int) {
	top := 0
	if v := m.open(); v != nil {
		top = max(0, len(m.entryLines(v, m.messageWidth(), -1))-(m.bodyHeight()-2))
	}
	m.scroll = min(max(0, m.scroll+d), top)
}

// heading is the open conversation's title line.
func (m *Model) heading(v *conv) string {
	switch v.kind {
	case chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE:
		return m.title(v) + " · 1:1"
	case chatv1.ChatType_CHAT_TYPE_PUBLIC:
		return m.title(v) + " · public chat"
	}
	if v.plain() {
		return fmt.Sprintf("%s · %s · not a private group", m.title(v), plural(len(v.members), "member"))
	}
	// The roles as the node has them (Members), else as the client's
	// timeline of the group's events has them.
	var members, invited int
	var admin, isInvited, isMember bool
	if r := v.roster; r != nil {
		for _, mb := range r.GetMembers() {
			switch mb.GetRole() {
			case appv1.MemberRole_MEMBER_ROLE_INVITED:
				invited++
				isInvited = isInvited || mb.GetSelf()
			case appv1.MemberRole_MEMBER_ROLE_ADMIN, appv1.MemberRole_MEMBER_ROLE_MEMBER:
				members++
				isMember = isMember || mb.GetSelf()
				admin = admin || (mb.GetSelf() && mb.GetRole() == appv1.MemberRole_MEMBER_ROLE_ADMIN)
			}
		}
	} else {
		s := v.tl.Group().State()
		members, invited = len(s.Members), len(s.Invited)
		admin, isInvited, isMember = s.IsAdmin(m.self), s.Invited[string(m.self)], s.IsMember(m.self)
	}
	line := m.title(v) + " · private group · " + plural(members, "member")
	if invited > 0 {
		line += fmt.Sprintf(", %d invited", invited)
	}
	switch {
	case admin:
		line += " · you are an admin"
	case isInvited:
		line += " · you are invited"
	case !isMember:
		line += " · you are not a member"
	}
	return line
}

// refused says how many messages of v are not shown: those that are not
// chat payloads, and those refused, by reason (the reasons of host/chat).
// The user learns that they came.
func refused(v *conv) string {
	counts := v.tl.Counts()
	delete(counts, chat.ReasonDuplicate) // the same message again: nothing to say
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, counts[r]))
		}
	}
	var out []string
	if v.other > 0 {
		out = append(out, plural(v.other, "message")+" not a chat payload")
	}
	if len(parts) > 0 {
		out = append(out, "refused: "+strings.Join(parts, ", "))
	}
	if len(out) == 0 {
		return ""
	}
	return "not shown: " + strings.Join(out, "; ")
}

// entryLine is one entry of a timeline: time, author, text and marks.
func (m *Model) entryLine(v *conv, e *chat.Entry) string {
	ts := e.Message.Timestamp.In(m.loc).Format("15:04")
	var text string
	switch {
	case e.Message.Unsupported:
		text = m.who(e.Author) + ": " + m.styles.dim.Render("unsupported message ("+clean(e.Message.UnsupportedWhy)+")")
	case e.Message.Event != nil:
		text = "* " + eventText(e.Message.Event, m.who)
	default:
		text = m.who(e.Author) + ": " + clean(e.Text)
	}
	var marks []string
	if e.Edited {
		marks = append(marks, "(edited)")
	}
	if e.Late {
		marks = append(marks, "(late)")
	}
	for _, emoji := range slices.Sorted(maps.Keys(e.Reactions)) {
		marks = append(marks, fmt.Sprintf("%s %d", clean(emoji), len(e.Reactions[emoji])))
	}
	if isMessage(e) && bytes.Equal(e.Author, m.self) {
		if v.kind == chatv1.ChatType_CHAT_TYPE_PUBLIC {
			marks = append(marks, "✓ sent")
		} else {
			marks = append(marks, delivery(v, e))
		}
	}
	line := ts + " " + text
	if len(marks) > 0 {
		line += "  " + m.styles.mark.Render(strings.Join(marks, " · "))
	}
	return line
}

// wrap breaks s into lines of at most w cells.
func wrap(s string, w int) []string {
	return strings.Split(ansi.Wrap(s, w, ""), "\n")
}

// fit cuts s to w cells.
func fit(s string, w int) string {
	return ansi.Truncate(s, w, "…")
}

// pad cuts or pads s to exactly w cells.
func pad(s string, w int) string {
	s = fit(s, w)
	if n := ansi.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}
