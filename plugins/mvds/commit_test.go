package mvds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestGroupCommit: Sends and SendBatches that gather while the node is
// busy share one commit; one that is refused is refused alone and the
// others commit. The node's lock is held while the calls queue, so that
// they all gather in one round, which the counter send_commits shows.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// sends is the number of concurrent one-message Sends, batches
		// that of SendBatches of three.
		sends, batches int
		// refused adds a Send naming a parent that does not exist.
		refused bool
		// ephemeralOnly makes every Send ephemeral: nothing to commit.
		ephemeralOnly bool
		commits       uint64
	}{
		{name: "sends", sends: 16, commits: 1},
		{name: "sends and batches", sends: 8, batches: 4, commits: 1},
		{name: "a refused send among them", sends: 8, refused: true, commits: 1},
		{name: "ephemeral sends", sends: 8, ephemeralOnly: true, commits: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nt := newTNet(t, testSettings(), "a", "b")
			a := nt.node("a")
			before := a.counter("send_commits")
			calls := tc.sends + tc.batches
			if tc.refused {
				calls++
			}
			type result struct {
				ids     []ID
				err     error
				refused bool
			}
			results := make(chan result, calls)
			a.n.mu.Lock() // the node is busy: every call waits in the queue
			var wg sync.WaitGroup
			for i := range calls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					switch {
					case i < tc.sends:
						id, err := a.n.send(context.Background(), testGroupID, []byte{byte(i)}, nil, tc.ephemeralOnly, 0)
						results <- result{ids: []ID{id}, err: err}
					case i < tc.sends+tc.batches:
						msgs := []sendMsg{{group: testGroupID, payload: []byte("x")}, {group: testGroupID, payload: []byte("y")}, {group: testGroupID, payload: []byte("z")}}
						ids, err := a.n.sendBatch(context.Background(), msgs, true)
						results <- result{ids: ids, err: err}
					default:
						bad := ID{1}
						_, err := a.n.send(context.Background(), testGroupID, []byte("orphan"), [][]byte{bad[:]}, false, 0)
						results <- result{err: err, refused: true}
					}
				}()
			}
			for deadline := time.Now().Add(10 * time.Second); ; {
				a.n.cmu.Lock()
				queued := len(a.n.queue)
				a.n.cmu.Unlock()
				if queued == calls {
					break
				}
				if time.Now().After(deadline) {
					a.n.mu.Unlock()
					t.Fatalf("%d of %d calls queued", queued, calls)
				}
				time.Sleep(time.Millisecond)
			}
			a.n.mu.Unlock()
			wg.Wait()
			close(results)
			seen := make(map[ID]bool)
			stored := 0
			for r := range results {
				if r.refused {
					if !errors.Is(r.err, errPrecondition) {
						t.Errorf("the send with a missing parent: %v, want a failed precondition", r.err)
					}
					continue
				}
				if r.err != nil {
					t.Fatalf("send: %v", r.err)
				}
				for _, id := range r.ids {
					if seen[id] {
						t.Errorf("id %s twice", id)
					}
					seen[id] = true
					if !tc.ephemeralOnly {
						stored++
					}
				}
			}
			if got := a.counter("send_commits") - before; got != tc.commits {
				t.Errorf("%d calls made %d commits, want %d", calls, got, tc.commits)
			}
			if got := a.state().messages; got != uint64(stored) {
				t.Errorf("%d messages stored, want %d", got, stored)
			}
			// Everything committed reaches b.
			nt.run(10, func() bool { return len(nt.node("b").order) == len(seen) })
		})
	}
}

// TestGroupCommitCrash: what concurrent Sends returned survives a crash
// right after they return, and reaches the other member.
func TestGroupCommitCrash(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b")
	a, b := nt.node("a"), nt.node("b")
	var wg sync.WaitGroup
	ids := make([]ID, 32)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.n.send(context.Background(), testGroupID, []byte{byte(i)}, nil, false, 0)
			if err != nil {
				t.Errorf("send: %v", err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	a.crash()
	nt.run(10, func() bool { return len(b.order) == len(ids) })
	for _, id := range ids {
		if !b.delivered(id) {
			t.Errorf("%s lost", id)
		}
	}
}

// TestSendBatchAllOrNone: a batch with one message that Send would refuse
// stores and queues nothing, and names the message; the node goes on.
func TestSendBatchAllOrNone(t *testing.T) {
	unknown := ID{7}
	big := make([]byte, MaxPayload+1)
	for _, tc := range []struct {
		name string
		// bad replaces message 2 (the third of five).
		bad  sendMsg
		code codes.Code
	}{
		{name: "missing parent", bad: sendMsg{group: testGroupID, payload: []byte("c"), parents: [][]byte{unknown[:]}}, code: codes.FailedPrecondition},
		{name: "unknown group", bad: sendMsg{group: []byte("no such group"), payload: []byte("c")}, code: codes.NotFound},
		{name: "oversize", bad: sendMsg{group: testGroupID, payload: big}, code: codes.InvalidArgument},
		{name: "bad parent id", bad: sendMsg{group: testGroupID, payload: []byte("c"), parents: [][]byte{[]byte("short")}}, code: codes.InvalidArgument},
		{name: "ephemeral with a missing parent", bad: sendMsg{group: testGroupID, payload: []byte("c"), parents: [][]byte{unknown[:]}, ephemeral: true}, code: codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nt := newTNet(t, testSettings(), "a", "b")
			a, b := nt.node("a"), nt.node("b")
			first := a.send("before")
			lastTS := a.n.lastTS
			msgs := []sendMsg{
				{group: testGroupID, payload: []byte("a"), parents: [][]byte{first[:]}},
				{group: testGroupID, payload: []byte("b"), ephemeral: true},
				tc.bad,
				{group: testGroupID, payload: []byte("d")},
				{group: testGroupID, payload: []byte("e")},
			}
			_, err := a.n.sendBatch(context.Background(), msgs, true)
			if err == nil {
				t.Fatal("the batch was taken")
			}
			if !strings.Contains(err.Error(), "message 2") {
				t.Errorf("error %q does not name message 2", err)
			}
			if got := status.Code(toStatus(err)); got != tc.code {
				t.Errorf("code %v, want %v", got, tc.code)
			}
			if st := a.state(); st.messages != 1 || st.unacknowledged != 1 {
				t.Errorf("after the refused batch: %d messages, %d unacknowledged; want the one sent before", st.messages, st.unacknowledged)
			}
			if a.n.lastTS != lastTS {
				t.Errorf("the refused batch moved the last timestamp from %d to %d", lastTS, a.n.lastTS)
			}
			nt.run(5, func() bool { return len(b.order) == 1 })
			nt.run(5, func() bool { return a.state().unacknowledged == 0 })
			if b.counter("messages_received") != 1 {
				t.Errorf("b received %d messages, want the one sent before", b.counter("messages_received"))
			}
			// The node goes on: the same batch without the bad message.
			good := append(msgs[:2:2], msgs[3:]...)
			ids, err := a.n.sendBatch(context.Background(), good, true)
			if err != nil || len(ids) != len(good) {
				t.Fatalf("the good batch: %d ids, %v", len(ids), err)
			}
			nt.run(5, func() bool { return len(b.order) == 1+len(good) })
		})
	}
}

// TestSendBatchParents: a batch whose messages name earlier ones of the
// same batch as parents is taken in one commit, with timestamps that
// strictly increase, and delivered in order; an ephemeral message of the
// batch, or a later one, is no parent. A caller knows an id only from the
// answer, or by predicting the timestamp the node stamps (the last one
// plus one, on a clock that stands still), as the test does.
func TestSendBatchParents(t *testing.T) {
	for _, tc := range []struct {
		name, mode, wire string
	}{
		{"spec/batch", ModeBatch, WireSpec},
		{"spec/interactive", ModeInteractive, WireSpec},
		{"bound/batch", ModeBatch, WireBound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode, cfg.Wire = tc.mode, tc.wire
			nt := newTNet(t, cfg, "a", "b")
			nt.keep = true
			a, b := nt.node("a"), nt.node("b")
			root := a.send("root")
			commits := a.counter("send_commits")
			// c0 names root, each ci the one before; e names c4 and is
			// ephemeral.
			var msgs []sendMsg
			var want []ID
			parent := root
			for i := range 6 {
				m := sendMsg{group: testGroupID, payload: []byte{'c', byte('0' + i)}, parents: [][]byte{bytes.Clone(parent[:])}, ephemeral: i == 5, trace: uint64(100 + i)}
				id := predictID(t, a, i, m)
				msgs, want, parent = append(msgs, m), append(want, id), id
			}
			ids, err := a.n.sendBatch(context.Background(), msgs, true)
			if err != nil {
				t.Fatalf("in-batch parents: %v", err)
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("ids %v, predicted %v", ids, want)
			}
			if got := a.counter("send_commits") - commits; got != 1 {
				t.Errorf("%d commits for one batch", got)
			}
			nt.run(10, func() bool { return len(b.order) == 1+len(want) })
			var got []ID
			for _, d := range b.order[1:] {
				got = append(got, d.id)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("b delivered %v, want %v in order", got, want)
			}
			if !b.order[len(b.order)-1].ephemeral {
				t.Error("the last message went up as persistent")
			}
			// The batch's timestamps strictly increase in its order.
			stamps := make(map[ID]int64)
			for _, s := range nt.sent {
				for _, m := range append(s.p.Messages, s.p.BoundMessages...) {
					stamps[MessageID(testGroupID, m.Timestamp, m.Body)] = m.Timestamp
				}
			}
			for i := 1; i < len(want); i++ {
				if stamps[want[i]] <= stamps[want[i-1]] {
					t.Errorf("message %d stamped %d after %d", i, stamps[want[i]], stamps[want[i-1]])
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		// A batch of two: message 1 names message 0, which is ephemeral,
		// or (forward) message 0 names message 1.
		ephemeral, forward bool
	}{
		{name: "ephemeral parent", ephemeral: true},
		{name: "later message as parent", forward: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nt := newTNet(t, testSettings(), "a", "b")
			a := nt.node("a")
			m0 := sendMsg{group: testGroupID, payload: []byte("x"), ephemeral: tc.ephemeral}
			m1 := sendMsg{group: testGroupID, payload: []byte("y")}
			refused := 1
			if tc.forward {
				id1 := predictID(t, a, 1, m1)
				m0.parents = [][]byte{id1[:]}
				refused = 0
			} else {
				id0 := predictID(t, a, 0, m0)
				m1.parents = [][]byte{id0[:]}
			}
			_, err := a.n.sendBatch(context.Background(), []sendMsg{m0, m1}, true)
			if !errors.Is(err, errPrecondition) || !strings.Contains(err.Error(), fmt.Sprintf("message %d", refused)) {
				t.Fatalf("got %v, want message %d refused", err, refused)
			}
			if a.state().messages != 0 {
				t.Fatal("the refused batch stored something")
			}
		})
	}
}

// predictID is the id node tn gives message i of a batch it is sent next
// while the clock stands still.
func predictID(t *testing.T, tn *tnode, i int, m sendMsg) ID {
	t.Helper()
	ts := max(tn.clk.now().UnixMilli(), tn.n.lastTS+1) + int64(i)
	parents, err := toIDs(m.parents)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := tn.n.encode(testGroupID, ts, m.payload, parents, m.ephemeral)
	if err != nil {
		t.Fatal(err)
	}
	return MessageID(testGroupID, ts, out.m.Body)
}

// TestSendBatchLayer: SendBatch through the layer answers every message,
// in order, as Send would, and refuses a bad batch with the code Send
// would give and InvalidArgument beyond MaxSendBatch.
func TestSendBatchLayer(t *testing.T) {
	rec := &sdktest.Recorder{}
	l := openLayer(t, t.TempDir(), rec)
	ctx := context.Background()
	resp, err := l.SendBatch(ctx, &syncv1.SendBatchRequest{Messages: []*syncv1.SendRequest{
		{Group: testGroupID, Payload: []byte("one"), TraceId: 1},
		{Group: testGroupID, Payload: []byte("two"), TraceId: 2},
	}})
	if err != nil || len(resp.GetResults()) != 2 {
		t.Fatalf("SendBatch: %v, %v", resp, err)
	}
	first := resp.GetResults()[0].GetMessageId()
	resp, err = l.SendBatch(ctx, &syncv1.SendBatchRequest{Messages: []*syncv1.SendRequest{
		{Group: testGroupID, Payload: []byte("three"), Parents: [][]byte{first}},
	}})
	if err != nil || len(resp.GetResults()) != 1 {
		t.Fatalf("SendBatch with a parent: %v, %v", resp, err)
	}
	if resp, err := l.SendBatch(ctx, &syncv1.SendBatchRequest{}); err != nil || len(resp.GetResults()) != 0 {
		t.Fatalf("empty SendBatch: %v, %v", resp, err)
	}
	huge := &syncv1.SendBatchRequest{Messages: make([]*syncv1.SendRequest, MaxSendBatch+1)}
	for i := range huge.Messages {
		huge.Messages[i] = &syncv1.SendRequest{Group: testGroupID}
	}
	if _, err := l.SendBatch(ctx, huge); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a batch of %d: %v", len(huge.Messages), err)
	}
	st, err := l.State(ctx, &syncv1.StateRequest{Group: testGroupID})
	if err != nil || st.GetMessages() != 3 {
		t.Fatalf("state %v, %v; want 3 messages", st, err)
	}
}
