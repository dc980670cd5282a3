package conversations

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
)

func key(b byte) ed25519.PublicKey { return bytes.Repeat([]byte{b}, ed25519.PublicKeySize) }

func TestPutGetList(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Conversation{ID: []byte("g"), Members: []ed25519.PublicKey{key(3), key(1), key(3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Conversation{ID: []byte("a"), Members: []ed25519.PublicKey{key(2)}}); err != nil {
		t.Fatal(err)
	}
	// Replacing the members of g.
	if err := s.Put(ctx, Conversation{ID: []byte("g"), Members: []ed25519.PublicKey{key(2), key(1)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, err := s.Get(ctx, []byte("g"))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 2 || !bytes.Equal(g.Members[0], key(1)) || !bytes.Equal(g.Members[1], key(2)) {
		t.Fatalf("members %x, want sorted [1 2]", g.Members)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 2 || string(all[0].ID) != "a" || string(all[1].ID) != "g" {
		t.Fatalf("List = %v, %v", all, err)
	}
	if _, err := s.Get(ctx, []byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
}

func TestPutRefuses(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	many := make([]ed25519.PublicKey, MaxMembers+1)
	for i := range many {
		many[i] = make(ed25519.PublicKey, 32)
		many[i][0], many[i][1] = byte(i), byte(i>>8)
	}
	for name, c := range map[string]Conversation{
		"empty id":     {Members: []ed25519.PublicKey{key(1)}},
		"long id":      {ID: make([]byte, MaxIDSize+1), Members: []ed25519.PublicKey{key(1)}},
		"short member": {ID: []byte("g"), Members: []ed25519.PublicKey{make([]byte, 31)}},
		"too many":     {ID: []byte("g"), Members: many},
	} {
		if err := s.Put(ctx, c); err == nil {
			t.Errorf("%s: Put accepted it", name)
		}
	}
}

func TestHistoryAppendOnceAndPage(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(conv, id string, parents ...[]byte) *Message {
		return &Message{Conversation: []byte(conv), MessageID: []byte(id), Author: key(1), Payload: []byte("p-" + id), Parents: parents, TraceID: 7}
	}
	res, err := s.Append(ctx, []*Message{mk("g", "1"), mk("g", "2", []byte("1")), mk("h", "1")})
	if err != nil || len(res.Added) != 3 {
		t.Fatalf("Append = %+v, %v", res, err)
	}
	added := res.Added
	if added[0].Cursor >= added[1].Cursor || added[1].Cursor >= added[2].Cursor {
		t.Fatal("cursors do not increase")
	}
	// Delivered again, with a new one: only the new one is added.
	again, err := s.Append(ctx, []*Message{mk("g", "2"), mk("g", "3", []byte("2"), []byte("1"))})
	if err != nil || len(again.Added) != 1 || string(again.Added[0].MessageID) != "3" || len(again.Replayed) != 0 {
		t.Fatalf("second Append = %+v, %v", again, err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.History(ctx, nil, 0, 0)
	if err != nil || len(all) != 4 {
		t.Fatalf("History = %d, %v", len(all), err)
	}
	g, err := s.History(ctx, []byte("g"), added[0].Cursor, 10)
	if err != nil || len(g) != 2 || string(g[0].MessageID) != "2" || string(g[1].MessageID) != "3" {
		t.Fatalf("History(g, after first) = %v, %v", g, err)
	}
	if len(g[1].Parents) != 2 || string(g[1].Parents[0]) != "2" || string(g[1].Parents[1]) != "1" || g[1].TraceID != 7 {
		t.Fatalf("parents %q trace %d", g[1].Parents, g[1].TraceID)
	}
	page, err := s.History(ctx, nil, 0, 2)
	if err != nil || len(page) != 2 {
		t.Fatalf("limit: %d, %v", len(page), err)
	}
}

// TestWriterConnection checks that writes go through the one connection
// with the large page cache, and that the pool's reading connections keep
// SQLite's default.
func TestWriterConnection(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var cache int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil || cache != -writerCacheKiB {
		t.Fatalf("writer: PRAGMA cache_size = %d (%v), want %d", cache, err, -writerCacheKiB)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil || cache != -2000 {
		t.Fatalf("reader: PRAGMA cache_size = %d (%v), want SQLite's default -2000", cache, err)
	}
	// The writer's connection is held, so the pool has another for this
	// read; a write through the pool would have been on that one.
	if err := s.Put(ctx, Conversation{ID: []byte("a"), Members: []ed25519.PublicKey{key(2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*Message{{Conversation: []byte("a"), MessageID: []byte{1}, Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetReadMark(ctx, []byte("a"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	// total_changes() counts the rows a connection changed, a trigger's
	// included: the writer made all four (the conversation, the message,
	// its usage row, the read mark).
	var changes int
	if err := s.writer.QueryRowContext(ctx, "SELECT total_changes()").Scan(&changes); err != nil || changes != 4 {
		t.Fatalf("the writer connection changed %d rows (%v), want 4", changes, err)
	}
}
