package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// ownKeyPackage is one of this node's KeyPackages with its private keys.
type ownKeyPackage struct {
	ref        []byte
	bundle     *group.KeyPackageBundle
	lastResort bool
	unlisted   bool // made for one Welcome that named a used KeyPackage: not in the card
	created    time.Time
	stored     bool      // written to the database
	retiredAt  time.Time // when a Welcome used it (retired ones only)
}

// load reads the identity, KeyPackages, contacts and groups, creating the
// identity and KeyPackages on first use; l.mu is held.
func (l *Layer) load(ctx context.Context) error {
	var privBlob, pub []byte
	err := l.db.QueryRowContext(ctx, `SELECT private, public FROM identity WHERE id = 1`).Scan(&privBlob, &pub)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		priv, p, err := l.cs.GenerateSignatureKey(nil)
		if err != nil {
			return err
		}
		blob, err := seal(l.key, purposeIdentity(), priv)
		if err != nil {
			return err
		}
		if _, err := l.db.ExecContext(ctx, `INSERT INTO identity (id, private, public) VALUES (1, ?, ?)`, blob, p); err != nil {
			return fmt.Errorf("store identity: %w", err)
		}
		privBlob, pub = blob, p
	case err != nil:
		return fmt.Errorf("load identity: %w", err)
	}
	priv, err := unseal(l.key, purposeIdentity(), privBlob)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if len(l.self) == 0 {
		// No node identity (a host always passes one): the layer names
		// itself by its signature key.
		h := sha256.Sum256(pub)
		l.self = h[:]
	}
	l.ident = group.Identity{
		Credential:    wire.Credential{Type: wire.CredentialBasic, Identity: l.self},
		SignaturePriv: append([]byte(nil), priv...), SignaturePub: pub,
	}

	rows, err := l.db.QueryContext(ctx, `SELECT ref, bundle, last_resort, created_unix FROM keypackages ORDER BY created_unix, ref`)
	if err != nil {
		return fmt.Errorf("load KeyPackages: %w", err)
	}
	for rows.Next() {
		var ref, blob []byte
		var lr int
		var created int64
		if err := rows.Scan(&ref, &blob, &lr, &created); err != nil {
			rows.Close()
			return fmt.Errorf("load KeyPackages: %w", err)
		}
		raw, err := unseal(l.key, purposeKeyPackage(ref), blob)
		if err != nil {
			rows.Close()
			return fmt.Errorf("KeyPackage: %w", err)
		}
		kpBytes, initPriv, encPriv, err := parseBundleBytes(raw)
		if err != nil {
			rows.Close()
			return fmt.Errorf("KeyPackage: %w", err)
		}
		var kp wire.KeyPackage
		if err := wire.Unmarshal(kpBytes, &kp); err != nil {
			rows.Close()
			return fmt.Errorf("KeyPackage: %w", err)
		}
		l.kps = append(l.kps, &ownKeyPackage{
			ref: ref, lastResort: lr == 1, unlisted: lr == 2, created: time.Unix(created, 0), stored: true,
			bundle: &group.KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, Identity: l.ident},
		})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load KeyPackages: %w", err)
	}

	rows, err = l.db.QueryContext(ctx, `SELECT identity, section FROM contacts`)
	if err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	for rows.Next() {
		var id, section []byte
		if err := rows.Scan(&id, &section); err != nil {
			rows.Close()
			return fmt.Errorf("load contacts: %w", err)
		}
		if card, err := DecodeCard(section); err == nil {
			l.contacts[string(id)] = card
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}

	rows, err = l.db.QueryContext(ctx, `SELECT ref FROM used_keypackages`)
	if err != nil {
		return fmt.Errorf("load used KeyPackages: %w", err)
	}
	for rows.Next() {
		var ref []byte
		if err := rows.Scan(&ref); err != nil {
			rows.Close()
			return err
		}
		l.used[string(ref)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := l.loadGroups(ctx); err != nil {
		return err
	}
	// Top up the KeyPackages (first start, or key_packages raised).
	l.refreshKeyPackages(l.now())
	l.events = nil // nothing to tell the host: it reads the card at Start
	w, err := l.collect()
	if err != nil {
		return err
	}
	l.out = w.out // handed on by the first flush
	if w.changes() {
		if err := writeAll(ctx, l.db, w); err != nil {
			return err
		}
	}
	return l.rebuildCard()
}

// refreshKeyPackages drops expired KeyPackages, keeps key_packages
// one-time ones and a last-resort one whose lifetime has more than half to
// run; l.mu is held. A change of the card is announced (SectionChanged).
func (l *Layer) refreshKeyPackages(now time.Time) {
	changed := false
	oneTime, lastResort := 0, 0
	kept := l.kps[:0]
	for _, kp := range l.kps {
		if kp.bundle.KeyPackage.LeafNode.Lifetime.NotAfter <= uint64(now.Unix()) || kp.bundle.KeyPackage.CipherSuite != wire.CipherSuite(l.cs.ID()) {
			l.dropKeyPackage(kp)
			changed = true
			continue
		}
		kept = append(kept, kp)
	}
	l.kps = kept
	fresh := func(kp *ownKeyPackage) bool {
		return kp.lastResort && now.Sub(kp.created) < l.cfg.KeyPackageLifetime/2
	}
	for _, kp := range l.kps {
		switch {
		case kp.unlisted:
		case kp.lastResort:
			if fresh(kp) {
				lastResort++
			}
		default:
			oneTime++
		}
	}
	for ; oneTime < l.cfg.KeyPackages; oneTime++ {
		if l.newKeyPackage(now, false) != nil {
			return
		}
		changed = true
	}
	if lastResort == 0 {
		// The old last-resort KeyPackage stays until it expires: contacts
		// may still hold the card that carries it.
		if l.newKeyPackage(now, true) != nil {
			return
		}
		changed = true
	}
	if changed {
		l.kpsDirty = true
		l.sectionChanged()
	}
}

// newKeyPackage makes a KeyPackage; l.mu is held.
func (l *Layer) newKeyPackage(now time.Time, lastResort bool) error {
	b, err := group.NewKeyPackage(l.cs, l.ident, now, l.cfg.KeyPackageLifetime, nil)
	if err != nil {
		l.env.Logger.Error("could not make a KeyPackage", "error", err)
		return err
	}
	raw, err := wire.Marshal(&b.KeyPackage)
	if err != nil {
		return err
	}
	l.kps = append(l.kps, &ownKeyPackage{ref: l.cs.MakeKeyPackageRef(raw), bundle: b, lastResort: lastResort, created: now})
	return nil
}

// dropKeyPackage deletes a KeyPackage's private keys; l.mu is held.
func (l *Layer) dropKeyPackage(kp *ownKeyPackage) {
	kp.bundle.Destroy()
	if kp.stored {
		l.deadKPs = append(l.deadKPs, kp.ref)
	}
	l.kpsDirty = true
}

// sectionChanged rebuilds the card and tells the host; l.mu is held.
func (l *Layer) sectionChanged() {
	if err := l.rebuildCard(); err != nil {
		l.env.Logger.Error("could not rebuild the card section", "error", err)
		return
	}
	l.events = append(l.events, &commonv1.Event{Kind: &commonv1.Event_SectionChanged{SectionChanged: &commonv1.SectionChanged{}}})
}

// rebuildCard encodes the card section from the KeyPackages; l.mu is held.
func (l *Layer) rebuildCard() error {
	card := Card{Suite: l.cs.ID(), SignatureKey: l.ident.SignaturePub}
	var last *ownKeyPackage
	for _, kp := range l.kps {
		if kp.unlisted {
			continue
		}
		if kp.lastResort {
			if last == nil || kp.created.After(last.created) {
				last = kp
			}
			continue
		}
		card.OneTime = append(card.OneTime, kp.bundle.KeyPackage)
	}
	if last == nil {
		return errors.New("no last-resort KeyPackage")
	}
	card.LastResort = last.bundle.KeyPackage
	b, err := card.Marshal()
	if err != nil {
		return err
	}
	l.card = b
	return nil
}

// keyPackageFor finds the KeyPackage a Welcome names for this node,
// among the current ones and those retired within the settling window;
// l.mu is held.
func (l *Layer) keyPackageFor(w *wire.Welcome) *ownKeyPackage {
	for _, s := range w.Secrets {
		for _, list := range [][]*ownKeyPackage{l.kps, l.retired} {
			for _, kp := range list {
				if string(kp.ref) == string(s.NewMember) {
					return kp
				}
			}
		}
	}
	return nil
}

// usedKeyPackage retires a one-time KeyPackage once a Welcome for it
// joined, and replaces it; l.mu is held. Its private keys stay in memory
// (not on disk) for the settling window: a competing Commit may have
// added this node with the same KeyPackage, and its Welcome must still
// open if that Commit wins.
func (l *Layer) usedKeyPackage(kp *ownKeyPackage) {
	l.c.KeyPackagesUsed.Inc()
	if kp.lastResort || !slices.Contains(l.kps, kp) {
		return
	}
	if kp.unlisted {
		l.kps = slices.DeleteFunc(l.kps, func(k *ownKeyPackage) bool { return k == kp })
		l.dropKeyPackage(kp)
		return
	}
	l.kps = slices.DeleteFunc(l.kps, func(k *ownKeyPackage) bool { return k == kp })
	if kp.stored {
		l.deadKPs = append(l.deadKPs, kp.ref)
	}
	l.kpsDirty = true
	kp.retiredAt = l.now()
	l.retired = append(l.retired, kp)
	l.refreshKeyPackages(l.now())
}

// expireRetired zeroes the retired KeyPackages past the settling window;
// l.mu is held.
func (l *Layer) expireRetired(now time.Time) {
	l.retired = slices.DeleteFunc(l.retired, func(kp *ownKeyPackage) bool {
		if now.Sub(kp.retiredAt) < l.cfg.SettleWindow {
			return false
		}
		kp.bundle.Destroy()
		return true
	})
}

func wireMarshalKP(kp *ownKeyPackage) ([]byte, error) { return wire.Marshal(&kp.bundle.KeyPackage) }

// maxUnlisted bounds the KeyPackages made for offers (the oldest goes).
const maxUnlisted = 32

// offerKeyPackage answers a Welcome that named a KeyPackage this node no
// longer has (another contact used the same one from the card): it sends
// the sender of the Welcome a fresh KeyPackage, made for it alone, so that
// the committer adds this node again with it (commit.go); l.mu is held.
func (l *Layer) offerKeyPackage(gid, peer []byte) {
	if len(gid) == 0 || len(peer) != identitySize || bytes.Equal(peer, l.self) {
		return
	}
	if c := l.convs[string(gid)]; c != nil && c.live() {
		return
	}
	key := string(gid) + string(peer)
	now := l.now()
	if t, ok := l.offered[key]; ok && now.Sub(t) < l.cfg.RetransmitInitial {
		return
	}
	l.offered[key] = now
	var unlisted []*ownKeyPackage
	for _, kp := range l.kps {
		if kp.unlisted {
			unlisted = append(unlisted, kp)
		}
	}
	if len(unlisted) >= maxUnlisted {
		old := unlisted[0]
		l.kps = slices.DeleteFunc(l.kps, func(k *ownKeyPackage) bool { return k == old })
		l.dropKeyPackage(old)
	}
	if l.newKeyPackage(now, false) != nil {
		return
	}
	kp := l.kps[len(l.kps)-1]
	kp.unlisted = true
	l.kpsDirty = true
	raw, err := wire.Marshal(&wire.MLSMessage{Version: 1, WireFormat: wire.WireFormatKeyPackage, KeyPackage: &kp.bundle.KeyPackage})
	if err != nil {
		return
	}
	payload, err := (&envelope{kind: kindKeyPackage, groupID: gid, raw: raw}).marshal()
	if err != nil {
		return
	}
	l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(gid), Peer: bytes.Clone(peer), Payload: payload})
	l.c.KeyPackagesOffered.Inc()
}
