package synclayer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// capture is the host a layer emits to in these tests: an sdktest.Recorder
// that can lose UP frames, as a host that dies before it takes them would
// (loseUp), or hold them until block is closed or ctx ends (block, set
// before the layer starts).
type capture struct {
	sdktest.Recorder
	loseUp atomic.Bool
	block  chan struct{}
}

// Emit implements sdk.Emitter.
func (c *capture) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	isUp := func(f *commonv1.Frame) bool { return f.GetDirection() == commonv1.Direction_DIRECTION_UP }
	if c.block != nil && slices.ContainsFunc(frames, isUp) {
		select {
		case <-c.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.loseUp.Load() {
		frames = slices.DeleteFunc(slices.Clone(frames), isUp)
	}
	return c.Recorder.Emit(ctx, frames...)
}

func identity(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

var testGroup = []byte("unit-test-group")

// node is a started layer with its output captured.
type node struct {
	l   *Layer
	out *capture
	id  []byte
}

func startNode(t *testing.T, name, dir, interval string, members ...[]byte) *node {
	t.Helper()
	return startNodeWith(t, &capture{}, name, dir, interval, members...)
}

// startNodeWith is startNode with out as the node's emitter.
func startNodeWith(t *testing.T, out *capture, name, dir, interval string, members ...[]byte) *node {
	t.Helper()
	n := &node{l: New(), out: out, id: identity(name)}
	ctx := context.Background()
	cfg := `{"retransmit_interval":"` + interval + `"}`
	if _, err := n.l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg, DataDir: dir, NodeIdentity: n.id}, sdk.Env{Logger: hclog.NewNullLogger(), Out: n.out}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.l.Stop(context.Background()) })
	if _, err := n.l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroup, Members: members}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) send(t *testing.T, payload string, parents ...[]byte) []byte {
	t.Helper()
	resp, err := n.l.Send(context.Background(), &syncv1.SendRequest{Group: testGroup, Payload: []byte(payload), Parents: parents})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetMessageId()
}

func (n *node) state(t *testing.T) *syncv1.StateResponse {
	t.Helper()
	st, err := n.l.State(context.Background(), &syncv1.StateRequest{Group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// deliverTo hands frames (DOWN frames of from) to n as UP frames from from.
func (n *node) deliverTo(from []byte, frames ...*commonv1.Frame) {
	b := &commonv1.Batch{}
	for _, f := range frames {
		b.Frames = append(b.Frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Conversation: f.GetConversation(), Peer: from, Payload: bytes.Clone(f.GetPayload())})
	}
	n.l.HandleBatch(context.Background(), b)
}

// settled waits until the deliveries of the node's Start are emitted.
func (n *node) settled() { n.l.redelivering.Wait() }

// ack acknowledges ids to n's layer as the host would.
func (n *node) ack(t *testing.T, ids ...[]byte) {
	t.Helper()
	if _, err := n.l.Ack(context.Background(), &syncv1.AckRequest{Group: testGroup, MessageIds: ids}); err != nil {
		t.Fatal(err)
	}
}

func (n *node) counter(name string) uint64 {
	return n.l.Health(context.Background()).GetCounters()[name]
}

func TestPendingUntilParentThenOnce(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	b := startNode(t, "b", t.TempDir(), "1m", members...)

	m1 := a.send(t, "m1")
	f1 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	m2 := a.send(t, "m2", m1)
	f2 := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	if len(f1) != 1 || len(f2) != 1 {
		t.Fatalf("a emitted %d and %d frames, want one per message for the one other member", len(f1), len(f2))
	}

	b.deliverTo(a.id, f2...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("m2 went up before its parent: %v", ups)
	}
	if st := b.state(t); st.GetPending() != 1 {
		t.Fatalf("State %v, want 1 pending", st)
	}
	b.deliverTo(a.id, f1...)
	ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP)
	if len(ups) != 2 || !bytes.Equal(ups[0].GetMessageId(), m1) || !bytes.Equal(ups[1].GetMessageId(), m2) {
		t.Fatalf("delivered %v, want m1 then m2", ups)
	}
	if !bytes.Equal(ups[1].GetPeer(), a.id) || !bytes.Equal(ups[1].GetConversation(), testGroup) || string(ups[1].GetPayload()) != "m2" {
		t.Fatalf("m2 went up as %v", ups[1])
	}

	b.deliverTo(a.id, f1...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("a duplicate went up: %v", ups)
	}
	if got := b.counter("duplicates"); got != 1 {
		t.Fatalf("duplicates = %d, want 1", got)
	}
	if st := b.state(t); st.GetDelivered() != 2 || st.GetPending() != 0 || st.GetMessages() != 2 {
		t.Fatalf("State %v, want 2 messages, 2 delivered, none pending", st)
	}

	a.deliverTo(b.id, b.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)...)
	if st := a.state(t); st.GetUnacknowledged() != 0 {
		t.Fatalf("after b's acks, a's State is %v, want none unacknowledged", st)
	}
}

func TestDropsAndCounts(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	x := startNode(t, "x", t.TempDir(), "1m", identity("x"), identity("a"))
	x.send(t, "from an outsider")
	fx := x.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)

	a.deliverTo(x.id, fx...)
	a.deliverTo(identity("b"), &commonv1.Frame{Conversation: testGroup, Payload: []byte{1, 9}})
	a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: testGroup, Payload: []byte("x")}}})
	if out := a.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(out) != 0 {
		t.Fatalf("delivered %v", out)
	}
	if out := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN); len(out) != 0 {
		t.Fatalf("answered with %v", out)
	}
	for name, want := range map[string]uint64{"dropped_non_member": 1, "dropped_malformed": 1, "ignored_down": 1, "delivered": 0} {
		if got := a.counter(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestRetransmitsUntilAckedAndAfterRestart(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	dir := t.TempDir()
	a := startNode(t, "a", dir, "10ms", members...)
	m := a.send(t, "m")
	deadline := time.Now().Add(5 * time.Second)
	for a.counter("retransmissions") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no retransmissions")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	a = startNode(t, "a", dir, "10ms", members...)
	if st := a.state(t); st.GetUnacknowledged() != 1 || st.GetMessages() != 1 {
		t.Fatalf("after a restart, State is %v, want the message unacknowledged", st)
	}
	var frames []*commonv1.Frame
	for len(frames) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no retransmission after the restart")
		}
		time.Sleep(5 * time.Millisecond)
		frames = a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	}
	ack := &commonv1.Frame{Conversation: testGroup, Payload: encodeAck([]ID{ID(m)})}
	a.deliverTo(identity("b"), ack)
	if st := a.state(t); st.GetUnacknowledged() != 0 {
		t.Fatalf("after the ack, State is %v", st)
	}
}

func TestReceiverRestartDeliversNothingAckedTwice(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	dir := t.TempDir()
	b := startNode(t, "b", dir, "1m", members...)
	m := a.send(t, "m")
	f := a.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN)
	b.deliverTo(a.id, f...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 1 {
		t.Fatalf("delivered %d, want 1", len(ups))
	}
	b.ack(t, m)
	if err := b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = startNode(t, "b", dir, "1m", members...)
	b.settled()
	b.deliverTo(a.id, f...)
	if ups := b.out.TakeDirection(commonv1.Direction_DIRECTION_UP); len(ups) != 0 {
		t.Fatalf("delivered again after a restart: %v", ups)
	}
	if acks := b.out.TakeDirection(commonv1.Direction_DIRECTION_DOWN); len(acks) != 1 {
		t.Fatalf("the duplicate drew %d acks, want 1", len(acks))
	}
}

func TestSendChecks(t *testing.T) {
	members := [][]byte{identity("a"), identity("b")}
	a := startNode(t, "a", t.TempDir(), "1m", members...)
	ctx := context.Background()
	for name, req := range map[string]*syncv1.SendRequest{
		"unknown group":    {Group: []byte("nope"), Payload: []byte("x")},
		"unknown parent":   {Group: testGroup, Payload: []byte("x"), Parents: [][]byte{make([]byte, 32)}},
		"short parent":     {Group: testGroup, Payload: []byte("x"), Parents: [][]byte{{1}}},
		"payload too big":  {Group: testGroup, Payload: make([]byte, MaxPayload+1)},
		"too many parents": {Group: testGroup, Payload: []byte("x"), Parents: make([][]byte, MaxParents+1)},
	} {
		if _, err := a.l.Send(ctx, req); err == nil {
			t.Errorf("%s: Send succeeded", name)
		}
	}
	if _, err := a.l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroup, Members: [][]byte{identity("b")}}); err == nil {
		t.Error("SetGroup without the node itself succeeded")
	}
	e, err := a.l.Send(ctx, &syncv1.SendRequest{Group: testGroup, Payload: []byte("e"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.l.Send(ctx, &syncv1.SendRequest{Group: testGroup, Payload: []byte("child of e"), Parents: [][]byte{e.GetMessageId()}}); err == nil {
		t.Error("an ephemeral message was accepted as a parent")
	}
	if st := a.state(t); st.GetMessages() != 0 || st.GetUnacknowledged() != 0 {
		t.Fatalf("State %v after an ephemeral Send, want nothing stored", st)
	}
	first, second := a.send(t, "same"), a.send(t, "same")
	if !bytes.Equal(first, second) || a.state(t).GetMessages() != 1 {
		t.Fatal("sending the same content twice is not idempotent")
	}
}
