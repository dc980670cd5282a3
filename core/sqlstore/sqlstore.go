// Package sqlstore opens the SQLite databases that Strata's host and
// plugins keep their durable state in, with the settings every one of them
// needs: a private file, WAL journaling, a busy timeout, write locks taken
// when a transaction begins, temporary storage (statement journals) in
// memory, and a schema brought up to date by numbered
// migrations. It uses modernc.org/sqlite (pure Go, no cgo).
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeoutMillis is how long a statement waits for a lock another
// connection or process holds before it fails with SQLITE_BUSY.
const busyTimeoutMillis = 5000

// Options tunes a database beyond the settings every store shares.
type Options struct {
	// Synchronous is SQLite's synchronous setting in WAL mode. "FULL" (the
	// default) fsyncs the WAL at every commit, so a committed transaction
	// survives power loss. "NORMAL" fsyncs only at checkpoints: a commit
	// survives a crash of the process but the last ones may be lost on
	// power failure.
	Synchronous string
	// SecureDelete overwrites deleted content with zeros (PRAGMA
	// secure_delete), for stores that must forget keys they delete.
	SecureDelete bool
}

// Open opens the SQLite database at path, creating the file (mode 0600)
// and its directory (mode 0700) if need be, and migrates its schema:
// migrations[i] takes the database from PRAGMA user_version i to i+1, and
// all pending ones run in one transaction. Released migrations must never
// be edited; a schema change is a new entry. A database whose version is
// newer than len(migrations) is refused.
func Open(ctx context.Context, path string, migrations []string, opts Options) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Create the file ourselves so that it is private from the start;
	// SQLite gives the WAL and shared-memory files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("open %s: synchronous %q is not FULL or NORMAL", path, opts.Synchronous)
	}
	db, err := sql.Open("sqlite", dsn(abs, sync, opts.SecureDelete))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := initialize(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// dsn returns the driver's data source name for the database file at the
// absolute path abs. The pragmas apply to every connection of the pool.
func dsn(abs, sync string, secureDelete bool) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows path such as C:/x becomes /C:/x
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	// Statement journals (and temporary tables and indexes) stay in
	// memory. SQLite keeps a statement journal in memory up to 64 KiB and
	// then spills it to a temporary file: the host's history, whose
	// inserts touch several unique indexes in transactions of many
	// inserts, wrote one a page per write system call, 8% of the host's
	// CPU under load (docs/performance.md). In memory, no page of a store
	// (a secret's included) lands in a temporary file outside the data
	// directory either, where secure_delete does not reach.
	q.Add("_pragma", "temp_store(MEMORY)")
	if secureDelete {
		q.Add("_pragma", "secure_delete(1)")
	}
	// Transactions take the write lock when they begin, so that two
	// writers wait for each other (busy_timeout) rather than one failing
	// when it upgrades a read lock.
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// initialize checks the connection settings and migrates the schema.
func initialize(ctx context.Context, db *sql.DB, migrations []string) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal (does the file system support it?)", mode)
	}
	return Tx(ctx, db, func(tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this program's %d", version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
			}
		}
		if version < len(migrations) {
			// PRAGMA takes no parameters; the value is a constant.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("set schema version: %w", err)
			}
		}
		return nil
	})
}

// TxBeginner begins transactions: a *sql.DB, which takes any connection
// of its pool, or a *sql.Conn, one connection held.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Tx runs f in a transaction and commits it if f succeeds; if f fails the
// transaction is rolled back and f's error returned.
func Tx(ctx context.Context, db TxBeginner, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
