package doubleratchet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// testKey is an at-rest key as the host derives it for the layer.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, atrest.KeySize) }

// Offsets of keys in ratchet.State.MarshalBinary (ratchet/marshal.go:
// magic and version, flags, then DHs private, DHr, RK, CKs, CKr, ... each
// 32 bytes).
const (
	stateRK  = 4 + 1 + 2*32
	stateCKs = stateRK + 32
)

// sessionKey returns a key of n's only session with peer, from its state.
func sessionKey(t *testing.T, n, peer *node, off int) []byte {
	t.Helper()
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	c := n.l.contacts[string(peer.id)]
	if c == nil || len(c.sessions) != 1 {
		t.Fatalf("want one session with the peer")
	}
	raw, err := c.sessions[0].state.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(raw[off : off+32])
}

// storedState returns the state column of n's only session with peer, as
// stored (sealed when n has a key).
func storedState(t *testing.T, n, peer *node) []byte {
	t.Helper()
	var blob []byte
	if err := n.l.db.QueryRowContext(context.Background(), `SELECT state FROM sessions WHERE contact = ?`, peer.id).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	return blob
}

// reservedSecret returns, for the one-time key of a table that n reserved
// for peer, its secret column as stored and the secret itself (opened
// with n's key when it has one).
func reservedSecret(t *testing.T, n, peer *node, table, col string, purpose func(uint32) string) (stored, secret []byte) {
	t.Helper()
	var id uint32
	if err := n.l.db.QueryRowContext(context.Background(), `SELECT id, `+col+` FROM `+table+` WHERE reserved_for = ?`, peer.id).Scan(&id, &stored); err != nil {
		t.Fatalf("%s reserved for the peer: %v", table, err)
	}
	secret, err := n.l.key.Open(purpose(id), stored, n.key == nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.key != nil && (!atrest.Sealed(stored) || bytes.Equal(stored, secret)) {
		t.Fatalf("%s: stored in plain although a passphrase is set", table)
	}
	return stored, secret
}

// diskHits returns, for every secret found in any file under the nodes'
// data directories, "name in file".
func diskHits(t *testing.T, secrets map[string][]byte, nodes ...*node) []string {
	t.Helper()
	var hits []string
	files := 0
	for _, n := range nodes {
		err := filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			files++
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for name, s := range secrets {
				if len(s) < 16 {
					t.Fatalf("secret %q is %d bytes: too short to grep for", name, len(s))
				}
				if bytes.Contains(raw, s) {
					hits = append(hits, fmt.Sprintf("%s in %s", name, filepath.Base(path)))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatal("no files in the data directories")
	}
	sort.Strings(hits)
	return hits
}

// TestSecretsGoneFromDisk is forward secrecy on disk: once a commit has
// superseded a ratchet state or spent a one-time prekey, no file of either
// node's data directory (database, -wal, -shm, journals, anything) holds
// the old chain key, root key or state, nor the used prekeys' private
// bytes, in plain or sealed form; also after both layers are stopped and
// started again on their directories. It runs without a passphrase (what
// secure_delete and the truncating checkpoint erase), with one (every
// secret is sealed, and the sealed blobs go as well), and with the
// checkpoint after the frames are handed on (checkpoint: after_send). The current state is
// found where it should be, so the search does see the files.
func TestSecretsGoneFromDisk(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keyA, keyB []byte
		checkpoint string
	}{
		{"plain", nil, nil, checkpointBeforeSend},
		{"passphrase", testKey(1), testKey(2), checkpointBeforeSend},
		// After the frames leave, but before the batch returns.
		{"plain, checkpoint after send", nil, nil, checkpointAfterSend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"one_time_prekeys": 3, "one_time_kem_prekeys": 2, "checkpoint": tc.checkpoint}
			a, b := pairKeys(t, cfg, tc.keyA, tc.keyB)
			gone := map[string][]byte{}
			gone["b's one-time prekey, as stored"], gone["b's one-time prekey private key"] =
				reservedSecret(t, b, a, "one_time_prekeys", "private", purposeOneTimePreKey)
			gone["b's one-time ML-KEM prekey, as stored"], gone["b's one-time ML-KEM prekey seed"] =
				reservedSecret(t, b, a, "kem_prekeys", "seed", purposeKEMPreKey)

			first := send(t, a, b, conv, []byte("first message, with prekeys"))
			if envelopeOf(t, first).GetPrekey().GetOneTimePrekeyId() == 0 || envelopeOf(t, first).GetPrekey().GetKemPrekeyId() == 0 {
				t.Fatal("the first message does not use the one-time prekeys")
			}
			mustOpen(t, a, b, first, []byte("first message, with prekeys"))
			// a's sending chain key and root key now, and both stored states:
			// the next message supersedes the chain key, b's reply the root key.
			gone["a's sending chain key"] = sessionKey(t, a, b, stateCKs)
			gone["a's root key"] = sessionKey(t, a, b, stateRK)
			gone["a's state, as stored"] = storedState(t, a, b)
			gone["b's state, as stored"] = storedState(t, b, a)
			if tc.keyA != nil && bytes.Contains(gone["a's state, as stored"], gone["a's sending chain key"]) {
				t.Fatal("a's state is stored in plain although a passphrase is set")
			}

			mustOpen(t, a, b, send(t, a, b, conv, []byte("second message")), []byte("second message"))
			mustOpen(t, b, a, send(t, b, a, conv, []byte("the reply")), []byte("the reply"))
			if bytes.Equal(sessionKey(t, a, b, stateRK), gone["a's root key"]) || bytes.Equal(sessionKey(t, a, b, stateCKs), gone["a's sending chain key"]) {
				t.Fatal("the test meant to supersede a's root and chain keys")
			}

			// The current state is on disk: in plain without a passphrase,
			// only sealed with one.
			there := map[string][]byte{"a's current state, as stored": storedState(t, a, b)}
			if tc.keyA == nil {
				there["a's current root key"] = sessionKey(t, a, b, stateRK)
			}
			current := sessionKey(t, a, b, stateRK)
			check := func(when string) {
				t.Helper()
				if hits := diskHits(t, gone, a, b); len(hits) > 0 {
					t.Errorf("%s: superseded or spent secrets on disk: %s", when, strings.Join(hits, "; "))
				}
				if hits := diskHits(t, there, a); len(hits) != len(there) {
					t.Errorf("%s: the current state is not where it should be (found only %v): the search does not see the files", when, hits)
				}
				if tc.keyA != nil {
					if hits := diskHits(t, map[string][]byte{"a's current root key": current}, a); len(hits) > 0 {
						t.Errorf("%s: a passphrase is set, but a's current root key is on disk in plain (%v)", when, hits)
					}
				}
			}
			check("after the commits")

			a, b = a.restart(), b.restart()
			check("after a restart")

			// The sessions go on from the sealed state, and what the restart
			// loaded is superseded in turn.
			a.add(b)
			b.add(a)
			a.out.Take()
			b.out.Take()
			mustOpen(t, a, b, send(t, a, b, conv, []byte("after the restart")), []byte("after the restart"))
			mustOpen(t, b, a, send(t, b, a, conv, []byte("reply after the restart")), []byte("reply after the restart"))
			gone["a's root key before the restart"] = current
			gone["a's state before the restart, as stored"] = there["a's current state, as stored"]
			if hits := diskHits(t, gone, a, b); len(hits) > 0 {
				t.Errorf("after the restart and a round trip: %s", strings.Join(hits, "; "))
			}
		})
	}
}

// secretRows returns, for every secret column, how many of its values are
// sealed and how many are plain.
func secretRows(t *testing.T, db *sql.DB) (sealed, plain int) {
	t.Helper()
	for _, c := range secretColumns {
		rows, err := db.QueryContext(context.Background(), `SELECT `+c.col+` FROM `+c.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var blob []byte
			if err := rows.Scan(&blob); err != nil {
				t.Fatal(err)
			}
			if atrest.Sealed(blob) {
				sealed++
			} else {
				plain++
			}
		}
		rows.Close()
	}
	return sealed, plain
}

// TestAtRestPassphraseSetLater: a node that ran without a passphrase gets
// one. At its next start every secret is sealed (identity, prekeys,
// sessions), the plain values are gone from the files, the conversation
// goes on; it then refuses to start without the key, or with another one.
// Configure clears the key bytes of its request, and Stop wipes the key.
func TestAtRestPassphraseSetLater(t *testing.T) {
	a, b := pair(t, map[string]any{"one_time_prekeys": 3, "one_time_kem_prekeys": 2})
	mustOpen(t, a, b, send(t, a, b, conv, []byte("before the passphrase")), []byte("before the passphrase"))
	mustOpen(t, b, a, send(t, b, a, conv, []byte("reply before")), []byte("reply before"))
	sealed, plain := secretRows(t, b.l.db)
	if sealed != 0 || plain == 0 {
		t.Fatalf("without a passphrase: %d sealed, %d plain secret values", sealed, plain)
	}
	var idRaw []byte
	if err := b.l.db.QueryRowContext(context.Background(), `SELECT key FROM identity`).Scan(&idRaw); err != nil {
		t.Fatal(err)
	}
	plainSecrets := map[string][]byte{
		"b's identity keys": idRaw[1:],
		"b's root key":      sessionKey(t, b, a, stateRK),
	}
	if hits := diskHits(t, plainSecrets, b); len(hits) != len(plainSecrets) {
		t.Fatalf("without a passphrase the secrets should be on disk in plain; found %v", hits)
	}

	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := &node{t: t, l: New(), out: b.out, id: b.id, dir: b.dir, cfg: b.cfg, key: testKey(7)}
	req := b2.request()
	reqKey := req.GetAtRestKey()
	if _, err := b2.l.Configure(context.Background(), req, b2.env()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reqKey, make([]byte, atrest.KeySize)) {
		t.Fatal("Configure left the at-rest key in its request")
	}
	b2.start()
	sealed, plain = secretRows(t, b2.l.db)
	if plain != 0 || sealed == 0 {
		t.Fatalf("after setting a passphrase: %d sealed, %d plain secret values", sealed, plain)
	}
	if hits := diskHits(t, plainSecrets, b2); len(hits) > 0 {
		t.Fatalf("plain secrets left on disk after sealing: %v", hits)
	}
	b2.add(a)
	a.add(b2)
	b2.out.Take()
	a.out.Take()
	mustOpen(t, a, b2, send(t, a, b2, conv, []byte("after the passphrase")), []byte("after the passphrase"))
	mustOpen(t, b2, a, send(t, b2, a, conv, []byte("reply after")), []byte("reply after"))

	key := b2.l.key
	if err := b2.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if key.Bytes() != nil {
		t.Fatal("Stop left the at-rest key in memory")
	}
	for _, tt := range []struct {
		name string
		key  []byte
		want error
	}{{"no passphrase", nil, atrest.ErrLocked}, {"another passphrase", testKey(8), atrest.ErrWrongKey}} {
		n := &node{t: t, l: New(), out: &sdktest.Recorder{}, id: b.id, dir: b.dir, cfg: b.cfg, key: tt.key}
		if err := n.configure(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Configure = %v, want %v", tt.name, err, tt.want)
		}
	}
	// With the right one it starts, and the conversation goes on.
	b3 := startNodeKey(t, b.dir, b.id, b.cfg, testKey(7))
	b3.add(a)
	b3.out.Take()
	mustOpen(t, a, b3, send(t, a, b3, conv, []byte("after the restart")), []byte("after the restart"))
}

// TestOneTimeKEMPreKeyReservedForItsContact: a one-time ML-KEM prekey that
// b reserved for c does not open a session for a, which is refused and
// counted, and c can still use it; likewise a one-time X25519 prekey.
func TestOneTimeKEMPreKeyReservedForItsContact(t *testing.T) {
	cfg := map[string]any{"one_time_prekeys": 4, "one_time_kem_prekeys": 4}
	a, b := pair(t, cfg)
	c := startNode(t, t.TempDir(), identity(0xC3), cfg)
	c.add(b)
	b.add(c)
	exchange(c, b, c.out.Take())
	exchange(b, c, b.out.Take())
	forC := c.l.contacts[string(b.id)].fresh
	forA := a.l.contacts[string(b.id)].fresh
	if forC == nil || forA == nil || len(forC.OneTimeKEMPreKeys) != 1 || len(forC.OneTimePreKeys) != 1 {
		t.Fatal("the contacts did not get one-time prekeys")
	}
	for _, tt := range []struct {
		name       string
		opks, kems []x3dh.PublicPreKey
	}{
		{"one-time ML-KEM prekey", forA.OneTimePreKeys, forC.OneTimeKEMPreKeys},
		{"one-time X25519 prekey", forC.OneTimePreKeys, forA.OneTimeKEMPreKeys},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// b's genuine bundle, with a key reserved for c, reaches a.
			b.l.mu.Lock()
			stolen := b.l.publicBundle(tt.opks, tt.kems)
			b.l.mu.Unlock()
			ca := a.l.contacts[string(b.id)]
			ca.sessions, ca.fresh = nil, stolen
			f := send(t, a, b, conv, []byte("with c's one-time key"))
			before, states := b.counter("dropped_unknown_prekey"), b.states()
			if got := deliver(a, b, f); len(got) != 0 {
				t.Fatal("a session opened on a one-time key reserved for another contact")
			}
			if b.counter("dropped_unknown_prekey") != before+1 || !equalStates(states, b.states()) {
				t.Fatal("the refusal was not counted, or changed b's sessions")
			}
			if err := b.openErr(a, f); !errors.Is(err, ErrUnknownPreKey) || !strings.Contains(err.Error(), "not reserved for this contact") {
				t.Fatalf("open = %v, want ErrUnknownPreKey naming the reservation", err)
			}
		})
	}
	// c's keys are still there for c.
	pk := envelopeOf(t, send(t, c, b, conv, []byte("c uses its own keys"))).GetPrekey()
	if pk.GetKemPrekeyId() != forC.OneTimeKEMPreKeys[0].ID || pk.GetOneTimePrekeyId() != forC.OneTimePreKeys[0].ID {
		t.Fatal("c did not use the keys reserved for it")
	}
	c.l.contacts[string(b.id)].sessions = nil
	c.l.contacts[string(b.id)].fresh = forC
	mustOpen(t, c, b, send(t, c, b, conv, []byte("c uses its own keys")), []byte("c uses its own keys"))
}

// TestStaleBundleRefused: bundles carry a signed issue time, and a bundle
// issued before the one held for a contact is refused, as its card
// (AddContact) and in-band; an equal or newer one is taken.
func TestStaleBundleRefused(t *testing.T) {
	cfg := map[string]any{"signed_prekey_rotation": "1h", "one_time_prekeys": 2, "one_time_kem_prekeys": 2}
	a, b := pair(t, cfg)
	b.l.mu.Lock()
	oldCard := b.l.card
	oldAnswer := marshalEnvelope(t, &wirepb.Envelope{Version: WireVersion, Body: &wirepb.Envelope_Bundle{Bundle: b.l.publicBundle(nil, nil).Proto()}})
	clock := b.l.now().Add(61 * time.Minute)
	b.l.now = func() time.Time { return clock }
	if err := b.l.maintain(context.Background()); err != nil {
		b.l.mu.Unlock()
		t.Fatal(err)
	}
	b.l.mu.Unlock()
	newCard := b.section()
	if bytes.Equal(oldCard, newCard) {
		t.Fatal("the card did not change with the rotation")
	}
	a.add(b) // the new card
	held := a.l.contacts[string(b.id)].pinned.Issued
	_, err := a.l.AddContact(context.Background(), addContactRequest(b, oldCard))
	if err == nil || !strings.Contains(err.Error(), "older than the pinned bundle") {
		t.Fatalf("AddContact with the older card = %v, want a stale-bundle refusal", err)
	}
	if got := a.l.contacts[string(b.id)].pinned.Issued; !got.Equal(held) {
		t.Fatal("the older card replaced the pinned one")
	}
	before := a.counter("dropped_stale_bundle")
	fresh := a.l.contacts[string(b.id)].fresh
	if out := a.handle(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: b.id, Payload: oldAnswer}); len(out) != 0 {
		t.Fatal("the old answer produced frames")
	}
	if a.counter("dropped_stale_bundle") != before+1 || a.l.contacts[string(b.id)].fresh != fresh {
		t.Fatal("an in-band bundle older than the pinned one was taken, or not counted")
	}
	// The current card again changes nothing; an answer as new as it is taken.
	a.add(b)
	b.l.mu.Lock()
	current := marshalEnvelope(t, &wirepb.Envelope{Version: WireVersion, Body: &wirepb.Envelope_Bundle{Bundle: b.l.publicBundle(nil, nil).Proto()}})
	b.l.mu.Unlock()
	received := a.counter(cBundlesReceived)
	a.handle(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: b.id, Payload: current})
	if a.counter(cBundlesReceived) != received+1 {
		t.Fatal("a bundle as new as the pinned one was refused")
	}
}

// TestAddContactRefusesIdentityAsSignedPreKey: a card whose signed prekey
// is the identity key, carrying the identity signature as its signature,
// with a valid bundle signature, is refused (signature contexts).
func TestAddContactRefusesIdentityAsSignedPreKey(t *testing.T) {
	a, b := pair(t, nil)
	b.l.mu.Lock()
	forged := b.l.publicBundle(nil, nil)
	forged.SignedPreKey.Public = bytes.Clone(forged.IdentityKey)
	forged.SignedPreKey.Signature = bytes.Clone(forged.IdentitySignature)
	forged.Issued = forged.Issued.Add(time.Hour) // newer than the pinned card
	b.l.id.SignBundle(forged)
	b.l.mu.Unlock()
	raw, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.l.AddContact(context.Background(), addContactRequest(b, raw))
	if err == nil || !strings.Contains(err.Error(), "bad signature: signed prekey") {
		t.Fatalf("AddContact = %v, want a bad signed-prekey signature", err)
	}
	mustOpen(t, a, b, send(t, a, b, conv, []byte("still fine")), []byte("still fine"))
}

// TestUpgradeFromBundleVersion1 opens a store written under bundle version
// 1 (prekey signatures without contexts, schema 1, the contact's card a
// version 1 bundle): the layer re-signs its prekeys, so its card verifies;
// the session with the contact goes on; no new session starts from the old
// card, and the contact's new card is taken.
func TestUpgradeFromBundleVersion1(t *testing.T) {
	a, b := pair(t, nil)
	mustOpen(t, a, b, send(t, a, b, conv, []byte("before")), []byte("before"))
	mustOpen(t, b, a, send(t, b, a, conv, []byte("reply before")), []byte("reply before"))
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Make a's store what version 1 wrote.
	db, err := openStore(context.Background(), filepath.Join(a.dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var idRaw, cardRaw []byte
	if err := db.QueryRowContext(ctx, `SELECT key FROM identity`).Scan(&idRaw); err != nil {
		t.Fatal(err)
	}
	signing := ed25519.NewKeyFromSeed(idRaw[1:33])
	for _, table := range []string{"signed_prekeys", "kem_prekeys"} {
		rows, err := db.QueryContext(ctx, `SELECT id, public FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		sigs := map[int64][]byte{}
		for rows.Next() {
			var id int64
			var pub []byte
			if err := rows.Scan(&id, &pub); err != nil {
				t.Fatal(err)
			}
			sigs[id] = ed25519.Sign(signing, pub)
		}
		rows.Close()
		for id, sig := range sigs {
			if _, err := db.ExecContext(ctx, `UPDATE `+table+` SET signature = ? WHERE id = ?`, sig, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT bundle FROM contacts`).Scan(&cardRaw); err != nil {
		t.Fatal(err)
	}
	var card wirepb.Bundle
	if err := proto.Unmarshal(cardRaw, &card); err != nil {
		t.Fatal(err)
	}
	card.Version, card.BundleSignature = 1, nil
	v1, _ := proto.Marshal(&card)
	for _, q := range []string{`DELETE FROM meta WHERE key = 'resign_prekeys'`, `DROP TABLE sender_keys`, `PRAGMA user_version = 1`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE contacts SET bundle = ?, fresh = NULL`, v1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	a = startNode(t, a.dir, a.id, a.cfg)
	if _, err := x3dh.ParseBundle(a.section()); err != nil {
		t.Fatalf("the upgraded layer's card: %v", err)
	}
	if a.l.contacts[string(b.id)].pinned != nil {
		t.Fatal("a version 1 card is pinned")
	}
	mustOpen(t, b, a, send(t, b, a, conv, []byte("old session, b to a")), []byte("old session, b to a"))
	mustOpen(t, a, b, send(t, a, b, conv, []byte("old session, a to b")), []byte("old session, a to b"))
	if _, err := a.l.AddContact(ctx, addContactRequest(b, v1)); err == nil || !strings.Contains(err.Error(), "bundle version 1") {
		t.Fatalf("AddContact with a version 1 card = %v, want an error naming version 1", err)
	}
	// A new session needs the contact's current card.
	a.l.contacts[string(b.id)].sessions = nil
	if out := a.handle(down(b.id, conv, []byte("x"))); len(out) != 0 {
		t.Fatal("a session started from a version 1 card")
	}
	a.add(b)
	a.out.Take()
	mustOpen(t, a, b, send(t, a, b, conv, []byte("new session")), []byte("new session"))
}

// TestDeferredCheckpoint: with checkpoint: deferred a superseded key
// stays in the write-ahead log until checkpoint_delay has passed since the
// first commit that needed the checkpoint (with a delay of an hour it is
// still on disk after the commits, so the deferral is real, and Stop's
// checkpoint erases it), and then goes without any further batch (with a
// short delay).
func TestDeferredCheckpoint(t *testing.T) {
	supersede := func(t *testing.T, cfg map[string]any) (a, b *node, gone map[string][]byte) {
		a, b = pair(t, cfg)
		mustOpen(t, a, b, send(t, a, b, conv, []byte("first message")), []byte("first message"))
		gone = map[string][]byte{"a's sending chain key": sessionKey(t, a, b, stateCKs)}
		mustOpen(t, a, b, send(t, a, b, conv, []byte("second message")), []byte("second message"))
		if bytes.Equal(sessionKey(t, a, b, stateCKs), gone["a's sending chain key"]) {
			t.Fatal("the test meant to supersede a's chain key")
		}
		return a, b, gone
	}
	t.Run("long delay", func(t *testing.T) {
		a, b, gone := supersede(t, map[string]any{"checkpoint": checkpointDeferred, "checkpoint_delay": "1h"})
		if hits := diskHits(t, gone, a); len(hits) == 0 {
			t.Fatal("the superseded chain key is gone before the delay: the checkpoint was not deferred")
		}
		a = a.restart()
		if hits := diskHits(t, gone, a); len(hits) > 0 {
			t.Fatalf("after Stop: %s", strings.Join(hits, "; "))
		}
		_ = b
	})
	t.Run("short delay", func(t *testing.T) {
		a, _, gone := supersede(t, map[string]any{"checkpoint": checkpointDeferred, "checkpoint_delay": "50ms"})
		deadline := time.Now().Add(10 * time.Second)
		for len(diskHits(t, gone, a)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("10 s after the commits: %s", strings.Join(diskHits(t, gone, a), "; "))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
