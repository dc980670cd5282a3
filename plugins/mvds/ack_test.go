package mvds

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// chainFrom builds n messages by author, each the child of the one
// before, and returns them with their ids.
func chainFrom(t testing.TB, author []byte, ts int64, n int, prefix string) ([]*wirepb.Message, []ID) {
	t.Helper()
	var msgs []*wirepb.Message
	var ids []ID
	for i := range n {
		var parents []ID
		if i > 0 {
			parents = []ID{ids[i-1]}
		}
		m, id := messageFrom(t, testGroupID, author, ts+int64(i), fmt.Sprintf("%s#%d", prefix, i), false, parents...)
		msgs, ids = append(msgs, m), append(ids, id)
	}
	return msgs, ids
}

// shuffled returns the messages in an order that is not their causal
// one, so that delivery order differs from arrival order.
func shuffled(msgs []*wirepb.Message) []*wirepb.Message {
	out := slices.Clone(msgs)
	slices.Reverse(out)
	return out
}

func (tn *tnode) unackedLevel() int { return tn.n.health().unacked }

// TestRedeliveryUntilAck: deliveries the host did not acknowledge come
// again after every restart, clean or crash, in the order they first went
// up (with the paging of Start), and never again once acknowledged.
func TestRedeliveryUntilAck(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	a.setGroup(a.id, b)
	const n = 10
	msgs, ids := chainFrom(t, b, 1, n, "chain")
	// Children first: everything waits for the root, then goes up in
	// causal order.
	a.receive(b, encode(t, &wirepb.Payload{Messages: shuffled(msgs)}))
	if got := a.deliveredPersistent(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want the chain in order", got)
	}
	if got := a.unackedLevel(); got != n {
		t.Fatalf("unacknowledged deliveries %d, want %d", got, n)
	}
	for i, reopen := range []func(){a.restart, a.crash, a.restart} {
		reopen()
		if !slices.Equal(a.redelivered, ids) {
			t.Fatalf("reopen %d: redelivered %v, want the chain in order", i, a.redelivered)
		}
		if got := a.unackedLevel(); got != n {
			t.Fatalf("reopen %d: unacknowledged deliveries %d, want %d", i, got, n)
		}
	}
	if got := a.counter("redelivered"); got != 0 {
		t.Fatalf("redelivered = %d; the node does not count, the layer does", got)
	}
	// A copy that arrives again is a duplicate, not a delivery.
	a.receive(b, encode(t, &wirepb.Payload{Messages: msgs[:1]}))
	if a.got[ids[0]] != 4 || a.counter("duplicates") != 1 {
		t.Fatalf("m0 delivered %d times, duplicates %d", a.got[ids[0]], a.counter("duplicates"))
	}
	// Acknowledge the first half, restart: the second half comes again.
	if acked, ignored := a.ack(ids[:n/2]...); acked != n/2 || ignored != 0 {
		t.Fatalf("ack: %d taken, %d ignored", acked, ignored)
	}
	if got := a.unackedLevel(); got != n-n/2 {
		t.Fatalf("unacknowledged deliveries %d, want %d", got, n-n/2)
	}
	a.crash()
	if !slices.Equal(a.redelivered, ids[n/2:]) {
		t.Fatalf("redelivered %v, want the second half", a.redelivered)
	}
	// The rest, then nothing comes again.
	if acked, ignored := a.ack(ids...); acked != n-n/2 || ignored != n/2 {
		t.Fatalf("ack: %d taken, %d ignored", acked, ignored)
	}
	a.restart()
	a.crash()
	if len(a.redelivered) != 0 || a.unackedLevel() != 0 {
		t.Fatalf("redelivered %v after every acknowledgement; unacknowledged %d", a.redelivered, a.unackedLevel())
	}
	if st := a.state(); st.delivered != n || st.messages != n {
		t.Fatalf("state %+v", st)
	}
	if got := a.counter("host_acks"); got != n {
		t.Fatalf("host_acks = %d, want %d", got, n)
	}
}

// TestRedeliveryAfterLostEmit: the delivered mark is committed before the
// frame leaves; a crash before the host has the frame (here: the
// deliveries are never taken) loses nothing, since the delivery is not
// acknowledged.
func TestRedeliveryAfterLostEmit(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	msgs, ids := chainFrom(t, b, 1, 3, "lost")
	ds, err := a.n.receive(context.Background(), []inbound{{group: testGroupID, from: b, payload: encode(t, &wirepb.Payload{Messages: msgs})}}, nil)
	if err != nil || len(ds) != 3 {
		t.Fatalf("receive: %d deliveries, %v", len(ds), err)
	}
	a.crash()
	if !slices.Equal(a.redelivered, ids) {
		t.Fatalf("redelivered %v, want %v", a.redelivered, ids)
	}
	for i, d := range a.order {
		if !bytes.Equal(d.author, b) || string(d.payload) != fmt.Sprintf("lost#%d", i) || !bytes.Equal(d.group, testGroupID) || d.ephemeral {
			t.Fatalf("redelivery %d: %+v", i, d)
		}
	}
	// take acknowledged them (manualAck is off): nothing comes again.
	a.crash()
	if len(a.redelivered) != 0 {
		t.Fatalf("redelivered %v after the acknowledgement", a.redelivered)
	}
}

// TestRedeliveryKeepsTrace: a redelivered frame carries the trace id of
// the frame that first brought the message.
func TestRedeliveryKeepsTrace(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	a.setGroup(a.id, b)
	m, id := messageFrom(t, testGroupID, b, 1, "traced", false)
	const trace = 0xfedcba9876543210 // above int64's range
	ds, err := a.n.receive(context.Background(), []inbound{{group: testGroupID, from: b, payload: encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}}), trace: trace}}, nil)
	if err != nil || len(ds) != 1 || ds[0].trace != trace {
		t.Fatalf("receive: %+v, %v", ds, err)
	}
	a.restart()
	if len(a.order) != 1 || a.order[0].id != id || a.order[0].trace != trace {
		t.Fatalf("redelivered %+v, want the trace id %x", a.order, uint64(trace))
	}
}

// TestAckIgnored: an ack of an unknown id, of a message not delivered yet
// (pending), of the node's own message, of an ephemeral message, of an id
// of the wrong size, of another group's message or of one already
// acknowledged is ignored, without error and without effect; an empty
// group or too many ids is refused.
func TestAckIgnored(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	a.setGroup(a.id, b)
	other := []byte("another group")
	if err := a.n.setGroup(context.Background(), other, [][]byte{a.id, b}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	own := a.send("own")
	msgs, ids := chainFrom(t, b, 1, 2, "pending")
	a.receive(b, encode(t, &wirepb.Payload{Messages: msgs[1:]})) // the child: pending
	if st := a.state(); st.pending != 1 {
		t.Fatalf("state %+v, want the child pending", st)
	}
	eph, ephID := messageFrom(t, testGroupID, b, a.clk.now().UnixMilli(), "ephemeral", true)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{eph}}))
	if !a.delivered(ephID) {
		t.Fatal("the ephemeral message was not delivered")
	}
	if acked, ignored := a.ack(ID{1}, ids[1], own, ephID); acked != 0 || ignored != 4 {
		t.Fatalf("ack: %d taken, %d ignored; want 0 and 4", acked, ignored)
	}
	if acked, ignored, err := a.n.ack(ctx, testGroupID, [][]byte{{1, 2, 3}, nil}); err != nil || acked != 0 || ignored != 2 {
		t.Fatalf("ack of malformed ids: %d, %d, %v", acked, ignored, err)
	}
	// The root arrives: both go up, the child although it was "acked"
	// while pending; neither is acknowledged.
	a.receive(b, encode(t, &wirepb.Payload{Messages: msgs[:1]}))
	if got := a.deliveredPersistent(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want %v", got, ids)
	}
	if got := a.unackedLevel(); got != 2 {
		t.Fatalf("unacknowledged deliveries %d, want 2", got)
	}
	// Another group's ack, an unknown group's: ignored.
	for _, g := range [][]byte{other, []byte("no such group")} {
		if acked, ignored, err := a.n.ack(ctx, g, [][]byte{ids[0][:], ids[1][:]}); err != nil || acked != 0 || ignored != 2 {
			t.Fatalf("ack in group %q: %d, %d, %v", g, acked, ignored, err)
		}
	}
	// Twice in one call, and again: the repeats are ignored.
	if acked, ignored := a.ack(ids[0], ids[0]); acked != 1 || ignored != 1 {
		t.Fatalf("ack: %d taken, %d ignored; want 1 and 1", acked, ignored)
	}
	if acked, ignored := a.ack(ids[0]); acked != 0 || ignored != 1 {
		t.Fatalf("ack again: %d taken, %d ignored; want 0 and 1", acked, ignored)
	}
	a.restart()
	if !slices.Equal(a.redelivered, ids[1:]) {
		t.Fatalf("redelivered %v, want the child only", a.redelivered)
	}
	if got, want := a.counter("host_acks_ignored"), uint64(4+2+2+2+1+1); got != want {
		t.Fatalf("host_acks_ignored = %d, want %d", got, want)
	}
	for name, c := range a.c.set.Snapshot() {
		if c != 0 && len(name) > 8 && name[:8] == "dropped_" {
			t.Errorf("%s = %d: an ignored ack is no drop", name, c)
		}
	}
	// Refused: an empty group, too many ids.
	if _, _, err := a.n.ack(ctx, nil, [][]byte{ids[1][:]}); !errors.Is(err, errInvalid) {
		t.Fatalf("ack without a group: %v, want errInvalid", err)
	}
	many := make([][]byte, MaxAckIDs+1)
	for i := range many {
		many[i] = ids[1][:]
	}
	if _, _, err := a.n.ack(ctx, testGroupID, many); !errors.Is(err, errInvalid) {
		t.Fatalf("ack of %d ids: %v, want errInvalid", len(many), err)
	}
	if acked, _, err := a.n.ack(ctx, testGroupID, many[:MaxAckIDs]); err != nil || acked != 1 {
		t.Fatalf("ack of %d ids: %d taken, %v", MaxAckIDs, acked, err)
	}
}

// TestAckDurable: an acknowledgement is committed when ack returns, so a
// crash right after it (without the clean close) redelivers nothing.
func TestAckDurable(t *testing.T) {
	for _, durability := range []string{DurabilityFull, DurabilityNormal} {
		t.Run(durability, func(t *testing.T) {
			cfg := testSettings()
			cfg.Durability = durability
			a := newTNode(t, "a", cfg, newClock())
			a.manualAck = true
			b := identity("b")
			a.setGroup(a.id, b)
			msgs, ids := chainFrom(t, b, 1, 5, "durable")
			a.receive(b, encode(t, &wirepb.Payload{Messages: msgs}))
			a.ack(ids[:3]...)
			a.crash()
			if !slices.Equal(a.redelivered, ids[3:]) {
				t.Fatalf("redelivered %v, want the last two", a.redelivered)
			}
			a.ack(ids[3:]...)
			a.crash()
			if len(a.redelivered) != 0 {
				t.Fatalf("redelivered %v after the acknowledgement and a crash", a.redelivered)
			}
		})
	}
}

// TestAckFailures: Ack on a failed or closed node is unavailable; a
// storage error in Ack returns it and changes nothing.
func TestAckFailures(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	a.setGroup(a.id, b)
	m, id := messageFrom(t, testGroupID, b, 1, "m", false)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := a.n.ack(ctx, testGroupID, [][]byte{id[:]}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ack with a cancelled context: %v", err)
	}
	if a.unackedLevel() != 1 || a.n.failed != nil {
		t.Fatalf("after a cancelled ack: unacknowledged %d, failed %v", a.unackedLevel(), a.n.failed)
	}
	a.restart()
	if !slices.Equal(a.redelivered, []ID{id}) {
		t.Fatalf("redelivered %v after a cancelled ack", a.redelivered)
	}
	if err := a.n.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.n.ack(context.Background(), testGroupID, [][]byte{id[:]}); !errors.Is(err, errUnavailable) {
		t.Fatalf("ack on a closed node: %v, want errUnavailable", err)
	}
}

// TestEphemeralNotRedelivered: an ephemeral message is delivered once and
// never recorded, so a restart does not deliver it again.
func TestEphemeralNotRedelivered(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	a.setGroup(a.id, b)
	eph, id := messageFrom(t, testGroupID, b, a.clk.now().UnixMilli(), "e", true)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{eph}}))
	if !a.delivered(id) || a.unackedLevel() != 0 {
		t.Fatalf("delivered %v, unacknowledged %d", a.delivered(id), a.unackedLevel())
	}
	a.crash()
	if len(a.redelivered) != 0 {
		t.Fatalf("redelivered %v", a.redelivered)
	}
}

// TestRedeliveryOrderAcrossRuns: unacknowledged deliveries come again in
// the order they first went up, across authors and runs, and what a node
// delivers anew at Start (a stored message whose parents are done, which
// a crash of an older version could leave) comes after them.
func TestRedeliveryOrderAcrossRuns(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b, c := identity("b"), identity("c")
	a.setGroup(a.id, b, c)
	mb, idsB := chainFrom(t, b, 1, 3, "b")
	mc, idsC := chainFrom(t, c, 1, 2, "c")
	a.receive(b, encode(t, &wirepb.Payload{Messages: mb[:1]}))
	a.receive(c, encode(t, &wirepb.Payload{Messages: mc}))
	a.restart()
	first := []ID{idsB[0], idsC[0], idsC[1]}
	if !slices.Equal(a.redelivered, first) {
		t.Fatalf("redelivered %v, want %v", a.redelivered, first)
	}
	a.receive(b, encode(t, &wirepb.Payload{Messages: mb[1:]}))
	a.ack(idsC[0])
	a.restart()
	want := []ID{idsB[0], idsC[1], idsB[1], idsB[2]}
	if !slices.Equal(a.redelivered, want) {
		t.Fatalf("redelivered %v, want %v", a.redelivered, want)
	}
	// Leave b's last message stored and not delivered, as if a crash had
	// come between its storing and its delivery.
	if err := a.n.st.close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(a.dir, DBName)) // no migrations: the test writes the rows itself
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE messages SET delivered = 0 WHERE id = ?", "DELETE FROM unacked WHERE id = ?"} {
		if _, err := db.Exec(q, idsB[2][:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	a.reopen()
	if want := []ID{idsB[0], idsC[1], idsB[1]}; !slices.Equal(a.redelivered, want) {
		t.Fatalf("redelivered %v, want %v", a.redelivered, want)
	}
	if last := a.order[len(a.order)-1]; last.id != idsB[2] {
		t.Fatalf("the last delivery is %s, want the ready message after the redeliveries", last.id)
	}
	if a.unackedLevel() != 4 {
		t.Fatalf("unacknowledged deliveries %d, want 4", a.unackedLevel())
	}
}

// TestMigrationFromVersion1: a database of schema version 1 (at-most-once
// delivery) is migrated; what it had delivered counts as acknowledged,
// and a message it held ready goes up at the next start, unacknowledged.
func TestMigrationFromVersion1(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	a.manualAck = true
	b := identity("b")
	if err := a.n.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(a.dir, DBName+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	// The version 1 database, as the released plugin wrote it: a group,
	// two delivered messages of b (a chain), an own message, and the
	// chain's third message stored but not delivered (a crash before
	// delivery).
	db, err := sql.Open("sqlite", filepath.Join(a.dir, DBName)) // no migrations: the test writes the rows itself
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(migrations[0])
	exec("PRAGMA user_version = 1")
	exec("INSERT INTO groups (id, members) VALUES (?, ?)", testGroupID, append(bytes.Clone(a.id), b...))
	var msgs []*wirepb.Message // bound: the only format of version 1
	var ids []ID
	for i := range 3 {
		var parents []ID
		if i > 0 {
			parents = []ID{ids[i-1]}
		}
		m, id := boundFrom(t, testGroupID, b, 1+int64(i), fmt.Sprintf("old#%d", i), false, parents...)
		msgs, ids = append(msgs, m), append(ids, id)
	}
	for i, m := range msgs {
		exec("INSERT INTO messages (group_id, id, timestamp, body, own, delivered, sender, received_ms) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
			testGroupID, ids[i][:], m.Timestamp, m.Body, i < 2, b, a.clk.now().UnixMilli())
	}
	ownBody, err := encodeBody(a.id, nil, []byte("own"), false)
	if err != nil {
		t.Fatal(err)
	}
	own := MessageID(testGroupID, 10, ownBody)
	exec("INSERT INTO messages (group_id, id, timestamp, body, own, delivered, sender, received_ms) VALUES (?, ?, 10, ?, 1, 1, ?, 0)",
		testGroupID, own[:], ownBody, a.id)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	a.reopen()
	var version int
	if err := a.n.st.db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) || version < 2 {
		t.Fatalf("schema version %d (%v), want %d", version, err, len(migrations))
	}
	if len(a.redelivered) != 0 {
		t.Fatalf("redelivered %v: old deliveries count as acknowledged", a.redelivered)
	}
	if got := a.deliveredPersistent(); !slices.Equal(got, ids[2:]) {
		t.Fatalf("delivered %v at start, want the ready third message", got)
	}
	if a.unackedLevel() != 1 {
		t.Fatalf("unacknowledged deliveries %d, want 1", a.unackedLevel())
	}
	if acked, ignored := a.ack(ids[0], ids[1], own); acked != 0 || ignored != 3 {
		t.Fatalf("ack of old deliveries: %d taken, %d ignored", acked, ignored)
	}
	a.restart()
	if !slices.Equal(a.redelivered, ids[2:]) {
		t.Fatalf("redelivered %v, want the third message", a.redelivered)
	}
	if st := a.state(); st.messages != 4 || st.delivered != 3 {
		t.Fatalf("state %+v", st)
	}
}

// gatedOut is an Emitter that holds every Emit until open is closed (or
// its context ends), then records the frames.
type gatedOut struct {
	sdktest.Recorder
	open chan struct{}
}

func (g *gatedOut) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Recorder.Emit(ctx, frames...)
}

// upIDs returns the message ids of the UP frames among frames.
func upIDs(frames []*commonv1.Frame) []ID {
	var out []ID
	for _, f := range frames {
		if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
			out = append(out, ID(f.GetMessageId()))
		}
	}
	return out
}

// openLayer configures and starts a layer on dir with 1-minute epochs
// (none runs in a test) and the group of a and b.
func openLayer(t *testing.T, dir string, out sdk.Emitter) *managed {
	t.Helper()
	l := manage(New())
	ctx := context.Background()
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: `{"epoch": "1m"}`, DataDir: dir, NodeIdentity: identity("a")}, sdk.Env{Logger: hclog.NewNullLogger(), Out: out}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %v", d)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: [][]byte{identity("a"), identity("b")}}); err != nil {
		t.Fatal(err)
	}
	return l
}

// upBatch is the batch of one payload from b holding msgs.
func upBatch(t *testing.T, trace uint64, msgs ...*wirepb.Message) *commonv1.Batch {
	return &commonv1.Batch{Frames: []*commonv1.Frame{{
		Direction: commonv1.Direction_DIRECTION_UP, Conversation: testGroupID, Peer: identity("b"), TraceId: trace,
		Payload: encode(t, &wirepb.Payload{Messages: msgs}),
	}}}
}

func waitDone(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not done after 10 s", what)
	}
}

// TestLayerRedelivery drives the layer: deliveries not acknowledged come
// again after a restart, in order and in several pages, from a goroutine
// of the layer's (a blocked Emit blocks neither Start nor Stop), before
// anything new; acknowledged ones never come again; Ack's errors; the
// Health counters.
func TestLayerRedelivery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 2*redeliveryPage + 88
	msgs, ids := chainFrom(t, identity("b"), 1, n+1, "layer")

	first := &sdktest.Recorder{}
	l := openLayer(t, dir, first)
	l.HandleBatch(ctx, upBatch(t, 7, shuffled(msgs[:n])...))
	if got := upIDs(first.Take()); !slices.Equal(got, ids[:n]) {
		t.Fatalf("delivered %d messages, want the chain of %d in order", len(got), n)
	}
	c := l.Health(ctx).GetCounters()
	if c["delivered"] != n || c["unacknowledged_deliveries"] != n || c["redelivered"] != 0 {
		t.Fatalf("Health %v", c)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart whose Emit blocks: Start returns, the new message waits
	// behind the redelivery.
	gated := &gatedOut{open: make(chan struct{})}
	l = openLayer(t, dir, gated)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		l.HandleBatch(ctx, upBatch(t, 8, msgs[n]))
	}()
	select {
	case <-handled:
		t.Fatal("HandleBatch delivered before the redelivery")
	case <-time.After(50 * time.Millisecond):
	}
	close(gated.open)
	waitDone(t, "HandleBatch", handled)
	waitDone(t, "the redelivery", l.redeliverDone)
	frames := gated.Take()
	if got := upIDs(frames); !slices.Equal(got, ids) {
		t.Fatalf("after the restart: %d UP frames, want the %d again in order, then the new one", len(got), n)
	}
	for i, f := range frames {
		want := uint64(7)
		if i == n {
			want = 8
		}
		if f.GetTraceId() != want || !bytes.Equal(f.GetPeer(), identity("b")) || !bytes.Equal(f.GetConversation(), testGroupID) || string(f.GetPayload()) != fmt.Sprintf("layer#%d", i) {
			t.Fatalf("UP frame %d: %v", i, f)
		}
	}
	c = l.Health(ctx).GetCounters()
	if c["delivered"] != 1 || c["redelivered"] != n || c["unacknowledged_deliveries"] != n+1 {
		t.Fatalf("Health after the redelivery %v", c)
	}

	// Ack: refused without a group or with too many ids; then all.
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = bytes.Clone(id[:])
	}
	if _, err := l.Ack(ctx, &syncv1.AckRequest{MessageIds: raw}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Ack without a group: %v, want InvalidArgument", err)
	}
	if _, err := l.Ack(ctx, &syncv1.AckRequest{Group: testGroupID, MessageIds: make([][]byte, MaxAckIDs+1)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Ack of %d ids: %v, want InvalidArgument", MaxAckIDs+1, err)
	}
	if _, err := l.Ack(ctx, &syncv1.AckRequest{Group: []byte("no such group"), MessageIds: raw[:1]}); err != nil {
		t.Fatalf("Ack in an unknown group: %v", err)
	}
	if _, err := l.Ack(ctx, &syncv1.AckRequest{Group: testGroupID, MessageIds: append(raw, []byte("unknown"))}); err != nil {
		t.Fatal(err)
	}
	c = l.Health(ctx).GetCounters()
	if c["unacknowledged_deliveries"] != 0 || c["host_acks"] != n+1 || c["host_acks_ignored"] != 2 {
		t.Fatalf("Health after Ack %v", c)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ack(ctx, &syncv1.AckRequest{Group: testGroupID, MessageIds: raw[:1]}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Ack after Stop: %v, want FailedPrecondition", err)
	}

	// Acknowledged: nothing comes again.
	last := &sdktest.Recorder{}
	l = openLayer(t, dir, last)
	waitDone(t, "the redelivery", l.redeliverDone)
	if got := upIDs(last.Take()); len(got) != 0 {
		t.Fatalf("%d UP frames after every delivery was acknowledged", len(got))
	}
	l.HandleBatch(ctx, upBatch(t, 9, msgs...))
	if got := upIDs(last.Take()); len(got) != 0 || l.Health(ctx).GetCounters()["duplicates"] != n+1 {
		t.Fatalf("copies of acknowledged messages: %d UP frames, counters %v", len(got), l.Health(ctx).GetCounters())
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLayerStopDuringRedelivery: Stop ends a redelivery whose Emit blocks,
// and what it did not emit comes at the next Start.
func TestLayerStopDuringRedelivery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	msgs, ids := chainFrom(t, identity("b"), 1, 3, "stop")
	l := openLayer(t, dir, &sdktest.Recorder{})
	l.HandleBatch(ctx, upBatch(t, 1, msgs...))
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	l = openLayer(t, dir, &gatedOut{open: make(chan struct{})}) // never opens
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := l.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	waitDone(t, "Stop", stopped)
	again := &sdktest.Recorder{}
	l = openLayer(t, dir, again)
	waitDone(t, "the redelivery", l.redeliverDone)
	if got := upIDs(again.Take()); !slices.Equal(got, ids) {
		t.Fatalf("redelivered %v, want %v", got, ids)
	}
	// The SDK refuses a second Start (sdk.Lifecycle), so it cannot deliver
	// anything again either.
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a second Start: %v, want FailedPrecondition", err)
	}
	if got := upIDs(again.Take()); len(got) != 0 {
		t.Fatalf("a second Start delivered again: %d UP frames", len(got))
	}
}
