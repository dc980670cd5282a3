package synclayer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// messageIDs returns the message ids of frames, in order.
func messageIDs(frames []*commonv1.Frame) [][]byte {
	ids := make([][]byte, len(frames))
	for i, f := range frames {
		ids[i] = f.GetMessageId()
	}
	return ids
}

// wantUps checks that got delivers exactly want, in that order.
func wantUps(t *testing.T, what string, got []*commonv1.Frame, want ...[]byte) {
	t.Helper()
	ids := messageIDs(got)
	same := len(ids) == len(want)
	for i := 0; same && i < len(ids); i++ {
		same = bytes.Equal(ids[i], want[i])
	}
	if !same {
		t.Fatalf("%s: delivered %x, want %x", what, ids, want)
	}
}

// crashImage copies the store of dir into a new directory, as the disk
// would be if the process died now, and returns that directory.
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	img := t.TempDir()
	if err := os.WriteFile(filepath.Join(img, logName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return img
}

func logSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// restart stops n and starts a new instance of it on dir, then waits until
// what its Start delivers is emitted.
func restart(t *testing.T, n *node, name, dir string, members ...[]byte) *node {
	t.Helper()
	if err := n.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, name, dir, "1m", members...)
	n.settled()
	return n
}

// fourMessages has a send m1, m2 (child of m1), m3 (child of m2) and m4 and
// b receive them so that b delivers m1, m2, m4, m3, in that order. It
// returns the ids m1 to m4 and a's frames for them.
func fourMessages(t *testing.T, a, b *node) ([][]byte, []*commonv1.Frame) {
	t.Helper()
	m1 := a.send(t, "m1")
	f1 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	m2 := a.send(t, "m2", m1)
	f2 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	m3 := a.send(t, "m3", m2)
	f3 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	m4 := a.send(t, "m4")
	f4 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	b.deliverTo(a.id, f2...)
	b.deliverTo(a.id, f1...)
	b.deliverTo(a.id, f4...)
	b.deliverTo(a.id, f3...)
	ids := [][]byte{m1, m2, m3, m4}
	wantUps(t, "first delivery", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1, m2, m4, m3)
	b.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN) // b's acks to a
	return ids, append(append(append(f1, f2...), f3...), f4...)
}

func TestRedeliversUnacknowledgedInOrder(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	b := startNode(t, "b", dir, "1m", members...)
	ids, frames := fourMessages(t, a, b)
	m1, m2, m3, m4 := ids[0], ids[1], ids[2], ids[3]
	if got := b.counter("unacknowledged_deliveries"); got != 4 {
		t.Fatalf("unacknowledged_deliveries = %d, want 4", got)
	}

	// Every Start redelivers, in the order of first delivery.
	for i := range 2 {
		b = restart(t, b, "b", dir, members...)
		ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP)
		wantUps(t, fmt.Sprintf("restart %d", i+1), ups, m1, m2, m4, m3)
		for j, f := range ups {
			want := []string{"m1", "m2", "m4", "m3"}[j]
			if string(f.GetPayload()) != want || !bytes.Equal(f.GetPeer(), a.id) || !bytes.Equal(f.GetConversation(), testGroup) || f.GetHints().GetEphemeral() {
				t.Fatalf("redelivered %v, want %s from a in the group", f, want)
			}
		}
		for name, want := range map[string]uint64{"redelivered": 4, "delivered": 0, "unacknowledged_deliveries": 4} {
			if got := b.counter(name); got != want {
				t.Errorf("after restart %d, %s = %d, want %d", i+1, name, got, want)
			}
		}
		if st := b.state(t); st.GetDelivered() != 4 || st.GetPending() != 0 {
			t.Fatalf("State %v, want 4 delivered", st)
		}
	}

	// What a sends again is a duplicate, acked and not delivered.
	b.deliverTo(a.id, frames...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("a duplicate went up after a restart: %v", ups)
	}
	if acks := b.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN); len(acks) == 0 {
		t.Fatal("the duplicates drew no ack")
	}

	b.ack(t, m1, m2)
	if got := b.counter("unacknowledged_deliveries"); got != 2 {
		t.Fatalf("after acking 2, unacknowledged_deliveries = %d, want 2", got)
	}
	b = restart(t, b, "b", dir, members...)
	wantUps(t, "after acking m1 and m2", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m4, m3)

	b.ack(t, m3, m4)
	b = restart(t, b, "b", dir, members...)
	wantUps(t, "after acking everything", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP))
	for name, want := range map[string]uint64{"redelivered": 0, "unacknowledged_deliveries": 0} {
		if got := b.counter(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// TestAckIsDurableAcrossACrash checks that what Ack acknowledged is in the
// store when Ack returns, and that a delivery the host never saw (the crash
// came between the fsync of the delivered mark and the emission) goes up
// again.
func TestAckIsDurableAcrossACrash(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	lossy := &capture{}
	b := startNodeWith(t, lossy, "b", dir, "1m", members...)

	m1 := a.send(t, "m1")
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	wantUps(t, "m1", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1)
	b.ack(t, m1)
	m2 := a.send(t, "m2", m1)
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	wantUps(t, "m2", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m2)
	lossy.loseUp.Store(true)
	m3 := a.send(t, "m3, its UP frame lost", m2)
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("the lost frame arrived: %v", ups)
	}
	b.ack(t, m2)

	img := crashImage(t, dir) // b is never stopped on img: it crashed
	b2 := startNode(t, "b", img, "1m", members...)
	b2.settled()
	wantUps(t, "after the crash", b2.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m3)
	if st := b2.state(t); st.GetMessages() != 3 || st.GetDelivered() != 3 {
		t.Fatalf("after the crash, State is %v, want 3 messages delivered", st)
	}
}

func TestAckIgnores(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	b := startNode(t, "b", dir, "1m", members...)
	ctx := context.Background()
	other := []byte("another group")
	if _, err := b.l.SetGroup(ctx, &syncv1.GroupRequest{Id: other, Members: members}); err != nil {
		t.Fatal(err)
	}

	m1 := a.send(t, "m1")
	f1 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	m2 := a.send(t, "m2, pending at b", m1)
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	e, err := a.l.Send(ctx, &syncv1.SendRequest{Group: testGroup, Payload: []byte("e"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	wantUps(t, "the ephemeral message", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), e.GetMessageId())
	own := b.send(t, "b's own")
	b.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)

	// Delivered m0, to show the ignored acks leave it unacknowledged.
	m0 := a.send(t, "m0")
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	wantUps(t, "m0", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m0)

	size := logSize(t, dir)
	unknown := testID(7)
	for name, req := range map[string]*syncv1.AckRequest{
		"unknown id":        {Group: testGroup, MessageIds: [][]byte{unknown[:]}},
		"short id":          {Group: testGroup, MessageIds: [][]byte{m0[:5]}},
		"long id":           {Group: testGroup, MessageIds: [][]byte{append(bytes.Clone(m0), 0)}},
		"not delivered yet": {Group: testGroup, MessageIds: [][]byte{m2}},
		"not received yet":  {Group: testGroup, MessageIds: [][]byte{m1}},
		"own message":       {Group: testGroup, MessageIds: [][]byte{own}},
		"ephemeral":         {Group: testGroup, MessageIds: [][]byte{e.GetMessageId()}},
		"another group":     {Group: other, MessageIds: [][]byte{m0}},
		"a group not set":   {Group: []byte("nope"), MessageIds: [][]byte{m0}},
		"no ids":            {Group: testGroup},
	} {
		if _, err := b.l.Ack(ctx, req); err != nil {
			t.Errorf("%s: Ack: %v", name, err)
		}
	}
	if _, err := b.l.Ack(ctx, &syncv1.AckRequest{MessageIds: [][]byte{m0}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Ack without a group: %v, want InvalidArgument", err)
	}
	if got := logSize(t, dir); got != size {
		t.Errorf("the ignored acks wrote %d bytes to the store", got-size)
	}
	if got := b.counter("unacknowledged_deliveries"); got != 1 {
		t.Errorf("unacknowledged_deliveries = %d, want 1 (m0)", got)
	}

	// m2's ack was ignored: once delivered, it is unacknowledged.
	b.deliverTo(a.id, f1...)
	wantUps(t, "m1 and then m2", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1, m2)
	b.ack(t, m1, m1) // twice in one call
	b.ack(t, m1)     // and again
	if got := logSize(t, dir); got <= size {
		t.Fatal("the ack of m1 wrote nothing")
	}
	b = restart(t, b, "b", dir, members...)
	wantUps(t, "after a restart", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m0, m2)
}

// TestReplayWithAcksAndATornTail checks the store a layer wrote, acks
// included, with a torn acknowledgement at its end.
func TestReplayWithAcksAndATornTail(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	b := startNode(t, "b", dir, "1m", members...)
	ids, _ := fourMessages(t, a, b)
	m1, m2, m3, m4 := ids[0], ids[1], ids[2], ids[3]
	b.ack(t, m2)
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, logName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	writeAll(t, other, []record{{typ: recTaken, group: testGroup, id: ID(m4)}})
	whole, err := os.ReadFile(filepath.Join(other, logName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Clone(good), whole[:len(whole)-3]...), 0o600); err != nil {
		t.Fatal(err)
	}

	b = startNode(t, "b", dir, "1m", members...)
	b.settled()
	wantUps(t, "after the torn ack", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1, m4, m3)
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The torn bytes are gone: what follows the good prefix (the group
	// that startNode set again) is whole records, and the one ack is m2's.
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, good) {
		t.Fatal("opening the store changed its good prefix")
	}
	var taken []ID
	n, err := replayAll(after, func(r record) error {
		if r.typ == recTaken {
			taken = append(taken, r.id)
		}
		return nil
	})
	if err != nil || n != len(after) {
		t.Fatalf("the store after opening has %d good bytes of %d (%v): the torn ack was not cut off", n, len(after), err)
	}
	if len(taken) != 1 || taken[0] != ID(m2) {
		t.Fatalf("the store holds acks of %x, want only m2's", taken)
	}

	// The same ack, whole, is replayed.
	if err := os.WriteFile(path, append(bytes.Clone(good), whole...), 0o600); err != nil {
		t.Fatal(err)
	}
	b = startNode(t, "b", dir, "1m", members...)
	b.settled()
	wantUps(t, "after the whole ack", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1, m3)
}

// TestStartDoesNotWaitForEmit checks that Start returns while the host
// takes no frame, that a delivery decided after Start goes up after what
// Start redelivers, and that Stop ends a blocked emission.
func TestStartDoesNotWaitForEmit(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	b := startNode(t, "b", dir, "1m", members...)
	m1 := a.send(t, "m1")
	b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	wantUps(t, "m1", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1)
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	blocked := &capture{block: make(chan struct{})}
	b = &node{l: New(), out: blocked, id: identity("b")}
	t.Cleanup(func() { b.l.Stop(context.Background()) })
	if _, err := b.l.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: `{"retransmit_interval":"1m"}`, DataDir: dir, NodeIdentity: b.id}, sdk.Env{Logger: hclog.NewNullLogger(), Out: blocked}); err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() {
		_, err := b.l.Start(context.Background(), &commonv1.StartRequest{})
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start waits for the host to take its frames")
	}
	if _, err := b.l.SetGroup(context.Background(), &syncv1.GroupRequest{Id: testGroup, Members: members}); err != nil {
		t.Fatal(err)
	}
	m2 := a.send(t, "m2", m1)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		b.deliverTo(a.id, a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	}()
	time.Sleep(20 * time.Millisecond)
	close(blocked.block)
	<-handled
	b.settled()
	wantUps(t, "redelivery, then the new message", b.out.TakeDirection(commonv1.Direction_DIRECTION_UP), m1, m2)

	// A Start whose emission never ends does not keep Stop waiting.
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	stuck := &capture{block: make(chan struct{})}
	b = startNodeWith(t, stuck, "b", dir, "1m", members...)
	stopped := make(chan error, 1)
	go func() { stopped <- b.l.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop waits for an emission the host never takes")
	}
	if ups := stuck.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("emitted %v", ups)
	}
}
