// Package tui is `strata chat`, the interactive terminal chat client: a
// bubbletea program on a node's messaging API (through a Backend) with a
// conversation list and unread counts, a message view in causal order with
// delivery marks, an input line and /commands. Every payload it shows went
// through host/chat (a chat.Timeline per conversation), every payload it
// sends is checked by chat.Validate first, and every remote text is drawn
// through clean.
package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/identity"
)

// callTimeout bounds each call the UI makes to the node.
const callTimeout = 30 * time.Second

// Options are the choices of New.
type Options struct {
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Location is the time zone times are shown in; nil: time.Local.
	Location *time.Location
	// Renderer draws the styles; nil: lipgloss's default renderer.
	Renderer *lipgloss.Renderer
	// CardText, if set, turns a card /add was given into the text form
	// the node takes (the CLI's: the QR form to the text form).
	CardText func(string) (string, error)
}

// Model is the chat UI, a tea.Model.
type Model struct {
	ctx    context.Context
	cancel context.CancelFunc
	b      Backend
	now    func() time.Time
	loc    *time.Location
	// cardText turns a card given to /add into its text form, if set.
	cardText func(string) (string, error)
	styles   styles

	self        ed25519.PublicKey
	selfName    string
	fingerprint string
	contacts    []*appv1.Contact
	convs       []*conv
	byID        map[string]*conv
	// sel is the id of the open conversation.
	sel string

	input         textinput.Model
	width, height int
	status        string
	help          bool
	// scroll is how many lines the message view is scrolled up.
	scroll int
	// loaded is set once the stored history is in the timelines.
	loaded   bool
	incoming chan tea.Msg
	// err is why the UI stopped, if it stopped on its own.
	err error
	// box is the queue of messages to send; syncLayer is set when the
	// node has a sync layer, which takes parents.
	box       *outbox
	syncLayer bool
}

// New returns the UI on b. It stops (and so ends the subscription to the
// node) when ctx does, or when the user quits.
func New(ctx context.Context, b Backend, opts Options) *Model {
	ctx, cancel := context.WithCancel(ctx)
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "a message, or /help"
	in.CharLimit = chat.MaxTextSize
	in.Cursor.SetMode(cursor.CursorStatic)
	in.Focus()
	m := &Model{ctx: ctx, cancel: cancel, b: b, now: opts.Now, loc: opts.Location, cardText: opts.CardText, input: in,
		byID: map[string]*conv{}, incoming: make(chan tea.Msg), width: 80, height: 24, status: "connecting to the node...", box: newOutbox()}
	go runSender(ctx, b, m.box)
	if m.now == nil {
		m.now = time.Now
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	r := opts.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	m.styles = newStyles(r)
	return m
}

// Run runs the UI on b in the terminal of in and out until the user quits,
// ctx ends or the node goes away. opts.Renderer defaults to one for out.
func Run(ctx context.Context, b Backend, in io.Reader, out io.Writer, opts Options) error {
	if opts.Renderer == nil {
		opts.Renderer = lipgloss.NewRenderer(out)
	}
	m := New(ctx, b, opts)
	defer m.cancel()
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	final, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	if fm, ok := final.(*Model); ok {
		return fm.err
	}
	return nil
}

// Err is why the UI stopped on its own (the node went away), or nil.
func (m *Model) Err() error { return m.err }

// The messages of the UI's own commands.
type (
	// loadedMsg is what the node holds when the UI starts.
	loadedMsg struct {
		node     *appv1.NodeResponse
		contacts []*appv1.Contact
		convs    []*appv1.Conversation
		history  []*appv1.Message
		// seen holds, per conversation, the messages the node says the
		// user marked read.
		seen map[string]map[string]bool
		err  error
	}
	// incomingMsg is a message of the subscription.
	incomingMsg struct{ m *appv1.Message }
	// streamEndMsg ends the subscription.
	streamEndMsg struct{ err error }
	// rosterMsg is a private group's members, as the node has them.
	rosterMsg struct {
		conv   []byte
		roster *appv1.MembersResponse
		err    error
	}
	// refreshMsg is the node's contacts and conversations.
	refreshMsg struct {
		contacts []*appv1.Contact
		convs    []*appv1.Conversation
		err      error
	}
	// doneMsg is the outcome of a command or a send.
	doneMsg struct {
		status string
		err    error
		// open, if set, is a conversation to open.
		open *appv1.Conversation
		// refresh asks for the node's contacts and conversations again.
		refresh bool
		// unset is a conversation the node refused to set up.
		unset []byte
	}
)

// Init implements tea.Model: it loads what the node holds.
func (m *Model) Init() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.ctx, callTimeout)
		defer cancel()
		var l loadedMsg
		if l.node, l.err = m.b.Node(ctx); l.err != nil {
			return l
		}
		if l.contacts, l.err = m.b.Contacts(ctx); l.err != nil {
			return l
		}
		if l.convs, l.err = m.b.Conversations(ctx); l.err != nil {
			return l
		}
		// The read state is the node's (MarkRead): what the user read in
		// an earlier session stays read.
		l.seen = map[string]map[string]bool{}
		for _, c := range l.convs {
			rs, err := m.b.Receipts(ctx, c.GetId())
			if err != nil {
				l.err = fmt.Errorf("receipts: %w", err)
				return l
			}
			for _, r := range rs {
				if r.GetSeen() {
					if l.seen[string(c.GetId())] == nil {
						l.seen[string(c.GetId())] = map[string]bool{}
					}
					l.seen[string(c.GetId())][string(r.GetMessageId())] = true
				}
			}
		}
		var after uint64
		for {
			msgs, err := m.b.History(m.ctx, after, 1000)
			if err != nil {
				l.err = err
				return l
			}
			if len(msgs) == 0 {
				return l
			}
			l.history = append(l.history, msgs...)
			after = msgs[len(msgs)-1].GetCursor()
		}
	}
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tea.KeyMsg:
		return m.key(msg)
	case loadedMsg:
		if msg.err != nil {
			return m.stop(fmt.Errorf("chat: load from the node: %w", msg.err))
		}
		return m, m.load(msg)
	case incomingMsg:
		cmds := []tea.Cmd{m.next()}
		unknown, event := m.take(msg.m)
		if unknown || event {
			// A new conversation, or one whose members changed: what the
			// node now says of it.
			cmds = append(cmds, m.refresh())
		}
		if v := m.byID[string(msg.m.GetConversation())]; event && v != nil {
			cmds = append(cmds, m.fetchRoster(v))
		}
		cmds = append(cmds, m.markRead(), m.reconcile())
		return m, tea.Batch(cmds...)
	case rosterMsg:
		if v := m.byID[string(msg.conv)]; v != nil && msg.err == nil {
			v.roster = msg.roster
		}
		return m, nil
	case streamEndMsg:
		if msg.err == nil || m.ctx.Err() != nil {
			return m, tea.Quit
		}
		return m.stop(fmt.Errorf("chat: node stopped: %w", msg.err))
	case refreshMsg:
		if msg.err != nil {
			m.status = "error: " + clean(msg.err.Error())
			return m, nil
		}
		m.merge(msg.contacts, msg.convs)
		return m, m.reconcile()
	case doneMsg:
		return m, m.done(msg)
	}
	return m, nil
}

// stop ends the UI with err.
func (m *Model) stop(err error) (tea.Model, tea.Cmd) {
	m.err, m.status = err, "error: "+clean(err.Error())
	m.cancel()
	return m, tea.Quit
}

// quit ends the UI at the user's request.
func (m *Model) quit() (tea.Model, tea.Cmd) {
	m.cancel()
	return m, tea.Quit
}

// key handles a key.
func (m *Model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "ctrl+c", "ctrl+d":
		return m.quit()
	case "tab", "ctrl+n", "alt+down":
		return m, m.move(1)
	case "shift+tab", "ctrl+p", "alt+up":
		return m, m.move(-1)
	case "pgup":
		m.scrollBy(max(1, m.bodyHeight()-3))
		return m, nil
	case "pgdown":
		m.scrollBy(-max(1, m.bodyHeight()-3))
		return m, nil
	case "esc":
		m.help = false
		m.input.Reset()
		return m, nil
	case "enter":
		line := strings.TrimSpace(m.input.Value())
		m.input.Reset()
		m.help = false
		if line == "" {
			return m, nil
		}
		if strings.HasPrefix(line, "/") {
			return m.command(line)
		}
		return m, m.sendText(line)
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return m, cmd
}

// move opens the conversation d places down the list (up if negative).
func (m *Model) move(d int) tea.Cmd {
	if len(m.convs) == 0 {
		return nil
	}
	i := m.selIndex()
	i = ((i+d)%len(m.convs) + len(m.convs)) % len(m.convs)
	m.sel, m.scroll = string(m.convs[i].id), 0
	return tea.Batch(m.markRead(), m.fetchRoster(m.convs[i]))
}

// selIndex is the index of the open conversation in the list, 0 if none.
func (m *Model) selIndex() int {
	for i, c := range m.convs {
		if string(c.id) == m.sel {
			return i
		}
	}
	return 0
}

// open returns the open conversation, or nil.
func (m *Model) open() *conv { return m.byID[m.sel] }

// load takes what the node held at the start, and subscribes to what
// comes after it.
func (m *Model) load(l loadedMsg) tea.Cmd {
	m.self, m.selfName, m.fingerprint = l.node.GetIdentity(), l.node.GetName(), l.node.GetFingerprint()
	for _, layer := range l.node.GetStack() {
		m.syncLayer = m.syncLayer || strings.HasPrefix(layer, "sync=")
	}
	m.merge(l.contacts, l.convs)
	var after uint64
	for _, msg := range l.history {
		m.take(msg)
		after = msg.GetCursor()
	}
	// The node's read marks: everything up to the last message read.
	cmds := []tea.Cmd{m.subscribe(after), m.next()}
	for _, c := range m.convs {
		var last []byte
		for _, e := range c.tl.Entries() {
			if l.seen[string(c.id)][string(e.ID)] {
				last = e.ID
			}
		}
		if last != nil {
			c.tl.MarkRead(last)
		}
		if c.kind == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
			cmds = append(cmds, m.fetchRoster(c))
		}
	}
	sortConvs(m.convs, m.title)
	if m.sel == "" && len(m.convs) > 0 {
		m.sel = string(m.convs[0].id)
	}
	m.loaded, m.status = true, "Tab: next conversation · /help"
	return tea.Batch(append(cmds, m.markRead(), m.reconcile())...)
}

// merge takes the node's contacts and conversations: every conversation
// of the node, and the 1:1 chat with every contact.
func (m *Model) merge(contacts []*appv1.Contact, convs []*appv1.Conversation) {
	m.contacts = contacts
	for _, c := range convs {
		if v := m.byID[string(c.GetId())]; v != nil {
			v.update(c)
			continue
		}
		m.add(newConv(m.self, c))
	}
	for _, ct := range contacts {
		if bytes.Equal(ct.GetIdentity(), m.self) || len(ct.GetIdentity()) != ed25519.PublicKeySize {
			continue
		}
		v := directConv(m.self, ct.GetIdentity())
		if m.byID[string(v.id)] == nil {
			m.add(v)
		}
	}
	sortConvs(m.convs, m.title)
	if m.sel == "" && m.loaded && len(m.convs) > 0 {
		m.sel = string(m.convs[0].id)
	}
}

// add adds a conversation to the list.
func (m *Model) add(v *conv) {
	m.convs = append(m.convs, v)
	m.byID[string(v.id)] = v
}

// take puts a message of the node into its conversation's timeline, and
// reports whether the message is in a conversation the UI did not know
// (the node's list is to be read again) and whether it is a membership
// event. A payload that host/chat refuses is counted by its timeline and
// never shown; one that is not a chat payload at all (an application's
// own bytes) is counted apart.
func (m *Model) take(msg *appv1.Message) (unknown, event bool) {
	author := ed25519.PublicKey(msg.GetAuthor())
	if msg.GetOutgoing() && len(author) == 0 {
		author = m.self
	}
	v := m.byID[string(msg.GetConversation())]
	if v == nil {
		unknown = true
		if len(author) == ed25519.PublicKeySize && !bytes.Equal(author, m.self) &&
			bytes.Equal(msg.GetConversation(), directConv(m.self, author).id) {
			v = directConv(m.self, author)
		} else {
			v = newConv(m.self, &appv1.Conversation{Id: msg.GetConversation()})
			v.onNode = true
		}
		m.add(v)
	}
	if !msg.GetChat() {
		v.other++
		return unknown, false
	}
	in := chat.FromAPI(msg)
	in.Author = author
	e, err := v.tl.Add(in)
	if err != nil || e == nil {
		return unknown, false
	}
	if e.Message.Event != nil && v.name == "" {
		v.name = v.tl.Group().State().Name
	}
	if m.loaded {
		sortConvs(m.convs, m.title)
	}
	return unknown, e.Message.Event != nil
}

// markRead marks what the open conversation shows as read: in the
// client's timeline, and on the node (MarkRead), which keeps the read
// state and sends the read receipts (in a 1:1 chat or a private group).
// Delivery receipts are the node's: it sends one for every chat message
// it receives.
func (m *Model) markRead() tea.Cmd {
	v := m.open()
	if !m.loaded || v == nil {
		return nil
	}
	last := v.tl.Last()
	if last == nil || len(v.tl.MarkRead(last)) == 0 {
		return nil
	}
	ctx, b, id := m.ctx, m.b, v.id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if _, err := b.MarkRead(ctx, id, last); err != nil {
			return doneMsg{err: fmt.Errorf("mark read: %w", err)}
		}
		return nil
	}
}

// fetchRoster asks the node for a private group's members.
func (m *Model) fetchRoster(v *conv) tea.Cmd {
	if v.kind != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP || !v.onNode {
		return nil
	}
	ctx, b, id := m.ctx, m.b, v.id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		r, err := b.Members(ctx, id)
		return rosterMsg{conv: id, roster: r, err: err}
	}
}

// reconcile joins the private groups this node is invited to: the node
// already holds the conversation (its creator's node announced it), and
// the join makes this node a member in the group's events too.
func (m *Model) reconcile() tea.Cmd {
	if !m.loaded {
		return nil
	}
	var cmds []tea.Cmd
	for _, v := range m.convs {
		if v.kind != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP || v.joinSent {
			continue
		}
		s := v.tl.Group().State()
		if s.Invited[string(m.self)] && !s.Members[string(m.self)] {
			v.joinSent = true
			cmds = append(cmds, m.send(v, membershipPayload(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, m.self, ""),
				"joined the group "+clean(m.title(v))))
		}
	}
	return tea.Batch(cmds...)
}

// subscribe follows the node's messages after the cursor, into m.incoming.
func (m *Model) subscribe(after uint64) tea.Cmd {
	ctx, b, ch := m.ctx, m.b, m.incoming
	return func() tea.Msg {
		err := b.Subscribe(ctx, after, func(msg *appv1.Message) error {
			select {
			case ch <- incomingMsg{msg}:
				return nil
			case <-ctx.Done():
				return nil
			}
		})
		return streamEndMsg{err}
	}
}

// next waits for the next message of the subscription.
func (m *Model) next() tea.Cmd {
	ctx, ch := m.ctx, m.incoming
	return func() tea.Msg {
		select {
		case msg := <-ch:
			return msg
		case <-ctx.Done():
			return nil
		}
	}
}

// refresh reads the node's contacts and conversations again.
func (m *Model) refresh() tea.Cmd {
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		var r refreshMsg
		if r.contacts, r.err = b.Contacts(ctx); r.err == nil {
			r.convs, r.err = b.Conversations(ctx)
		}
		return r
	}
}

// done takes the outcome of a command.
func (m *Model) done(d doneMsg) tea.Cmd {
	if d.err != nil {
		m.status = "error: " + clean(d.err.Error())
	} else if d.status != "" {
		m.status = d.status
	}
	if v := m.byID[string(d.unset)]; v != nil {
		v.onNode = false // to be set up again with the next message
	}
	var cmds []tea.Cmd
	if d.open != nil {
		v := m.byID[string(d.open.GetId())]
		if v == nil {
			v = newConv(m.self, d.open)
			m.add(v)
		} else {
			v.update(d.open)
		}
		m.sel, m.scroll = string(v.id), 0
		cmds = append(cmds, m.markRead(), m.fetchRoster(v))
	}
	if d.refresh {
		cmds = append(cmds, m.refresh())
	}
	return tea.Batch(cmds...)
}

// sendText sends a text message to the open conversation.
func (m *Model) sendText(text string) tea.Cmd {
	v := m.open()
	if v == nil {
		m.status = "error: no conversation is open: /add a contact, /group or /join first"
		return nil
	}
	if v.plain() {
		m.status = "error: this conversation is not a private group (no create event), so no one would take a chat message in it: /group makes one"
		return nil
	}
	m.scroll = 0
	return m.send(v, textPayload(text), "")
}

// send sends the payload p to v (the header filled in and checked now),
// after everything queued before it, and reports ok as the status when it
// went.
func (m *Model) send(v *conv, p *chatv1.ChatPayload, ok string) tea.Cmd {
	b, err := v.payload(m.self, m.now(), p)
	if err != nil {
		m.status = "error: not sent: " + clean(err.Error())
		return nil
	}
	j := &job{conv: v.id, payload: b, ok: ok, chain: m.syncLayer && v.kind != chatv1.ChatType_CHAT_TYPE_PUBLIC}
	if !v.onNode && v.peer != nil {
		// As `strata send --to` does: a 1:1 chat is set on the node
		// before its first message.
		j.set = &appv1.SetConversationRequest{Id: v.id, Members: [][]byte{v.peer}}
		v.onNode = true
	}
	return m.queue(j)
}

// nameOf names an identity: this node, a contact (alias, else card name),
// the name the node gave, or the start of its fingerprint.
func (m *Model) nameOf(id []byte, fallback string) string {
	if bytes.Equal(id, m.self) && len(id) > 0 {
		return clean(m.selfName)
	}
	for _, ct := range m.contacts {
		if bytes.Equal(ct.GetIdentity(), id) {
			if ct.GetAlias() != "" {
				return clean(ct.GetAlias())
			}
			return clean(ct.GetName())
		}
	}
	if fallback != "" {
		return clean(fallback)
	}
	if len(id) != ed25519.PublicKeySize {
		return "?"
	}
	return identity.Fingerprint(id)[:9]
}

// who names an identity.
func (m *Model) who(id []byte) string { return m.nameOf(id, "") }

// title is a conversation's name in the list: the peer of a 1:1 chat,
// #name of a public chat, a group's name (or its id's start).
func (m *Model) title(v *conv) string {
	switch {
	case v.kind == chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE:
		return m.who(v.peer)
	case v.public != "":
		return "#" + clean(v.public)
	case v.name != "":
		return clean(v.name)
	}
	return "group " + hex.EncodeToString(v.id[:min(4, len(v.id))])
}
