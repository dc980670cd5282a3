package bsp

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// DBName is the store's file inside the layer's data directory.
const DBName = "bsp.db"

// migrations take the database from user_version i to i+1. Released
// entries are never edited; a schema change is a new entry.
var migrations = []string{
	// Version 1.
	//
	// groups: each group's members, 32-byte identity keys concatenated.
	// messages: every message this node holds or held, with its BSP
	// state (state.go); body is NULL once it is compacted (a tombstone
	// that keeps the id, so that a replay is recognised). deliver_seq is
	// the order of delivery up (0: not delivered up), host_acked whether
	// the host's Ack came.
	// statuses: Briar's per-message, per-member state (§2.6): an ACK owed
	// to the member, whether it has the message (seen), whether it asked
	// for it (requested), the next time it may be (re)sent (expiry, ms),
	// the transmissions so far and the latency of the last one (ms).
	// offered: ids a member offered that this node lacks, to be requested.
	`CREATE TABLE meta (
		key   TEXT    NOT NULL PRIMARY KEY,
		value INTEGER NOT NULL
	) STRICT;
	CREATE TABLE groups (
		id      BLOB NOT NULL PRIMARY KEY,
		members BLOB NOT NULL
	) STRICT;
	CREATE TABLE messages (
		group_id    BLOB    NOT NULL,
		id          BLOB    NOT NULL,
		timestamp   INTEGER NOT NULL,
		body        BLOB,
		state       INTEGER NOT NULL,
		own         INTEGER NOT NULL,
		sender      BLOB    NOT NULL,
		trace       INTEGER NOT NULL,
		received_ms INTEGER NOT NULL,
		deliver_seq INTEGER NOT NULL,
		host_acked  INTEGER NOT NULL,
		PRIMARY KEY (group_id, id)
	) STRICT;
	CREATE TABLE statuses (
		group_id    BLOB    NOT NULL,
		peer        BLOB    NOT NULL,
		id          BLOB    NOT NULL,
		ack         INTEGER NOT NULL,
		seen        INTEGER NOT NULL,
		requested   INTEGER NOT NULL,
		expiry      INTEGER NOT NULL,
		tx          INTEGER NOT NULL,
		max_latency INTEGER NOT NULL,
		PRIMARY KEY (group_id, peer, id)
	) STRICT, WITHOUT ROWID;
	CREATE TABLE offered (
		group_id BLOB NOT NULL,
		peer     BLOB NOT NULL,
		id       BLOB NOT NULL,
		PRIMARY KEY (group_id, peer, id)
	) STRICT, WITHOUT ROWID;`,

	// Version 2: the validator hook (sync.v1 AckRequest.deferred).
	//
	// messages.waits: the dependencies the host named for a delivered
	// message it deferred, ids concatenated (NULL: none). A pending
	// message waits for its parents and for these.
	`ALTER TABLE messages ADD COLUMN waits BLOB;`,
}

// Meta keys.
const metaTimestamp = "timestamp" // the last timestamp of an own message

// store is the layer's durable state. The node keeps the working state in
// memory and writes what changed in one transaction per commit (node.sync).
type store struct {
	db *sql.DB
}

// openStore opens (creating it if need be) the database in dir.
func openStore(ctx context.Context, dir, durability string) (*store, error) {
	sync := "FULL"
	if durability == DurabilityNormal {
		sync = "NORMAL"
	}
	db, err := sqlstore.Open(ctx, filepath.Join(dir, DBName), migrations, sqlstore.Options{Synchronous: sync})
	if err != nil {
		return nil, fmt.Errorf("bsp: %w", err)
	}
	db.SetMaxOpenConns(1)
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// Rows as written. A nil pointer field in a change deletes the row.
type (
	groupRow struct {
		id      []byte
		members []byte
	}
	messageRow struct {
		group      []byte
		id         wire.ID
		timestamp  uint64
		body       []byte // nil: compacted
		state      msgState
		own        bool
		sender     []byte
		trace      uint64
		receivedMS int64
		deliverSeq int64
		hostAcked  bool
		waits      []byte // the host's deferral dependencies, concatenated
		del        bool
	}
	statusRow struct {
		group, peer []byte
		id          wire.ID
		del         bool
		st          status
	}
	offeredRow struct {
		group, peer []byte
		id          wire.ID
		del         bool
	}
)

// changes is what one commit writes.
type changes struct {
	groups   []groupRow
	messages []messageRow
	statuses []statusRow
	offered  []offeredRow
	meta     map[string]int64
}

func (c *changes) empty() bool {
	return len(c.groups) == 0 && len(c.messages) == 0 && len(c.statuses) == 0 && len(c.offered) == 0 && len(c.meta) == 0
}

// write commits c in one transaction.
func (s *store) write(ctx context.Context, c *changes) error {
	return sqlstore.Tx(ctx, s.db, func(tx *sql.Tx) error {
		for _, g := range c.groups {
			if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO groups (id, members) VALUES (?, ?)", g.id, g.members); err != nil {
				return fmt.Errorf("bsp: write group: %w", err)
			}
		}
		for _, m := range c.messages {
			if m.del {
				if _, err := tx.ExecContext(ctx, "DELETE FROM messages WHERE group_id = ? AND id = ?", m.group, m.id[:]); err != nil {
					return fmt.Errorf("bsp: delete message: %w", err)
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO messages
				(group_id, id, timestamp, body, state, own, sender, trace, received_ms, deliver_seq, host_acked, waits)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				m.group, m.id[:], int64(m.timestamp), m.body, int(m.state), m.own, m.sender, int64(m.trace), m.receivedMS, m.deliverSeq, m.hostAcked, m.waits); err != nil {
				return fmt.Errorf("bsp: write message: %w", err)
			}
		}
		for _, r := range c.statuses {
			var err error
			if r.del {
				_, err = tx.ExecContext(ctx, "DELETE FROM statuses WHERE group_id = ? AND peer = ? AND id = ?", r.group, r.peer, r.id[:])
			} else {
				_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO statuses
					(group_id, peer, id, ack, seen, requested, expiry, tx, max_latency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					r.group, r.peer, r.id[:], r.st.ack, r.st.seen, r.st.requested, r.st.expiry, int64(r.st.tx), r.st.maxLatency)
			}
			if err != nil {
				return fmt.Errorf("bsp: write status: %w", err)
			}
		}
		for _, r := range c.offered {
			var err error
			if r.del {
				_, err = tx.ExecContext(ctx, "DELETE FROM offered WHERE group_id = ? AND peer = ? AND id = ?", r.group, r.peer, r.id[:])
			} else {
				_, err = tx.ExecContext(ctx, "INSERT OR IGNORE INTO offered (group_id, peer, id) VALUES (?, ?, ?)", r.group, r.peer, r.id[:])
			}
			if err != nil {
				return fmt.Errorf("bsp: write offer: %w", err)
			}
		}
		for k, v := range c.meta {
			if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", k, v); err != nil {
				return fmt.Errorf("bsp: write meta: %w", err)
			}
		}
		return nil
	})
}

// loaded is the whole store, read at open.
type loaded struct {
	groups   []groupRow
	messages []messageRow
	statuses []statusRow
	offered  []offeredRow
	meta     map[string]int64
}

// load reads the whole store.
func (s *store) load(ctx context.Context) (*loaded, error) {
	l := &loaded{meta: map[string]int64{}}
	rows, err := s.db.QueryContext(ctx, "SELECT key, value FROM meta")
	if err != nil {
		return nil, fmt.Errorf("bsp: load: %w", err)
	}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bsp: load meta: %w", err)
		}
		l.meta[k] = v
	}
	rows.Close()
	if rows, err = s.db.QueryContext(ctx, "SELECT id, members FROM groups"); err != nil {
		return nil, fmt.Errorf("bsp: load: %w", err)
	}
	for rows.Next() {
		var g groupRow
		if err := rows.Scan(&g.id, &g.members); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bsp: load groups: %w", err)
		}
		l.groups = append(l.groups, g)
	}
	rows.Close()
	if rows, err = s.db.QueryContext(ctx, `SELECT group_id, id, timestamp, body, state, own, sender, trace, received_ms, deliver_seq, host_acked, waits
		FROM messages ORDER BY timestamp, id`); err != nil {
		return nil, fmt.Errorf("bsp: load: %w", err)
	}
	for rows.Next() {
		var m messageRow
		var id []byte
		var ts, trace int64
		var state int
		if err := rows.Scan(&m.group, &id, &ts, &m.body, &state, &m.own, &m.sender, &trace, &m.receivedMS, &m.deliverSeq, &m.hostAcked, &m.waits); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bsp: load messages: %w", err)
		}
		if len(id) != wire.IDLen {
			rows.Close()
			return nil, fmt.Errorf("bsp: load messages: id of %d bytes", len(id))
		}
		m.id, m.timestamp, m.trace, m.state = wire.ID(id), uint64(ts), uint64(trace), msgState(state)
		l.messages = append(l.messages, m)
	}
	rows.Close()
	if rows, err = s.db.QueryContext(ctx, "SELECT group_id, peer, id, ack, seen, requested, expiry, tx, max_latency FROM statuses"); err != nil {
		return nil, fmt.Errorf("bsp: load: %w", err)
	}
	for rows.Next() {
		var r statusRow
		var id []byte
		var tx int64
		if err := rows.Scan(&r.group, &r.peer, &id, &r.st.ack, &r.st.seen, &r.st.requested, &r.st.expiry, &tx, &r.st.maxLatency); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bsp: load statuses: %w", err)
		}
		if len(id) != wire.IDLen {
			rows.Close()
			return nil, fmt.Errorf("bsp: load statuses: id of %d bytes", len(id))
		}
		r.id, r.st.tx = wire.ID(id), uint32(tx)
		l.statuses = append(l.statuses, r)
	}
	rows.Close()
	if rows, err = s.db.QueryContext(ctx, "SELECT group_id, peer, id FROM offered"); err != nil {
		return nil, fmt.Errorf("bsp: load: %w", err)
	}
	for rows.Next() {
		var r offeredRow
		var id []byte
		if err := rows.Scan(&r.group, &r.peer, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("bsp: load offers: %w", err)
		}
		if len(id) != wire.IDLen {
			rows.Close()
			return nil, fmt.Errorf("bsp: load offers: id of %d bytes", len(id))
		}
		r.id = wire.ID(id)
		l.offered = append(l.offered, r)
	}
	rows.Close()
	return l, rows.Err()
}
