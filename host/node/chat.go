package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
)

// The node runs host/chat on the messages of its history whose payload is
// a chat payload (it begins with chat.Marker; any other payload is an
// application's own bytes, which the host neither reads nor checks):
//
//   - On receipt (Node.open), the payload is checked with chat.Decode, the
//     one conformance check: one that does not conform is refused, never
//     stored nor delivered, and counted (dropped_chat_<reason>); one of a
//     content type or version this build does not know is stored and
//     counted (chat_unsupported), and the API flags it. In a private
//     group, a membership event whose actor is not its signer is refused
//     (dropped_chat_forged_actor), and so is a message from an author the
//     group's events removed before the message's place
//     (dropped_chat_removed); one whose author they do not make a member
//     yet is taken, since its invitation may still come.
//   - Every chat message stored (received or sent) is added to its
//     conversation's chat.Timeline, kept in memory from the first chat
//     message on and rebuilt from the history after a start: it holds the
//     group's membership, the receipts and the read state the API answers
//     with (Members, Receipts, MarkRead).
//   - When a private group's membership events change who is a member or
//     invited, the node sets the conversation's members to them (the
//     SetConversation path, which decides whom the stack sends to);
//     a node announces the change when the event was its own.
//   - For each chat message received in a 1:1 chat or a private group the
//     node sends a DELIVERED receipt to the chat, a batch per conversation
//     at most every chatReceiptDelay.

// chatReceiptDelay is how long delivered receipts wait to be sent
// together.
const chatReceiptDelay = 100 * time.Millisecond

// chatReadFile is where hosts before the conversation store kept the read
// marks, in <data_dir>/host; loadReads moves them into the store.
const chatReadFile = "chat-read.json"

// chatReasons are the refusals counted even when zero, so that Stats
// lists them.
var chatReasons = []chat.Reason{
	chat.ReasonOversize, chat.ReasonMalformed, chat.ReasonVersion, chat.ReasonClock, chat.ReasonTimestamp,
	chat.ReasonChatID, chat.ReasonChatType, chat.ReasonContentType, chat.ReasonBody, chat.ReasonText,
	chat.ReasonEmoji, chat.ReasonResponseTo, chat.ReasonEvent, chat.ReasonReceipt,
	chat.ReasonForgedActor, chat.ReasonRemoved, chat.ReasonNotMember,
}

// chatState is what the node knows of its chat conversations.
type chatState struct {
	n  *Node
	mu sync.Mutex
	// convs are the conversations with a chat message, by id.
	convs map[string]*chatConv
	// counts are the refusals by reason, and unsupported payloads.
	counts      map[chat.Reason]uint64
	unsupported uint64
	// reads are the read marks: conversation -> id of the message up to
	// which the user read; kept in the conversation store.
	reads map[string][]byte

	once sync.Once
	wake chan struct{}
	// pending work of the chat goroutine (run).
	members  map[string]memberJob
	receipts map[string][][]byte
}

// chatConv is one conversation's timeline.
type chatConv struct {
	tl *chat.Timeline
	// cursor is the last history cursor the timeline took.
	cursor uint64
	// set is the private group's members and invitees as last applied
	// to the conversation (sorted key strings); nil before its creation.
	set []string
	// kind is the chat type of the conversation's chat messages.
	kind chatv1.ChatType
}

// memberJob is a change of a private group's members for the node's
// conversation.
type memberJob struct {
	set      []string
	announce bool
}

func newChatState(n *Node) *chatState {
	return &chatState{
		n: n, convs: map[string]*chatConv{}, counts: map[chat.Reason]uint64{},
		wake: make(chan struct{}, 1), members: map[string]memberJob{}, receipts: map[string][][]byte{},
	}
}

// check is the check of a chat payload on receipt: m is the message in
// conversation c (nil if the node does not store it: a 1:1 not yet
// stored) as the envelope o authenticated it. It returns a *refusal, or
// nil for a payload to store.
func (cs *chatState) check(ctx context.Context, m *conversations.Message, c *conversations.Conversation, o *opened) error {
	n := cs.n
	env := chat.Envelope{Author: o.author, Conversation: m.Conversation, Sent: o.sent, Received: time.Now(), Self: n.id.Public()}
	if c != nil {
		env.PublicChat = c.PublicChat
	}
	msg, err := chat.Decode(o.payload, env)
	if err != nil {
		return cs.refuse(chat.ReasonOf(err), err.Error(), o.author)
	}
	if msg.Unsupported {
		cs.mu.Lock()
		cs.unsupported++
		cs.mu.Unlock()
		return nil
	}
	if msg.ChatType != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
		return nil
	}
	if msg.Event != nil {
		if !bytes.Equal(msg.Event.Actor, o.author) {
			return cs.refuse(chat.ReasonForgedActor, fmt.Sprintf("a %s event in the name of %s, signed by %s", msg.Event.Type, n.displayName(msg.Event.Actor), n.displayName(o.author)), o.author)
		}
		return nil
	}
	cc, err := cs.conv(ctx, m.Conversation)
	if err != nil {
		return nil // not judged here; the timeline judges it when it takes it
	}
	id := m.MessageID
	if len(id) == 0 {
		id = o.id
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	g := cc.tl.Group()
	st := g.State()
	if !st.Created || st.Invited[string(o.author)] {
		// The create event has not arrived, or the author is invited and
		// its join may not have: the node's conversation members
		// (Node.mayWrite) are all there is to judge by. A refusal here is
		// for good (the sync layer is told), so it is made only on what
		// no later event can change back: a removal.
		return nil
	}
	// Only a removal before the message's place is final. An author the
	// events this node holds do not make a member yet is taken: its
	// invitation may be in the same batch or still on its way, a refusal
	// is for good, and the node's conversation let the author in
	// (Node.mayWrite).
	if !g.RemovedAt(o.author, msg.Clock, id) {
		return nil
	}
	const why = "the author was removed from the group before this message"
	cs.counts[chat.ReasonRemoved]++
	n.msgStats.count(dropChat, 1, n, why, o.author)
	return &refusal{counter: dropChat, detail: why}
}

// refuse counts a chat payload refused for reason r.
func (cs *chatState) refuse(r chat.Reason, detail string, author []byte) error {
	cs.mu.Lock()
	cs.counts[r]++
	cs.mu.Unlock()
	cs.n.msgStats.count(dropChat, 1, cs.n, detail, author)
	return &refusal{counter: dropChat, detail: detail}
}

// removed reports whether the private group conv (if the node holds its
// timeline) marks author as removed: the reason a member's message that
// the node's conversation no longer lets in is refused.
func (cs *chatState) removed(conv []byte, author []byte) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cc := cs.convs[string(conv)]
	return cc != nil && cc.tl.Group().State().Removed[string(author)]
}

// countRemoved counts a message refused for coming from a removed member.
func (cs *chatState) countRemoved(author []byte) error {
	return cs.refuse(chat.ReasonRemoved, "the author was removed from the private group", author)
}

// conv returns the timeline of conversation id, built from the history
// the first time.
func (cs *chatState) conv(ctx context.Context, id []byte) (*chatConv, error) {
	return cs.convUpTo(ctx, id, 0)
}

// convUpTo is conv; a timeline built now takes the history's messages
// before the cursor upTo only (0: all), so that the caller feeds it the
// message at upTo as a live one.
func (cs *chatState) convUpTo(ctx context.Context, id []byte, upTo uint64) (*chatConv, error) {
	cs.mu.Lock()
	cc := cs.convs[string(id)]
	cs.mu.Unlock()
	if cc != nil {
		return cc, nil
	}
	n := cs.n
	pub := ""
	if c, err := n.convs.Get(ctx, id); err == nil {
		pub = c.PublicChat
	} else if !errors.Is(err, conversations.ErrNotFound) {
		return nil, err
	}
	cc = &chatConv{tl: chat.NewTimeline(id, n.id.Public(), pub)}
	var after uint64
	for {
		msgs, err := n.hist.store.History(ctx, id, after, 0)
		if err != nil {
			return nil, fmt.Errorf("chat: read the history of %x: %w", id, err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if upTo > 0 && m.Cursor >= upTo {
				break
			}
			cs.feed(cc, m, false)
			after = m.Cursor
		}
		if upTo > 0 && after < msgs[len(msgs)-1].Cursor {
			break
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if other := cs.convs[string(id)]; other != nil {
		return other, nil // built meanwhile by another caller
	}
	cs.loadReads(ctx)
	if mark := cs.reads[string(id)]; mark != nil {
		cc.tl.MarkRead(mark)
	}
	cs.convs[string(id)] = cc
	if cc.set != nil {
		// The conversation follows the events as they stand.
		cs.members[string(id)] = memberJob{set: cc.set}
		cs.kick()
	}
	return cc, nil
}

// feed adds a stored message to a timeline; live is set for a message
// the node takes now (not one read back from the history at a start).
// The caller holds cs.mu, or owns cc alone.
func (cs *chatState) feed(cc *chatConv, m *conversations.Message, live bool) {
	if m.Cursor <= cc.cursor {
		return
	}
	cc.cursor = m.Cursor
	if !chat.IsPayload(m.Payload) {
		return
	}
	author := ed25519.PublicKey(m.Author)
	if m.Outgoing {
		author = cs.n.id.Public()
	}
	e, err := cc.tl.Add(chat.Incoming{ID: m.MessageID, Author: author, Received: m.Time, Payload: m.Payload})
	msg := (*chat.Message)(nil)
	if e != nil && bytes.Equal(e.ID, m.MessageID) {
		msg = e.Message
	}
	if msg != nil && !msg.Unsupported && cc.kind == chatv1.ChatType_CHAT_TYPE_UNSPECIFIED {
		cc.kind = msg.ChatType
	}
	if cc.kind == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
		s := cc.tl.Group().State()
		if s.Created {
			set := make([]string, 0, len(s.Members)+len(s.Invited))
			for k := range s.Members {
				set = append(set, k)
			}
			for k := range s.Invited {
				if !s.Members[k] {
					set = append(set, k)
				}
			}
			slices.Sort(set)
			changed := !slices.Equal(set, cc.set)
			cc.set = set
			if live {
				// Queued at every message of the group, changed or not:
				// the conversation follows the events even when an
				// announcement (a member's SetConversation) changed it
				// since. The node whose own event changed them announces.
				job := cs.members[string(m.Conversation)]
				cs.members[string(m.Conversation)] = memberJob{set: set, announce: job.announce || (changed && m.Outgoing)}
				cs.kick()
			}
		}
	}
	if live && err == nil && !m.Outgoing && msg != nil && msg.Event == nil && msg.Receipt == nil && !msg.Unsupported &&
		(msg.ChatType == chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE || msg.ChatType == chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP) {
		cs.receipts[string(m.Conversation)] = append(cs.receipts[string(m.Conversation)], bytes.Clone(m.MessageID))
		cs.kick()
	}
}

// observe takes messages just added to the history, in cursor order: the
// chat messages go to their conversations' timelines. It is called by the
// history writer after each write (history.observe).
func (cs *chatState) observe(msgs []*conversations.Message) {
	for _, m := range msgs {
		if !chat.IsPayload(m.Payload) {
			continue
		}
		ctx := cs.n.ctx
		cc, err := cs.convUpTo(ctx, m.Conversation, m.Cursor) // reads the history before it, the first time
		if err != nil {
			cs.n.log.Warn("could not follow a chat conversation", "conversation", fmt.Sprintf("%x", m.Conversation), "error", err)
			continue
		}
		cs.mu.Lock()
		cs.feed(cc, m, true)
		cs.mu.Unlock()
	}
}

// kick wakes the chat goroutine, starting it the first time. The caller
// holds cs.mu.
func (cs *chatState) kick() {
	cs.once.Do(func() { go cs.run(cs.n.ctx) })
	select {
	case cs.wake <- struct{}{}:
	default:
	}
}

// run applies membership changes and sends delivered receipts until ctx
// ends. It runs on its own goroutine: both go through the stack, which
// the history writer must never wait for.
func (cs *chatState) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-cs.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(chatReceiptDelay):
		}
		cs.mu.Lock()
		members, receipts := cs.members, cs.receipts
		cs.members, cs.receipts = map[string]memberJob{}, map[string][][]byte{}
		cs.mu.Unlock()
		for conv, job := range members {
			if err := cs.applyMembers(ctx, []byte(conv), job); err != nil && ctx.Err() == nil {
				cs.n.log.Warn("could not set a private group's members from its events", "conversation", fmt.Sprintf("%x", conv), "error", err)
			}
		}
		for conv, ids := range receipts {
			if _, err := cs.sendReceipts(ctx, []byte(conv), chatv1.ReceiptType_RECEIPT_TYPE_DELIVERED, ids); err != nil && ctx.Err() == nil {
				cs.n.log.Warn("could not send delivered receipts", "conversation", fmt.Sprintf("%x", conv), "messages", len(ids), "error", err)
			}
		}
	}
}

// applyMembers sets the node's conversation to the members and invitees
// of its private group: the identities the stack sends the conversation
// to, and takes its messages from. Those that are not contacts of this
// node are left out (the stack cannot reach them) and logged.
func (cs *chatState) applyMembers(ctx context.Context, conv []byte, job memberJob) error {
	n := cs.n
	c, err := n.convs.Get(ctx, conv)
	if errors.Is(err, conversations.ErrNotFound) {
		return nil // nothing to follow: no message can be in it
	} else if err != nil {
		return err
	}
	if c.PublicChat != "" {
		return nil
	}
	want := []ed25519.PublicKey{n.id.Public()}
	for _, k := range job.set {
		key := ed25519.PublicKey(k)
		switch {
		case bytes.Equal(key, n.id.Public()):
		case n.book.knows(key):
			want = append(want, key)
		default:
			n.log.Warn("a member of a private group is not a contact: the node neither sends to nor takes messages from it", "conversation", fmt.Sprintf("%x", conv), "member", n.displayName(key))
		}
	}
	norm, err := conversations.Normalize(conv, want)
	if err != nil {
		return err
	}
	if slices.EqualFunc(norm, c.Members, func(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }) {
		return nil
	}
	n.log.Info("a private group's members changed by its events", "conversation", fmt.Sprintf("%x", conv), "members", len(norm))
	return n.setConversation(ctx, conversations.Conversation{ID: conv, Members: norm, Name: c.Name}, job.announce)
}

// sendReceipts sends receipts of type t for ids to the chat conv, at most
// chat.MaxReceiptIDs a message, and returns how many messages it sent.
func (cs *chatState) sendReceipts(ctx context.Context, conv []byte, t chatv1.ReceiptType, ids [][]byte) (int, error) {
	cs.mu.Lock()
	cc := cs.convs[string(conv)]
	cs.mu.Unlock()
	if cc == nil || len(ids) == 0 {
		return 0, nil
	}
	sent := 0
	for len(ids) > 0 {
		k := min(len(ids), chat.MaxReceiptIDs)
		cs.mu.Lock()
		clock, ts := cc.tl.Next(time.Now())
		kind := cc.kind
		cs.mu.Unlock()
		payload, err := chat.Encode(&chatv1.ChatPayload{
			Version: chat.Version, Clock: clock, Timestamp: ts, ChatId: conv, ChatType: kind,
			ContentType: chatv1.ContentType_CONTENT_TYPE_RECEIPT,
			Body:        &chatv1.ChatPayload_Receipt{Receipt: &chatv1.Receipt{Type: t, MessageIds: ids[:k]}},
		})
		if err != nil {
			return sent, err
		}
		if _, err := cs.n.Send(ctx, conv, payload, SendOptions{}); err != nil {
			return sent, err
		}
		sent++
		ids = ids[k:]
	}
	return sent, nil
}

// loadReads reads the read marks once, from the conversation store. A
// node whose host directory still holds chatReadFile (the read marks of
// hosts before the store kept them) moves them into the store first, then
// removes the file. The caller holds cs.mu.
func (cs *chatState) loadReads(ctx context.Context) {
	if cs.reads != nil {
		return
	}
	cs.importReads(ctx)
	marks, err := cs.n.convs.ReadMarks(ctx)
	if err != nil {
		cs.n.log.Warn("could not read the chat read marks", "error", err)
		marks = map[string][]byte{}
	}
	cs.reads = marks
}

// importReads moves the marks of a legacy chatReadFile into the store and
// removes the file once they are stored.
func (cs *chatState) importReads(ctx context.Context) {
	path := filepath.Join(cs.n.cfg.Node.DataDir, "host", chatReadFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			cs.n.log.Warn("could not read the chat read marks", "file", path, "error", err)
		}
		return
	}
	var marks map[string]string
	if err := json.Unmarshal(b, &marks); err != nil {
		cs.n.log.Warn("could not read the chat read marks", "file", path, "error", err)
		return
	}
	for conv, id := range marks {
		c, err1 := hex.DecodeString(conv)
		m, err2 := hex.DecodeString(id)
		if err1 != nil || err2 != nil || len(c) == 0 || len(m) == 0 {
			continue
		}
		if err := cs.n.convs.SetReadMark(ctx, c, m); err != nil {
			cs.n.log.Warn("could not move the chat read marks", "error", err)
			return
		}
	}
	if err := os.Remove(path); err != nil {
		cs.n.log.Warn("could not remove the moved chat read marks", "file", path, "error", err)
	}
}

// counters returns the chat counters for MessageStats.
func (cs *chatState) counters(out map[string]uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, r := range chatReasons {
		out["dropped_chat_"+string(r)] = 0
	}
	for r, k := range cs.counts {
		out["dropped_chat_"+string(r)] += k
	}
	out["chat_unsupported"] = cs.unsupported
}

// Member is a member of a conversation as the node knows it.
type Member struct {
	Identity ed25519.PublicKey
	// Admin is set for an admin of a private group.
	Admin bool
	// Invited is set for an identity a private group's events invited
	// that has not joined: the node sends to it, and it is no member yet.
	Invited bool
}

// GroupInfo is a private group's state by its membership events.
type GroupInfo struct {
	// Name is the name its create event gave; Creator its creator.
	Name    string
	Creator ed25519.PublicKey
}

// Members returns the members of a conversation: for a private group
// (a conversation with a chat create event) as its membership events make
// them, with their admin role and the invitees; for any other
// conversation its members as stored, no one an admin. group is nil for
// a conversation that is not a private group.
func (n *Node) Members(ctx context.Context, conv []byte) (members []Member, group *GroupInfo, err error) {
	c, err := n.convs.Get(ctx, conv)
	if errors.Is(err, conversations.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %x", ErrUnknownConversation, conv)
	} else if err != nil {
		return nil, nil, err
	}
	cs := n.writer.chat
	cc, err := cs.conv(ctx, conv)
	if err != nil {
		return nil, nil, err
	}
	cs.mu.Lock()
	s := cc.tl.Group().State()
	cs.mu.Unlock()
	if !s.Created {
		for _, m := range c.Members {
			members = append(members, Member{Identity: m})
		}
		return members, nil, nil
	}
	for _, m := range s.MemberList() {
		members = append(members, Member{Identity: m, Admin: s.IsAdmin(m)})
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Invited {
			if !s.Members[k] && !yield(k) {
				return
			}
		}
	}) {
		members = append(members, Member{Identity: ed25519.PublicKey(k), Invited: true})
	}
	return members, &GroupInfo{Name: s.Name, Creator: s.Creator}, nil
}

// Receipts is what the receipts say of one chat message.
type Receipts struct {
	MessageID []byte
	// Recipients is the m of "delivered to n of m" (chat.Timeline's
	// Recipients): 1 in a 1:1 chat, the other members of a private group
	// as it stands now, 0 in a public chat.
	Recipients int
	// DeliveredTo and ReadBy are the identities whose receipts say they
	// have, or read, the message; this node is never among them.
	DeliveredTo, ReadBy []ed25519.PublicKey
	// Seen is set once this node's user marked the message read.
	Seen bool
}

// MaxReceipts bounds the messages one Receipts call answers for.
const MaxReceipts = 1000

// ErrUnknownMessage is returned by MarkRead for a message id that is not
// a chat message of the conversation.
var ErrUnknownMessage = errors.New("no such chat message in the conversation")

// Receipts returns the receipts of chat messages of a conversation: of
// the messages named, or with none named, of the newest MaxReceipts
// messages the conversation's timeline shows. A named message the
// timeline does not show (not a chat message, or unknown) is left out.
func (n *Node) Receipts(ctx context.Context, conv []byte, ids [][]byte) ([]Receipts, error) {
	if len(ids) > MaxReceipts {
		return nil, fmt.Errorf("at most %d message ids, got %d", MaxReceipts, len(ids))
	}
	if _, err := n.convs.Get(ctx, conv); errors.Is(err, conversations.ErrNotFound) {
		return nil, fmt.Errorf("%w: %x", ErrUnknownConversation, conv)
	} else if err != nil {
		return nil, err
	}
	cs := n.writer.chat
	cc, err := cs.conv(ctx, conv)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var entries []*chat.Entry
	if len(ids) == 0 {
		for _, e := range cc.tl.Entries() {
			if e.Message.Event == nil && !e.Message.Unsupported {
				entries = append(entries, e)
			}
		}
		entries = entries[max(0, len(entries)-MaxReceipts):]
	} else {
		for _, id := range ids {
			if e := cc.tl.Entry(id); e != nil && e.Message.Event == nil && !e.Message.Unsupported {
				entries = append(entries, e)
			}
		}
	}
	self := string(n.id.Public())
	keys := func(set map[string]bool) []ed25519.PublicKey {
		var out []ed25519.PublicKey
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range set {
				if k != self && !yield(k) {
					return
				}
			}
		}) {
			out = append(out, ed25519.PublicKey(k))
		}
		return out
	}
	out := make([]Receipts, len(entries))
	for i, e := range entries {
		out[i] = Receipts{MessageID: bytes.Clone(e.ID), Recipients: cc.tl.Recipients(e), DeliveredTo: keys(e.DeliveredTo), ReadBy: keys(e.ReadBy), Seen: e.Seen}
	}
	return out, nil
}

// Unread returns how many chat messages by others the user has not marked
// read in a conversation (chat.Timeline's Unread); 0 for a conversation
// without chat messages.
func (n *Node) Unread(ctx context.Context, conv []byte) (int, error) {
	cs := n.writer.chat
	cc, err := cs.conv(ctx, conv)
	if err != nil {
		return 0, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cc.tl.Unread(), nil
}

// ReadResult is what MarkRead did.
type ReadResult struct {
	// Marked is how many messages by others it newly marked read.
	Marked int
	// Unread is how many stay unread (a late message before the mark
	// that arrives afterwards, say).
	Unread int
	// Receipts is how many READ receipt messages it sent.
	Receipts int
}

// MarkRead marks the chat messages of a conversation read up to and
// including the message id (nil: up to the last one), keeps the mark
// across restarts, and, unless noReceipts, sends a READ receipt for the
// messages it newly marked to the chat (1:1 chats and private groups;
// never in a public chat).
func (n *Node) MarkRead(ctx context.Context, conv, id []byte, noReceipts bool) (ReadResult, error) {
	if _, err := n.convs.Get(ctx, conv); errors.Is(err, conversations.ErrNotFound) {
		return ReadResult{}, fmt.Errorf("%w: %x", ErrUnknownConversation, conv)
	} else if err != nil {
		return ReadResult{}, err
	}
	cs := n.writer.chat
	cc, err := cs.conv(ctx, conv)
	if err != nil {
		return ReadResult{}, err
	}
	cs.mu.Lock()
	if id == nil {
		id = cc.tl.Last()
	} else if cc.tl.Entry(id) == nil {
		cs.mu.Unlock()
		return ReadResult{}, fmt.Errorf("%w: %x", ErrUnknownMessage, id)
	}
	var res ReadResult
	var marked [][]byte
	if id != nil {
		marked = cc.tl.MarkRead(id)
		cs.loadReads(ctx)
		if err := cs.n.convs.SetReadMark(ctx, conv, id); err != nil {
			cs.mu.Unlock()
			return ReadResult{}, fmt.Errorf("chat: %w", err)
		}
		cs.reads[string(conv)] = bytes.Clone(id)
	}
	res.Marked, res.Unread = len(marked), cc.tl.Unread()
	kind := cc.kind
	cs.mu.Unlock()
	if noReceipts || len(marked) == 0 || (kind != chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE && kind != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP) {
		return res, nil
	}
	res.Receipts, err = cs.sendReceipts(ctx, conv, chatv1.ReceiptType_RECEIPT_TYPE_READ, marked)
	if err != nil {
		return res, fmt.Errorf("marked read, but the read receipts were not sent: %w", err)
	}
	return res, nil
}

// ChatFlags says what the node made of a stored message's payload: chat
// is set for a chat payload (it begins with chat.Marker), and
// unsupported, for one of a content type or version this build does not
// know, says what (the client keeps it and shows it as unsupported).
func ChatFlags(m *conversations.Message) (isChat bool, unsupported string) {
	if !chat.IsPayload(m.Payload) {
		return false, ""
	}
	// The message was checked when the node took it; only the content is
	// looked at here, so no times, ids or members are checked again.
	msg, err := chat.Decode(m.Payload, chat.Envelope{Conversation: m.Conversation})
	if err != nil {
		return true, ""
	}
	return true, msg.UnsupportedWhy
}

// ErrChatPayload is returned by Send and CheckChatPayload for a chat
// payload that does not conform (chat.Decode's refusal is wrapped in it).
var ErrChatPayload = errors.New("the chat payload does not conform")

// CheckChatPayload checks a payload the application is about to send to
// conversation conv: a chat payload (one that begins with chat.Marker)
// must be one every member's node takes (chat.Decode, as the node itself
// is the author and the time is now); any other payload is the
// application's own and passes.
func (n *Node) CheckChatPayload(conv, payload []byte) error {
	if !chat.IsPayload(payload) {
		return nil
	}
	now := time.Now()
	env := chat.Envelope{Author: n.id.Public(), Conversation: conv, Sent: now, Received: now, Self: n.id.Public()}
	if c, err := n.convs.Get(n.ctx, conv); err == nil {
		env.PublicChat = c.PublicChat
	}
	if _, err := chat.Decode(payload, env); err != nil {
		return fmt.Errorf("send: %w: %w", ErrChatPayload, err)
	}
	return nil
}
