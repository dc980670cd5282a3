// Package conversations is the host's durable record of its conversations
// (each one's id and the identity keys of its members) and of the history
// of messages sent and received. The host gives the secure and sync layers
// every conversation again after each of their starts, from this store;
// applications read the history by cursor.
package conversations

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-msg/strata/core/sqlstore"
)

// FileName is the conventional name of the store's database file inside the
// host's data directory.
const FileName = "conversations.db"

// Limits on what a conversation may hold.
const (
	// MaxIDSize is the longest conversation id, in bytes.
	MaxIDSize = 256
	// MaxMembers is the largest membership, the local node included.
	MaxMembers = 1024
)

// ErrNotFound reports that the store holds no conversation with that id.
var ErrNotFound = errors.New("no such conversation")

// Conversation is a conversation and its members.
type Conversation struct {
	// ID names the conversation; it is also the sync group id.
	ID []byte
	// Members are the identity keys of every member, the local node
	// included, in byte order and without repeats.
	Members []ed25519.PublicKey
	// Updated is when the membership was last set.
	Updated time.Time
	// PublicChat is the name of the public chat this conversation is, or
	// "" for a conversation with members. A public chat reaches whoever
	// joined a chat of that name; its Members are the local node only.
	PublicChat string
	// Name is the conversation's display name, as its creator gave it;
	// advisory, like a contact card's name. At most MaxNameSize bytes.
	Name string
}

// MaxNameSize bounds a conversation's name.
const MaxNameSize = 256

// PublicChatID is the conversation id of the public chat name: the same on
// every node.
func PublicChatID(name string) []byte {
	sum := sha256.Sum256([]byte("strata public chat\x00" + name))
	return sum[:16]
}

// DirectID is the id of the 1:1 conversation of two identities, which both
// derive from the pair, so that neither has to tell the other: the same
// whichever of the two computes it.
func DirectID(a, b ed25519.PublicKey) []byte {
	lo, hi := a, b
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	h := sha256.New()
	h.Write([]byte("strata-direct-conversation-v1"))
	h.Write(lo)
	h.Write(hi)
	return append([]byte("dm:"), hex.EncodeToString(h.Sum(nil)[:12])...)
}

// migrations are the schema versions, in order; see sqlstore.Open.
var migrations = []string{
	// Version 1: members holds the concatenated 32-byte identity keys.
	`CREATE TABLE conversations (
		id           BLOB    NOT NULL PRIMARY KEY,
		members      BLOB    NOT NULL,
		updated_unix INTEGER NOT NULL
	) STRICT;`,
	// Version 2: the history of messages sent and received. cursor is the
	// position in the history; a message is kept once per conversation.
	`CREATE TABLE messages (
		cursor         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		conversation   BLOB    NOT NULL,
		message_id     BLOB    NOT NULL,
		author         BLOB,
		payload        BLOB    NOT NULL,
		parents        BLOB,
		outgoing       INTEGER NOT NULL,
		time_unix_nano INTEGER NOT NULL,
		trace_id       INTEGER NOT NULL,
		UNIQUE (conversation, message_id)
	) STRICT;
	CREATE INDEX messages_by_conversation ON messages (conversation, cursor);`,
	// Version 3: public chats, by name ('' for conversations with members).
	`ALTER TABLE conversations ADD COLUMN public_chat TEXT NOT NULL DEFAULT '';`,
	// Version 4: a conversation's display name.
	`ALTER TABLE conversations ADD COLUMN name TEXT NOT NULL DEFAULT '';`,
	// Version 5: each message's signed envelope id, kept once per
	// conversation (a replay under another message id is recognised), and
	// each conversation's usage (messages, payload bytes), kept by
	// triggers, for the public chats' quotas.
	`ALTER TABLE messages ADD COLUMN envelope_id BLOB;
	CREATE UNIQUE INDEX messages_by_envelope ON messages (conversation, envelope_id);
	CREATE TABLE usage (
		conversation BLOB    NOT NULL PRIMARY KEY,
		messages     INTEGER NOT NULL,
		bytes        INTEGER NOT NULL
	) STRICT;
	INSERT INTO usage (conversation, messages, bytes)
		SELECT conversation, COUNT(*), SUM(length(payload)) FROM messages GROUP BY conversation;
	CREATE TRIGGER usage_insert AFTER INSERT ON messages BEGIN
		INSERT INTO usage (conversation, messages, bytes) VALUES (NEW.conversation, 1, length(NEW.payload))
		ON CONFLICT (conversation) DO UPDATE SET messages = messages + 1, bytes = bytes + length(NEW.payload);
	END;
	CREATE TRIGGER usage_delete AFTER DELETE ON messages BEGIN
		UPDATE usage SET messages = messages - 1, bytes = bytes - length(OLD.payload) WHERE conversation = OLD.conversation;
	END;`,
	// Version 6: the user's read mark per conversation: the id of the
	// message up to which the user read (SetReadMark).
	`CREATE TABLE read_marks (
		conversation BLOB NOT NULL PRIMARY KEY,
		message_id   BLOB NOT NULL
	) STRICT;`,
}

// Store is a durable store of conversations in a SQLite database. Every
// change is committed and on stable storage when the method returns. A
// Store is safe for concurrent use.
type Store struct {
	db *sql.DB
	// writer is the one connection every write goes through, under
	// writeMu, with a page cache of writerCacheKiB. SQLite drops a
	// connection's whole cache when another connection has written since
	// its last transaction: writes spread over the pool's connections
	// would find theirs empty.
	writer *sql.Conn
	// writeMu serializes the store's writes. SQLite takes one writer at a
	// time and its busy handler is not fair: a steady stream of one
	// goroutine's transactions (the host's sends) can keep another (the
	// history writer) waiting past the busy timeout, which fails it.
	writeMu sync.Mutex
	// quota bounds each public chat's history (SetPublicQuota).
	quota atomic.Pointer[Quota]
}

// writerCacheKiB is the writer connection's page cache. The host writes
// its history in group transactions of up to thousands of messages, and
// every message changes a page at a random place in each of two unique
// indexes: with SQLite's default 2,000 KiB such a transaction spilled its
// changed pages to the write-ahead log before the commit and wrote them
// again at it, 9% of the host's CPU under throughput.yaml
// (docs/performance.md). The pool's other connections only read and keep
// the default.
const writerCacheKiB = 32 << 10

// Open opens the store at path, creating it if need be. The host keeps it
// at <data dir>/host/FileName.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlstore.Open(ctx, path, migrations, sqlstore.Options{Synchronous: "FULL"})
	if err != nil {
		return nil, fmt.Errorf("conversations: %w", err)
	}
	writer, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("conversations: open %s: %w", path, err)
	}
	// PRAGMA takes no parameters; the value is a constant.
	if _, err := writer.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", writerCacheKiB)); err != nil {
		writer.Close()
		db.Close()
		return nil, fmt.Errorf("conversations: open %s: %w", path, err)
	}
	return &Store{db: db, writer: writer}, nil
}

// Normalize checks a conversation's id and members and returns the members
// sorted and without repeats.
func Normalize(id []byte, members []ed25519.PublicKey) ([]ed25519.PublicKey, error) {
	if len(id) == 0 || len(id) > MaxIDSize {
		return nil, fmt.Errorf("conversation id is %d bytes, want 1 to %d", len(id), MaxIDSize)
	}
	out := make([]ed25519.PublicKey, 0, len(members))
	for _, m := range members {
		if len(m) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("member key is %d bytes, want %d", len(m), ed25519.PublicKeySize)
		}
		out = append(out, append(ed25519.PublicKey(nil), m...))
	}
	slices.SortFunc(out, func(a, b ed25519.PublicKey) int { return bytes.Compare(a, b) })
	out = slices.CompactFunc(out, func(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) })
	if len(out) > MaxMembers {
		return nil, fmt.Errorf("conversation has %d members, at most %d are allowed", len(out), MaxMembers)
	}
	return out, nil
}

// Put creates the conversation or replaces its members.
func (s *Store) Put(ctx context.Context, c Conversation) error {
	members, err := Normalize(c.ID, c.Members)
	if err != nil {
		return fmt.Errorf("conversations: %w", err)
	}
	if len(c.Name) > MaxNameSize {
		return fmt.Errorf("conversations: a name is at most %d bytes, got %d", MaxNameSize, len(c.Name))
	}
	updated := c.Updated
	if updated.IsZero() {
		updated = time.Now()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, err = s.writer.ExecContext(ctx,
		`INSERT INTO conversations (id, members, updated_unix, public_chat, name) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET members = excluded.members, updated_unix = excluded.updated_unix, public_chat = excluded.public_chat, name = excluded.name`,
		c.ID, bytes.Join(keyBytes(members), nil), updated.Unix(), c.PublicChat, c.Name)
	if err != nil {
		return fmt.Errorf("conversations: put: %w", err)
	}
	return nil
}

// Get returns one conversation, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id []byte) (*Conversation, error) {
	row := s.db.QueryRowContext(ctx, `SELECT id, members, updated_unix, public_chat, name FROM conversations WHERE id = ?`, id)
	c, err := scan(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("conversations: get: %w", err)
	}
	return c, nil
}

// List returns every conversation, by id.
func (s *Store) List(ctx context.Context) ([]*Conversation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, members, updated_unix, public_chat, name FROM conversations ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("conversations: list: %w", err)
	}
	defer rows.Close()
	var out []*Conversation
	for rows.Next() {
		c, err := scan(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("conversations: list: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conversations: list: %w", err)
	}
	return out, nil
}

// Close closes the store.
func (s *Store) Close() error {
	werr := s.writer.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("conversations: close: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("conversations: close: %w", werr)
	}
	return nil
}

func scan(scanner func(...any) error) (*Conversation, error) {
	var id, members []byte
	var updated int64
	var public, name string
	if err := scanner(&id, &members, &updated, &public, &name); err != nil {
		return nil, err
	}
	if len(members)%ed25519.PublicKeySize != 0 {
		return nil, fmt.Errorf("conversation %x: members column is %d bytes, not a multiple of %d", id, len(members), ed25519.PublicKeySize)
	}
	c := &Conversation{ID: id, Updated: time.Unix(updated, 0), PublicChat: public, Name: name}
	for len(members) > 0 {
		c.Members = append(c.Members, ed25519.PublicKey(members[:ed25519.PublicKeySize:ed25519.PublicKeySize]))
		members = members[ed25519.PublicKeySize:]
	}
	return c, nil
}

func keyBytes(keys []ed25519.PublicKey) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}
