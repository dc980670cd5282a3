package conversations

import (
	"context"
	"fmt"
)

// SetReadMark stores the id of the message up to which the user read the
// conversation, replacing the mark before.
func (s *Store) SetReadMark(ctx context.Context, conversation, messageID []byte) error {
	if len(conversation) == 0 || len(messageID) == 0 {
		return fmt.Errorf("conversations: read mark: empty conversation or message id")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.writer.ExecContext(ctx,
		`INSERT INTO read_marks (conversation, message_id) VALUES (?, ?)
		 ON CONFLICT (conversation) DO UPDATE SET message_id = excluded.message_id`,
		conversation, messageID); err != nil {
		return fmt.Errorf("conversations: read mark: %w", err)
	}
	return nil
}

// ReadMarks returns every conversation's read mark: conversation id ->
// message id.
func (s *Store) ReadMarks(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT conversation, message_id FROM read_marks`)
	if err != nil {
		return nil, fmt.Errorf("conversations: read marks: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var conv, id []byte
		if err := rows.Scan(&conv, &id); err != nil {
			return nil, fmt.Errorf("conversations: read marks: %w", err)
		}
		out[string(conv)] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conversations: read marks: %w", err)
	}
	return out, nil
}
