package mvds

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-msg/strata/core/sqlstore"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// DBName is the store's file inside the layer's data directory.
const DBName = "mvds.db"

// recordType is the type of a state record, persisted as the vacp2p/mvds
// Go code numbers it.
type recordType int

// The state record types of 2/MVDS. ACK records are never state.
const (
	recOffer   recordType = 0
	recRequest recordType = 1
	recMessage recordType = 2
)

// Meta keys.
const (
	metaEpoch     = "epoch"     // the last epoch a transaction ran in
	metaTimestamp = "timestamp" // the last timestamp of an own message
)

// migrations take the database from user_version i to i+1. Released
// entries are never edited; a schema change is a new entry.
var migrations = []string{
	// Version 1.
	//
	// groups: each group's members, 32-byte identity keys concatenated.
	// messages: every persistent message this node holds, with its body
	// as it travels; own marks messages sent here, delivered those that
	// went up (own ones count as delivered), sender the member it came
	// from (this node for own messages), received_ms when it was stored.
	// states: the 2/MVDS per-peer records (OFFER, REQUEST or MESSAGE for a
	// message and a member) with their send count and next send epoch; at
	// most one record per message and member.
	// ephemeral_seen: ids of ephemeral messages delivered here, until
	// expires_ms, so that a replay is not delivered again.
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
		body        BLOB    NOT NULL,
		own         INTEGER NOT NULL,
		delivered   INTEGER NOT NULL,
		sender      BLOB    NOT NULL,
		received_ms INTEGER NOT NULL,
		PRIMARY KEY (group_id, id)
	) STRICT;
	CREATE INDEX messages_pending ON messages (group_id) WHERE delivered = 0;
	CREATE TABLE states (
		group_id   BLOB    NOT NULL,
		peer       BLOB    NOT NULL,
		id         BLOB    NOT NULL,
		type       INTEGER NOT NULL,
		send_count INTEGER NOT NULL,
		send_epoch INTEGER NOT NULL,
		PRIMARY KEY (group_id, peer, id)
	) STRICT;
	CREATE INDEX states_due ON states (group_id, peer, send_epoch);
	CREATE INDEX states_by_id ON states (group_id, id, type);
	CREATE TABLE ephemeral_seen (
		group_id   BLOB    NOT NULL,
		id         BLOB    NOT NULL,
		expires_ms INTEGER NOT NULL,
		PRIMARY KEY (group_id, id)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX ephemeral_seen_expiry ON ephemeral_seen (expires_ms);`,

	// Version 2: acknowledgements from the host (syncv1 Ack).
	//
	// unacked: the received messages that went up and that the host has
	// not acknowledged, in the order they first went up (seq, which
	// AUTOINCREMENT never reuses), with the trace id of the frame that
	// brought them. A row is added with the delivered mark and deleted by
	// the host's Ack; every Start delivers what it holds again. A
	// database of version 1 starts with none: its deliveries were at most
	// once, and count as acknowledged.
	`CREATE TABLE unacked (
		seq      INTEGER PRIMARY KEY AUTOINCREMENT,
		group_id BLOB    NOT NULL,
		id       BLOB    NOT NULL,
		trace    INTEGER NOT NULL
	) STRICT;
	CREATE UNIQUE INDEX unacked_by_id ON unacked (group_id, id);`,

	// Version 3: the spec's wire (2/MVDS with 4/MVDS-META).
	//
	// messages.format says how body is to be read, and what the id
	// hashed: 0 (every message stored before) a Body, 1 a spec message
	// whose body is the application's payload. A spec message keeps its
	// Metadata as carried (NULL: none) and its author's identity key,
	// which the wire names only when a member relays it; a bound one
	// keeps neither (its Body holds them).
	`ALTER TABLE messages ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE messages ADD COLUMN metadata BLOB;
	ALTER TABLE messages ADD COLUMN author BLOB;`,
}

// The statements of the store, each prepared once at open.
const (
	qMeta                 = "SELECT value FROM meta WHERE key = ?"
	qSetMeta              = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
	qGroups               = "SELECT id, members FROM groups"
	qPutGroup             = "INSERT INTO groups (id, members) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET members = excluded.members"
	qMessage              = "SELECT own, delivered FROM messages WHERE group_id = ? AND id = ?"
	qInsertMessage        = "INSERT INTO messages (group_id, id, timestamp, body, format, metadata, author, own, delivered, sender, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	qMarkDelivered        = "UPDATE messages SET delivered = 1 WHERE group_id = ? AND id = ?"
	qDeleteMessage        = "DELETE FROM messages WHERE group_id = ? AND id = ?"
	qDeleteMessageRecords = "DELETE FROM states WHERE group_id = ? AND id = ? AND type != ?"
	qMessageBody          = "SELECT body, format, metadata, metadata IS NOT NULL, author FROM messages WHERE group_id = ? AND id = ?"
	qPending              = "SELECT group_id, id, timestamp, body, format, metadata, metadata IS NOT NULL, author, sender, received_ms FROM messages WHERE delivered = 0"
	qAddState             = "INSERT INTO states (group_id, peer, id, type, send_count, send_epoch) VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING"
	qAnswerRequest        = `INSERT INTO states (group_id, peer, id, type, send_count, send_epoch) VALUES (?, ?, ?, ?, 0, ?)
		ON CONFLICT (group_id, peer, id) DO UPDATE SET
			type = excluded.type,
			send_count = CASE WHEN type = excluded.type THEN send_count ELSE 0 END,
			send_epoch = MIN(send_epoch, excluded.send_epoch)`
	qClearSent     = "DELETE FROM states WHERE group_id = ? AND peer = ? AND id = ? AND type != ?"
	qRecordedIDs   = "SELECT DISTINCT id FROM states WHERE group_id = ? AND type != ?"
	qClearRequests = "DELETE FROM states WHERE group_id = ? AND id = ? AND type = ? RETURNING peer"
	qRequested     = "SELECT 1 FROM states WHERE group_id = ? AND id = ? AND type = ? LIMIT 1"
	qDue           = `SELECT s.rowid, s.id, s.type, s.send_count, m.timestamp, m.body, m.format, m.metadata, m.metadata IS NOT NULL, m.author
		FROM states s LEFT JOIN messages m ON s.type = ? AND m.group_id = s.group_id AND m.id = s.id
		WHERE s.group_id = ? AND s.peer = ? AND s.send_epoch <= ?
		ORDER BY s.send_epoch, s.rowid LIMIT ?`
	qFresh = `SELECT s.rowid, s.id, s.type, s.send_count, m.timestamp, m.body, m.format, m.metadata, m.metadata IS NOT NULL, m.author
		FROM states s LEFT JOIN messages m ON s.type = ? AND m.group_id = s.group_id AND m.id = s.id
		WHERE s.group_id = ? AND s.peer = ? AND s.send_epoch <= ? AND s.send_count = 0
		ORDER BY s.send_epoch, s.rowid LIMIT ?`
	qUpdateState = "UPDATE states SET send_count = ?, send_epoch = ? WHERE rowid = ?"
	qDeleteState = "DELETE FROM states WHERE rowid = ?"
	qDeletePeer  = "DELETE FROM states WHERE group_id = ? AND peer = ?"
	qResetPeer   = `UPDATE states SET send_epoch = ? WHERE rowid IN (
		SELECT rowid FROM states WHERE group_id = ? AND peer = ? AND send_count > 0 AND send_epoch > ?
		ORDER BY send_epoch LIMIT ?)`
	qClamp         = "UPDATE states SET send_epoch = ? WHERE send_epoch > ?"
	qNextDue       = "SELECT MIN(send_epoch) FROM states WHERE group_id = ? AND peer = ?"
	qRequestCounts = "SELECT group_id, peer, COUNT(*) FROM states WHERE type = ? GROUP BY group_id, peer"
	qCounts        = `SELECT
		(SELECT COUNT(*) FROM messages WHERE group_id = ?1),
		(SELECT COUNT(*) FROM messages WHERE group_id = ?1 AND own = 0 AND delivered = 1),
		(SELECT COUNT(DISTINCT id) FROM states WHERE group_id = ?1 AND type != ?2)`
	qEphemeralSeen  = "SELECT 1 FROM ephemeral_seen WHERE group_id = ? AND id = ?"
	qMarkEphemeral  = "INSERT INTO ephemeral_seen (group_id, id, expires_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
	qPruneEphemeral = "DELETE FROM ephemeral_seen WHERE expires_ms < ?"
	qAddUnacked     = "INSERT INTO unacked (group_id, id, trace) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
	qAck            = "DELETE FROM unacked WHERE group_id = ? AND id = ?"
	qUnackedCount   = "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM unacked"
	qUnacked        = `SELECT u.seq, u.group_id, u.id, u.trace, m.body, m.format, m.metadata, m.metadata IS NOT NULL, m.author
		FROM unacked u JOIN messages m ON m.group_id = u.group_id AND m.id = u.id
		WHERE u.seq > ? AND u.seq <= ? ORDER BY u.seq LIMIT ?`
)

// queries lists every statement to prepare.
var queries = []string{
	qMeta,
	qSetMeta,
	qGroups,
	qPutGroup,
	qMessage,
	qInsertMessage,
	qMarkDelivered,
	qDeleteMessage,
	qDeleteMessageRecords,
	qMessageBody,
	qPending,
	qAddState,
	qAnswerRequest,
	qClearSent,
	qRecordedIDs,
	qClearRequests,
	qRequested,
	qDue,
	qFresh,
	qUpdateState,
	qDeleteState,
	qDeletePeer,
	qResetPeer,
	qClamp,
	qNextDue,
	qRequestCounts,
	qCounts,
	qEphemeralSeen,
	qMarkEphemeral,
	qPruneEphemeral,
	qAddUnacked,
	qAck,
	qUnackedCount,
	qUnacked,
}

// store is the layer's durable state: one SQLite database in WAL mode.
// The node serializes its use, so the pool holds one connection.
type store struct {
	db   *sql.DB
	path string
	// stmts holds every statement the transactions run, prepared once at
	// open on the pool's one connection, so that none is parsed twice.
	stmts map[string]*sql.Stmt
	// full says that commits are fsynced (DurabilityFull); beginLight
	// turns it off for one transaction.
	full bool
	// due bounds the members' due records (dueBounds).
	due *dueBounds
	// recs holds which messages may have a record (recordIDs).
	recs *recordIDs
}

// openStore opens (creating it if need be) the database in dir and brings
// its schema up to date. durability is DurabilityFull or DurabilityNormal.
func openStore(ctx context.Context, dir, durability string) (*store, error) {
	abs, err := filepath.Abs(filepath.Join(dir, DBName))
	if err != nil {
		return nil, fmt.Errorf("mvds: store path: %w", err)
	}
	// The settings every store shares (a private file, WAL, the busy
	// timeout, write locks at BEGIN, statement journals in memory) and
	// the migrations, all pending ones in one transaction.
	sync := "FULL"
	if durability == DurabilityNormal {
		sync = "NORMAL"
	}
	db, err := sqlstore.Open(ctx, abs, migrations, sqlstore.Options{Synchronous: sync})
	if err != nil {
		return nil, fmt.Errorf("mvds: %w", err)
	}
	// One connection: beginLight's PRAGMA applies to the transaction
	// begun next on it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	s := &store{db: db, path: abs, stmts: make(map[string]*sql.Stmt), full: durability != DurabilityNormal, due: newDueBounds(), recs: newRecordIDs()}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("mvds: open store %s: prepare %q: %w", abs, q, err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// close closes the database.
func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("mvds: close store: %w", err)
	}
	return nil
}

// begin starts a transaction. Like the sql.Tx it wraps, a txn is bound to
// the context it began with.
func (s *store) begin(ctx context.Context) (*txn, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("mvds: begin transaction: %w", err)
	}
	return &txn{ctx: ctx, tx: tx, stmts: s.stmts, due: s.due, recs: s.recs}, nil
}

// beginLight starts a transaction whose commit is not fsynced
// (synchronous=NORMAL for it alone; the setting comes back when it ends).
// It is for writes that a crash may lose without harm: the bookkeeping of
// an eager transmission, which at worst makes a record go out again. In WAL
// mode the next fsynced commit syncs the log, these writes included, and a
// crash before it rolls them back whole, never half.
func (s *store) beginLight(ctx context.Context) (*txn, error) {
	if !s.full {
		return s.begin(ctx)
	}
	// One connection: the pragma applies to the transaction begun next.
	if _, err := s.db.ExecContext(ctx, "PRAGMA synchronous(NORMAL)"); err != nil {
		return nil, fmt.Errorf("mvds: begin transaction: %w", err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		s.restoreSync(ctx)
		return nil, err
	}
	tx.after = func() { s.restoreSync(tx.ctx) }
	return tx, nil
}

// restoreSync sets synchronous back to FULL after a light transaction.
// Should it fail, the connection is closed, so that the next one opens
// with the data source name's FULL.
func (s *store) restoreSync(ctx context.Context) {
	if _, err := s.db.ExecContext(ctx, "PRAGMA synchronous(FULL)"); err != nil {
		s.db.SetMaxIdleConns(0) // the connection is not reused...
		s.db.SetMaxIdleConns(1) // ...and the pool keeps one from now on
	}
}

// txn is one transaction of the store. Its methods wrap every error with
// what they were doing.
type txn struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// after, if set, runs once the transaction has ended.
	after func()
	// due is told of every send epoch the transaction writes.
	due *dueBounds
	// recs is told of every record the transaction writes.
	recs *recordIDs
	// bound holds the statements bound to tx so far: binding one
	// (Tx.StmtContext) costs a handful of allocations and locks, and a
	// transaction runs the same few statements for every message.
	bound map[string]*sql.Stmt
}

// stmt returns the prepared form of query for this transaction.
func (t *txn) stmt(query string) *sql.Stmt {
	if st := t.bound[query]; st != nil {
		return st
	}
	st := t.stmts[query]
	if st == nil {
		return nil
	}
	if t.bound == nil {
		t.bound = make(map[string]*sql.Stmt, 8)
	}
	b := t.tx.StmtContext(t.ctx, st)
	t.bound[query] = b
	return b
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

func (t *txn) row(query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

func (t *txn) commit() error {
	err := t.tx.Commit()
	t.ended()
	if err != nil {
		return fmt.Errorf("mvds: commit: %w", err)
	}
	return nil
}

// rollback ends a transaction that wrote nothing or failed; after a
// commit it does nothing.
func (t *txn) rollback() {
	if err := t.tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
		t.ended()
	}
}

// ended runs after once.
func (t *txn) ended() {
	if f := t.after; f != nil {
		t.after = nil
		f()
	}
}

func (t *txn) exec(what, query string, args ...any) (sql.Result, error) {
	var r sql.Result
	var err error
	if st := t.stmt(query); st != nil {
		r, err = st.ExecContext(t.ctx, args...)
	} else {
		r, err = t.tx.ExecContext(t.ctx, query, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("mvds: %s: %w", what, err)
	}
	return r, nil
}

// meta returns a meta value, 0 when absent.
func (t *txn) meta(key string) (int64, error) {
	var v int64
	err := t.row(qMeta, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mvds: read %s: %w", key, err)
	}
	return v, nil
}

func (t *txn) setMeta(key string, v int64) error {
	_, err := t.exec("write "+key, qSetMeta, key, v)
	return err
}

// groupRow is one stored group.
type groupRow struct {
	id      []byte
	members [][]byte
}

func (t *txn) groups() ([]groupRow, error) {
	rows, err := t.query(qGroups)
	if err != nil {
		return nil, fmt.Errorf("mvds: read groups: %w", err)
	}
	defer rows.Close()
	var out []groupRow
	for rows.Next() {
		var id, packed []byte
		if err := rows.Scan(&id, &packed); err != nil {
			return nil, fmt.Errorf("mvds: read groups: %w", err)
		}
		if len(packed)%IdentitySize != 0 {
			return nil, fmt.Errorf("mvds: group %s: members of %d bytes", short(id), len(packed))
		}
		g := groupRow{id: id}
		for i := 0; i < len(packed); i += IdentitySize {
			g.members = append(g.members, packed[i:i+IdentitySize])
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: read groups: %w", err)
	}
	return out, nil
}

func (t *txn) putGroup(id []byte, members [][]byte) error {
	var packed []byte
	for _, m := range members {
		packed = append(packed, m...)
	}
	_, err := t.exec("write group", qPutGroup, id, packed)
	return err
}

// msgInfo is what the node asks of a stored message most often.
type msgInfo struct {
	own, delivered bool
}

// done says whether the message counts as delivered here for its
// children: delivered up, or sent from here.
func (i msgInfo) done() bool { return i.own || i.delivered }

// message looks a message up; found is false when the group does not hold
// it.
func (t *txn) message(group []byte, id ID) (info msgInfo, found bool, err error) {
	err = t.row(qMessage, group, id[:]).Scan(&info.own, &info.delivered)
	if errors.Is(err, sql.ErrNoRows) {
		return msgInfo{}, false, nil
	}
	if err != nil {
		return msgInfo{}, false, fmt.Errorf("mvds: read message %s: %w", id, err)
	}
	return info, true, nil
}

// stored is a message's encoding as the store keeps it: its body as
// carried and its format, and for a spec message its Metadata as carried
// (nil: none) and its author.
type stored struct {
	format   msgFormat
	body     []byte
	metadata []byte
	author   []byte
}

// content decodes a stored message. The store holds only messages that
// were checked on their way in, so an error means a damaged store.
func (s stored) content() (content, error) {
	switch s.format {
	case formatBound:
		b, err := decodeBody(s.body, MaxParentsLimit)
		if err != nil {
			return content{}, err
		}
		return content{format: formatBound, author: b.author, parents: b.parents, payload: b.payload, ephemeral: b.ephemeral}, nil
	case formatSpec:
		m, err := s.specMessage(nil, 0, nil)
		if err != nil {
			return content{}, err
		}
		c, err := decodeSpec(m, MaxParentsLimit)
		if err != nil {
			return content{}, err
		}
		if len(s.author) != IdentitySize {
			return content{}, fmt.Errorf("%w: stored author of %d bytes", errMalformed, len(s.author))
		}
		c.author = s.author
		return c, nil
	}
	return content{}, fmt.Errorf("%w: stored message of format %d", errMalformed, s.format)
}

// specMessage returns a stored spec message as it goes on the wire in the
// group, sent by self: with its metadata as it came, and with its author
// unless self is the author.
func (s stored) specMessage(group []byte, ts int64, self []byte) (*wirepb.Message, error) {
	m := &wirepb.Message{GroupId: group, Timestamp: ts, Body: s.body}
	if s.metadata != nil {
		m.Metadata = &wirepb.Metadata{}
		if err := unmarshal.Unmarshal(s.metadata, m.Metadata); err != nil {
			return nil, fmt.Errorf("%w: stored metadata: %v", errMalformed, err)
		}
	}
	if self != nil && !bytes.Equal(s.author, self) {
		m.Author = s.author
	}
	return m, nil
}

// wire returns a stored message as self sends it in the group.
func (s stored) wire(group []byte, ts int64, self []byte) (outMessage, error) {
	if s.format == formatBound {
		return outMessage{m: &wirepb.Message{GroupId: group, Timestamp: ts, Body: s.body}, format: formatBound}, nil
	}
	m, err := s.specMessage(group, ts, self)
	if err != nil {
		return outMessage{}, err
	}
	return outMessage{m: m, format: formatSpec}, nil
}

// scanStored receives the columns body, format, metadata, metadata IS NOT
// NULL, author (a LEFT JOIN may make them all NULL). The driver reads an
// empty BLOB as nil, so whether metadata is present is read apart.
type scanStored struct {
	body     []byte
	format   sql.NullInt64
	metadata []byte
	hasMeta  bool
	author   []byte
}

func (sc *scanStored) dest() []any {
	return []any{&sc.body, &sc.format, &sc.metadata, &sc.hasMeta, &sc.author}
}

func (sc *scanStored) stored() stored {
	s := stored{format: msgFormat(sc.format.Int64), body: sc.body, metadata: sc.metadata, author: sc.author}
	if sc.hasMeta && s.metadata == nil {
		s.metadata = []byte{} // present and empty
	}
	return s
}

// messageRow is one stored message.
type messageRow struct {
	group     []byte
	id        ID
	timestamp int64
	stored
	own        bool
	delivered  bool
	sender     []byte
	receivedMs int64
}

func (t *txn) insertMessage(m messageRow) error {
	body := m.body
	if body == nil {
		body = []byte{} // an empty payload; nil would be NULL
	}
	_, err := t.exec("store message "+m.id.String(),
		qInsertMessage,
		m.group, m.id[:], m.timestamp, body, int64(m.format), m.metadata, m.author, m.own, m.delivered, m.sender, m.receivedMs)
	return err
}

func (t *txn) markDelivered(group []byte, id ID) error {
	_, err := t.exec("mark delivered", qMarkDelivered, group, id[:])
	return err
}

// deleteMessage forgets a message and every record about it.
func (t *txn) deleteMessage(group []byte, id ID) error {
	if _, err := t.exec("delete message", qDeleteMessage, group, id[:]); err != nil {
		return err
	}
	_, err := t.exec("delete message records", qDeleteMessageRecords, group, id[:], recRequest)
	return err
}

// messageBody returns a stored message's encoding; ok is false when it is
// not stored.
func (t *txn) messageBody(group []byte, id ID) (s stored, ok bool, err error) {
	var sc scanStored
	err = t.row(qMessageBody, group, id[:]).Scan(sc.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, fmt.Errorf("mvds: read message %s: %w", id, err)
	}
	return sc.stored(), true, nil
}

// pendingMessages returns every stored message that has not gone up.
func (t *txn) pendingMessages() ([]messageRow, error) {
	rows, err := t.query(qPending)
	if err != nil {
		return nil, fmt.Errorf("mvds: read pending messages: %w", err)
	}
	defer rows.Close()
	var out []messageRow
	for rows.Next() {
		var m messageRow
		var id []byte
		var sc scanStored
		dest := append([]any{&m.group, &id, &m.timestamp}, sc.dest()...)
		if err := rows.Scan(append(dest, &m.sender, &m.receivedMs)...); err != nil {
			return nil, fmt.Errorf("mvds: read pending messages: %w", err)
		}
		m.stored = sc.stored()
		if len(id) != len(ID{}) {
			return nil, fmt.Errorf("mvds: stored message id of %d bytes", len(id))
		}
		copy(m.id[:], id)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: read pending messages: %w", err)
	}
	return out, nil
}

// addState adds a record with send count 0 due at epoch, unless the
// message and member already have one; added says whether it did.
func (t *txn) addState(group, peer []byte, id ID, typ recordType, epoch uint64) (added bool, err error) {
	t.recs.add(group, id)
	r, err := t.exec("add record", qAddState,
		group, peer, id[:], typ, int64(epoch))
	if err != nil {
		return false, err
	}
	t.due.lower(group, peer, epoch)
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mvds: add record: %w", err)
	}
	return n > 0, nil
}

// answerRequest makes the message due to peer at epoch as a MESSAGE
// record: an OFFER becomes a MESSAGE with send count 0 (2/MVDS interactive
// flow), and a MESSAGE record keeps its count and is made due no later
// than epoch.
func (t *txn) answerRequest(group, peer []byte, id ID, epoch uint64) error {
	t.recs.add(group, id)
	_, err := t.exec("answer request", qAnswerRequest,
		group, peer, id[:], recMessage, int64(epoch))
	t.due.lower(group, peer, epoch)
	return err
}

// clearSent deletes the OFFER or MESSAGE record of the message for peer:
// peer holds the message. It says whether there was one.
func (t *txn) clearSent(group, peer []byte, id ID) (bool, error) {
	r, err := t.exec("clear record", qClearSent, group, peer, id[:], recRequest)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mvds: clear record: %w", err)
	}
	return n > 0, nil
}

// inChunk is how many ids one statement of clearSentMany and heldMany
// names.
const inChunk = 256

// idList returns "?,?,...,?" for k ids and appends them to args.
func idList(args []any, ids []ID) (string, []any) {
	var q strings.Builder
	for i := range ids {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args = append(args, ids[i][:])
	}
	return q.String(), args
}

// clearSentMany is clearSent for many ids of one peer: it deletes their
// OFFER and MESSAGE records for peer in group and returns the ids it
// deleted a record of. Ids that no member has a record of (recordIDs) are
// not looked up.
func (t *txn) clearSentMany(group, peer []byte, ids []ID) (map[ID]bool, error) {
	ids = t.recs.filter(group, ids, func() ([]ID, error) { return t.recordedIDs(group) })
	if len(ids) == 0 {
		return map[ID]bool{}, nil
	}
	return t.idsOf("clear records", ids, func(list string) string {
		return "DELETE FROM states WHERE group_id = ? AND peer = ? AND type != ? AND id IN (" + list + ") RETURNING id"
	}, group, peer, recRequest)
}

// recordedIDs returns the ids of group's messages that have an OFFER or
// MESSAGE record for some member.
func (t *txn) recordedIDs(group []byte) ([]ID, error) {
	rows, err := t.query(qRecordedIDs, group, recRequest)
	if err != nil {
		return nil, fmt.Errorf("mvds: read recorded ids: %w", err)
	}
	defer rows.Close()
	var ids []ID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("mvds: read recorded ids: %w", err)
		}
		if len(raw) == len(ID{}) {
			ids = append(ids, ID(raw))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: read recorded ids: %w", err)
	}
	return ids, nil
}

// heldMany returns which of ids group's messages holds.
func (t *txn) heldMany(group []byte, ids []ID) (map[ID]bool, error) {
	return t.idsOf("read messages", ids, func(list string) string {
		return "SELECT id FROM messages WHERE group_id = ? AND id IN (" + list + ")"
	}, group)
}

// idsOf runs the statement query makes from a list of placeholders for
// each chunk of at most inChunk ids, with args before the ids, and returns
// the ids its rows name.
func (t *txn) idsOf(what string, ids []ID, query func(list string) string, args ...any) (map[ID]bool, error) {
	out := map[ID]bool{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), inChunk)]
		ids = ids[len(chunk):]
		list, all := idList(slices.Clone(args), chunk)
		rows, err := t.tx.QueryContext(t.ctx, query(list), all...)
		if err != nil {
			return nil, fmt.Errorf("mvds: %s: %w", what, err)
		}
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				rows.Close()
				return nil, fmt.Errorf("mvds: %s: %w", what, err)
			}
			if len(raw) == len(ID{}) {
				out[ID(raw)] = true
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("mvds: %s: %w", what, err)
		}
	}
	return out, nil
}

// clearRequests deletes every REQUEST record for the message and returns
// the members they were for.
func (t *txn) clearRequests(group []byte, id ID) ([][]byte, error) {
	rows, err := t.query(qClearRequests, group, id[:], recRequest)
	if err != nil {
		return nil, fmt.Errorf("mvds: clear requests: %w", err)
	}
	defer rows.Close()
	var peers [][]byte
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("mvds: clear requests: %w", err)
		}
		peers = append(peers, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: clear requests: %w", err)
	}
	return peers, nil
}

// requested says whether any REQUEST record for the message exists.
func (t *txn) requested(group []byte, id ID) (bool, error) {
	var one int
	err := t.row(qRequested, group, id[:], recRequest).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mvds: read requests: %w", err)
	}
	return true, nil
}

// stateRow is a due record, with the message's timestamp and encoding for
// a MESSAGE record (held false when the message is no longer stored).
type stateRow struct {
	rowid     int64
	id        ID
	typ       recordType
	count     uint64
	held      bool
	timestamp int64
	stored
}

// dueStates returns up to limit records for peer whose send epoch is at
// most epoch, the longest due first, in the order they were made.
func (t *txn) dueStates(group, peer []byte, epoch uint64, limit int) ([]stateRow, error) {
	return t.states(qDue, group, peer, epoch, limit)
}

// states runs qDue or qFresh.
func (t *txn) states(query string, group, peer []byte, epoch uint64, limit int) ([]stateRow, error) {
	rows, err := t.query(query, recMessage, group, peer, int64(epoch), limit)
	if err != nil {
		return nil, fmt.Errorf("mvds: read due records: %w", err)
	}
	defer rows.Close()
	var out []stateRow
	for rows.Next() {
		var r stateRow
		var id []byte
		var count int64
		var ts sql.NullInt64
		var sc scanStored
		if err := rows.Scan(append([]any{&r.rowid, &id, &r.typ, &count, &ts}, sc.dest()...)...); err != nil {
			return nil, fmt.Errorf("mvds: read due records: %w", err)
		}
		r.stored = sc.stored()
		if len(id) != len(ID{}) {
			return nil, fmt.Errorf("mvds: stored record id of %d bytes", len(id))
		}
		copy(r.id[:], id)
		r.count, r.held, r.timestamp = uint64(count), ts.Valid, ts.Int64
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: read due records: %w", err)
	}
	return out, nil
}

// freshStates returns up to limit records for peer never sent (send count
// 0) whose send epoch is at most epoch, in the order dueStates gives.
func (t *txn) freshStates(group, peer []byte, epoch uint64, limit int) ([]stateRow, error) {
	return t.states(qFresh, group, peer, epoch, limit)
}

// updateState records a transmission of the record rowid of peer in
// group: the new send count and send epoch.
func (t *txn) updateState(group, peer []byte, rowid int64, count, epoch uint64) error {
	_, err := t.exec("update record", qUpdateState, int64(count), int64(epoch), rowid)
	t.due.lower(group, peer, epoch)
	return err
}

// nextDue returns the lowest send epoch of peer's records in group, or
// noRecords when it has none.
func (t *txn) nextDue(group, peer []byte) (uint64, error) {
	var next sql.NullInt64
	if err := t.row(qNextDue, group, peer).Scan(&next); err != nil {
		return 0, fmt.Errorf("mvds: read the next due record: %w", err)
	}
	if !next.Valid || next.Int64 < 0 {
		return noRecords, nil
	}
	return uint64(next.Int64), nil
}

func (t *txn) deleteState(rowid int64) error {
	_, err := t.exec("delete record", qDeleteState, rowid)
	return err
}

// deletePeer deletes every record for a member that left the group.
func (t *txn) deletePeer(group, peer []byte) error {
	_, err := t.exec("delete member records", qDeletePeer, group, peer)
	return err
}

// resetPeer makes up to limit records for peer that were sent before and
// are due later than epoch after due at epoch due instead, and returns how
// many.
func (t *txn) resetPeer(group, peer []byte, due, after uint64, limit int) (int64, error) {
	r, err := t.exec("reset member records", qResetPeer, int64(due), group, peer, int64(after), limit)
	t.due.lower(group, peer, due)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mvds: reset member records: %w", err)
	}
	return n, nil
}

// clampStates makes every record due at most at epoch.
func (t *txn) clampStates(epoch uint64) error {
	_, err := t.exec("clamp records", qClamp, int64(epoch), int64(epoch))
	t.due.forget()
	return err
}

// requestCounts returns the number of REQUEST records per group and member.
func (t *txn) requestCounts() (map[string]map[string]int, error) {
	rows, err := t.query(qRequestCounts, recRequest)
	if err != nil {
		return nil, fmt.Errorf("mvds: count requests: %w", err)
	}
	defer rows.Close()
	out := make(map[string]map[string]int)
	for rows.Next() {
		var g, p []byte
		var n int
		if err := rows.Scan(&g, &p, &n); err != nil {
			return nil, fmt.Errorf("mvds: count requests: %w", err)
		}
		if out[string(g)] == nil {
			out[string(g)] = make(map[string]int)
		}
		out[string(g)][string(p)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: count requests: %w", err)
	}
	return out, nil
}

// groupCounts are the stored figures of a group's State.
type groupCounts struct {
	messages, delivered, unacknowledged uint64
}

func (t *txn) counts(group []byte) (groupCounts, error) {
	var c groupCounts
	err := t.row(qCounts, group, recRequest).Scan(&c.messages, &c.delivered, &c.unacknowledged)
	if err != nil {
		return groupCounts{}, fmt.Errorf("mvds: count group state: %w", err)
	}
	return c, nil
}

// ephemeralSeen says whether an ephemeral message was delivered here
// within its window.
func (t *txn) ephemeralSeen(group []byte, id ID) (bool, error) {
	var one int
	err := t.row(qEphemeralSeen, group, id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mvds: read ephemeral ids: %w", err)
	}
	return true, nil
}

func (t *txn) markEphemeral(group []byte, id ID, expiresMs int64) error {
	_, err := t.exec("remember ephemeral id", qMarkEphemeral, group, id[:], expiresMs)
	return err
}

// pruneEphemeral forgets the ephemeral ids whose window has passed and
// says whether there were any.
func (t *txn) pruneEphemeral(nowMs int64) (bool, error) {
	r, err := t.exec("prune ephemeral ids", qPruneEphemeral, nowMs)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mvds: prune ephemeral ids: %w", err)
	}
	return n > 0, nil
}

// addUnacked records that a received message went up and waits for the
// host's acknowledgement; it takes the next delivery sequence number.
func (t *txn) addUnacked(group []byte, id ID, trace uint64) error {
	_, err := t.exec("record delivery", qAddUnacked, group, id[:], int64(trace))
	return err
}

// ack records the host's acknowledgement of a delivered message and says
// whether there was one to record: false for a message that is not
// delivered and unacknowledged in the group (unknown, pending, own,
// ephemeral, of another group, or acknowledged already).
func (t *txn) ack(group, id []byte) (bool, error) {
	r, err := t.exec("acknowledge delivery", qAck, group, id)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mvds: acknowledge delivery: %w", err)
	}
	return n > 0, nil
}

// unackedCount returns the number of unacknowledged deliveries and the
// sequence number of the last one (0 if none).
func (t *txn) unackedCount() (count int, last int64, err error) {
	if err := t.row(qUnackedCount).Scan(&count, &last); err != nil {
		return 0, 0, fmt.Errorf("mvds: count unacknowledged deliveries: %w", err)
	}
	return count, last, nil
}

// unackedRow is an unacknowledged delivery with its message's encoding.
type unackedRow struct {
	seq   int64
	group []byte
	id    ID
	trace uint64
	stored
}

// unacked returns up to limit unacknowledged deliveries with a sequence
// number in (after, upto], in the order they first went up.
func (t *txn) unacked(after, upto int64, limit int) ([]unackedRow, error) {
	rows, err := t.query(qUnacked, after, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("mvds: read unacknowledged deliveries: %w", err)
	}
	defer rows.Close()
	var out []unackedRow
	for rows.Next() {
		var r unackedRow
		var id []byte
		var trace int64
		var sc scanStored
		if err := rows.Scan(append([]any{&r.seq, &r.group, &id, &trace}, sc.dest()...)...); err != nil {
			return nil, fmt.Errorf("mvds: read unacknowledged deliveries: %w", err)
		}
		r.stored = sc.stored()
		if len(id) != len(ID{}) {
			return nil, fmt.Errorf("mvds: stored delivery id of %d bytes", len(id))
		}
		copy(r.id[:], id)
		r.trace = uint64(trace)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mvds: read unacknowledged deliveries: %w", err)
	}
	return out, nil
}
