package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/identity"
)

// t0 is the time of the fake node's clock: every test shows the same
// times.
var t0 = time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)

// person is a test identity with a fixed key.
type person struct {
	name string
	key  ed25519.PublicKey
}

func newPerson(name string) person {
	seed := sha256.Sum256([]byte("strata tui test " + name))
	return person{name: name, key: ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)}
}

func (p person) contact() *appv1.Contact {
	return &appv1.Contact{Identity: p.key, Name: p.name, Fingerprint: identity.Fingerprint(p.key)}
}

// fakeNode is a Backend that keeps everything in memory: the node's side
// of the messaging API as a test needs it, and what the UI called.
type fakeNode struct {
	self person

	mu       sync.Mutex
	now      time.Time
	contacts []*appv1.Contact
	convs    []*appv1.Conversation
	msgs     []*appv1.Message
	changed  chan struct{}
	// cards are the contacts AddContact knows, by card text.
	cards map[string]*appv1.Contact
	// tls are the node's timelines of its conversations' chat messages,
	// as the node keeps them (host/node runs host/chat).
	tls map[string]*chat.Timeline
	// marks are the MarkRead calls: conversation and message id.
	marks [][2][]byte
	// clocks are the peers' last clocks, by name.
	clocks map[string]uint64
}

func newFake(self person, contacts ...person) *fakeNode {
	f := &fakeNode{self: self, now: t0, changed: make(chan struct{}), cards: map[string]*appv1.Contact{},
		tls: map[string]*chat.Timeline{}, clocks: map[string]uint64{}}
	for _, c := range contacts {
		f.contacts = append(f.contacts, c.contact())
	}
	return f
}

// clock returns the fake node's time.
func (f *fakeNode) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// advance moves the fake node's clock.
func (f *fakeNode) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// appendLocked adds a message to the history and wakes subscribers.
func (f *fakeNode) appendLocked(m *appv1.Message) {
	m.Cursor = uint64(len(f.msgs) + 1)
	if len(m.MessageId) == 0 {
		sum := sha256.Sum256(append(append([]byte{}, m.Author...), m.Payload...))
		m.MessageId = sum[:]
	}
	m.TimeUnixNano = f.now.UnixNano()
	m.Chat = chat.IsPayload(m.Payload)
	if m.Chat {
		in := chat.FromAPI(m)
		if m.Outgoing {
			in.Author = f.self.key
		}
		_, _ = f.timeline(m.Conversation).Add(in)
	}
	f.msgs = append(f.msgs, m)
	close(f.changed)
	f.changed = make(chan struct{})
}

// deliver is a message from another node arriving.
func (f *fakeNode) deliver(from person, conv []byte, payload []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &appv1.Message{Conversation: conv, Author: from.key, AuthorName: from.name, Payload: payload}
	f.appendLocked(m)
	return m.MessageId
}

// timeline returns the node's timeline of conv.
func (f *fakeNode) timeline(conv []byte) *chat.Timeline {
	tl := f.tls[string(conv)]
	if tl == nil {
		public := ""
		for _, c := range f.convs {
			if bytes.Equal(c.Id, conv) {
				public = c.PublicChat
			}
		}
		tl = chat.NewTimeline(conv, f.self.key, public)
		f.tls[string(conv)] = tl
	}
	return tl
}

// deliverRaw is a message from another node whose payload is not a chat
// payload.
func (f *fakeNode) deliverRaw(from person, conv []byte, payload []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appendLocked(&appv1.Message{Conversation: conv, Author: from.key, AuthorName: from.name, Payload: payload})
}

// marked returns the MarkRead calls for conv: the message ids.
func (f *fakeNode) marked(conv []byte) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, mk := range f.marks {
		if bytes.Equal(mk[0], conv) {
			out = append(out, mk[1])
		}
	}
	return out
}

// sent returns the chat payloads the node's user sent to conv, decoded.
func (f *fakeNode) sent(conv []byte) []*chatv1.ChatPayload {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*chatv1.ChatPayload
	for _, m := range f.msgs {
		if m.Outgoing && bytes.Equal(m.Conversation, conv) && m.Chat {
			var p chatv1.ChatPayload
			if err := proto.Unmarshal(m.Payload[len(chat.Marker):], &p); err == nil {
				out = append(out, &p)
			}
		}
	}
	return out
}

// sentID returns the id of the message the node's user sent with text.
func (f *fakeNode) sentID(text string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		var p chatv1.ChatPayload
		if m.Outgoing && m.Chat && proto.Unmarshal(m.Payload[len(chat.Marker):], &p) == nil && p.GetText().GetText() == text {
			return m.MessageId
		}
	}
	return nil
}

func (f *fakeNode) Node(context.Context) (*appv1.NodeResponse, error) {
	return &appv1.NodeResponse{Name: f.self.name, Identity: f.self.key, Fingerprint: identity.Fingerprint(f.self.key)}, nil
}

func (f *fakeNode) Contacts(context.Context) ([]*appv1.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*appv1.Contact(nil), f.contacts...), nil
}

func (f *fakeNode) AddContact(_ context.Context, card string) (*appv1.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cards[card]
	if !ok {
		return nil, fmt.Errorf("contacts: not a card")
	}
	f.contacts = append(f.contacts, c)
	return c, nil
}

func (f *fakeNode) Conversations(context.Context) ([]*appv1.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*appv1.Conversation
	for _, c := range f.convs {
		c = proto.Clone(c).(*appv1.Conversation)
		if tl := f.tls[string(c.Id)]; tl != nil {
			c.Unread, c.PrivateGroup = uint32(tl.Unread()), tl.Group().State().Created
		}
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeNode) Members(_ context.Context, conv []byte) (*appv1.MembersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	member := func(k []byte, role appv1.MemberRole) *appv1.Member {
		return &appv1.Member{Identity: k, Role: role, Self: bytes.Equal(k, f.self.key)}
	}
	if tl := f.tls[string(conv)]; tl != nil && tl.Group().State().Created {
		s := tl.Group().State()
		resp := &appv1.MembersResponse{PrivateGroup: true, GroupName: s.Name, Creator: s.Creator}
		for _, k := range s.MemberList() {
			role := appv1.MemberRole_MEMBER_ROLE_MEMBER
			if s.IsAdmin(k) {
				role = appv1.MemberRole_MEMBER_ROLE_ADMIN
			}
			resp.Members = append(resp.Members, member(k, role))
		}
		for k := range s.Invited {
			resp.Members = append(resp.Members, member([]byte(k), appv1.MemberRole_MEMBER_ROLE_INVITED))
		}
		return resp, nil
	}
	for _, c := range f.convs {
		if bytes.Equal(c.Id, conv) {
			resp := &appv1.MembersResponse{}
			for _, k := range c.Members {
				resp.Members = append(resp.Members, member(k, appv1.MemberRole_MEMBER_ROLE_MEMBER))
			}
			return resp, nil
		}
	}
	return nil, fmt.Errorf("node: unknown conversation")
}

func (f *fakeNode) Receipts(_ context.Context, conv []byte) ([]*appv1.MessageReceipts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tl := f.tls[string(conv)]
	if tl == nil {
		return nil, nil
	}
	var out []*appv1.MessageReceipts
	for _, e := range tl.Entries() {
		if isMessage(e) {
			out = append(out, &appv1.MessageReceipts{MessageId: e.ID, Recipients: uint32(tl.Recipients(e)), Seen: e.Seen})
		}
	}
	return out, nil
}

func (f *fakeNode) MarkRead(_ context.Context, conv, upTo []byte) (*appv1.MarkReadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marks = append(f.marks, [2][]byte{conv, upTo})
	tl := f.timeline(conv)
	n := len(tl.MarkRead(upTo))
	return &appv1.MarkReadResponse{Marked: uint32(n), Unread: uint32(tl.Unread())}, nil
}

func (f *fakeNode) SetConversation(_ context.Context, req *appv1.SetConversationRequest) (*appv1.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.GetId()
	if len(id) == 0 {
		return nil, fmt.Errorf("fake: SetConversation without an id")
	}
	for _, m := range req.GetMembers() {
		known := false
		for _, c := range f.contacts {
			known = known || bytes.Equal(c.GetIdentity(), m)
		}
		if !known {
			return nil, fmt.Errorf("node: not a contact")
		}
	}
	c := &appv1.Conversation{Id: id, Members: append([][]byte{f.self.key}, req.GetMembers()...), Name: req.GetName()}
	for i, have := range f.convs {
		if bytes.Equal(have.Id, id) {
			if c.Name == "" {
				c.Name = have.Name
			}
			f.convs[i] = c
			return c, nil
		}
	}
	f.convs = append(f.convs, c)
	return c, nil
}

func (f *fakeNode) JoinPublicChat(_ context.Context, name string) (*appv1.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &appv1.Conversation{Id: conversations.PublicChatID(name), Members: [][]byte{f.self.key}, PublicChat: name}
	f.convs = append(f.convs, c)
	return c, nil
}

func (f *fakeNode) Send(_ context.Context, conv, payload []byte, parents [][]byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := false
	for _, c := range f.convs {
		known = known || bytes.Equal(c.Id, conv)
	}
	if !known {
		return nil, fmt.Errorf("node: unknown conversation")
	}
	// As the API does: an outgoing message has no author.
	m := &appv1.Message{Conversation: conv, Payload: payload, Outgoing: true, AuthorName: f.self.name, Parents: parents}
	sum := sha256.Sum256(append(append([]byte{}, f.self.key...), payload...))
	m.MessageId = sum[:]
	f.appendLocked(m)
	return m.MessageId, nil
}

func (f *fakeNode) History(_ context.Context, after uint64, limit uint32) ([]*appv1.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*appv1.Message
	for _, m := range f.msgs {
		if m.Cursor > after && len(out) < int(limit) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeNode) Subscribe(ctx context.Context, after uint64, each func(*appv1.Message) error) error {
	for {
		f.mu.Lock()
		var batch []*appv1.Message
		for _, m := range f.msgs {
			if m.Cursor > after {
				batch = append(batch, m)
			}
		}
		changed := f.changed
		f.mu.Unlock()
		for _, m := range batch {
			if err := each(m); err != nil {
				return err
			}
			after = m.Cursor
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// peer writes chat payloads as another node's client does.
type peer struct {
	person
	f *fakeNode
}

// send delivers p from the peer to conv at clock (0: the next clock of
// the peer's, as chat.Clock makes it at the fake's time).
func (p peer) send(conv []byte, ct chatv1.ChatType, clock uint64, body *chatv1.ChatPayload) []byte {
	ts := uint64(p.f.clock().UnixMilli())
	if clock == 0 {
		p.f.mu.Lock()
		clock = max(ts, p.f.clocks[p.name]+1)
		p.f.clocks[p.name] = clock
		p.f.mu.Unlock()
	}
	body.Version, body.Clock, body.Timestamp, body.ChatId, body.ChatType = chat.Version, clock, min(ts, clock), conv, ct
	b, err := chat.Encode(body)
	if err != nil {
		panic(err)
	}
	return p.f.deliver(p.person, conv, b)
}

func (p peer) text(conv []byte, ct chatv1.ChatType, s string) []byte {
	return p.send(conv, ct, 0, textPayload(s))
}

func (p peer) receipt(conv []byte, ct chatv1.ChatType, t chatv1.ReceiptType, ids ...[]byte) {
	p.send(conv, ct, 0, receiptPayloads(t, ids)[0])
}

// waitFake waits until cond holds on the fake node.
func waitFake(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receiptPayloads are the receipts of type t for ids, at most
// chat.MaxReceiptIDs a payload.
func receiptPayloads(t chatv1.ReceiptType, ids [][]byte) []*chatv1.ChatPayload {
	var out []*chatv1.ChatPayload
	for chunk := range slices.Chunk(ids, chat.MaxReceiptIDs) {
		out = append(out, &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_RECEIPT,
			Body: &chatv1.ChatPayload_Receipt{Receipt: &chatv1.Receipt{Type: t, MessageIds: chunk}}})
	}
	return out
}
