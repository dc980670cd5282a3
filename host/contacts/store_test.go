package contacts

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// openStore opens a store in a new directory and closes it at the end of
// the test.
func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// put stores c, signed by s, and returns the card as stored.
func put(t *testing.T, st *Store, s testSigner, c *Card) *Card {
	t.Helper()
	d := signed(t, s, c)
	if err := st.Put(t.Context(), d); err != nil {
		t.Fatalf("Put %q: %v", c.Name, err)
	}
	return d
}

func names(cards []*Card) []string {
	var out []string
	for _, c := range cards {
		out = append(out, c.Name)
	}
	return out
}

func TestStorePutGetListDelete(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)

	if cards, err := st.List(ctx); err != nil || len(cards) != 0 {
		t.Fatalf("List of an empty store = %v, %v", names(cards), err)
	}

	signers := map[string]testSigner{}
	for i, name := range []string{"carol", "alice", "bob", "bob", "dave"} {
		s := newSigner(10 + i)
		key := fmt.Sprintf("%s-%d", name, i)
		signers[key] = s
		put(t, st, s, testCard(s, name, 1_700_000_000))
	}

	for key, s := range signers {
		got, err := st.Get(ctx, s.Public())
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		want := testCard(s, strings.Split(key, "-")[0], 1_700_000_000)
		checkSame(t, got, want)
		if _, err := Decode(got.Signed()); err != nil {
			t.Errorf("Get %s: stored signed form does not decode: %v", key, err)
		}
	}

	cards, err := st.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := names(cards), []string{"alice", "bob", "bob", "carol", "dave"}; !slices.Equal(got, want) {
		t.Errorf("List names = %q, want %q", got, want)
	}
	if bytes.Compare(cards[1].IdentityKey, cards[2].IdentityKey) >= 0 {
		t.Error("List does not order cards of the same name by identity key")
	}

	tests := []struct {
		name string
		key  []byte
	}{
		{"unknown key", newSigner(99).Public()},
		{"empty key", nil},
		{"short key", []byte{1, 2, 3}},
	}
	for _, tt := range tests {
		if _, err := st.Get(ctx, tt.key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get %s = %v, want ErrNotFound", tt.name, err)
		}
		if err := st.Delete(ctx, tt.key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete %s = %v, want ErrNotFound", tt.name, err)
		}
	}

	carol := signers["carol-0"]
	if err := st.Delete(ctx, carol.Public()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx, carol.Public()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, carol.Public()); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := st.LookupSection(ctx, layerPrivacy, []byte("privacy-address-of-carol")); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupSection after Delete = %v, want ErrNotFound", err)
	}
	cards, err = st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cards), []string{"alice", "bob", "bob", "dave"}; !slices.Equal(got, want) {
		t.Errorf("List after Delete = %q, want %q", got, want)
	}
	// A deleted contact can come back, even with an older card.
	put(t, st, carol, testCard(carol, "carol", 1_600_000_000))
}

func TestStoreStale(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	s := newSigner(1)
	const t0 = 1_700_000_000
	put(t, st, s, testCard(s, "v1", t0))

	tests := []struct {
		name     string
		issued   int64
		wantErr  error
		wantName string // stored afterwards
	}{
		{"older", t0 - 1, ErrStale, "v1"},
		{"much older", 1, ErrStale, "v1"},
		{"same second", t0, nil, "same second"},
		{"newer", t0 + 10, nil, "newer"},
		{"between", t0 + 5, ErrStale, "newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := signed(t, s, testCard(s, tt.name, tt.issued))
			if err := st.Put(ctx, c); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tt.wantErr)
			}
			got, err := st.Get(ctx, s.Public())
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.wantName {
				t.Errorf("stored card is %q, want %q", got.Name, tt.wantName)
			}
		})
	}
	// Putting the stored card again is harmless.
	got, err := st.Get(ctx, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, got); err != nil {
		t.Errorf("Put of the stored card = %v", err)
	}
}

func TestStorePutUnsigned(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	s := newSigner(1)
	tests := []struct {
		name string
		card func() *Card
	}{
		{"never signed", func() *Card { return testCard(s, "alice", 1_700_000_000) }},
		{"name changed after decoding", func() *Card {
			c := signed(t, s, testCard(s, "alice", 1_700_000_000))
			c.Name = "mallory"
			return c
		}},
		{"section changed after signing", func() *Card {
			c := testCard(s, "alice", 1_700_000_000)
			mustSign(t, s, c)
			c.Sections[layerPrivacy] = Section{Plugin: "whisper", Data: []byte("someone else")}
			return c
		}},
		{"key changed after decoding", func() *Card {
			c := signed(t, s, testCard(s, "alice", 1_700_000_000))
			c.IdentityKey = newSigner(2).Public()
			return c
		}},
		{"issue time changed after decoding", func() *Card {
			c := signed(t, s, testCard(s, "alice", 1_700_000_000))
			c.Issued = c.Issued.Add(time.Hour)
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.Put(ctx, tt.card()); !errors.Is(err, ErrUnsigned) {
				t.Fatalf("Put = %v, want ErrUnsigned", err)
			}
		})
	}
	if cards, err := st.List(ctx); err != nil || len(cards) != 0 {
		t.Errorf("store holds %q after refused Puts (err %v)", names(cards), err)
	}

	// A card signed locally, unchanged since, is accepted, and an
	// unrounded issue time does not count as a change.
	c := &Card{IdentityKey: s.Public(), Name: "me", Issued: time.Unix(1_700_000_000, 123_456_789)}
	mustSign(t, s, c)
	if err := st.Put(ctx, c); err != nil {
		t.Errorf("Put of a card signed locally = %v", err)
	}
}

func TestStoreAlias(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	alice, bob := newSigner(1), newSigner(2)
	put(t, st, alice, testCard(alice, "alice", 1_700_000_000))
	put(t, st, bob, testCard(bob, "bob", 1_700_000_000))

	if _, err := st.ByAlias(ctx, "ally"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByAlias before SetAlias = %v, want ErrNotFound", err)
	}
	steps := []struct {
		name    string
		key     []byte
		alias   string
		wantErr error
		invalid bool
	}{
		{"set", alice.Public(), "ally", nil, false},
		{"set again", alice.Public(), "ally", nil, false},
		{"taken", bob.Public(), "ally", ErrAliasInUse, false},
		{"unknown contact", newSigner(3).Public(), "who", ErrNotFound, false},
		{"too long", bob.Public(), strings.Repeat("a", MaxNameSize+1), nil, true},
		{"control character", bob.Public(), "b\x00b", nil, true},
		{"not UTF-8", bob.Public(), "b\xffb", nil, true},
		{"other contact", bob.Public(), "bobby", nil, false},
	}
	for _, tt := range steps {
		err := st.SetAlias(ctx, tt.key, tt.alias)
		switch {
		case tt.invalid:
			if err == nil {
				t.Errorf("SetAlias %s succeeded", tt.name)
			}
		case !errors.Is(err, tt.wantErr):
			t.Errorf("SetAlias %s = %v, want %v", tt.name, err, tt.wantErr)
		}
	}

	lookups := []struct {
		alias string
		want  string // card name; "" for ErrNotFound
	}{
		{"ally", "alice"},
		{"bobby", "bob"},
		{"Ally", ""},
		{"", ""},
		{"who", ""},
	}
	for _, tt := range lookups {
		c, err := st.ByAlias(ctx, tt.alias)
		if tt.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("ByAlias(%q) = %v, want ErrNotFound", tt.alias, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ByAlias(%q): %v", tt.alias, err)
			continue
		}
		if c.Name != tt.want || c.Alias != tt.alias {
			t.Errorf("ByAlias(%q) = %q alias %q, want %q", tt.alias, c.Name, c.Alias, tt.want)
		}
	}

	if c, err := st.Get(ctx, alice.Public()); err != nil || c.Alias != "ally" {
		t.Errorf("Get = alias %q, %v; want \"ally\"", c.Alias, err)
	}
	cards, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var aliases []string
	for _, c := range cards {
		aliases = append(aliases, c.Alias)
	}
	if want := []string{"ally", "bobby"}; !slices.Equal(aliases, want) {
		t.Errorf("List aliases = %q, want %q", aliases, want)
	}

	// A newer card keeps the alias; the alias in a Put card is ignored.
	newer := signed(t, alice, testCard(alice, "alice 2", 1_700_000_100))
	newer.Alias = "ignored"
	if err := st.Put(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ByAlias(ctx, "ally"); err != nil || c.Name != "alice 2" {
		t.Errorf("after a newer card, ByAlias = %v, %v; want the newer card", c, err)
	}
	if _, err := st.ByAlias(ctx, "ignored"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Put set the alias from the card: ByAlias = %v", err)
	}

	// Clearing frees the alias for another contact.
	if err := st.SetAlias(ctx, alice.Public(), ""); err != nil {
		t.Fatalf("clear alias: %v", err)
	}
	if _, err := st.ByAlias(ctx, "ally"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByAlias after clearing = %v, want ErrNotFound", err)
	}
	if err := st.SetAlias(ctx, bob.Public(), "ally"); err != nil {
		t.Errorf("reuse a cleared alias: %v", err)
	}
	// Deleting frees it too.
	if err := st.Delete(ctx, bob.Public()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAlias(ctx, alice.Public(), "ally"); err != nil {
		t.Errorf("reuse the alias of a deleted contact: %v", err)
	}
}

func TestStoreLookupSection(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	alice, bob, mallory := newSigner(1), newSigner(2), newSigner(3)
	put(t, st, alice, testCard(alice, "alice", 1_700_000_000))
	put(t, st, bob, testCard(bob, "bob", 1_700_000_000))
	if err := st.SetAlias(ctx, bob.Public(), "bobby"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		layer commonv1.LayerKind
		data  string
		want  string // card name; "" for ErrNotFound
	}{
		{"privacy address", layerPrivacy, "privacy-address-of-alice", "alice"},
		{"p2p address", layerP2P, "/ip4/192.0.2.1/tcp/4001/p2p/bob", "bob"},
		{"wrong layer", layerP2P, "privacy-address-of-alice", ""},
		{"prefix of a section", layerPrivacy, "privacy-address-of-ali", ""},
		{"unknown", layerPrivacy, "privacy-address-of-carol", ""},
		{"unspecified layer", commonv1.LayerKind_LAYER_KIND_UNSPECIFIED, "privacy-address-of-alice", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := st.LookupSection(ctx, tt.layer, []byte(tt.data))
			if tt.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("LookupSection = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LookupSection: %v", err)
			}
			if c.Name != tt.want {
				t.Errorf("LookupSection = %q, want %q", c.Name, tt.want)
			}
		})
	}
	if c, err := st.LookupSection(ctx, layerP2P, []byte("/ip4/192.0.2.1/tcp/4001/p2p/bob")); err != nil || c.Alias != "bobby" {
		t.Errorf("LookupSection alias = %v, %v; want \"bobby\"", c, err)
	}

	// A new card replaces the old card's sections in the index.
	moved := testCard(alice, "alice", 1_700_000_100)
	moved.Sections[layerPrivacy] = Section{Plugin: "whisper", Data: []byte("alice-new-address")}
	delete(moved.Sections, layerSecure)
	put(t, st, alice, moved)
	if _, err := st.LookupSection(ctx, layerPrivacy, []byte("privacy-address-of-alice")); !errors.Is(err, ErrNotFound) {
		t.Errorf("old section after a new card = %v, want ErrNotFound", err)
	}
	if _, err := st.LookupSection(ctx, layerSecure, []byte("prekey-bundle-of-alice")); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped section after a new card = %v, want ErrNotFound", err)
	}
	if c, err := st.LookupSection(ctx, layerPrivacy, []byte("alice-new-address")); err != nil || !c.IdentityKey.Equal(alice.Public()) {
		t.Errorf("new section = %v, %v; want alice", c, err)
	}

	// A section copied into another card no longer names one contact.
	copycat := testCard(mallory, "mallory", 1_700_000_000)
	copycat.Sections[layerPrivacy] = Section{Plugin: "whisper", Data: []byte("alice-new-address")}
	put(t, st, mallory, copycat)
	if _, err := st.LookupSection(ctx, layerPrivacy, []byte("alice-new-address")); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("shared section = %v, want ErrAmbiguous", err)
	}
	// Every card here holds the same empty sync section.
	if _, err := st.LookupSection(ctx, layerSync, nil); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("empty section held by three cards = %v, want ErrAmbiguous", err)
	}
	if err := st.Delete(ctx, mallory.Public()); err != nil {
		t.Fatal(err)
	}
	if c, err := st.LookupSection(ctx, layerPrivacy, []byte("alice-new-address")); err != nil || !c.IdentityKey.Equal(alice.Public()) {
		t.Errorf("after deleting the copy = %v, %v; want alice", c, err)
	}
}

func TestStoreReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "dir", FileName)
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	alice, bob := newSigner(1), newSigner(2)
	put(t, st, alice, testCard(alice, "alice", 1_700_000_000))
	put(t, st, bob, testCard(bob, "bob", 1_700_000_000))
	if err := st.SetAlias(ctx, bob.Public(), "bobby"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("database file mode = %#o, want 0600", got)
		}
	}

	st, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	cards, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cards), []string{"alice", "bob"}; !slices.Equal(got, want) {
		t.Fatalf("after reopening, List = %q, want %q", got, want)
	}
	checkSame(t, cards[0], testCard(alice, "alice", 1_700_000_000))
	if c, err := st.ByAlias(ctx, "bobby"); err != nil || c.Name != "bob" {
		t.Errorf("after reopening, ByAlias = %v, %v", c, err)
	}
	if c, err := st.LookupSection(ctx, layerPrivacy, []byte("privacy-address-of-alice")); err != nil || c.Name != "alice" {
		t.Errorf("after reopening, LookupSection = %v, %v", c, err)
	}
	if err := st.Put(ctx, signed(t, alice, testCard(alice, "old", 1))); !errors.Is(err, ErrStale) {
		t.Errorf("after reopening, stale Put = %v, want ErrStale", err)
	}
}

func TestStoreSettings(t *testing.T) {
	st, _ := openStore(t)
	ctx := t.Context()
	// Every connection of the pool has the settings, not only the first.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := st.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for _, tt := range []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"synchronous", "2"}, // FULL
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"user_version", fmt.Sprint(len(migrations))},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatalf("connection %d: PRAGMA %s: %v", i, tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, tt.pragma, got, tt.want)
			}
		}
	}
}

func TestStoreRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(ctx, path)
	if err == nil {
		st.Close()
		t.Fatal("Open accepted a database from a newer program")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open = %v, want it to say the schema is newer", err)
	}
}

func TestStoreConcurrent(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), FileName)
	// Two stores on one file stand for two processes.
	stores := make([]*Store, 2)
	for i := range stores {
		st, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores[i] = st
	}
	const writers, perWriter = 4, 10
	cards := make([][]*Card, writers)
	for w := range writers {
		for i := range perWriter {
			n := w*perWriter + i
			s := newSigner(n)
			cards[w] = append(cards[w], signed(t, s, testCard(s, fmt.Sprintf("c%02d", n), 1_700_000_000)))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			for _, c := range cards[w] {
				if err := st.Put(ctx, c); err != nil {
					errs <- err
				}
				if _, err := st.List(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stored, err := stores[1].List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != writers*perWriter {
		t.Errorf("store holds %d cards, want %d", len(stored), writers*perWriter)
	}
}

func TestStoreCanceledContext(t *testing.T) {
	st, _ := openStore(t)
	s := newSigner(1)
	c := signed(t, s, testCard(s, "alice", 1_700_000_000))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := st.Put(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := st.Get(t.Context(), s.Public()); !errors.Is(err, ErrNotFound) {
		t.Errorf("a canceled Put stored the card: Get = %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), FileName)); err == nil {
		t.Error("Open with a canceled context succeeded")
	}
}

func TestStoreOddPath(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "we?ird #dir %41 ü")
	path := filepath.Join(dir, FileName)
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s := newSigner(1)
	put(t, st, s, testCard(s, "alice", 1_700_000_000))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The database is the file at path, not one at a misparsed name.
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("database file at %q: %v, %v", path, fi, err)
	}
	if entries, err := os.ReadDir(filepath.Dir(dir)); err != nil || len(entries) != 1 {
		t.Errorf("files beside the database directory: %v, %v", entries, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), FileName) {
			t.Errorf("unexpected file %q beside the database", e.Name())
		}
	}
	st, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	if _, err := st.Get(ctx, s.Public()); err != nil {
		t.Errorf("Get after reopening: %v", err)
	}
}

// TestStoreFuture: a card issued more than MaxClockSkew ahead of the
// store's clock is refused, so that it cannot block the genuine updates
// issued after it; one within the skew is taken; and a far-future card that
// a store already holds (from before the check) does not block a current
// card.
func TestStoreFuture(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	now := time.Unix(1_800_000_000, 0)
	st.now = func() time.Time { return now }
	s := newSigner(1)
	skew := int64(MaxClockSkew / time.Second)

	far := signed(t, s, testCard(s, "from the future", now.Unix()+skew+1))
	if err := st.Put(ctx, far); !errors.Is(err, ErrFuture) {
		t.Fatalf("Put of a card issued %ds ahead = %v, want ErrFuture", skew+1, err)
	}
	if _, err := st.Get(ctx, s.Public()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused future card was stored: Get = %v", err)
	}
	near := put(t, st, s, testCard(s, "clock a little ahead", now.Unix()+skew))
	// The genuine update issued later still supersedes it.
	later := now.Add(MaxClockSkew + time.Second)
	st.now = func() time.Time { return later }
	put(t, st, s, testCard(s, "update", later.Unix()))
	if got, err := st.Get(ctx, s.Public()); err != nil || got.Name != "update" {
		t.Fatalf("after the update, stored %v (%v), want \"update\" over %q", got, err, near.Name)
	}

	// A store that took a far-future card before Put checked: the card
	// does not count as newer than a current one.
	b := newSigner(2)
	st.now = func() time.Time { return now.Add(24 * time.Hour) }
	put(t, st, b, testCard(b, "stored while the clock was wrong", now.Unix()+24*3600))
	st.now = func() time.Time { return now }
	put(t, st, b, testCard(b, "current", now.Unix()))
	if got, err := st.Get(ctx, b.Public()); err != nil || got.Name != "current" {
		t.Fatalf("a current card did not replace a far-future stored one: %v (%v)", got, err)
	}
	// An older card than a plausible stored one is still stale.
	if err := st.Put(ctx, signed(t, b, testCard(b, "older", now.Unix()-1))); !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "issued") {
		t.Fatalf("Put of an older card = %v, want ErrStale with both issue times", err)
	}
}

// TestStoreRefusesMisleadingNames: a card whose name holds a bidirectional
// control or an invisible character decodes (a stored card stays
// readable), but Put refuses it, and SetAlias refuses such an alias.
func TestStoreRefusesMisleadingNames(t *testing.T) {
	ctx := t.Context()
	st, _ := openStore(t)
	s := newSigner(1)
	for _, name := range []string{"ali\u202ece", "al\u200bice", "\u2066alice\u2069", "alice\ufeff", "a\u3164"} {
		pb := validProto(s)
		pb.Name = name
		c, err := Decode(signProto(t, s, pb))
		if err != nil {
			t.Fatalf("Decode of a card named %q: %v", name, err)
		}
		if err := st.Put(ctx, c); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "name") {
			t.Errorf("Put of a card named %q = %v, want ErrMalformed naming the name", name, err)
		}
	}
	if cards, err := st.List(ctx); err != nil || len(cards) != 0 {
		t.Fatalf("store holds %q after refused Puts (err %v)", names(cards), err)
	}
	put(t, st, s, testCard(s, "alice", 1_700_000_000))
	if err := st.SetAlias(ctx, s.Public(), "bo\u200db"); err == nil {
		t.Error("SetAlias took an alias with a zero-width joiner")
	}
}
