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
	"time"

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
	`CREATE TABLE shared_mailboxes (
		id       BLOB PRIMARY KEY,
		next_seq INTEGER NOT NULL,
		last_put INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE shared_entries (
		mailbox BLOB NOT NULL,
		seq     INTEGER NOT NULL,
		at      INTEGER NOT NULL,
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
	// MaxShared bounds the shared mailboxes (public chats); a post that
	// would create one more is refused with loopix.ErrTooManyMailboxes,
	// unless one has had no post for SharedRetention (it is dropped).
	// 0: no shared mailboxes.
	MaxShared int
	// SharedMaxEntries bounds one shared mailbox: a post past it drops
	// the oldest entry. SharedMaxEntryBytes bounds one entry.
	SharedMaxEntries    int
	SharedMaxEntryBytes int
	// SharedRetention is how long a shared mailbox keeps an entry.
	SharedRetention time.Duration
	// Synchronous is sqlstore's setting: "FULL" (default) survives power
	// loss, "NORMAL" a killed process.
	Synchronous string
}

// Store is the mailbox store. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	opts Options
}

var (
	_ loopix.Mailboxes       = (*Store)(nil)
	_ loopix.SharedMailboxes = (*Store)(nil)
)

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.MaxMailboxes <= 0 || opts.MaxEntries <= 0 || opts.MaxBytes <= 0 {
		return nil, errors.New("mailbox: bounds must be positive")
	}
	if opts.MaxShared < 0 || (opts.MaxShared > 0 && (opts.SharedMaxEntries <= 0 || opts.SharedMaxEntryBytes <= 0 || opts.SharedRetention <= 0)) {
		return nil, errors.New("mailbox: shared mailbox bounds must be positive")
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

// boxState is a mailbox's row as a PutBatch transaction changes it.
type boxState struct {
	seq, entries, bytes int64
	missing             bool
	changed             bool
}

// PutBatch appends the entries, in order, in one transaction (one commit,
// one fsync at synchronous FULL): every entry it stores is durable when it
// returns. It returns one error per put: nil for a stored entry,
// loopix.ErrNoMailbox or loopix.ErrMailboxFull (wrapped) for one refused
// — the bounds hold for the entries of the batch together, each counted
// against what its mailbox holds with the batch's earlier entries — or,
// if the transaction failed, its error for every entry not refused (none
// of them is stored).
func (s *Store) PutBatch(ctx context.Context, puts []loopix.MailboxPut) []error {
	errs := make([]error, len(puts))
	if len(puts) == 0 {
		return errs
	}
	err := sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		clear(errs)
		boxes := map[loopix.MailboxID]*boxState{}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO entries (mailbox, seq, payload) VALUES (?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("mailbox: put: %w", err)
		}
		defer ins.Close()
		for i, p := range puts {
			b := boxes[p.ID]
			if b == nil {
				b = &boxState{}
				err := tx.QueryRowContext(ctx, `SELECT next_seq, entries, bytes FROM mailboxes WHERE id = ?`, p.ID[:]).Scan(&b.seq, &b.entries, &b.bytes)
				switch {
				case errors.Is(err, sql.ErrNoRows):
					b.missing = true
				case err != nil:
					return fmt.Errorf("mailbox: put: %w", err)
				}
				boxes[p.ID] = b
			}
			if b.missing {
				errs[i] = fmt.Errorf("mailbox: put: %w", loopix.ErrNoMailbox)
				continue
			}
			if b.entries+1 > int64(s.opts.MaxEntries) || b.bytes+int64(len(p.Entry)) > s.opts.MaxBytes {
				errs[i] = fmt.Errorf("mailbox: put: %w (%d entries, %d bytes)", loopix.ErrMailboxFull, b.entries, b.bytes)
				continue
			}
			if _, err := ins.ExecContext(ctx, p.ID[:], b.seq, p.Entry); err != nil {
				return fmt.Errorf("mailbox: put: %w", err)
			}
			b.seq, b.entries, b.bytes, b.changed = b.seq+1, b.entries+1, b.bytes+int64(len(p.Entry)), true
		}
		for id, b := range boxes {
			if !b.changed {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET next_seq = ?, entries = ?, bytes = ? WHERE id = ?`, b.seq, b.entries, b.bytes, id[:]); err != nil {
				return fmt.Errorf("mailbox: put: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
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

// sharedFirstSeq is the first sequence number of a shared mailbox created
// at now: milliseconds since 1970 times 1024, so that a mailbox dropped
// and created again later numbers its entries above every earlier one
// and a reader's old position does not hide them.
func sharedFirstSeq(now time.Time) int64 { return max(now.UnixMilli(), 1) << 10 }

// expireShared drops the mailbox's entries older than the retention.
func (s *Store) expireShared(ctx context.Context, tx *sql.Tx, id loopix.MailboxID, now time.Time) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM shared_entries WHERE mailbox = ? AND at < ?`, id[:], now.Add(-s.opts.SharedRetention).UnixMilli())
	return err
}

// PutShared appends entry to the shared mailbox id, creating it if needed,
// and drops its oldest entries past SharedMaxEntries (returning how many)
// and those past the retention. It is durable when PutShared returns.
func (s *Store) PutShared(ctx context.Context, id loopix.MailboxID, entry []byte, now time.Time) (int, error) {
	if s.opts.MaxShared == 0 {
		return 0, fmt.Errorf("mailbox: put shared: %w (no shared mailboxes)", loopix.ErrTooManyMailboxes)
	}
	if len(entry) == 0 || len(entry) > s.opts.SharedMaxEntryBytes {
		return 0, fmt.Errorf("mailbox: put shared: entry of %d bytes, bound %d", len(entry), s.opts.SharedMaxEntryBytes)
	}
	var evicted int
	err := sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		evicted = 0
		if err := s.expireShared(ctx, tx, id, now); err != nil {
			return fmt.Errorf("mailbox: put shared: %w", err)
		}
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT next_seq FROM shared_mailboxes WHERE id = ?`, id[:]).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			if seq, err = s.createShared(ctx, tx, id, now); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("mailbox: put shared: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO shared_entries (mailbox, seq, at, payload) VALUES (?, ?, ?, ?)`, id[:], seq, now.UnixMilli(), entry); err != nil {
			return fmt.Errorf("mailbox: put shared: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE shared_mailboxes SET next_seq = ?, last_put = ? WHERE id = ?`, seq+1, now.UnixMilli(), id[:]); err != nil {
			return fmt.Errorf("mailbox: put shared: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM shared_entries WHERE mailbox = ? AND seq <= ?`, id[:], seq-int64(s.opts.SharedMaxEntries))
		if err != nil {
			return fmt.Errorf("mailbox: put shared: %w", err)
		}
		n, _ := res.RowsAffected()
		evicted = int(n)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return evicted, nil
}

// createShared creates the shared mailbox id and returns its first
// sequence number; at the bound it first drops the shared mailboxes that
// hold nothing and had no post for the retention.
func (s *Store) createShared(ctx context.Context, tx *sql.Tx, id loopix.MailboxID, now time.Time) (int64, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM shared_mailboxes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("mailbox: put shared: %w", err)
	}
	if n >= s.opts.MaxShared {
		cut := now.Add(-s.opts.SharedRetention).UnixMilli()
		if _, err := tx.ExecContext(ctx, `DELETE FROM shared_entries WHERE at < ?`, cut); err != nil {
			return 0, fmt.Errorf("mailbox: put shared: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM shared_mailboxes WHERE last_put < ?
			AND NOT EXISTS (SELECT 1 FROM shared_entries WHERE mailbox = shared_mailboxes.id)`, cut); err != nil {
			return 0, fmt.Errorf("mailbox: put shared: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM shared_mailboxes`).Scan(&n); err != nil {
			return 0, fmt.Errorf("mailbox: put shared: %w", err)
		}
		if n >= s.opts.MaxShared {
			return 0, fmt.Errorf("mailbox: put shared: %w (%d shared)", loopix.ErrTooManyMailboxes, n)
		}
	}
	seq := sharedFirstSeq(now)
	if _, err := tx.ExecContext(ctx, `INSERT INTO shared_mailboxes (id, next_seq, last_put) VALUES (?, ?, ?)`, id[:], seq, now.UnixMilli()); err != nil {
		return 0, fmt.Errorf("mailbox: put shared: %w", err)
	}
	return seq, nil
}

// ReadShared returns up to limit entries of the shared mailbox id above
// after, in sequence order, and gone: the highest sequence number at or
// below which nothing above after is left (expired, evicted or never
// written). It deletes nothing a reader has not had: entries go only by
// retention and the count bound.
func (s *Store) ReadShared(ctx context.Context, id loopix.MailboxID, after uint64, limit int, now time.Time) ([]loopix.Entry, uint64, error) {
	var out []loopix.Entry
	var gone uint64
	if after > 1<<62 {
		after = 1 << 62
	}
	err := sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		out, gone = nil, after
		var next int64
		err := tx.QueryRowContext(ctx, `SELECT next_seq FROM shared_mailboxes WHERE id = ?`, id[:]).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox: read shared: %w", loopix.ErrNoMailbox)
		}
		if err != nil {
			return fmt.Errorf("mailbox: read shared: %w", err)
		}
		if err := s.expireShared(ctx, tx, id, now); err != nil {
			return fmt.Errorf("mailbox: read shared: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, payload FROM shared_entries WHERE mailbox = ? AND seq > ? ORDER BY seq LIMIT ?`, id[:], int64(after), limit)
		if err != nil {
			return fmt.Errorf("mailbox: read shared: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e loopix.Entry
			var seq int64
			if err := rows.Scan(&seq, &e.Payload); err != nil {
				return fmt.Errorf("mailbox: read shared: %w", err)
			}
			e.Seq, e.Real = uint64(seq), true
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mailbox: read shared: %w", err)
		}
		switch {
		case len(out) > 0:
			gone = max(after, out[0].Seq-1)
		case next > 0:
			gone = max(after, uint64(next)-1)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, gone, nil
}
