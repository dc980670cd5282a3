package conversations

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sqlstore"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// public stores the public chat name and returns its id.
func public(t *testing.T, s *Store, name string) []byte {
	t.Helper()
	id := PublicChatID(name)
	if err := s.Put(t.Context(), Conversation{ID: id, Members: []ed25519.PublicKey{key(9)}, PublicChat: name}); err != nil {
		t.Fatal(err)
	}
	return id
}

func msgIn(conv []byte, i, size int, at time.Time) *Message {
	return &Message{
		Conversation: conv, MessageID: []byte(fmt.Sprintf("m%04d", i)), EnvelopeID: []byte(fmt.Sprintf("e%04d", i)),
		Author: key(1), Payload: bytes.Repeat([]byte{'x'}, size), Time: at,
	}
}

// ids returns the message ids of a conversation's whole history.
func ids(t *testing.T, s *Store, conv []byte) []string {
	t.Helper()
	var out []string
	var after uint64
	for {
		page, err := s.History(t.Context(), conv, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, m := range page {
			out = append(out, string(m.MessageID))
			after = m.Cursor
		}
	}
}

// TestAppendRefusesReplayedEnvelope: a message whose envelope is in the
// conversation already, under another message id, is not added and is
// reported as replayed; the same envelope in another conversation, and
// the same message delivered again, are not replays.
func TestAppendRefusesReplayedEnvelope(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	first := msgIn([]byte("g"), 1, 10, time.Now())
	if res, err := s.Append(ctx, []*Message{first}); err != nil || len(res.Added) != 1 {
		t.Fatalf("Append = %+v, %v", res, err)
	}
	replay := msgIn([]byte("g"), 2, 10, time.Now())
	replay.EnvelopeID = first.EnvelopeID
	again := msgIn([]byte("g"), 1, 10, time.Now())
	elsewhere := msgIn([]byte("h"), 3, 10, time.Now())
	elsewhere.EnvelopeID = first.EnvelopeID
	res, err := s.Append(ctx, []*Message{replay, again, elsewhere})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replayed) != 1 || res.Replayed[0] != replay {
		t.Fatalf("replayed %+v, want the replay only", res.Replayed)
	}
	if len(res.Added) != 1 || res.Added[0] != elsewhere {
		t.Fatalf("added %+v, want the other conversation's only", res.Added)
	}
	if got := ids(t, s, []byte("g")); len(got) != 1 || got[0] != "m0001" {
		t.Fatalf("g holds %v", got)
	}
}

// TestPublicQuotaEvictsOldest: a public chat keeps at most MaxMessages
// messages and MaxBytes payload bytes, the newest; a message larger than
// MaxBytes on its own is refused; conversations with members are not
// bounded.
func TestPublicQuotaEvictsOldest(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	s.SetPublicQuota(Quota{MaxMessages: 5, MaxBytes: 1000})
	chat := public(t, s, "lobby")
	now := time.Now()
	// By count: 8 small messages, one at a time and then a batch.
	for i := range 3 {
		if _, err := s.Append(ctx, []*Message{msgIn(chat, i, 10, now)}); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*Message
	for i := 3; i < 8; i++ {
		batch = append(batch, msgIn(chat, i, 10, now))
	}
	res, err := s.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evicted != 3 || len(res.Added) != 5 {
		t.Fatalf("evicted %d, added %d; want 3 and 5", res.Evicted, len(res.Added))
	}
	if got := ids(t, s, chat); fmt.Sprint(got) != "[m0003 m0004 m0005 m0006 m0007]" {
		t.Fatalf("the chat holds %v, want the newest five", got)
	}
	// Two 400-byte messages: the count evicts two (830 bytes stay)...
	res, err = s.Append(ctx, []*Message{msgIn(chat, 8, 400, now), msgIn(chat, 9, 400, now)})
	if err != nil || res.Evicted != 2 {
		t.Fatalf("evicted %d, %v; want 2", res.Evicted, err)
	}
	if got := ids(t, s, chat); fmt.Sprint(got) != "[m0005 m0006 m0007 m0008 m0009]" {
		t.Fatalf("the chat holds %v", got)
	}
	// ...and a third, the bytes evict four.
	res, err = s.Append(ctx, []*Message{msgIn(chat, 10, 400, now)})
	if err != nil || res.Evicted != 4 {
		t.Fatalf("evicted %d, %v; want 4 (830 bytes + 400 > 1000)", res.Evicted, err)
	}
	if got := ids(t, s, chat); fmt.Sprint(got) != "[m0009 m0010]" {
		t.Fatalf("the chat holds %v", got)
	}
	// Larger than the whole quota: refused, nothing evicted.
	res, err = s.Append(ctx, []*Message{msgIn(chat, 11, 1001, now)})
	if err != nil || len(res.OverQuota) != 1 || len(res.Added) != 0 || res.Evicted != 0 {
		t.Fatalf("an oversize message: %+v, %v", res, err)
	}
	// A batch larger than the quota keeps its newest, and reports only
	// those as added.
	batch = nil
	for i := 20; i < 30; i++ {
		batch = append(batch, msgIn(chat, i, 1, now))
	}
	res, err = s.Append(ctx, batch)
	if err != nil || len(res.Added) != 5 || string(res.Added[0].MessageID) != "m0025" {
		t.Fatalf("a batch of 10 into a quota of 5: %+v, %v", res, err)
	}
	// A conversation with members is not bounded.
	for i := range 20 {
		if _, err := s.Append(ctx, []*Message{msgIn([]byte("group"), i, 100, now)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(t, s, []byte("group")); len(got) != 20 {
		t.Fatalf("the group holds %d of 20", len(got))
	}
}

// TestPruneRetention: Prune removes public chat messages older than the
// retention, and brings chats within a quota lowered since; it leaves
// conversations with members alone.
func TestPruneRetention(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	chat := public(t, s, "lobby")
	now := time.Now()
	var msgs []*Message
	for i := range 10 {
		msgs = append(msgs, msgIn(chat, i, 10, now.Add(time.Duration(i-10)*time.Hour)))
		msgs = append(msgs, msgIn([]byte("group"), 100+i, 10, now.Add(-100*time.Hour)))
	}
	if _, err := s.Append(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx, now); err != nil || n != 0 {
		t.Fatalf("Prune without a quota removed %d, %v", n, err)
	}
	s.SetPublicQuota(Quota{Retention: 4*time.Hour + time.Minute})
	n, err := s.Prune(ctx, now)
	if err != nil || n != 6 {
		t.Fatalf("Prune removed %d, %v; want 6 (older than 4h)", n, err)
	}
	if got := ids(t, s, chat); fmt.Sprint(got) != "[m0006 m0007 m0008 m0009]" {
		t.Fatalf("the chat holds %v", got)
	}
	s.SetPublicQuota(Quota{Retention: 24 * time.Hour, MaxMessages: 3})
	if n, err := s.Prune(ctx, now); err != nil || n != 1 {
		t.Fatalf("Prune to a lowered quota removed %d, %v; want 1", n, err)
	}
	if got := ids(t, s, []byte("group")); len(got) != 10 {
		t.Fatalf("the group lost messages to the prune: %d left", len(got))
	}
}

// TestHistoryPageBytes: a page of History stops before
// MaxHistoryPageBytes, holds at least one message, and the next page goes
// on from its last cursor, so that paging reads every message once.
func TestHistoryPageBytes(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	const size = 300 << 10 // six fit in 2 MiB with their overhead, not seven
	var msgs []*Message
	for i := range 20 {
		msgs = append(msgs, msgIn([]byte("g"), i, size, time.Now()))
	}
	// One oversize message, stored before the host's limits existed.
	msgs = append(msgs, msgIn([]byte("g"), 20, MaxHistoryPageBytes+1, time.Now()), msgIn([]byte("g"), 21, 1, time.Now()))
	if _, err := s.Append(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	var after uint64
	var pages []int
	seen := 0
	for {
		page, err := s.History(ctx, nil, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		total := 0
		for _, m := range page {
			total += m.Size()
			if fmt.Sprintf("m%04d", seen) != string(m.MessageID) {
				t.Fatalf("message %q where m%04d was due", m.MessageID, seen)
			}
			seen++
			after = m.Cursor
		}
		if total > MaxHistoryPageBytes && len(page) > 1 {
			t.Fatalf("a page of %d messages and %d bytes", len(page), total)
		}
		pages = append(pages, len(page))
	}
	if seen != 22 || fmt.Sprint(pages) != "[6 6 6 2 1 1]" {
		t.Fatalf("read %d messages in pages %v", seen, pages)
	}
}

// TestMigrationCountsExistingMessages: a history from before version 5
// gets its conversations' usage counted, so that quotas hold for what it
// already has.
func TestMigrationCountsExistingMessages(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sqlstore.Open(ctx, path, migrations[:4], sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chat := PublicChatID("old")
	if _, err := db.ExecContext(ctx, `INSERT INTO conversations (id, members, updated_unix, public_chat) VALUES (?, ?, 0, 'old')`, chat, []byte(key(9))); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := db.ExecContext(ctx, `INSERT INTO messages (conversation, message_id, payload, outgoing, time_unix_nano, trace_id) VALUES (?, ?, ?, 0, ?, 0)`,
			chat, []byte{byte(i)}, []byte("0123456789"), time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetPublicQuota(Quota{MaxMessages: 4})
	res, err := s.Append(ctx, []*Message{msgIn(chat, 1, 10, time.Now())})
	if err != nil || res.Evicted != 3 {
		t.Fatalf("evicted %d, %v; want 3 (6 old + 1 new, quota 4)", res.Evicted, err)
	}
	if got := len(ids(t, s, chat)); got != 4 {
		t.Fatalf("the chat holds %d, want 4", got)
	}
}
