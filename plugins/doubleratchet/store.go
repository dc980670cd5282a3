package doubleratchet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// dbFile is the layer's database inside its data directory.
const dbFile = "doubleratchet.db"

// migrations are the schema versions, in order; see sqlstore.Open.
var migrations = []string{
	// Version 1.
	//
	// identity: the one row of the node's long-term keys.
	// signed_prekeys, kem_prekeys, one_time_prekeys: private prekeys by id;
	// reserved_for is the contact a one-time key was handed to.
	// contacts: each contact's pinned bundle (from the card) and the fresher
	// one it sent in-band, if any.
	// sessions: Double Ratchet sessions; rank orders a contact's sessions,
	// the highest being the one that seals. header is the PreKeyMessage an
	// initiator repeats until its first reply; NULL once it is not needed.
	// seen_base_keys: the base keys of initial messages accepted under each
	// signed prekey, so that a replayed initial message is refused even
	// after its session is gone.
	// meta: counters (next prekey id).
	`CREATE TABLE identity (
		id           INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
		key          BLOB    NOT NULL,
		created_unix INTEGER NOT NULL
	) STRICT;
	CREATE TABLE signed_prekeys (
		id           INTEGER NOT NULL PRIMARY KEY,
		private      BLOB    NOT NULL,
		public       BLOB    NOT NULL,
		signature    BLOB    NOT NULL,
		created_unix INTEGER NOT NULL
	) STRICT;
	CREATE TABLE kem_prekeys (
		id           INTEGER NOT NULL PRIMARY KEY,
		seed         BLOB    NOT NULL,
		public       BLOB    NOT NULL,
		signature    BLOB    NOT NULL,
		last_resort  INTEGER NOT NULL,
		reserved_for BLOB,
		created_unix INTEGER NOT NULL
	) STRICT;
	CREATE TABLE one_time_prekeys (
		id           INTEGER NOT NULL PRIMARY KEY,
		private      BLOB    NOT NULL,
		public       BLOB    NOT NULL,
		reserved_for BLOB
	) STRICT;
	CREATE TABLE contacts (
		identity BLOB NOT NULL PRIMARY KEY,
		bundle   BLOB NOT NULL,
		fresh    BLOB
	) STRICT;
	CREATE TABLE sessions (
		id           INTEGER NOT NULL PRIMARY KEY,
		contact      BLOB    NOT NULL,
		initiator    INTEGER NOT NULL,
		base_key     BLOB    NOT NULL,
		header       BLOB,
		ad           BLOB    NOT NULL,
		state        BLOB    NOT NULL,
		rank         INTEGER NOT NULL,
		created_unix INTEGER NOT NULL
	) STRICT;
	CREATE INDEX sessions_by_contact ON sessions (contact, rank);
	CREATE TABLE seen_base_keys (
		signed_prekey_id INTEGER NOT NULL,
		base_key         BLOB    NOT NULL,
		PRIMARY KEY (signed_prekey_id, base_key)
	) STRICT, WITHOUT ROWID;
	CREATE TABLE meta (
		key   TEXT    NOT NULL PRIMARY KEY,
		value INTEGER NOT NULL
	) STRICT;`,
	// Version 2: bundle version 2 signs prekeys under context prefixes.
	// The signatures stored by version 1 are over the bare encodings, so
	// the layer re-signs every stored prekey once (resignPreKeys) when this
	// mark is set. (Secret columns hold sealed blobs when a passphrase is
	// configured: see sealSecret; that needs no schema change.)
	`INSERT INTO meta (key, value) VALUES ('resign_prekeys', 1)
		ON CONFLICT (key) DO UPDATE SET value = 1;`,
	// Version 3: sender keys (config group_messages: sender_keys). One row
	// per conversation and chain owner: the node's own chain (owner = the
	// node identity; sent_to = the members it was handed to, 32-byte
	// identities one after another) or a member's, as received.
	`CREATE TABLE sender_keys (
		id           INTEGER NOT NULL PRIMARY KEY,
		conversation BLOB    NOT NULL,
		owner        BLOB    NOT NULL,
		state        BLOB    NOT NULL,
		sent_to      BLOB    NOT NULL,
		UNIQUE (conversation, owner)
	) STRICT;`,
}

// openStore opens the layer's database. secure_delete makes SQLite
// overwrite what it deletes, so that a used prekey or an old ratchet state
// does not linger in the file's free pages (forward secrecy); checkpoint
// then clears the write-ahead log of them.
func openStore(ctx context.Context, path string) (*sql.DB, error) {
	return sqlstore.Open(ctx, path, migrations, sqlstore.Options{Synchronous: "FULL", SecureDelete: true})
}

// checkpoint copies every committed page from the write-ahead log into the
// database file and truncates the log to zero bytes (PRAGMA
// wal_checkpoint(TRUNCATE)). The log holds the page images of past
// commits, superseded ratchet states and deleted prekeys among them, and a
// passive checkpoint leaves them there to be overwritten some time later;
// secure_delete has zeroed their cells in the images the checkpoint copies,
// so that afterwards no file of the data directory holds them. It reports
// done = false when a reader kept the checkpoint from finishing (not this
// layer's: every use of the database holds l.mu); the caller tries again
// after its next commit.
func checkpoint(ctx context.Context, db *sql.DB) (done bool, err error) {
	var busy, logFrames, moved int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &moved); err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	return busy == 0, nil
}

// Purposes of the sealed secrets: the associated data of each seal names
// the column and the row, so that a sealed blob opens only where it was
// written.
func purposeIdentity() string              { return "doubleratchet identity" }
func purposeSignedPreKey(id uint32) string { return fmt.Sprintf("doubleratchet signed prekey %d", id) }
func purposeKEMPreKey(id uint32) string    { return fmt.Sprintf("doubleratchet kem prekey %d", id) }
func purposeOneTimePreKey(id uint32) string {
	return fmt.Sprintf("doubleratchet one-time prekey %d", id)
}
func purposeSession(id int64) string { return fmt.Sprintf("doubleratchet session %d", id) }
func purposeSenderKey(id int64) string {
	return fmt.Sprintf("doubleratchet sender key %d", id)
}

// sealSecret seals a secret column's value under the at-rest key; with no
// key (no passphrase configured) it is the value itself.
func sealSecret(k *atrest.Key, purpose string, secret []byte) ([]byte, error) {
	blob, err := k.Seal(purpose, secret)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", purpose, err)
	}
	return blob, nil
}

// openSecret opens a secret column's value. With a key every value must be
// sealed (sealPlainRows sealed the plain ones at Configure); without one a
// sealed value fails with atrest.ErrLocked.
func openSecret(k *atrest.Key, purpose string, blob []byte) ([]byte, error) {
	secret, err := k.Open(purpose, blob, false)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", purpose, err)
	}
	return secret, nil
}

// secretColumns are the columns that hold secrets, with the purpose of
// each row's seal. Every other column is public (keys' public halves,
// signatures, bundles, the PreKeyMessage header, the AD, base keys).
var secretColumns = []struct {
	table, id, col string
	purpose        func(id int64) string
}{
	{"identity", "id", "key", func(int64) string { return purposeIdentity() }},
	{"signed_prekeys", "id", "private", func(id int64) string { return purposeSignedPreKey(uint32(id)) }},
	{"kem_prekeys", "id", "seed", func(id int64) string { return purposeKEMPreKey(uint32(id)) }},
	{"one_time_prekeys", "id", "private", func(id int64) string { return purposeOneTimePreKey(uint32(id)) }},
	{"sessions", "id", "state", purposeSession},
	{"sender_keys", "id", "state", purposeSenderKey},
}

// sealPlainRows seals, under k, every secret value still stored in plain:
// values written before the user configured a passphrase. It reports
// whether it sealed any (their plain bytes are then superseded, and the
// caller checkpoints). With a nil k it does nothing.
func sealPlainRows(ctx context.Context, q querier, k *atrest.Key) (bool, error) {
	if k == nil {
		return false, nil
	}
	sealed := false
	for _, c := range secretColumns {
		// The table and column names are constants, never input.
		rows, err := q.QueryContext(ctx, `SELECT `+c.id+`, `+c.col+` FROM `+c.table)
		if err != nil {
			return false, fmt.Errorf("seal %s: %w", c.table, err)
		}
		var plain []int64
		for rows.Next() {
			var id int64
			var blob []byte
			if err := rows.Scan(&id, &blob); err != nil {
				rows.Close()
				return false, fmt.Errorf("seal %s: %w", c.table, err)
			}
			if !atrest.Sealed(blob) {
				plain = append(plain, id)
			}
			clear(blob)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return false, fmt.Errorf("seal %s: %w", c.table, err)
		}
		for _, id := range plain {
			var secret []byte
			if err := q.QueryRowContext(ctx, `SELECT `+c.col+` FROM `+c.table+` WHERE `+c.id+` = ?`, id).Scan(&secret); err != nil {
				return false, fmt.Errorf("seal %s %d: %w", c.table, id, err)
			}
			blob, err := sealSecret(k, c.purpose(id), secret)
			clear(secret)
			if err != nil {
				return false, err
			}
			if _, err := q.ExecContext(ctx, `UPDATE `+c.table+` SET `+c.col+` = ? WHERE `+c.id+` = ?`, blob, id); err != nil {
				return false, fmt.Errorf("seal %s %d: %w", c.table, id, err)
			}
			sealed = true
		}
	}
	return sealed, nil
}

// resignPreKeys re-signs the stored signed and ML-KEM prekeys with id
// under bundle version 2's contexts, once, when migration 2 left its mark.
func resignPreKeys(ctx context.Context, q querier, id *x3dh.Identity) error {
	var mark int64
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'resign_prekeys'`).Scan(&mark)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && mark == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("re-sign prekeys: %w", err)
	}
	for _, t := range []struct {
		table string
		sign  func([]byte) []byte
	}{{"signed_prekeys", id.SignPreKey}, {"kem_prekeys", id.SignKEMPreKey}} {
		rows, err := q.QueryContext(ctx, `SELECT id, public FROM `+t.table)
		if err != nil {
			return fmt.Errorf("re-sign prekeys: %w", err)
		}
		type row struct {
			id  int64
			sig []byte
		}
		var out []row
		for rows.Next() {
			var r row
			var pub []byte
			if err := rows.Scan(&r.id, &pub); err != nil {
				rows.Close()
				return fmt.Errorf("re-sign prekeys: %w", err)
			}
			r.sig = t.sign(pub)
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("re-sign prekeys: %w", err)
		}
		for _, r := range out {
			if _, err := q.ExecContext(ctx, `UPDATE `+t.table+` SET signature = ? WHERE id = ?`, r.sig, r.id); err != nil {
				return fmt.Errorf("re-sign prekeys: %w", err)
			}
		}
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM meta WHERE key = 'resign_prekeys'`); err != nil {
		return fmt.Errorf("re-sign prekeys: %w", err)
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nextID returns a fresh nonzero prekey id of a kind ("spk", "kem", "opk").
// Ids are never reused, so an id names one key for the life of the store.
func nextID(ctx context.Context, q querier, kind string) (uint32, error) {
	var v int64
	err := q.QueryRowContext(ctx,
		`INSERT INTO meta (key, value) VALUES (?, 1)
		 ON CONFLICT (key) DO UPDATE SET value = value + 1
		 RETURNING value`, "next_"+kind).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("allocate %s id: %w", kind, err)
	}
	if v <= 0 || v > 1<<32-1 {
		return 0, fmt.Errorf("allocate %s id: ids exhausted", kind)
	}
	return uint32(v), nil
}

// loadIdentity returns the stored identity, or nil if there is none.
func loadIdentity(ctx context.Context, q querier, k *atrest.Key) (*x3dh.Identity, error) {
	var blob []byte
	err := q.QueryRowContext(ctx, `SELECT key FROM identity WHERE id = 1`).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	defer clear(blob)
	raw, err := openSecret(k, purposeIdentity(), blob)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	defer clear(raw)
	id, err := x3dh.UnmarshalIdentity(raw)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return id, nil
}

func saveIdentity(ctx context.Context, q querier, k *atrest.Key, id *x3dh.Identity, now time.Time) error {
	raw, err := id.MarshalBinary()
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer clear(raw)
	blob, err := sealSecret(k, purposeIdentity(), raw)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer clear(blob)
	if _, err := q.ExecContext(ctx, `INSERT INTO identity (id, key, created_unix) VALUES (1, ?, ?)`, blob, now.Unix()); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

func insertSignedPreKey(ctx context.Context, q querier, key *atrest.Key, k *x3dh.PreKeyPair, now time.Time) error {
	blob, err := sealSecret(key, purposeSignedPreKey(k.ID), k.Private)
	if err != nil {
		return fmt.Errorf("store signed prekey: %w", err)
	}
	defer clear(blob)
	_, err = q.ExecContext(ctx, `INSERT INTO signed_prekeys (id, private, public, signature, created_unix) VALUES (?, ?, ?, ?, ?)`,
		k.ID, blob, k.Public, k.Signature, now.Unix())
	if err != nil {
		return fmt.Errorf("store signed prekey: %w", err)
	}
	return nil
}

// signedPreKey returns the signed prekey with an id and when it was made,
// or nil if it is not (or no longer) stored.
func signedPreKey(ctx context.Context, q querier, key *atrest.Key, id uint32) (*x3dh.PreKeyPair, time.Time, error) {
	k := &x3dh.PreKeyPair{ID: id}
	var created int64
	var blob []byte
	err := q.QueryRowContext(ctx, `SELECT private, public, signature, created_unix FROM signed_prekeys WHERE id = ?`, id).
		Scan(&blob, &k.Public, &k.Signature, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load signed prekey %d: %w", id, err)
	}
	defer clear(blob)
	if k.Private, err = openSecret(key, purposeSignedPreKey(id), blob); err != nil {
		return nil, time.Time{}, fmt.Errorf("load signed prekey %d: %w", id, err)
	}
	return k, time.Unix(created, 0), nil
}

// latestSignedPreKey returns the newest signed prekey, or nil.
func latestSignedPreKey(ctx context.Context, q querier, key *atrest.Key) (*x3dh.PreKeyPair, time.Time, error) {
	var id uint32
	err := q.QueryRowContext(ctx, `SELECT id FROM signed_prekeys ORDER BY id DESC LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load signed prekey: %w", err)
	}
	return signedPreKey(ctx, q, key, id)
}

// retireSignedPreKeys deletes the signed prekeys other than keep made
// before cutoff, with the replay records of their initial messages.
func retireSignedPreKeys(ctx context.Context, q querier, keep uint32, cutoff time.Time) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM seen_base_keys WHERE signed_prekey_id IN
		(SELECT id FROM signed_prekeys WHERE id != ? AND created_unix < ?)`, keep, cutoff.Unix()); err != nil {
		return fmt.Errorf("retire signed prekeys: %w", err)
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM signed_prekeys WHERE id != ? AND created_unix < ?`, keep, cutoff.Unix()); err != nil {
		return fmt.Errorf("retire signed prekeys: %w", err)
	}
	return nil
}

func insertKEMPreKey(ctx context.Context, q querier, key *atrest.Key, k *x3dh.KEMPreKeyPair, lastResort bool, now time.Time) error {
	blob, err := sealSecret(key, purposeKEMPreKey(k.ID), k.Seed)
	if err != nil {
		return fmt.Errorf("store KEM prekey: %w", err)
	}
	defer clear(blob)
	_, err = q.ExecContext(ctx, `INSERT INTO kem_prekeys (id, seed, public, signature, last_resort, created_unix) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, blob, k.Public, k.Signature, lastResort, now.Unix())
	if err != nil {
		return fmt.Errorf("store KEM prekey: %w", err)
	}
	return nil
}

// storedKEM is a kem_prekeys row.
type storedKEM struct {
	key        *x3dh.KEMPreKeyPair
	lastResort bool
	// reservedFor is the contact a one-time key was handed to; nil for a
	// last-resort key and for a one-time key not handed out.
	reservedFor []byte
}

// kemPreKey returns a stored ML-KEM prekey, or nil.
func kemPreKey(ctx context.Context, q querier, key *atrest.Key, id uint32) (*storedKEM, error) {
	k := &x3dh.KEMPreKeyPair{ID: id}
	row := &storedKEM{key: k}
	var blob []byte
	err := q.QueryRowContext(ctx, `SELECT seed, public, signature, last_resort, reserved_for FROM kem_prekeys WHERE id = ?`, id).
		Scan(&blob, &k.Public, &k.Signature, &row.lastResort, &row.reservedFor)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load KEM prekey %d: %w", id, err)
	}
	defer clear(blob)
	if k.Seed, err = openSecret(key, purposeKEMPreKey(id), blob); err != nil {
		return nil, fmt.Errorf("load KEM prekey %d: %w", id, err)
	}
	return row, nil
}

// latestLastResortKEM returns the newest last-resort ML-KEM prekey and
// when it was made, or nil.
func latestLastResortKEM(ctx context.Context, q querier, key *atrest.Key) (*x3dh.KEMPreKeyPair, time.Time, error) {
	var id uint32
	var created int64
	err := q.QueryRowContext(ctx, `SELECT id, created_unix FROM kem_prekeys WHERE last_resort = 1 ORDER BY id DESC LIMIT 1`).Scan(&id, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load KEM prekey: %w", err)
	}
	row, err := kemPreKey(ctx, q, key, id)
	if err != nil || row == nil {
		return nil, time.Time{}, err
	}
	return row.key, time.Unix(created, 0), nil
}

// retireLastResortKEMs deletes the last-resort ML-KEM prekeys other than
// keep made before cutoff.
func retireLastResortKEMs(ctx context.Context, q querier, keep uint32, cutoff time.Time) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM kem_prekeys WHERE last_resort = 1 AND id != ? AND created_unix < ?`, keep, cutoff.Unix()); err != nil {
		return fmt.Errorf("retire KEM prekeys: %w", err)
	}
	return nil
}

func deleteKEMPreKey(ctx context.Context, q querier, id uint32) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM kem_prekeys WHERE id = ? AND last_resort = 0`, id); err != nil {
		return fmt.Errorf("delete KEM prekey %d: %w", id, err)
	}
	return nil
}

func insertOneTimePreKey(ctx context.Context, q querier, key *atrest.Key, k *x3dh.PreKeyPair) error {
	blob, err := sealSecret(key, purposeOneTimePreKey(k.ID), k.Private)
	if err != nil {
		return fmt.Errorf("store one-time prekey: %w", err)
	}
	defer clear(blob)
	if _, err := q.ExecContext(ctx, `INSERT INTO one_time_prekeys (id, private, public) VALUES (?, ?, ?)`, k.ID, blob, k.Public); err != nil {
		return fmt.Errorf("store one-time prekey: %w", err)
	}
	return nil
}

// oneTimePreKey returns a stored one-time prekey and the contact it was
// handed to, or nil.
func oneTimePreKey(ctx context.Context, q querier, key *atrest.Key, id uint32) (*x3dh.PreKeyPair, []byte, error) {
	k := &x3dh.PreKeyPair{ID: id}
	var reserved, blob []byte
	err := q.QueryRowContext(ctx, `SELECT private, public, reserved_for FROM one_time_prekeys WHERE id = ?`, id).Scan(&blob, &k.Public, &reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load one-time prekey %d: %w", id, err)
	}
	defer clear(blob)
	if k.Private, err = openSecret(key, purposeOneTimePreKey(id), blob); err != nil {
		return nil, nil, fmt.Errorf("load one-time prekey %d: %w", id, err)
	}
	return k, reserved, nil
}

func deleteOneTimePreKey(ctx context.Context, q querier, id uint32) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM one_time_prekeys WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete one-time prekey %d: %w", id, err)
	}
	return nil
}

// unreserved counts the one-time keys of a table not yet handed out.
func unreserved(ctx context.Context, q querier, table string) (int, error) {
	var n int
	// table is one of two constants, never input.
	where := ""
	if table == "kem_prekeys" {
		where = " AND last_resort = 0"
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE reserved_for IS NULL`+where).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// reserveOneTime returns the public halves of the one-time prekey and the
// one-time ML-KEM prekey handed to contact, reserving a fresh one of each
// for it if it has none. A contact holds at most one of each at a time, so
// no contact can drain the pools.
func reserveOneTime(ctx context.Context, q querier, contact []byte, wantKEM bool) ([]x3dh.PublicPreKey, []x3dh.PublicPreKey, error) {
	var opks, kems []x3dh.PublicPreKey
	pick := func(table, cols, extra string, into *[]x3dh.PublicPreKey) error {
		for range 2 {
			var k x3dh.PublicPreKey
			var sig []byte
			err := q.QueryRowContext(ctx, `SELECT id, public, `+cols+` FROM `+table+` WHERE reserved_for = ?`+extra+` LIMIT 1`, contact).Scan(&k.ID, &k.Public, &sig)
			if err == nil {
				k.Signature = sig
				*into = append(*into, k)
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("reserve %s: %w", table, err)
			}
			res, err := q.ExecContext(ctx, `UPDATE `+table+` SET reserved_for = ? WHERE id =
				(SELECT id FROM `+table+` WHERE reserved_for IS NULL`+extra+` ORDER BY id LIMIT 1)`, contact)
			if err != nil {
				return fmt.Errorf("reserve %s: %w", table, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil // the pool is empty
			}
		}
		return nil
	}
	if err := pick("one_time_prekeys", "NULL", "", &opks); err != nil {
		return nil, nil, err
	}
	if wantKEM {
		if err := pick("kem_prekeys", "signature", " AND last_resort = 0", &kems); err != nil {
			return nil, nil, err
		}
	}
	return opks, kems, nil
}

// storedContact is a contacts row.
type storedContact struct {
	identity, bundle, fresh []byte
}

func putContact(ctx context.Context, q querier, identity, bundle, fresh []byte) error {
	_, err := q.ExecContext(ctx, `INSERT INTO contacts (identity, bundle, fresh) VALUES (?, ?, ?)
		ON CONFLICT (identity) DO UPDATE SET bundle = excluded.bundle, fresh = excluded.fresh`, identity, bundle, fresh)
	if err != nil {
		return fmt.Errorf("store contact: %w", err)
	}
	return nil
}

func loadContacts(ctx context.Context, q querier) ([]storedContact, error) {
	rows, err := q.QueryContext(ctx, `SELECT identity, bundle, fresh FROM contacts`)
	if err != nil {
		return nil, fmt.Errorf("load contacts: %w", err)
	}
	defer rows.Close()
	var out []storedContact
	for rows.Next() {
		var c storedContact
		if err := rows.Scan(&c.identity, &c.bundle, &c.fresh); err != nil {
			return nil, fmt.Errorf("load contacts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load contacts: %w", err)
	}
	return out, nil
}

// storedSession is a sessions row.
type storedSession struct {
	id                       int64
	contact, baseKey, header []byte
	ad, state                []byte
	initiator                bool
	rank                     int64
	created                  time.Time
}

func putSession(ctx context.Context, q querier, s *storedSession) error {
	_, err := q.ExecContext(ctx, `INSERT INTO sessions (id, contact, initiator, base_key, header, ad, state, rank, created_unix)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET header = excluded.header, state = excluded.state, rank = excluded.rank`,
		s.id, s.contact, s.initiator, s.baseKey, s.header, s.ad, s.state, s.rank, s.created.Unix())
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

func deleteSession(ctx context.Context, q querier, id int64) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// loadSessions returns every session, each contact's highest rank first.
func loadSessions(ctx context.Context, q querier) ([]*storedSession, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, contact, initiator, base_key, header, ad, state, rank, created_unix
		FROM sessions ORDER BY contact, rank DESC`)
	if err != nil {
		return nil, fmt.Errorf("load sessions: %w", err)
	}
	defer rows.Close()
	var out []*storedSession
	for rows.Next() {
		s := &storedSession{}
		var created int64
		if err := rows.Scan(&s.id, &s.contact, &s.initiator, &s.baseKey, &s.header, &s.ad, &s.state, &s.rank, &created); err != nil {
			return nil, fmt.Errorf("load sessions: %w", err)
		}
		s.created = time.Unix(created, 0)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load sessions: %w", err)
	}
	return out, nil
}

// seenBaseKey reports whether an initial message with this base key was
// accepted under a signed prekey.
func seenBaseKey(ctx context.Context, q querier, spk uint32, base []byte) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM seen_base_keys WHERE signed_prekey_id = ? AND base_key = ?`, spk, base).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check base key: %w", err)
	}
	return true, nil
}

func addSeenBaseKey(ctx context.Context, q querier, spk uint32, base []byte) error {
	if _, err := q.ExecContext(ctx, `INSERT OR IGNORE INTO seen_base_keys (signed_prekey_id, base_key) VALUES (?, ?)`, spk, base); err != nil {
		return fmt.Errorf("record base key: %w", err)
	}
	return nil
}

func putSenderKey(ctx context.Context, q querier, id int64, conversation, owner, state, sentTo []byte) error {
	if sentTo == nil {
		sentTo = []byte{}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO sender_keys (id, conversation, owner, state, sent_to) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, sent_to = excluded.sent_to`,
		id, conversation, owner, state, sentTo)
	if err != nil {
		return fmt.Errorf("store sender key: %w", err)
	}
	return nil
}

// storedSenderKey is a sender_keys row.
type storedSenderKey struct {
	id                                 int64
	conversation, owner, state, sentTo []byte
}

func loadSenderKeys(ctx context.Context, q querier) ([]storedSenderKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, conversation, owner, state, sent_to FROM sender_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load sender keys: %w", err)
	}
	defer rows.Close()
	var out []storedSenderKey
	for rows.Next() {
		var r storedSenderKey
		if err := rows.Scan(&r.id, &r.conversation, &r.owner, &r.state, &r.sentTo); err != nil {
			return nil, fmt.Errorf("load sender keys: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load sender keys: %w", err)
	}
	return out, nil
}
