package layer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// conv is one conversation: the members the host wants and, once it
// exists here, the MLS group.
type conv struct {
	id      []byte
	desired [][]byte // sorted; nil when the host never set the members
	g       *group.Group
	branch  []byte // hash of the Commit that led to g's epoch; empty for epoch 0
	removed bool   // a Commit removed this node
	// since is when the layer last saw the group change epoch or the host
	// change the members: the takeover clock (commit.go).
	since time.Time
	// snaps are the states from before each Commit applied within the
	// settling window, oldest first (memory only: they hold superseded
	// secrets); branches are losing branches kept readable.
	snaps    []*snapshot
	branches []*sideBranch
	// held are DOWN frames waiting for the group; early are UP frames for
	// an epoch not reached yet.
	held  []*commonv1.Frame
	early []heldUp
	// undecided are application messages no branch opened (dropped and
	// counted), tried again when a fork brings a new branch.
	undecided []heldUp
	// createdHere is set when this node created the group and no other
	// member has shown it is in it yet (memory only).
	createdHere bool
	// committer is the member whose Commit (or Welcome) entered the
	// current epoch, where this node's status goes in a large group
	// (fork.go); nil when unknown (epoch 0, or after a restart: memory
	// only).
	committer []byte
	// history is, for the last epochs, the hash of the Commit that
	// entered each (oldest first; the last is branch's).
	history []pathEntry
	// outbox are this node's Commits still being retransmitted.
	outbox []*outgoing
	// offers are KeyPackages members sent to be added again with, by
	// identity (memory only: a member asks again).
	offers map[string]wire.KeyPackage
	// waitingKP are the members to add that have no usable KeyPackage.
	waitingKP map[string]bool
	// statusTo rate-limits status replies per member.
	statusTo map[string]time.Time
	// unresolved remembers forks already counted as unresolved, by epoch
	// and member.
	unresolved map[string]bool
	// leafAt is when this node's own leaf last changed (stored); leaves
	// is, for every member, its leaf's encryption key and when this node
	// first saw it (memory only: update.go).
	leafAt time.Time
	leaves map[string]leafSeen
	// memo caches members() for one group and epoch.
	memo memberMemo
	// gen counts changes of desired and offers; synced is the group,
	// epoch and gen in which reconcile last found nothing to change, so
	// that a tick does not look again (commit.go).
	gen    uint64
	synced syncKey
	// needed is set on a conversation of two whose group does not exist
	// here yet once the group is wanted: this node has a frame for it, or
	// (on the lowest member) the other member asked for it (stored). A
	// two-member group is created only then (lazy.go).
	needed bool
	// ready are the members of a conversation of three or more that asked
	// for its group: their hosts know it (lazy.go; memory only).
	ready map[string]bool
	// askAt is when the higher member of such a conversation next asks
	// the lowest for the group, askWait the wait after that and asks how
	// many times it asked since it last had a frame for it (memory only:
	// after a restart it asks again at once).
	askAt   time.Time
	askWait time.Duration
	asks    int
}

// syncKey is what reconcile's answer depends on besides the clock.
type syncKey struct {
	g     *group.Group
	epoch uint64
	gen   uint64
}

// memberMemo is the members of group g in epoch.
type memberMemo struct {
	g      *group.Group
	epoch  uint64
	byID   map[string]treemath.Leaf
	sorted [][]byte
}

// heldUp is an UP frame kept until its group or epoch is there.
type heldUp struct {
	f  *commonv1.Frame
	at time.Time
}

func newConv(id []byte) *conv {
	return &conv{id: bytes.Clone(id), statusTo: map[string]time.Time{}, unresolved: map[string]bool{}, offers: map[string]wire.KeyPackage{}, waitingKP: map[string]bool{}, leaves: map[string]leafSeen{}}
}

// destroy zeroes the conversation's secrets.
func (c *conv) destroy() {
	if c.g != nil {
		c.g.Destroy()
	}
	for _, s := range c.snaps {
		s.destroy()
	}
	c.snaps = nil
	for _, b := range c.branches {
		b.g.Destroy()
	}
	c.branches = nil
}

// enter records that the group entered epoch by the Commit of hash h.
func (c *conv) enter(epoch uint64, h []byte, at time.Time) {
	c.branch = bytes.Clone(h)
	c.history = slices.DeleteFunc(c.history, func(p pathEntry) bool { return p.epoch >= epoch })
	c.history = append(c.history, pathEntry{epoch: epoch, hash: bytes.Clone(h), at: at})
	if len(c.history) > maxPath {
		c.history = c.history[len(c.history)-maxPath:]
	}
}

// live reports whether the group is there and this node in it.
func (c *conv) live() bool { return c.g != nil && !c.removed && !c.g.Removed() }

// members returns the group's members: identity → leaf. The map is kept
// until the group or its epoch changes, and must not be modified: status
// messages, ticks and commit decisions ask for it many times per epoch,
// and building it is O(n).
func (c *conv) members() map[string]treemath.Leaf {
	if c.g == nil {
		return map[string]treemath.Leaf{}
	}
	if c.memo.g == c.g && c.memo.epoch == c.g.Epoch() && c.memo.byID != nil {
		return c.memo.byID
	}
	m := map[string]treemath.Leaf{}
	for l, leaf := range c.g.Members() {
		m[string(leaf.Credential.Identity)] = l
	}
	list := make([][]byte, 0, len(m))
	for id := range m {
		list = append(list, []byte(id))
	}
	slices.SortFunc(list, bytes.Compare)
	c.memo = memberMemo{g: c.g, epoch: c.g.Epoch(), byID: m, sorted: list}
	return m
}

// memberList returns the group's members' identities, sorted (a fresh
// slice; the identities are shared).
func (c *conv) memberList() [][]byte {
	if c.g == nil {
		return nil
	}
	c.members()
	return slices.Clone(c.memo.sorted)
}

// wants reports whether the host lists id among the members (desired is
// sorted).
func (c *conv) wants(id []byte) bool {
	_, ok := slices.BinarySearchFunc(c.desired, id, bytes.Compare)
	return ok
}

// loadGroups reads every conversation; l.mu is held.
func (l *Layer) loadGroups(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT id, desired, state, branch, removed, history, leaf_unix, needed FROM groups`)
	if err != nil {
		return fmt.Errorf("load groups: %w", err)
	}
	defer rows.Close()
	now := l.now()
	for rows.Next() {
		var id, desired, state, branch, history []byte
		var removed, needed int
		var leafUnix int64
		if err := rows.Scan(&id, &desired, &state, &branch, &removed, &history, &leafUnix, &needed); err != nil {
			return fmt.Errorf("load groups: %w", err)
		}
		c := newConv(id)
		c.branch, c.removed, c.since, c.needed = branch, removed != 0, now, needed != 0
		if c.history, err = decodeHistory(history, now); err != nil {
			return fmt.Errorf("group %x: %w", id, err)
		}
		if desired != nil {
			if c.desired, err = splitIDs(desired); err != nil {
				return fmt.Errorf("group %x: %w", id, err)
			}
			if c.desired == nil {
				c.desired = [][]byte{}
			}
			slices.SortFunc(c.desired, bytes.Compare) // stored sorted; wants relies on it
		}
		if state != nil {
			raw, err := unseal(l.key, purposeGroup(id), state)
			if err != nil {
				return fmt.Errorf("group %x: %w", id, err)
			}
			if c.g, err = group.Restore(l.groupConfig(), raw); err != nil {
				return fmt.Errorf("group %x: %w", id, err)
			}
			clear(raw)
			c.leafAt = now
			if leafUnix > 0 {
				c.leafAt = time.Unix(leafUnix, 0)
			}
			l.seeLeaves(c, now)
		}
		l.convs[string(id)] = c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return l.loadOutbox(ctx)
}

// groupRow is a groups row and its outbox rows, encoded.
type groupRow struct {
	id, desired, state, branch, history []byte
	removed, needed                     int
	leafUnix                            int64
	outbox                              []outboxRow
}

// outboxRow is an outbox row, encoded.
type outboxRow struct {
	epoch                                   int64
	hash, commit, welcome, joiners, members []byte
}

// kpRow is a keypackages row, encoded (the bundle sealed).
type kpRow struct {
	ref, blob []byte
	kind      int
	created   int64
}

// writeSet is what one operation (a batch, a control call, a tick)
// changed, encoded, and what it sends once that is committed.
type writeSet struct {
	groups   []groupRow
	deadKPs  [][]byte
	kps      []kpRow
	usedNew  [][]byte
	contacts [][2][]byte // identity, section
	out      []*commonv1.Frame
	events   []*commonv1.Event
}

// changes reports whether w writes anything.
func (w *writeSet) changes() bool {
	return len(w.groups) > 0 || len(w.deadKPs) > 0 || len(w.kps) > 0 || len(w.usedNew) > 0 || len(w.contacts) > 0
}

// collect encodes the operation's changes and takes its frames and
// events; l.mu is held.
func (l *Layer) collect() (*writeSet, error) {
	w := &writeSet{out: l.out, events: l.events, contacts: l.newContacts}
	l.out, l.events, l.newContacts = nil, nil, nil
	defer func() {
		clear(l.dirty)
		l.kpsDirty, l.deadKPs, l.usedNew = false, nil, nil
	}()
	for _, c := range l.dirty {
		var state []byte
		if c.live() {
			raw, err := c.g.State()
			if err != nil {
				return w, fmt.Errorf("group %x: state: %w", c.id, err)
			}
			if state, err = seal(l.key, purposeGroup(c.id), raw); err != nil {
				return w, err
			}
			if l.key != nil {
				clear(raw)
			}
		}
		var desired []byte
		if c.desired != nil {
			desired = joinIDs(c.desired)
			if desired == nil {
				desired = []byte{}
			}
		}
		r := groupRow{id: bytes.Clone(c.id), desired: desired, state: state, branch: bytes.Clone(nonNil(c.branch)), removed: boolInt(c.removed),
			history: encodeHistory(c.history), leafUnix: leafUnix(c.leafAt), needed: boolInt(c.needed && c.g == nil)}
		for _, o := range c.outbox {
			var joiners, pending [][]byte
			for id := range o.joiners {
				joiners = append(joiners, []byte(id))
			}
			for id := range o.pending {
				pending = append(pending, []byte(id))
			}
			r.outbox = append(r.outbox, outboxRow{epoch: int64(o.epoch), hash: o.hash, commit: o.commit, welcome: o.welcome,
				joiners: nonNil(joinIDs(joiners)), members: nonNil(joinIDs(pending))})
		}
		w.groups = append(w.groups, r)
	}
	if l.kpsDirty {
		w.deadKPs = l.deadKPs
		for _, kp := range l.kps {
			if kp.stored {
				continue
			}
			raw, err := wireMarshalKP(kp)
			if err != nil {
				return w, err
			}
			blob, err := seal(l.key, purposeKeyPackage(kp.ref), bundleBytes(raw, kp.bundle.InitPriv, kp.bundle.EncryptionPriv))
			if err != nil {
				return w, err
			}
			kind := boolInt(kp.lastResort)
			if kp.unlisted {
				kind = 2
			}
			w.kps = append(w.kps, kpRow{ref: kp.ref, blob: blob, kind: kind, created: kp.created.Unix()})
			kp.stored = true // in this write; a failed write stops the layer
		}
	}
	w.usedNew = l.usedNew
	return w, nil
}

// writeAll commits a write set in one transaction.
func writeAll(ctx context.Context, db *sql.DB, w *writeSet) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	for _, c := range w.contacts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (identity, section) VALUES (?, ?)
			ON CONFLICT (identity) DO UPDATE SET section = excluded.section`, c[0], c[1]); err != nil {
			return fmt.Errorf("store contact: %w", err)
		}
	}
	for _, r := range w.groups {
		if _, err := tx.ExecContext(ctx, `INSERT INTO groups (id, desired, state, branch, removed, history, leaf_unix, needed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET desired = excluded.desired, state = excluded.state, branch = excluded.branch,
				removed = excluded.removed, history = excluded.history, leaf_unix = excluded.leaf_unix, needed = excluded.needed`,
			r.id, r.desired, r.state, r.branch, r.removed, r.history, r.leafUnix, r.needed); err != nil {
			return fmt.Errorf("store group: %w", err)
		}
		if err := writeOutbox(ctx, tx, r.id, r.outbox); err != nil {
			return err
		}
	}
	for _, ref := range w.deadKPs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM keypackages WHERE ref = ?`, ref); err != nil {
			return fmt.Errorf("delete KeyPackage: %w", err)
		}
	}
	for _, kp := range w.kps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO keypackages (ref, bundle, last_resort, created_unix) VALUES (?, ?, ?, ?)`,
			kp.ref, kp.blob, kp.kind, kp.created); err != nil {
			return fmt.Errorf("store KeyPackage: %w", err)
		}
	}
	for _, ref := range w.usedNew {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO used_keypackages (ref) VALUES (?)`, ref); err != nil {
			return fmt.Errorf("store used KeyPackage: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// encodeHistory and decodeHistory store a history as PathEntry structs
// (envelope.go); the times are not kept (a restart ends every settling
// window).
func encodeHistory(h []pathEntry) []byte {
	w := codec.NewWriter([]byte{})
	for _, p := range h {
		w.Uint64(p.epoch)
		w.Opaque(p.hash)
	}
	return w.Bytes()
}

func decodeHistory(b []byte, now time.Time) ([]pathEntry, error) {
	var out []pathEntry
	r := codec.NewReader(b)
	for r.Len() > 0 {
		var p pathEntry
		var err error
		if p.epoch, err = r.Uint64(); err != nil {
			return nil, err
		}
		if p.hash, err = r.Opaque(); err != nil {
			return nil, err
		}
		p.at = now.Add(-24 * 365 * time.Hour)
		out = append(out, p)
	}
	return out, nil
}
