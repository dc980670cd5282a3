package contacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sqlstore"
)

// FileName is the conventional name of the store's database file inside the
// host's data directory.
const FileName = "contacts.db"

var (
	// ErrNotFound reports that the store holds no contact for the key, alias
	// or section asked for.
	ErrNotFound = errors.New("no such contact")
	// ErrStale reports a card older than the one the store holds for the
	// same identity. The stored card stays.
	ErrStale = errors.New("card is older than the stored card")
	// ErrFuture reports a card issued more than MaxClockSkew after the
	// store's clock. It is not stored.
	ErrFuture = errors.New("card is issued in the future")
	// ErrUnsigned reports a card that does not carry its signature: one that
	// was never signed, or whose fields changed after it was signed or
	// decoded.
	ErrUnsigned = errors.New("card is not signed")
	// ErrAliasInUse reports an alias that another contact already has.
	ErrAliasInUse = errors.New("alias already in use")
	// ErrAmbiguous reports a section that more than one contact's card
	// holds, so that it does not name one contact.
	ErrAmbiguous = errors.New("section belongs to more than one contact")
)

// migrations are the schema versions, in order: migrations[i] takes a
// database from user_version i to i+1. Released entries are never edited;
// a schema change is a new entry.
var migrations = []string{
	// Version 1.
	//
	// contacts holds each accepted card as the SignedCard it arrived as,
	// which is the source of truth and is verified again when read; name
	// and issued_unix are copies kept for ordering and for the staleness
	// check. alias is NULL when the contact has none.
	//
	// section_index maps a section, by layer and SHA-256 of its data, to
	// the contacts whose current card holds it.
	`CREATE TABLE contacts (
		identity    BLOB    NOT NULL PRIMARY KEY,
		name        TEXT    NOT NULL,
		issued_unix INTEGER NOT NULL,
		signed      BLOB    NOT NULL,
		alias       TEXT    UNIQUE
	) STRICT;
	CREATE INDEX contacts_by_name ON contacts (name, identity);
	CREATE TABLE section_index (
		layer     INTEGER NOT NULL,
		data_hash BLOB    NOT NULL,
		identity  BLOB    NOT NULL REFERENCES contacts (identity) ON DELETE CASCADE,
		PRIMARY KEY (layer, data_hash, identity)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX section_index_by_identity ON section_index (identity);`,

	// Version 2.
	//
	// verified_unix is when the node's user marked the contact verified,
	// having compared its safety number out of band (Unix seconds), or
	// NULL. It belongs to the identity, not to a card: a newer card of the
	// same identity keeps it.
	`ALTER TABLE contacts ADD COLUMN verified_unix INTEGER;`,
}

// Store is a durable store of contact cards, one per identity, in a SQLite
// database. Every change is one committed transaction, durable when the
// method returns. A Store is safe for concurrent use, and several processes
// may open the same database.
type Store struct {
	db *sql.DB
	// now is the clock that issue times are checked against.
	now func() time.Time
}

// Open opens the store in the SQLite database at path, creating the file
// (mode 0600) and its directory (mode 0700) if need be and bringing the
// schema up to date. The host keeps it at <data dir>/FileName.
//
// The database runs in WAL mode with synchronous=FULL: a commit is on stable
// storage, not only in the operating system's cache, before Put returns, so
// an acknowledged card survives power loss as well as a crash. Contacts
// change seldom, so the cost of the extra fsync does not matter.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlstore.Open(ctx, path, migrations, sqlstore.Options{Synchronous: "FULL"})
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// tx runs f in a transaction and commits it if f succeeds.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	return sqlstore.Tx(ctx, s.db, f)
}

// Close closes the store. Cards already put stay in the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("contacts: close: %w", err)
	}
	return nil
}

// Put stores c, replacing the card stored for the same identity unless that
// one was issued later, in which case Put returns an error wrapping ErrStale
// and changes nothing. A card issued at the same second replaces the stored
// one. The contact's alias, if any, stays.
//
// Put refuses, changing nothing, a card issued more than MaxClockSkew in the
// future (ErrFuture), and one whose name CheckName refuses (ErrMalformed). A
// stored card that is itself issued more than MaxClockSkew in the future (a
// store written before Put checked) does not count as newer: any card may
// replace it.
//
// c must carry its signature (it came from Decode, DecodeText, Get or Sign,
// and its fields have not changed since); otherwise Put returns an error
// wrapping ErrUnsigned. When Put returns nil the card is committed to stable
// storage.
func (s *Store) Put(ctx context.Context, c *Card) error {
	if c.signed == nil {
		return fmt.Errorf("contacts: put: %w", ErrUnsigned)
	}
	// The signed form is what is stored; check it again rather than trust
	// the fields, and make sure the fields say the same.
	card, err := Decode(c.signed)
	if err != nil {
		return fmt.Errorf("contacts: put: %w", err)
	}
	if !sameContent(card, c) {
		return fmt.Errorf("contacts: put: %w: fields changed since the card was signed", ErrUnsigned)
	}
	if err := CheckName(card.Name); err != nil {
		return fmt.Errorf("contacts: put: %w: name %q: %v", ErrMalformed, card.Name, err)
	}
	now := s.now()
	latest := now.Add(MaxClockSkew).Unix()
	if card.Issued.Unix() > latest {
		return fmt.Errorf("contacts: put: %w: issued %s, more than %v after this machine's clock (%s); the issuer's clock is wrong",
			ErrFuture, showTime(card.Issued.Unix()), MaxClockSkew, showTime(now.Unix()))
	}
	key := []byte(card.IdentityKey)
	issued := card.Issued.Unix()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var stored int64
		switch err := tx.QueryRowContext(ctx,
			"SELECT issued_unix FROM contacts WHERE identity = ?", key).Scan(&stored); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read stored card: %w", err)
		case stored > issued && stored <= latest:
			return fmt.Errorf("%w: this card was issued %s, the stored one %s", ErrStale, showTime(issued), showTime(stored))
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO contacts (identity, name, issued_unix, signed) VALUES (?, ?, ?, ?)
			ON CONFLICT (identity) DO UPDATE SET
				name = excluded.name,
				issued_unix = excluded.issued_unix,
				signed = excluded.signed`,
			key, card.Name, issued, card.signed); err != nil {
			return fmt.Errorf("write card: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM section_index WHERE identity = ?", key); err != nil {
			return fmt.Errorf("clear section index: %w", err)
		}
		for layer, sec := range card.Sections {
			if _, err := tx.ExecContext(ctx,
				"INSERT INTO section_index (layer, data_hash, identity) VALUES (?, ?, ?)",
				int64(layer), sectionHash(sec.Data), key); err != nil {
				return fmt.Errorf("index section %v: %w", layer, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("contacts: put: %w", err)
	}
	return nil
}

// showTime shows an issue time (Unix seconds) in UTC.
func showTime(unix int64) string {
	return time.Unix(unix, 0).UTC().Format(time.RFC3339)
}

// sectionHash is the key of a section's data in section_index.
func sectionHash(data []byte) []byte {
	sum := sha256.Sum256(data)
	return sum[:]
}

// Get returns the card stored for the identity key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, identity []byte) (*Card, error) {
	c, err := s.get(ctx, "identity = ?", identity)
	if err != nil {
		return nil, fmt.Errorf("contacts: get: %w", err)
	}
	return c, nil
}

// ByAlias returns the card of the contact with the alias, or ErrNotFound.
func (s *Store) ByAlias(ctx context.Context, alias string) (*Card, error) {
	if alias == "" {
		return nil, fmt.Errorf("contacts: by alias: %w", ErrNotFound)
	}
	c, err := s.get(ctx, "alias = ?", alias)
	if err != nil {
		return nil, fmt.Errorf("contacts: by alias: %w", err)
	}
	return c, nil
}

// get returns the one contact that matches the SQL condition where, which
// has one parameter, arg.
func (s *Store) get(ctx context.Context, where string, arg any) (*Card, error) {
	var signed []byte
	var alias sql.NullString
	var verified sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT signed, alias, verified_unix FROM contacts WHERE "+where, arg).Scan(&signed, &alias, &verified)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(signed, alias, verified)
}

// decodeStored decodes a card read from the database. The database is
// trusted no more than the card's author: the signature is checked again.
func decodeStored(signed []byte, alias sql.NullString, verified sql.NullInt64) (*Card, error) {
	c, err := Decode(signed)
	if err != nil {
		return nil, fmt.Errorf("stored card: %w", err)
	}
	c.Alias = alias.String
	if verified.Valid {
		c.Verified = time.Unix(verified.Int64, 0)
	}
	return c, nil
}

// List returns every stored card, ordered by name and then by identity key.
func (s *Store) List(ctx context.Context) ([]*Card, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT signed, alias, verified_unix FROM contacts ORDER BY name, identity")
	if err != nil {
		return nil, fmt.Errorf("contacts: list: %w", err)
	}
	defer rows.Close()
	var cards []*Card
	for rows.Next() {
		var signed []byte
		var alias sql.NullString
		var verified sql.NullInt64
		if err := rows.Scan(&signed, &alias, &verified); err != nil {
			return nil, fmt.Errorf("contacts: list: %w", err)
		}
		c, err := decodeStored(signed, alias, verified)
		if err != nil {
			return nil, fmt.Errorf("contacts: list: %w", err)
		}
		cards = append(cards, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("contacts: list: %w", err)
	}
	return cards, nil
}

// Delete removes the contact with the identity key, its alias and its
// sections, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, identity []byte) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM section_index WHERE identity = ?", identity); err != nil {
			return fmt.Errorf("clear section index: %w", err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM contacts WHERE identity = ?", identity)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("contacts: delete: %w", err)
	}
	return nil
}

// SetAlias gives the contact with the identity key a local nickname, or
// removes its nickname if alias is empty. It returns ErrNotFound if there is
// no such contact, ErrAliasInUse if another contact has the alias, and an
// error if CheckName refuses alias.
func (s *Store) SetAlias(ctx context.Context, identity []byte, alias string) error {
	if err := CheckName(alias); err != nil {
		return fmt.Errorf("contacts: set alias: alias: %v", err)
	}
	value := sql.NullString{String: alias, Valid: alias != ""}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if value.Valid {
			var owner []byte
			switch err := tx.QueryRowContext(ctx,
				"SELECT identity FROM contacts WHERE alias = ?", alias).Scan(&owner); {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case !bytes.Equal(owner, identity):
				return fmt.Errorf("%w: %q", ErrAliasInUse, alias)
			}
		}
		res, err := tx.ExecContext(ctx, "UPDATE contacts SET alias = ? WHERE identity = ?", value, identity)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("contacts: set alias: %w", err)
	}
	return nil
}

// SetVerified marks the contact with the identity key verified at the
// time at (its user compared the safety number out of band), or clears
// the mark if at is the zero time. It returns ErrNotFound if there is no
// such contact. The mark stays when a newer card of the identity replaces
// the stored one, and goes with Delete.
func (s *Store) SetVerified(ctx context.Context, identity []byte, at time.Time) error {
	value := sql.NullInt64{Int64: at.Unix(), Valid: !at.IsZero()}
	res, err := s.db.ExecContext(ctx, "UPDATE contacts SET verified_unix = ? WHERE identity = ?", value, identity)
	if err != nil {
		return fmt.Errorf("contacts: set verified: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("contacts: set verified: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("contacts: set verified: %w", ErrNotFound)
	}
	return nil
}

// LookupSection returns the contact whose card holds exactly data as its
// section for layer: for instance, which contact an inbound privacy address
// belongs to. It returns ErrNotFound if no card holds it, and an error
// wrapping ErrAmbiguous if several do, since anyone may copy another node's
// section into a card of their own.
func (s *Store) LookupSection(ctx context.Context, layer commonv1.LayerKind, data []byte) (*Card, error) {
	c, err := s.lookupSection(ctx, layer, data)
	if err != nil {
		return nil, fmt.Errorf("contacts: lookup section %v: %w", layer, err)
	}
	return c, nil
}

// lookupSection is LookupSection without the error context.
func (s *Store) lookupSection(ctx context.Context, layer commonv1.LayerKind, data []byte) (*Card, error) {
	// One statement, so one consistent snapshot of both tables.
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.signed, c.alias, c.verified_unix FROM section_index AS x
		JOIN contacts AS c ON c.identity = x.identity
		WHERE x.layer = ? AND x.data_hash = ?`,
		int64(layer), sectionHash(data))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var found *Card
	matches := 0
	for rows.Next() {
		var signed []byte
		var alias sql.NullString
		var verified sql.NullInt64
		if err := rows.Scan(&signed, &alias, &verified); err != nil {
			return nil, err
		}
		c, err := decodeStored(signed, alias, verified)
		if err != nil {
			return nil, err
		}
		// The hash finds the candidates; the bytes decide.
		if sec, ok := c.Sections[layer]; ok && bytes.Equal(sec.Data, data) {
			found = c
			matches++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	switch matches {
	case 0:
		return nil, ErrNotFound
	case 1:
		return found, nil
	default:
		return nil, fmt.Errorf("%w: %d contacts hold it", ErrAmbiguous, matches)
	}
}
