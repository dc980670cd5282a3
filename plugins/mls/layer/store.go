package layer

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/mls/codec"
)

// dbFile is the layer's database inside its data directory.
const dbFile = "mls.db"

// migrations are the schema versions, in order; see sqlstore.Open.
var migrations = []string{
	// Version 1.
	//
	// identity: the one row of the node's MLS signature key pair.
	// keypackages: this node's KeyPackages with their private keys, by
	// KeyPackageRef; last_resort is 1 for the one that may be used many
	// times, 2 for one made for a single offer (not in the card), 0 for
	// the card's one-time ones.
	// contacts: each contact's card section.
	// used_keypackages: contacts' one-time KeyPackages this node put in a
	// Commit, so that none is used twice.
	// groups: one row per conversation: the members the host asked for
	// (32-byte identities one after another; NULL when the host never set
	// them), the group state (group.State; NULL before the group exists
	// here or after this node was removed), the branch (hash of the Commit
	// that led to the current epoch) and the recent history (for each
	// epoch the hash of the Commit that entered it: encodeHistory).
	// outbox: this node's Commits and Welcomes still being retransmitted,
	// with the members that must still show the new epoch.
	`CREATE TABLE identity (
		id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
		private BLOB    NOT NULL,
		public  BLOB    NOT NULL
	) STRICT;
	CREATE TABLE keypackages (
		ref          BLOB    NOT NULL PRIMARY KEY,
		bundle       BLOB    NOT NULL,
		last_resort  INTEGER NOT NULL,
		created_unix INTEGER NOT NULL
	) STRICT;
	CREATE TABLE contacts (
		identity BLOB NOT NULL PRIMARY KEY,
		section  BLOB NOT NULL
	) STRICT;
	CREATE TABLE used_keypackages (
		ref BLOB NOT NULL PRIMARY KEY
	) STRICT, WITHOUT ROWID;
	CREATE TABLE groups (
		id      BLOB NOT NULL PRIMARY KEY,
		desired BLOB,
		state   BLOB,
		branch  BLOB NOT NULL,
		removed INTEGER NOT NULL,
		history BLOB NOT NULL
	) STRICT;
	CREATE TABLE outbox (
		group_id BLOB    NOT NULL,
		epoch    INTEGER NOT NULL,
		hash     BLOB    NOT NULL,
		commit_  BLOB    NOT NULL,
		welcome  BLOB,
		joiners  BLOB    NOT NULL,
		members  BLOB    NOT NULL,
		PRIMARY KEY (group_id, epoch)
	) STRICT;`,
	// Version 2.
	//
	// groups.leaf_unix: when this node's own leaf in the group last
	// changed (joined, created, or a Commit of its own with a path), in
	// Unix seconds; 0 when unknown (rows of version 1: counted from the
	// start of the layer). update.go.
	`ALTER TABLE groups ADD COLUMN leaf_unix INTEGER NOT NULL DEFAULT 0;`,
	// Version 3.
	//
	// groups.needed: 1 for a conversation of two members whose group does
	// not exist here yet and is wanted (a frame of this node waits for it,
	// or the other member asked for it): lazy.go.
	`ALTER TABLE groups ADD COLUMN needed INTEGER NOT NULL DEFAULT 0;`,
}

// openStore opens the layer's database. secure_delete makes SQLite
// overwrite what it deletes or replaces, so that a superseded group state
// (the secrets of an epoch left behind) or a used KeyPackage's private keys
// do not linger in the file's free pages; checkpoint then clears the
// write-ahead log of them.
func openStore(ctx context.Context, path string) (*sql.DB, error) {
	return sqlstore.Open(ctx, path, migrations, sqlstore.Options{Synchronous: "FULL", SecureDelete: true})
}

// checkpoint copies the write-ahead log into the database file and
// truncates it, so that no file holds the page images of superseded
// secrets (doubleratchet's store.go explains it at length).
func checkpoint(ctx context.Context, db *sql.DB) error {
	var busy, logFrames, moved int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &moved); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Purposes of the sealed secrets: the associated data of each seal names
// the column and the row, so that a sealed blob opens only where it was
// written.
func purposeIdentity() string             { return "mls identity" }
func purposeKeyPackage(ref []byte) string { return "mls keypackage " + hex.EncodeToString(ref) }
func purposeGroup(id []byte) string       { return "mls group " + hex.EncodeToString(id) }

// seal seals a secret under the at-rest key (nil key: the plain bytes).
func seal(k *atrest.Key, purpose string, secret []byte) ([]byte, error) {
	if k == nil {
		return secret, nil
	}
	return k.Seal(purpose, secret)
}

// unseal opens what seal wrote; a sealed blob without a key is
// atrest.ErrLocked.
func unseal(k *atrest.Key, purpose string, blob []byte) ([]byte, error) {
	if k == nil {
		if atrest.Sealed(blob) {
			return nil, atrest.ErrLocked
		}
		return blob, nil
	}
	return k.Open(purpose, blob, true)
}

// joinIDs concatenates 32-byte identities.
func joinIDs(ids [][]byte) []byte {
	out := make([]byte, 0, len(ids)*identitySize)
	for _, id := range ids {
		out = append(out, id...)
	}
	return out
}

// splitIDs undoes joinIDs.
func splitIDs(b []byte) ([][]byte, error) {
	if len(b)%identitySize != 0 {
		return nil, errors.New("identity list is not a multiple of 32 bytes")
	}
	var out [][]byte
	for i := 0; i < len(b); i += identitySize {
		out = append(out, append([]byte(nil), b[i:i+identitySize]...))
	}
	return out, nil
}

// bundleBytes encodes a KeyPackage bundle's private part for storage:
// the KeyPackage, its init and encryption private keys.
func bundleBytes(kp, initPriv, encPriv []byte) []byte {
	w := codec.NewWriter(nil)
	w.Opaque(kp)
	w.Opaque(initPriv)
	w.Opaque(encPriv)
	return w.Bytes()
}

// parseBundleBytes undoes bundleBytes.
func parseBundleBytes(b []byte) (kp, initPriv, encPriv []byte, err error) {
	r := codec.NewReader(b)
	if kp, err = r.Opaque(); err != nil {
		return nil, nil, nil, err
	}
	if initPriv, err = r.Opaque(); err != nil {
		return nil, nil, nil, err
	}
	if encPriv, err = r.Opaque(); err != nil {
		return nil, nil, nil, err
	}
	return kp, initPriv, encPriv, r.Done()
}
