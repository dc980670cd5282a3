// Package mailbox is a mixnet provider's durable store of client
// mailboxes, in SQLite (core/sqlstore): per client a queue of stored
// packet payloads with sequence numbers, bounded in entries and bytes,
// that survives restarts. It implements loopix.Mailboxes.
package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// migrations are the schema's versions (see sqlstore.Open); released
// entries are never edited.
var migrations = []string{
	`CREATE TABLE mailboxes (
		id       BLOB PRIMARY KEY,
		next_seq INTEGER NOT NULL,
		entries  INTEGER NOT NULL,
		bytes    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE entries (
		mailbox BLOB NOT NULL,
		seq     INTEGER NOT NULL,
		payload BLOB NOT NULL,
		PRIMARY KEY (mailbox, seq)
	) WITHOUT ROWID;`,
}

// Options bound the store.
type Options struct {
	// MaxMailboxes bounds the registered mailboxes.
	MaxMailboxes int
	// MaxEntries and MaxBytes bound one mailbox; a Put beyond either is
	// refused with loopix.ErrMailboxFull.
	MaxEntries int
	MaxBytes   int64
	// Synchronous is sqlstore's setting: "FULL" (default) survives power
	// loss, "NORMAL" a killed process.
	Synchronous string
}

// Store is the mailbox store. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	opts Options
}

var _ loopix.Mailboxes = (*Store)(nil)

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.MaxMailboxes <= 0 || opts.MaxEntries <= 0 || opts.MaxBytes <= 0 {
		return nil, errors.New("mailbox: bounds must be positive")
	}
	// Deleted entries are overwritten: they are ciphertext, but a provider
	// should not keep what it was told to forget.
	db, err := sqlstore.Open(ctx, path, migrations, sqlstore.Options{Synchronous: opts.Synchronous, SecureDelete: true})
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	return &Store{db: db, opts: opts}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Register creates the mailbox id if it does not exist.
func (s *Store) Register(ctx context.Context, id loopix.MailboxID) error {
	return sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM mailboxes WHERE id = ?`, id[:]).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox: register: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes`).Scan(&n); err != nil {
			return fmt.Errorf("mailbox: register: %w", err)
		}
		if n >= s.opts.MaxMailboxes {
			return fmt.Errorf("mailbox: register: %w (%d)", loopix.ErrTooManyMailboxes, n)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (id, next_seq, entries, bytes) VALUES (?, 1, 0, 0)`, id[:]); err != nil {
			return fmt.Errorf("mailbox: register: %w", err)
		}
		return nil
	})
}

// Put appends entry to the mailbox; it is durable when Put returns.
func (s *Store) Put(ctx context.Context, id loopix.MailboxID, entry []byte) error {
	return sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		var seq, entries, bytes int64
		err := tx.QueryRowContext(ctx, `SELECT next_seq, entries, bytes FROM mailboxes WHERE id = ?`, id[:]).Scan(&seq, &entries, &bytes)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox: put: %w", loopix.ErrNoMailbox)
		}
		if err != nil {
			return fmt.Errorf("mailbox: put: %w", err)
		}
		if entries+1 > int64(s.opts.MaxEntries) || bytes+int64(len(entry)) > s.opts.MaxBytes {
			return fmt.Errorf("mailbox: put: %w (%d entries, %d bytes)", loopix.ErrMailboxFull, entries, bytes)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO entries (mailbox, seq, payload) VALUES (?, ?, ?)`, id[:], seq, entry); err != nil {
			return fmt.Errorf("mailbox: put: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET next_seq = ?, entries = ?, bytes = ? WHERE id = ?`, seq+1, entries+1, bytes+int64(len(entry)), id[:]); err != nil {
			return fmt.Errorf("mailbox: put: %w", err)
		}
		return nil
	})
}

// Take deletes the mailbox's entries up to ack and returns up to limit
// entries after ack, in sequence order.
func (s *Store) Take(ctx context.Context, id loopix.MailboxID, ack uint64, limit int) ([]loopix.Entry, error) {
	var out []loopix.Entry
	if ack > 1<<62 {
		ack = 1 << 62 // SQLite integers are signed; sequence numbers never get there
	}
	err := sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		out = nil
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM mailboxes WHERE id = ?`, id[:]).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox: take: %w", loopix.ErrNoMailbox)
		}
		if err != nil {
			return fmt.Errorf("mailbox: take: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE mailbox = ? AND seq <= ?`, id[:], int64(ack))
		if err != nil {
			return fmt.Errorf("mailbox: take: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET
				entries = (SELECT COUNT(*) FROM entries WHERE mailbox = ?1),
				bytes = (SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM entries WHERE mailbox = ?1)
				WHERE id = ?1`, id[:]); err != nil {
				return fmt.Errorf("mailbox: take: %w", err)
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, payload FROM entries WHERE mailbox = ? AND seq > ? ORDER BY seq LIMIT ?`, id[:], int64(ack), limit)
		if err != nil {
			return fmt.Errorf("mailbox: take: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e loopix.Entry
			var seq int64
			if err := rows.Scan(&seq, &e.Payload); err != nil {
				return fmt.Errorf("mailbox: take: %w", err)
			}
			e.Seq, e.Real = uint64(seq), true
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Stats returns the number of mailboxes and of stored entries.
func (s *Store) Stats(ctx context.Context) (mailboxes, entries int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(entries), 0) FROM mailboxes`).Scan(&mailboxes, &entries)
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox: stats: %w", err)
	}
	return mailboxes, entries, nil
}
