package chat

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"slices"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

// Clock is a chat's Lamport clock as a sender keeps it (Status's rule):
// the next clock is max(now in milliseconds, the largest clock seen + 1),
// so a message sorts after every message its author had seen, and close
// to its wall time otherwise.
type Clock struct {
	last uint64
}

// Next returns the clock and timestamp of a message written at now, and
// remembers the clock.
func (c *Clock) Next(now time.Time) (clock, timestamp uint64) {
	timestamp = uint64(max(now.UnixMilli(), 1))
	clock = max(timestamp, c.last+1)
	c.last = clock
	return clock, timestamp
}

// Observe takes the clock of a message seen in the chat.
func (c *Clock) Observe(clock uint64) {
	c.last = max(c.last, clock)
}

// ReasonNotAuthor: an edit or a delete of a message by someone else.
const ReasonNotAuthor Reason = "not_author"

// Entry is a message as a client shows it in a timeline.
type Entry struct {
	// ID is the message id.
	ID []byte
	// Author is the identity that signed the message.
	Author ed25519.PublicKey
	// Message is the payload as Decode accepted it.
	Message *Message
	// Text is the text shown: the message's, or its latest edit's.
	Text string
	// Edited and Deleted say whether the author edited or deleted it.
	Edited, Deleted bool
	// Reactions holds, per emoji, the identities (as strings of their key
	// bytes) whose latest reaction with it is not retracted.
	Reactions map[string]map[string]bool
	// Late is set for a message that arrived after one that sorts after
	// it: it was slotted in where it belongs, and a client marks it.
	Late bool
	// DeliveredTo and ReadBy are the identities (as strings of their key
	// bytes), other than the author, whose receipts say they have the
	// message, or have read it (read implies delivered).
	DeliveredTo, ReadBy map[string]bool
	// Seen is set once this node's user has seen the message (MarkRead).
	Seen bool

	// edit and reactions remember the clocks that decided Text and
	// Reactions, so that the latest by clock wins whatever the arrival
	// order.
	editClock     uint64
	reactionClock map[string]uint64
}

// Timeline is one conversation as a client shows it: the messages that
// conform, in causal order (Lamport clock, then message id), with edits,
// deletes and reactions applied to the messages they name and membership
// events applied to the group. What does not conform is refused with a
// reason and counted, never shown. It is a pure state machine, not safe
// for concurrent use.
type Timeline struct {
	env Envelope // Conversation, Self and PublicChat; per message Author and Sent
	// entries are the messages shown and the membership events applied,
	// in causal order.
	entries []*Entry
	byID    map[string]*Entry
	// seen holds the id of every message taken, entries and changes.
	seen map[string]bool
	// pending holds edits, deletes and reactions whose target has not
	// arrived, by target id.
	pending map[string][]pendingChange
	// receipts holds receipts for messages that have not arrived, by id.
	receipts map[string][]pendingReceipt
	group    *Group
	clock    Clock
	counts   map[Reason]uint64
}

type pendingReceipt struct {
	from ed25519.PublicKey
	t    chatv1.ReceiptType
}

type pendingChange struct {
	author ed25519.PublicKey
	m      *Message
}

// NewTimeline returns the timeline of the conversation conv, as the node
// self sees it; publicChat is the name of a public chat, or "".
func NewTimeline(conv []byte, self ed25519.PublicKey, publicChat string) *Timeline {
	return &Timeline{
		env:      Envelope{Conversation: bytes.Clone(conv), Self: self, PublicChat: publicChat},
		byID:     map[string]*Entry{},
		seen:     map[string]bool{},
		pending:  map[string][]pendingChange{},
		receipts: map[string][]pendingReceipt{},
		group:    NewGroup(),
		counts:   map[Reason]uint64{},
	}
}

// Incoming is a message the host delivered, as a timeline takes it.
type Incoming struct {
	// ID is the message id.
	ID []byte
	// Author is the identity the envelope authenticated.
	Author ed25519.PublicKey
	// Sent is the envelope's signed time, if the client has it; Received
	// is when the node took the message. See Envelope.
	Sent, Received time.Time
	// Payload is the chat payload.
	Payload []byte
}

// FromAPI returns the Incoming of a message of the messaging API's
// history (strata.app.v1 Message).
func FromAPI(m *appv1.Message) Incoming {
	return Incoming{
		ID:       m.GetMessageId(),
		Author:   ed25519.PublicKey(m.GetAuthor()),
		Received: time.Unix(0, m.GetTimeUnixNano()),
		Payload:  m.GetPayload(),
	}
}

// Add takes a message the host delivered. It returns the entry the
// message made or changed, or nil for a change or a receipt; or the
// refusal, counted.
func (t *Timeline) Add(in Incoming) (*Entry, error) {
	id, author := in.ID, in.Author
	if t.seen[string(id)] {
		t.counts[ReasonDuplicate]++
		return nil, refuse(ReasonDuplicate, "message already in the timeline")
	}
	env := t.env
	env.Author, env.Sent, env.Received = author, in.Sent, in.Received
	m, err := Decode(in.Payload, env)
	if err != nil {
		t.counts[ReasonOf(err)]++
		return nil, err
	}
	t.seen[string(id)] = true
	t.clock.Observe(m.Clock)
	if m.Unsupported {
		return t.insert(&Entry{ID: bytes.Clone(id), Author: author, Message: m}), nil
	}
	if m.ChatType == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
		if m.Event != nil {
			// The group holds every event, and the timeline shows those
			// that apply in the group's current order (Entries): a join
			// refused now for want of its invite shows once the invite
			// arrives. The group counts refusals.
			ev, _ := EventOf(id, author, m)
			r := t.group.Add(ev)
			e := t.insert(&Entry{ID: bytes.Clone(id), Author: author, Message: m})
			if r != "" {
				return nil, refuse(r, "membership event refused")
			}
			return e, nil
		}
		if err := t.group.CheckMessage(author, m.Clock, id); err != nil {
			return nil, err
		}
	}
	if m.Receipt != nil {
		for _, mid := range m.Receipt.IDs {
			if e, ok := t.byID[string(mid)]; ok {
				e.receipt(author, m.Receipt.Type)
			} else if !t.seen[string(mid)] {
				t.receipts[string(mid)] = append(t.receipts[string(mid)], pendingReceipt{from: author, t: m.Receipt.Type})
			}
		}
		return nil, nil
	}
	switch m.ContentType {
	case chatv1.ContentType_CONTENT_TYPE_EDIT, chatv1.ContentType_CONTENT_TYPE_DELETE, chatv1.ContentType_CONTENT_TYPE_REACTION:
		target, ok := t.byID[string(m.ResponseTo)]
		if !ok || target.Message.Event != nil || target.Message.Unsupported {
			if ok || t.seen[string(m.ResponseTo)] {
				t.counts[ReasonResponseTo]++
				return nil, refuse(ReasonResponseTo, "%s of something that is not a message", m.ContentType)
			}
			t.pending[string(m.ResponseTo)] = append(t.pending[string(m.ResponseTo)], pendingChange{author: author, m: m})
			return nil, nil
		}
		if err := t.apply(target, author, m); err != nil {
			return nil, err
		}
		return target, nil
	}
	e := t.insert(&Entry{ID: bytes.Clone(id), Author: author, Message: m, Text: m.Text})
	for _, c := range t.pending[string(id)] {
		_ = t.apply(e, c.author, c.m) // a refusal is counted
	}
	delete(t.pending, string(id))
	for _, r := range t.receipts[string(id)] {
		e.receipt(r.from, r.t)
	}
	delete(t.receipts, string(id))
	return e, nil
}

// receipt records a receipt from an identity other than the author.
func (e *Entry) receipt(from ed25519.PublicKey, t chatv1.ReceiptType) {
	if bytes.Equal(from, e.Author) || e.Message.Event != nil || e.Message.Unsupported {
		return
	}
	if e.DeliveredTo == nil {
		e.DeliveredTo, e.ReadBy = map[string]bool{}, map[string]bool{}
	}
	e.DeliveredTo[string(from)] = true
	if t == chatv1.ReceiptType_RECEIPT_TYPE_READ {
		e.ReadBy[string(from)] = true
	}
}

// Recipients returns how many identities a message is for: 1 in a 1:1
// chat; in a private group, the members other than its author, as the
// group stands now; 0 in a public chat, whose readers no one knows. The
// client shows "delivered to len(DeliveredTo) of Recipients".
func (t *Timeline) Recipients(e *Entry) int {
	switch e.Message.ChatType {
	case chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE:
		return 1
	case chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP:
		s := t.group.State()
		n := len(s.Members)
		if s.Members[string(e.Author)] {
			n--
		}
		return n
	}
	return 0
}

// MarkRead marks every message up to and including the one with id as
// seen by this node's user, and returns the ids of the messages by others
// that it newly marked, for the client to send a read receipt for (in a
// 1:1 chat or a private group). A message that arrives late, before the
// mark, stays unseen until the next MarkRead.
func (t *Timeline) MarkRead(id []byte) [][]byte {
	upTo, ok := t.byID[string(id)]
	if !ok {
		return nil
	}
	var ids [][]byte
	for _, e := range t.entries {
		if before(e.Message.Clock, e.ID, upTo.Message.Clock, upTo.ID) > 0 {
			break
		}
		if e.Seen {
			continue
		}
		e.Seen = true
		if t.isMessage(e) && !bytes.Equal(e.Author, t.env.Self) && !e.Deleted {
			ids = append(ids, bytes.Clone(e.ID))
		}
	}
	return ids
}

// Unread returns how many shown messages by others this node's user has
// not seen.
func (t *Timeline) Unread() int {
	n := 0
	for _, e := range t.Entries() {
		if !e.Seen && t.isMessage(e) && !bytes.Equal(e.Author, t.env.Self) {
			n++
		}
	}
	return n
}

// isMessage reports whether e is a message (not a membership event nor
// an unsupported payload).
func (t *Timeline) isMessage(e *Entry) bool {
	return e.Message.Event == nil && !e.Message.Unsupported
}

// insert puts e in its place in causal order.
func (t *Timeline) insert(e *Entry) *Entry {
	i, _ := slices.BinarySearchFunc(t.entries, e, func(a, b *Entry) int {
		return before(a.Message.Clock, a.ID, b.Message.Clock, b.ID)
	})
	e.Late = i < len(t.entries)
	t.entries = slices.Insert(t.entries, i, e)
	t.byID[string(e.ID)] = e
	return e
}

// apply applies an edit, delete or reaction by author to target.
func (t *Timeline) apply(target *Entry, author ed25519.PublicKey, m *Message) error {
	switch m.ContentType {
	case chatv1.ContentType_CONTENT_TYPE_REACTION:
		if target.Reactions == nil {
			target.Reactions, target.reactionClock = map[string]map[string]bool{}, map[string]uint64{}
		}
		key := m.Emoji + "\x00" + string(author)
		if m.Clock < target.reactionClock[key] {
			return nil // a later reaction decided already
		}
		target.reactionClock[key] = m.Clock
		if target.Reactions[m.Emoji] == nil {
			target.Reactions[m.Emoji] = map[string]bool{}
		}
		if m.Retracted {
			delete(target.Reactions[m.Emoji], string(author))
			if len(target.Reactions[m.Emoji]) == 0 {
				delete(target.Reactions, m.Emoji)
			}
		} else {
			target.Reactions[m.Emoji][string(author)] = true
		}
		return nil
	}
	if !bytes.Equal(author, target.Author) {
		t.counts[ReasonNotAuthor]++
		return refuse(ReasonNotAuthor, "%s of a message by someone else", m.ContentType)
	}
	if m.ContentType == chatv1.ContentType_CONTENT_TYPE_DELETE {
		target.Deleted, target.Text = true, ""
		return nil
	}
	if target.Deleted || m.Clock < target.editClock {
		return nil
	}
	target.Text, target.Edited, target.editClock = m.Text, true, m.Clock
	return nil
}

// Entries returns what the timeline shows, in causal order: the messages
// that are not deleted and the membership events that apply in the
// group's current order.
func (t *Timeline) Entries() []*Entry {
	refused := map[string]bool{}
	for _, r := range t.group.Refused() {
		refused[string(r.Event.ID)] = true
	}
	var out []*Entry
	for _, e := range t.entries {
		if e.Deleted || (e.Message.Event != nil && refused[string(e.ID)]) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Group returns the membership of a private group's timeline.
func (t *Timeline) Group() *Group { return t.group }

// Next returns the clock and timestamp for a message this node writes
// now: after every message the timeline holds.
func (t *Timeline) Next(now time.Time) (clock, timestamp uint64) {
	return t.clock.Next(now)
}

// Counts returns the refusals, by reason: the timeline's and its group's.
func (t *Timeline) Counts() map[Reason]uint64 {
	out := maps.Clone(t.counts)
	for r, n := range t.group.Counts() {
		out[r] += n
	}
	return out
}

// Entry returns the entry of the message with id, or nil when the
// timeline does not show it (not arrived, refused, or a change or a
// receipt, which are applied to the entries they name).
func (t *Timeline) Entry(id []byte) *Entry { return t.byID[string(id)] }

// Last returns the id of the last message the timeline shows, in causal
// order, or nil when it shows none: what MarkRead takes to mark
// everything read.
func (t *Timeline) Last() []byte {
	es := t.Entries()
	for i := len(es) - 1; i >= 0; i-- {
		if t.isMessage(es[i]) {
			return es[i].ID
		}
	}
	return nil
}
