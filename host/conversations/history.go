package conversations

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sqlstore"
)

// Message is one message of the node's history, sent or received.
type Message struct {
	// Cursor is the message's position in the history, assigned by Append:
	// strictly increasing in the order the host took the messages.
	Cursor       uint64
	Conversation []byte
	MessageID    []byte
	// Author is the author's identity key; nil when unknown.
	Author   []byte
	Payload  []byte
	Parents  [][]byte
	Outgoing bool
	Time     time.Time
	TraceID  uint64
	// EnvelopeID names the signed envelope the message travelled in (the
	// host's); the history holds each envelope once per conversation, so
	// a replay under another message id is recognised. Nil for none.
	EnvelopeID []byte
}

// messageOverhead bounds what a message costs in a page beyond its byte
// fields: the API's fixed fields and framing and the author's name (at
// most 256 bytes).
const messageOverhead = 384

// Size is what the message counts for in a page of the history
// (MaxHistoryPageBytes): its byte fields and a fixed overhead, at least
// the size of its encoding in the messaging API.
func (m *Message) Size() int {
	n := messageOverhead + len(m.Conversation) + len(m.MessageID) + len(m.Author) + len(m.Payload)
	for _, p := range m.Parents {
		n += 4 + len(p)
	}
	return n
}

// Limits on one page of History.
const (
	// MaxHistoryPage is the most messages History returns at once.
	MaxHistoryPage = 1000
	// MaxHistoryPageBytes bounds the sum of the Sizes of the messages of
	// one page, so that a page fits one API response (gRPC takes 4 MiB by
	// default). A page holds at least one message, and one message fits
	// (the host takes payloads of at most 1 MiB).
	MaxHistoryPageBytes = 2 << 20
)

// Quota bounds what the history keeps of each public chat: anyone who
// knows a chat's name can write to it. Zero values mean no bound.
type Quota struct {
	// MaxMessages bounds the messages kept per chat; Append evicts the
	// oldest beyond it.
	MaxMessages int
	// MaxBytes bounds the payload bytes kept per chat; Append evicts the
	// oldest beyond it, and refuses a message larger on its own.
	MaxBytes int64
	// Retention is how long a message is kept; Prune removes older ones.
	Retention time.Duration
}

// SetPublicQuota sets the bounds of every public chat's history, applied
// by Append to the chats it adds to and by Prune to all.
func (s *Store) SetPublicQuota(q Quota) { s.quota.Store(&q) }

func (s *Store) publicQuota() Quota {
	if q := s.quota.Load(); q != nil {
		return *q
	}
	return Quota{}
}

// Appended is what Append did.
type Appended struct {
	// Added are the new messages, with their cursors set, in the order
	// given.
	Added []*Message
	// Replayed are messages not added because their envelope is in the
	// conversation's history already under another message id.
	Replayed []*Message
	// OverQuota are public chat messages not added because their payload
	// alone is larger than the chats' byte quota.
	OverQuota []*Message
	// Evicted counts the older public chat messages removed to keep their
	// chats within the quota.
	Evicted int
}

// Append adds messages to the history in one transaction. A message whose
// conversation and id are already in the history is skipped: the history
// holds each message once, however often it is delivered; so is one whose
// envelope is (Appended.Replayed). A public chat is then brought within the
// quota (SetPublicQuota) by evicting its oldest messages; a message larger
// than the whole byte quota is not added.
func (s *Store) Append(ctx context.Context, msgs []*Message) (*Appended, error) {
	var res *Appended
	q := s.publicQuota()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := sqlstore.Tx(ctx, s.writer, func(tx *sql.Tx) error {
		res = &Appended{}
		public := map[string]bool{}  // conversation -> is a public chat
		touched := map[string]bool{} // public chats added to
		var order [][]byte           // the same, in order
		// One statement for the whole batch: preparing it per message was
		// a fifth of the host's CPU under load.
		insert, err := tx.PrepareContext(ctx,
			`INSERT INTO messages (conversation, message_id, author, payload, parents, outgoing, time_unix_nano, trace_id, envelope_id)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT DO NOTHING
			 RETURNING cursor`)
		if err != nil {
			return fmt.Errorf("append message: %w", err)
		}
		defer insert.Close()
		for _, m := range msgs {
			if len(m.MessageID) == 0 {
				return errors.New("message without an id")
			}
			pub, known := public[string(m.Conversation)]
			if !known {
				var name string
				err := tx.QueryRowContext(ctx, `SELECT public_chat FROM conversations WHERE id = ?`, orEmpty(m.Conversation)).Scan(&name)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("append message: %w", err)
				}
				pub = name != ""
				public[string(m.Conversation)] = pub
			}
			if pub && q.MaxBytes > 0 && int64(len(m.Payload)) > q.MaxBytes {
				res.OverQuota = append(res.OverQuota, m)
				continue
			}
			var cursor int64
			err := insert.QueryRowContext(ctx,
				orEmpty(m.Conversation), m.MessageID, m.Author, orEmpty(m.Payload), encodeIDs(m.Parents), m.Outgoing, m.Time.UnixNano(), int64(m.TraceID), m.EnvelopeID).Scan(&cursor)
			if errors.Is(err, sql.ErrNoRows) {
				// Already in the history: the same message again, or its
				// envelope under another id.
				var one int
				err := tx.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE conversation = ? AND message_id = ?`, orEmpty(m.Conversation), m.MessageID).Scan(&one)
				if errors.Is(err, sql.ErrNoRows) {
					res.Replayed = append(res.Replayed, m)
				} else if err != nil {
					return fmt.Errorf("append message: %w", err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("append message: %w", err)
			}
			m.Cursor = uint64(cursor)
			res.Added = append(res.Added, m)
			if pub && !touched[string(m.Conversation)] {
				touched[string(m.Conversation)] = true
				order = append(order, m.Conversation)
			}
		}
		evicted := map[uint64]bool{}
		for _, conv := range order {
			gone, err := enforce(ctx, tx, conv, q)
			if err != nil {
				return err
			}
			for _, c := range gone {
				evicted[c] = true
			}
			res.Evicted += len(gone)
		}
		if len(evicted) > 0 {
			// A batch larger than the quota evicts some of its own.
			kept := res.Added[:0]
			for _, m := range res.Added {
				if !evicted[m.Cursor] {
					kept = append(kept, m)
				}
			}
			res.Added = kept
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("conversations: %w", err)
	}
	return res, nil
}

// enforce evicts the oldest messages of conversation conv beyond the
// quota's messages and bytes, and returns their cursors.
func enforce(ctx context.Context, tx *sql.Tx, conv []byte, q Quota) ([]uint64, error) {
	if q.MaxMessages <= 0 && q.MaxBytes <= 0 {
		return nil, nil
	}
	var count, size int64
	err := tx.QueryRowContext(ctx, `SELECT messages, bytes FROM usage WHERE conversation = ?`, conv).Scan(&count, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	over := func() bool {
		return (q.MaxMessages > 0 && count > int64(q.MaxMessages)) || (q.MaxBytes > 0 && size > q.MaxBytes)
	}
	if !over() {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT cursor, length(payload) FROM messages WHERE conversation = ? ORDER BY cursor`, conv)
	if err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	var gone []uint64
	for over() && rows.Next() {
		var cursor, n int64
		if err := rows.Scan(&cursor, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("quota: %w", err)
		}
		gone = append(gone, uint64(cursor))
		count--
		size -= n
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("quota: %w", err)
	}
	rows.Close()
	if err := deleteCursors(ctx, tx, gone); err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	return gone, nil
}

// deleteCursors deletes the messages at cursors.
func deleteCursors(ctx context.Context, tx *sql.Tx, cursors []uint64) error {
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE cursor = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range cursors {
		if _, err := stmt.ExecContext(ctx, int64(c)); err != nil {
			return err
		}
	}
	return nil
}

// Prune brings every public chat within the quota (SetPublicQuota): it
// removes the messages older than its retention, as of now, then the
// oldest beyond its messages and bytes (a quota lowered since they were
// added). It returns how many messages it removed.
func (s *Store) Prune(ctx context.Context, now time.Time) (int, error) {
	q := s.publicQuota()
	if q.Retention <= 0 && q.MaxMessages <= 0 && q.MaxBytes <= 0 {
		return 0, nil
	}
	removed := 0
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := sqlstore.Tx(ctx, s.writer, func(tx *sql.Tx) error {
		removed = 0
		rows, err := tx.QueryContext(ctx, `SELECT id FROM conversations WHERE public_chat != ''`)
		if err != nil {
			return err
		}
		var chats [][]byte
		for rows.Next() {
			var id []byte
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			chats = append(chats, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, id := range chats {
			if q.Retention > 0 {
				res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE conversation = ? AND time_unix_nano < ?`, id, now.Add(-q.Retention).UnixNano())
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				removed += int(n)
			}
			gone, err := enforce(ctx, tx, id, q)
			if err != nil {
				return err
			}
			removed += len(gone)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("conversations: prune: %w", err)
	}
	return removed, nil
}

// History returns messages with a cursor greater than after, in cursor
// order; only those of one conversation when conversation is not empty.
// It returns at most limit messages (0, or above MaxHistoryPage, means
// MaxHistoryPage) and stops before MaxHistoryPageBytes (Message.Size);
// a page holds at least one message when there is one. The next page
// starts after the last cursor returned; an empty page means the end.
func (s *Store) History(ctx context.Context, conversation []byte, after uint64, limit int) ([]*Message, error) {
	if limit <= 0 || limit > MaxHistoryPage {
		limit = MaxHistoryPage
	}
	q := `SELECT cursor, conversation, message_id, author, payload, parents, outgoing, time_unix_nano, trace_id, envelope_id
		FROM messages WHERE cursor > ?`
	args := []any{int64(after)}
	if len(conversation) > 0 {
		q += ` AND conversation = ?`
		args = append(args, conversation)
	}
	q += ` ORDER BY cursor LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("conversations: history: %w", err)
	}
	defer rows.Close()
	var out []*Message
	size := 0
	for rows.Next() {
		m := &Message{}
		var cursor, nanos, trace int64
		var parents []byte
		if err := rows.Scan(&cursor, &m.Conversation, &m.MessageID, &m.Author, &m.Payload, &parents, &m.Outgoing, &nanos, &trace, &m.EnvelopeID); err != nil {
			return nil, fmt.Errorf("conversations: history: %w", err)
		}
		if m.Parents, err = decodeIDs(parents); err != nil {
			return nil, fmt.Errorf("conversations: history: message %d: %w", cursor, err)
		}
		m.Cursor, m.Time, m.TraceID = uint64(cursor), time.Unix(0, nanos), uint64(trace)
		if size += m.Size(); size > MaxHistoryPageBytes && len(out) > 0 {
			break // the next page starts with it
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conversations: history: %w", err)
	}
	return out, nil
}

// encodeIDs concatenates ids, each after its uvarint length.
func encodeIDs(ids [][]byte) []byte {
	var out []byte
	for _, id := range ids {
		out = binary.AppendUvarint(out, uint64(len(id)))
		out = append(out, id...)
	}
	return out
}

func decodeIDs(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("bad parents encoding")
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out, nil
}

// orEmpty stores a nil slice as an empty blob rather than NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
