package contacts

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sqlstore"
)

func TestStoreVerified(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	alice, bob := newSigner(1), newSigner(2)
	put(t, st, alice, testCard(alice, "alice", 1_700_000_000))
	put(t, st, bob, testCard(bob, "bob", 1_700_000_000))

	if c, err := st.Get(ctx, alice.Public()); err != nil || !c.Verified.IsZero() {
		t.Fatalf("a new contact is verified: %v, %v", c, err)
	}
	at := time.Unix(1_700_000_500, 0)
	if err := st.SetVerified(ctx, alice.Public(), at); err != nil {
		t.Fatal(err)
	}
	// Every lookup shows the mark, on that contact only.
	c, err := st.Get(ctx, alice.Public())
	if err != nil || !c.Verified.Equal(at) {
		t.Fatalf("Get: verified %v, %v; want %v", c.Verified, err, at)
	}
	cards, err := st.List(ctx)
	if err != nil || len(cards) != 2 || !cards[0].Verified.Equal(at) || !cards[1].Verified.IsZero() {
		t.Fatalf("List: %v", err)
	}
	if c, err := st.LookupSection(ctx, layerPrivacy, []byte("privacy-address-of-alice")); err != nil || !c.Verified.Equal(at) {
		t.Fatalf("LookupSection: %v", err)
	}
	// A newer card of the same identity keeps the mark: it is the
	// identity key that was compared.
	put(t, st, alice, testCard(alice, "alice2", 1_700_000_900))
	if c, err := st.Get(ctx, alice.Public()); err != nil || !c.Verified.Equal(at) || c.Name != "alice2" {
		t.Fatalf("after a newer card: %v, %v", c, err)
	}
	if err := st.SetVerified(ctx, alice.Public(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Get(ctx, alice.Public()); err != nil || !c.Verified.IsZero() {
		t.Fatalf("cleared mark stays: %v, %v", c, err)
	}
	if err := st.SetVerified(ctx, newSigner(3).Public(), at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetVerified of a stranger = %v, want ErrNotFound", err)
	}
}

// A database that version 1 of the schema wrote opens with its contacts,
// none of them verified.
func TestStoreMigratesFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sqlstore.Open(ctx, path, migrations[:1], sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice := newSigner(1)
	c := signed(t, alice, testCard(alice, "alice", 1_700_000_000))
	if _, err := db.ExecContext(ctx,
		"INSERT INTO contacts (identity, name, issued_unix, signed, alias) VALUES (?, ?, ?, ?, ?)",
		[]byte(c.IdentityKey), c.Name, c.Issued.Unix(), c.Signed(), "al"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer st.Close()
	got, err := st.ByAlias(ctx, "al")
	if err != nil || got.Name != "alice" || !got.Verified.IsZero() {
		t.Fatalf("after migration: %v, %v", got, err)
	}
	at := time.Unix(1_700_000_100, 0)
	if err := st.SetVerified(ctx, alice.Public(), at); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, alice.Public()); err != nil || !got.Verified.Equal(at) {
		t.Fatalf("verified after migration: %v, %v", got, err)
	}
}
