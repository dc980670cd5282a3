package doubleratchet

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
	"google.golang.org/protobuf/proto"
)

// load reads the identity, prekeys, contacts and sessions, creating the
// identity and the first prekeys on first use; l.mu is held. With an
// at-rest key it first seals the secrets stored in plain (written before a
// passphrase was set), and it re-signs prekeys stored by bundle version 1.
// It ends with a checkpoint, so that whatever a crash left in the
// write-ahead log, or the sealing replaced, is gone from the files.
func (l *Layer) load(ctx context.Context) error {
	err := sqlstore.Tx(ctx, l.db, func(tx *sql.Tx) error {
		if _, err := sealPlainRows(ctx, tx, l.key); err != nil {
			return err
		}
		id, err := loadIdentity(ctx, tx, l.key)
		if err != nil {
			return err
		}
		if id == nil {
			if id, err = x3dh.NewIdentity(rand.Reader); err != nil {
				return fmt.Errorf("new identity: %w", err)
			}
			if err := saveIdentity(ctx, tx, l.key, id, l.now()); err != nil {
				id.Zero()
				return err
			}
		}
		l.id = id
		if err := resignPreKeys(ctx, tx, id); err != nil {
			return err
		}
		if l.spk, l.spkMade, err = latestSignedPreKey(ctx, tx, l.key); err != nil {
			return err
		}
		if l.kem, l.kemMade, err = latestLastResortKEM(ctx, tx, l.key); err != nil {
			return err
		}
		return l.maintainTx(ctx, tx)
	})
	if err != nil {
		return err
	}
	if err := l.forget(ctx); err != nil {
		return err
	}
	stored, err := loadContacts(ctx, l.db)
	if err != nil {
		return err
	}
	for _, sc := range stored {
		c := &contact{identity: sc.identity, pinnedRaw: sc.bundle}
		if c.pinned, err = x3dh.ParseBundle(sc.bundle); errors.Is(err, x3dh.ErrVersion) {
			// Pinned under bundle version 1: its sessions go on, but no new
			// one starts until the contact's next card (AddContact).
			c.pinned = nil
			l.env.Logger.Warn("a contact's stored bundle is of an old version; existing sessions continue, new ones wait for its upgraded card",
				"contact", short(sc.identity), "error", err)
		} else if err != nil {
			return fmt.Errorf("stored contact %x: %w", sc.identity[:4], err)
		}
		if len(sc.fresh) > 0 {
			if c.fresh, err = x3dh.ParseBundle(sc.fresh); err == nil && c.fresh.SameIdentity(c.pinned) {
				c.freshRaw = sc.fresh
			} else {
				c.fresh = nil
			}
		}
		l.contacts[string(sc.identity)] = c
	}
	sessions, err := loadSessions(ctx, l.db)
	if err != nil {
		return err
	}
	for _, row := range sessions {
		c := l.contacts[string(row.contact)]
		if c == nil {
			continue // the contact row is always written first
		}
		raw, err := openSecret(l.key, purposeSession(row.id), row.state)
		clear(row.state)
		if err != nil {
			return fmt.Errorf("stored session %d: %w", row.id, err)
		}
		st, err := ratchet.Unmarshal(raw, l.cfg.limits)
		clear(raw)
		if err != nil {
			return fmt.Errorf("stored session %d: %w", row.id, err)
		}
		s := &session{id: row.id, contact: c, initiator: row.initiator, baseKey: row.baseKey, ad: row.ad, state: st, rank: row.rank, created: row.created}
		if len(row.header) > 0 {
			s.header = &wirepb.PreKeyMessage{}
			if err := proto.Unmarshal(row.header, s.header); err != nil {
				return fmt.Errorf("stored session %d: header: %w", row.id, err)
			}
		}
		c.sessions = append(c.sessions, s)
		l.nextSession = max(l.nextSession, row.id)
		l.nextRank = max(l.nextRank, row.rank)
	}
	if err := l.loadChains(ctx); err != nil {
		return err
	}
	l.levels()
	return nil
}

// maintain runs maintainTx in a transaction of its own, and checkpoints
// what it retired and expired out of the files; l.mu is held.
func (l *Layer) maintain(ctx context.Context) error {
	err := sqlstore.Tx(ctx, l.db, func(tx *sql.Tx) error {
		if err := l.maintainTx(ctx, tx); err != nil {
			return err
		}
		now := l.now()
		for _, c := range l.contacts {
			for _, s := range c.sessions {
				before := s.state.Skipped()
				s.state.Expire(now)
				if s.state.Skipped() != before {
					if err := l.saveSession(ctx, tx, s); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.levels()
	return l.forget(ctx)
}

// maintainTx replaces the signed prekey and the last-resort ML-KEM prekey
// when they are older than signed_prekey_rotation, deletes replaced ones
// past signed_prekey_retention, and refills the one-time pools; l.mu is
// held. It rebuilds the card section.
func (l *Layer) maintainTx(ctx context.Context, tx *sql.Tx) error {
	now := l.now()
	if l.spk == nil || now.Sub(l.spkMade) >= l.cfg.SignedPreKeyRotation {
		id, err := nextID(ctx, tx, "spk")
		if err != nil {
			return err
		}
		spk, err := l.id.NewSignedPreKey(rand.Reader, id)
		if err != nil {
			return fmt.Errorf("new signed prekey: %w", err)
		}
		if err := insertSignedPreKey(ctx, tx, l.key, spk, now); err != nil {
			spk.Zero()
			return err
		}
		if l.spk != nil {
			l.spk.Zero()
		}
		l.spk, l.spkMade = spk, now
	}
	if err := retireSignedPreKeys(ctx, tx, l.spk.ID, now.Add(-l.cfg.SignedPreKeyRetention)); err != nil {
		return err
	}
	if l.cfg.PostQuantum {
		if l.kem == nil || now.Sub(l.kemMade) >= l.cfg.SignedPreKeyRotation {
			id, err := nextID(ctx, tx, "kem")
			if err != nil {
				return err
			}
			k, err := l.id.NewKEMPreKey(rand.Reader, id)
			if err != nil {
				return fmt.Errorf("new KEM prekey: %w", err)
			}
			if err := insertKEMPreKey(ctx, tx, l.key, k, true, now); err != nil {
				k.Zero()
				return err
			}
			if l.kem != nil {
				l.kem.Zero()
			}
			l.kem, l.kemMade = k, now
		}
		if err := retireLastResortKEMs(ctx, tx, l.kem.ID, now.Add(-l.cfg.SignedPreKeyRetention)); err != nil {
			return err
		}
	} else if l.kem != nil {
		l.kem.Zero()
		l.kem = nil
	}
	if err := l.refill(ctx, tx); err != nil {
		return err
	}
	return l.buildCard()
}

// refill tops the one-time pools up to their configured sizes once half of
// a pool has been handed out.
func (l *Layer) refill(ctx context.Context, tx *sql.Tx) error {
	n, err := unreserved(ctx, tx, "one_time_prekeys")
	if err != nil {
		return err
	}
	if n <= l.cfg.OneTimePreKeys/2 {
		for ; n < l.cfg.OneTimePreKeys; n++ {
			id, err := nextID(ctx, tx, "opk")
			if err != nil {
				return err
			}
			k, err := x3dh.NewOneTimePreKey(rand.Reader, id)
			if err != nil {
				return fmt.Errorf("new one-time prekey: %w", err)
			}
			err = insertOneTimePreKey(ctx, tx, l.key, k)
			k.Zero()
			if err != nil {
				return err
			}
		}
	}
	l.c.set(cOneTime, uint64(n))
	if !l.cfg.PostQuantum {
		return nil
	}
	n, err = unreserved(ctx, tx, "kem_prekeys")
	if err != nil {
		return err
	}
	if n <= l.cfg.OneTimeKEMPreKeys/2 {
		for ; n < l.cfg.OneTimeKEMPreKeys; n++ {
			id, err := nextID(ctx, tx, "kem")
			if err != nil {
				return err
			}
			k, err := l.id.NewKEMPreKey(rand.Reader, id)
			if err != nil {
				return fmt.Errorf("new one-time KEM prekey: %w", err)
			}
			err = insertKEMPreKey(ctx, tx, l.key, k, false, l.now())
			k.Zero()
			if err != nil {
				return err
			}
		}
	}
	l.c.set(cOneTimeKEM, uint64(n))
	return nil
}

// publicBundle is the node's bundle with the given one-time keys, signed.
// Its issue time is when its newest prekey was made (the signed prekey or
// the last-resort ML-KEM prekey), so that it changes only when a prekey
// rotates, and a bundle with newer prekeys is never older.
func (l *Layer) publicBundle(opks, kems []x3dh.PublicPreKey) *x3dh.Bundle {
	issued := l.spkMade
	if l.kem != nil && l.kemMade.After(issued) {
		issued = l.kemMade
	}
	b := l.id.Bundle(l.spk, l.kem, nil, nil, issued)
	if len(opks)+len(kems) > 0 {
		b.OneTimePreKeys = opks
		b.OneTimeKEMPreKeys = kems
		l.id.SignBundle(b) // the bundle signature covers them too
	}
	return b
}

// buildCard remakes the card section: the bundle without one-time keys.
func (l *Layer) buildCard() error {
	raw, err := l.publicBundle(nil, nil).Marshal()
	if err != nil {
		return fmt.Errorf("card bundle: %w", err)
	}
	l.card = raw
	return nil
}

// levels refreshes the level counters; l.mu is held.
func (l *Layer) levels() {
	sessions := 0
	for _, c := range l.contacts {
		sessions += len(c.sessions)
	}
	l.c.set(cContacts, uint64(len(l.contacts)))
	l.c.set(cSessions, uint64(sessions))
	l.c.set(cConversations, uint64(len(l.conversations)))
}
