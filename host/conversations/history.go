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
}

// MaxHistoryPage is the most messages History returns at once.
const MaxHistoryPage = 1000

// Append adds messages to the history in one transaction and returns the
// ones that were new, with their cursors set. A message whose conversation
// and id are already in the history is skipped: the history holds each
// message once, however often it is delivered.
func (s *Store) Append(ctx context.Context, msgs []*Message) ([]*Message, error) {
	var added []*Message
	err := sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		added = added[:0]
		for _, m := range msgs {
			if len(m.MessageID) == 0 {
				return errors.New("message without an id")
			}
			var cursor int64
			err := tx.QueryRowContext(ctx,
				`INSERT INTO messages (conversation, message_id, author, payload, parents, outgoing, time_unix_nano, trace_id)
				 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				 ON CONFLICT (conversation, message_id) DO NOTHING
				 RETURNING cursor`,
				orEmpty(m.Conversation), m.MessageID, m.Author, orEmpty(m.Payload), encodeIDs(m.Parents), m.Outgoing, m.Time.UnixNano(), int64(m.TraceID)).Scan(&cursor)
			if errors.Is(err, sql.ErrNoRows) {
				continue // already in the history
			}
			if err != nil {
				return fmt.Errorf("append message: %w", err)
			}
			m.Cursor = uint64(cursor)
			added = append(added, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("conversations: %w", err)
	}
	return added, nil
}

// History returns up to limit messages with a cursor greater than after,
// in cursor order; only those of one conversation when conversation is
// not empty. A limit of 0, or above MaxHistoryPage, means MaxHistoryPage.
func (s *Store) History(ctx context.Context, conversation []byte, after uint64, limit int) ([]*Message, error) {
	if limit <= 0 || limit > MaxHistoryPage {
		limit = MaxHistoryPage
	}
	q := `SELECT cursor, conversation, message_id, author, payload, parents, outgoing, time_unix_nano, trace_id
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
	for rows.Next() {
		m := &Message{}
		var cursor, nanos, trace int64
		var parents []byte
		if err := rows.Scan(&cursor, &m.Conversation, &m.MessageID, &m.Author, &m.Payload, &parents, &m.Outgoing, &nanos, &trace); err != nil {
			return nil, fmt.Errorf("conversations: history: %w", err)
		}
		if m.Parents, err = decodeIDs(parents); err != nil {
			return nil, fmt.Errorf("conversations: history: message %d: %w", cursor, err)
		}
		m.Cursor, m.Time, m.TraceID = uint64(cursor), time.Unix(0, nanos), uint64(trace)
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
