package sqlstore

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenSettingsAndMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	migs := []string{`CREATE TABLE a (x INTEGER) STRICT;`}
	db, err := Open(ctx, path, migs, Options{Synchronous: "normal", SecureDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "1"}, // NORMAL
		{"secure_delete", "1"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"temp_store", "2"}, // MEMORY
		{"user_version", "1"},
	} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	if err := Tx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO a VALUES (1)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode: %v %v, want 0600", fi.Mode(), err)
	}

	// A second migration runs on reopen and keeps the data.
	migs = append(migs, `ALTER TABLE a ADD COLUMN y TEXT;`)
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM a WHERE y IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after migration: %d rows, %v", n, err)
	}
	db.Close()

	// A program that knows fewer migrations refuses the newer schema.
	if _, err := Open(ctx, path, migs[:1], Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("older program opened a newer schema: %v", err)
	}
	if _, err := Open(ctx, path, migs, Options{Synchronous: "OFF"}); err == nil {
		t.Fatal("synchronous OFF accepted")
	}
}

func TestTxRollsBack(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), []string{`CREATE TABLE a (x INTEGER) STRICT;`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = Tx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO a VALUES (1)`); err != nil {
			return err
		}
		return os.ErrInvalid
	})
	if err != os.ErrInvalid {
		t.Fatalf("Tx returned %v, want f's error", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows after a failed Tx, want 0 (%v)", n, err)
	}
}
