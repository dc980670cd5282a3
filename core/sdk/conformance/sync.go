package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// Timing of the sync suite, besides Options.Timeout, which bounds every
// wait for something to happen.
const (
	// syncQuiet is how long the suite watches for what must not happen (a
	// second delivery, a delivery that must never come) once everything it
	// waited for has happened.
	syncQuiet = 400 * time.Millisecond
	// syncLinger is how long the second hold of the Causal subtest stays
	// in place after its first frame, to catch the rest of a burst. It is
	// short so that a retransmission of the first message rarely falls in.
	syncLinger = 20 * time.Millisecond
	// syncBlackout is the least time the suite drops every frame of a
	// sender after an ephemeral Send, so that its first transmission is lost.
	syncBlackout = 250 * time.Millisecond
	// syncAckChunk is the most ids the suite puts in one Ack, as a host
	// does (host/node acknowledges at most 1024 at a time).
	syncAckChunk = 1024
)

// Sync runs Layer, then checks the sync contract of core/api/sync/v1 on
// two or three instances of the layer. Each instance is configured with
// o.Config(i) (i is 0, 1 or 2; the third instance uses 2), with a fixed
// 32-byte identity key as ConfigureRequest.node_identity and as
// StartRequest.below_address, and is told the group with SetGroup (all
// members' identity keys, its own included) after every start, as the host
// does. Control calls go through syncv1.ControlClient on the instance's
// Conn.Control().
//
// The suite plays the host and the layers below as a network between the
// instances. A DOWN frame that an instance emits with Frame.peer = X
// reaches X's instance as an UP frame with Frame.peer = the sender's
// identity key and the same payload and conversation; a DOWN frame with an
// empty peer reaches every other member of the group as the sender knows
// it, and a trace id of its own (as a host assigns one to every frame it
// passes up). Nothing else of a frame crosses (no protocol or hints), the
// suite assumes no wire format and no number of frames per message, and an
// instance that is down misses what is sent to it. In some subtests the
// network drops, duplicates, reorders, holds back or replays frames, as
// the secure layer's contract allows the layers below to.
//
// What every subtest requires of the layer:
//
//   - Send (persistent or ephemeral, with parents only among persistent
//     messages the same author sent before) succeeds and returns a
//     non-empty id, different for different messages; the suite never
//     sends the same payload twice, and payloads are 29 to 100 bytes, within
//     any PluginInfo.max_payload of 100 or more;
//   - every DOWN frame carries Frame.conversation = the group and goes to a
//     member of the group as the sending instance knows it (or to all of
//     them): nothing goes to a non-member, and no frame has another
//     direction;
//   - every UP frame is the delivery of a message some member sent with
//     Send: Frame.message_id = the id Send returned, Frame.payload = the
//     payload sent, Frame.conversation = the group, Frame.peer = the
//     author's identity key, Frame.trace_id = the trace id of one of the UP
//     frames the suite handed that instance (a layer copies the trace id of
//     the input frame it delivers from; a delivery again after a restart,
//     or an author's delivery of its own message, is exempt); each member
//     other than the author delivers
//     it (an author may deliver its own messages too), first only after
//     every parent that the member did not author itself, and never again
//     once the suite's Ack for it has returned;
//   - the suite plays the host's part in exactly-once delivery: it
//     acknowledges every delivery with Ack, from its own goroutine per
//     instance, shortly after the UP frame arrives (except where a subtest
//     says it does not). A delivery again of a message not yet acknowledged
//     is allowed, as after a restart it is required;
//   - every wait ends within o.Timeout; what must not happen is watched
//     for 400 ms after the last thing waited for; a frame that breaks the
//     contract in a way the suite can tell as it arrives (a wrong
//     conversation or peer, no message id, a delivery whose payload, author
//     or trace id is wrong) fails the subtest at the next wait, printed.
//
// The subtests, and what each adds:
//
//   - SendDeliver: a, b, c; a sends 50 messages; b and c each deliver all
//     of them, a's State reports unacknowledged 0, and when the network
//     then replays every frame a sent, nothing is delivered again.
//   - Lossy: a, b, c over a network that drops 30% of frames, duplicates
//     10% and delays each by up to 20 ms (reordering them); a and b send
//     30 messages each, interleaved, each naming the same author's
//     previous message as its parent; every message is delivered at both
//     other members, and a's and b's State report unacknowledged 0.
//   - Causal: a, b; the network holds back every frame a emits after
//     sending m1 until it has seen one, then separately every frame a
//     emits after sending m2 (parent m1) and m3 (parent m2) until it has
//     seen one and 20 ms more; it then drops a's frames, hands b the
//     second lot, waits 200 ms, hands b the first lot and lets a's frames
//     through; b delivers m1, m2 and m3, in that order.
//   - Ephemeral: a, b; an ephemeral message is delivered on a perfect
//     network; then the network drops every frame of a from an ephemeral
//     Send until it has dropped one and 250 ms have passed; State on a
//     reports unacknowledged 0 right after that Send, the ephemeral
//     message is never delivered (it is not retransmitted), and a
//     persistent message sent after it is delivered and acknowledged.
//   - Restart/Receiver: a, b; after b delivered five messages, b crashes
//     (out of process its plugin process is killed; in process, where
//     nothing can be killed, it is stopped) and a sends five more; a new b
//     on the same data directory and identity delivers those five, the
//     network replays every frame a sent to b before the crash and none of
//     the first five (acknowledged before the crash) is delivered again,
//     and a's unacknowledged reaches 0.
//   - Restart/Unacknowledged: a, b; b delivers five messages (a chain) that
//     the suite does not acknowledge, and crashes; the new b delivers the
//     five again, in the order of their first delivery, and the suite
//     acknowledges them; after another crash and restart none of them is
//     delivered again.
//   - Restart/Sender: a, b; the network drops a's frames, a sends a
//     message and crashes as soon as Send returns; a new a on the same
//     data directory reports unacknowledged 1 and, once the network lets
//     its frames through, the message reaches b and a's unacknowledged
//     reaches 0.
//   - NonMember: a, b, and an outsider x that believes it is a member; x's
//     messages, and UP frames with random payloads from x and from an
//     unknown identity, deliver nothing at a or b and draw no frame to x;
//     a and b stay healthy and then exchange messages.
//   - Verdicts/Rejected (the validator hook, every layer): a, b, and c,
//     which is down until b's host has rejected a's message (named in
//     AckRequest.rejected only) and then hears nothing from a directly; c
//     never delivers it (b does not pass on what its host refused), and
//     after a crash and restart b does not deliver it again (a rejection
//     acknowledges).
//   - Verdicts/Invalid (layers that provide syncv1.CapValidity): a, b;
//     once b's host has rejected a's message, a's child and grandchild of
//     it are never delivered at b, an unrelated message is, and b reports
//     nothing pending.
//   - Verdicts/Deferred (syncv1.CapValidity): a, b, c; c's frames to b are
//     lost; b's host defers a's message until c's message, which a has;
//     b delivers c's message (from a) and then a's message again, which
//     its host then accepts. The second delivery in one run is allowed.
func Sync[T TB[T]](t T, open sdktest.Opener, o Options) {
	Layer(t, open, o)

	t.Run("DescribesSync", func(t T) {
		info, err := open(t).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.GetKind() != commonv1.LayerKind_LAYER_KIND_SYNC {
			t.Fatalf("kind %v, want %v", info.GetKind(), commonv1.LayerKind_LAYER_KIND_SYNC)
		}
	})
	t.Run("SendDeliver", func(t T) { syncSendDeliver(t, open, o) })
	t.Run("TraceFollowsSend", func(t T) { syncTraceFollowsSend(t, open, o) })
	t.Run("Lossy", func(t T) { syncLossy(t, open, o) })
	t.Run("Causal", func(t T) { syncCausal(t, open, o) })
	t.Run("Ephemeral", func(t T) { syncEphemeral(t, open, o) })
	t.Run("Restart", func(t T) {
		t.Run("Receiver", func(t T) { syncRestartReceiver(t, open, o) })
		t.Run("Sender", func(t T) { syncRestartSender(t, open, o) })
		t.Run("Unacknowledged", func(t T) { syncRestartUnacknowledged(t, open, o) })
	})
	t.Run("NonMember", func(t T) { syncNonMember(t, open, o) })
	t.Run("Verdicts", func(t T) {
		t.Run("Rejected", func(t T) { syncRejected(t, open, o) })
		t.Run("Invalid", func(t T) { syncInvalid(t, open, o) })
		t.Run("Deferred", func(t T) { syncDeferred(t, open, o) })
	})
}

// syncValidity skips a subtest of what only a layer with
// syncv1.CapValidity promises.
func syncValidity(t testing.TB, open sdktest.Opener) {
	info, err := open(t).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(info.GetProvides(), syncv1.CapValidity) {
		t.Skipf("the layer does not provide %q", syncv1.CapValidity)
	}
}

// syncRejected: what a host rejects, its layer never passes on, and never
// delivers again, even after a restart, though the suite names it in
// AckRequest.rejected only.
func syncRejected(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 11)
	view := syncMembers("a", "b", "c")
	a := n.start("a", 0, t.TempDir(), view)
	dirB := t.TempDir()
	b := n.start("b", 1, dirB, view)
	// c is down until b's host has rejected the message, and then hears
	// of a's messages only from b: what reaches it, b passed on after
	// the verdict.
	dirC := t.TempDir()
	c := &syncNode{name: "c", id: syncIdentity("c")}
	var bad []byte
	n.setVerdict(b, func(id []byte) (string, [][]byte) {
		if bytes.Equal(id, bad) {
			return "the suite's host refuses it", nil
		}
		return "", nil
	})
	n.cut(a, b, true) // until b's host knows the id it is to refuse
	id := n.send(a, "rejected", nil, false)
	n.mu.Lock()
	bad = id
	n.mu.Unlock()
	n.cut(a, b, false)
	n.neverAt(id, c)
	n.awaitDelivered(b, [][]byte{id})
	n.awaitAcked(b, [][]byte{id})
	n.cut(a, c, true)
	n.start("c", 2, dirC, view)
	good := n.send(a, "accepted after a rejection", nil, false)
	n.awaitDelivered(b, [][]byte{good})
	// Long enough for relays and retransmissions to happen.
	time.Sleep(4 * syncQuiet)
	n.crash(b)
	n.start("b", 1, dirB, view)
	n.settle()
}

// syncInvalid (syncv1.CapValidity): a message whose parent the host
// rejected is never delivered, nor is one whose parent depends on it in
// turn, nor passed on.
func syncInvalid(t testing.TB, open sdktest.Opener, o Options) {
	syncValidity(t, open)
	n := newSyncNet(t, open, o, 12)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	var bad []byte
	n.setVerdict(b, func(id []byte) (string, [][]byte) {
		if bytes.Equal(id, bad) {
			return "the suite's host refuses it", nil
		}
		return "", nil
	})
	n.cut(a, b, true) // until b's host knows the id it is to refuse
	id := n.send(a, "rejected parent", nil, false)
	n.mu.Lock()
	bad = id
	n.mu.Unlock()
	n.cut(a, b, false)
	n.awaitDelivered(b, [][]byte{id})
	n.awaitAcked(b, [][]byte{id})
	child := n.send(a, "child of a rejected message", [][]byte{id}, false)
	grandchild := n.send(a, "grandchild of a rejected message", [][]byte{child}, false)
	n.neverAt(child, b)
	n.neverAt(grandchild, b)
	other := n.send(a, "unrelated", nil, false)
	n.awaitDelivered(b, [][]byte{other})
	n.settle()
	if st := n.state(b); st.GetPending() != 0 {
		n.fatalf("b reports %d pending messages; the dependants of a rejected message are invalid, not pending", st.GetPending())
	}
}

// syncDeferred (syncv1.CapValidity): b's host defers a's message until
// c's, which b has not got (c's frames to b are lost); the message is
// delivered again after c's message is delivered, and then accepted.
func syncDeferred(t testing.TB, open sdktest.Opener, o Options) {
	syncValidity(t, open)
	n := newSyncNet(t, open, o, 13)
	view := syncMembers("a", "b", "c")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	c := n.start("c", 2, t.TempDir(), view)
	n.cut(c, b, true)
	dep := n.send(c, "dependency", nil, false)
	n.awaitDelivered(a, [][]byte{dep})
	var waiting []byte
	n.setVerdict(b, func(id []byte) (string, [][]byte) {
		if bytes.Equal(id, waiting) && !slices.ContainsFunc(n.logs[string(b.id)], func(d syncDelivery) bool { return bytes.Equal(d.frame.GetMessageId(), dep) }) {
			return "", [][]byte{dep}
		}
		return "", nil
	})
	n.cut(a, b, true)
	id := n.send(a, "deferred", nil, false)
	n.mu.Lock()
	waiting = id
	n.mu.Unlock()
	n.cut(a, b, false)
	n.awaitDelivered(b, [][]byte{id})
	n.awaitDelivered(b, [][]byte{dep})
	n.awaitAcked(b, [][]byte{id, dep})
	n.mu.Lock()
	var order []string
	first, second := -1, -1
	for i, d := range n.logs[string(b.id)] {
		switch {
		case bytes.Equal(d.frame.GetMessageId(), dep):
			first = i
		case bytes.Equal(d.frame.GetMessageId(), id) && first >= 0:
			second = i
		}
		order = append(order, n.label(d.frame.GetMessageId()))
	}
	n.mu.Unlock()
	if first < 0 || second < first {
		n.fatalf("b delivered %s; want the deferred message again after its dependency", strings.Join(order, ", "))
	}
	n.settle()
}

func syncSendDeliver(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 1)
	view := syncMembers("a", "b", "c")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	c := n.start("c", 2, t.TempDir(), view)
	tape := n.tap(a)
	var ids [][]byte
	for i := range 50 {
		ids = append(ids, n.send(a, fmt.Sprintf("a#%d", i), nil, false))
	}
	n.awaitDelivered(b, ids)
	n.awaitDelivered(c, ids)
	n.awaitUnacked(a, 0)
	n.untap(a)
	n.replay(tape)
	n.settle()
}

// sendTrace is the trace id the suite gives the Send of the message
// labelled label, as a host gives each send its own.
func sendTrace(label string) uint64 {
	h := sha256.Sum256([]byte("strata sync conformance trace " + label))
	return binary.BigEndian.Uint64(h[:8]) | 1
}

// syncTraceFollowsSend: the frames that carry a message sent alone carry
// the trace id of its Send (SendRequest.trace_id), so one send can be
// followed down the stack.
func syncTraceFollowsSend(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 7)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	const label = "traced"
	id := n.send(a, label, nil, false)
	n.awaitDelivered(b, [][]byte{id})
	n.mu.Lock()
	seen := n.downTraces[string(a.id)][sendTrace(label)]
	var got []uint64
	for tr := range n.downTraces[string(a.id)] {
		got = append(got, tr)
	}
	n.mu.Unlock()
	if !seen {
		n.fatalf("a carried its message down in frames with trace ids %v; none is %d, the trace id of its Send (SendRequest.trace_id)", got, sendTrace(label))
	}
	n.settle()
}

func syncLossy(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 2)
	view := syncMembers("a", "b", "c")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	c := n.start("c", 2, t.TempDir(), view)
	n.setFaults(syncFaults{drop: 0.3, dup: 0.1, delay: 20 * time.Millisecond})
	var fromA, fromB [][]byte
	for i := range 30 {
		for _, s := range []struct {
			node *syncNode
			ids  *[][]byte
		}{{a, &fromA}, {b, &fromB}} {
			var parents [][]byte
			if i > 0 {
				parents = [][]byte{(*s.ids)[i-1]}
			}
			*s.ids = append(*s.ids, n.send(s.node, fmt.Sprintf("%s#%d", s.node.name, i), parents, false))
		}
	}
	n.awaitDelivered(b, fromA)
	n.awaitDelivered(c, fromA)
	n.awaitDelivered(a, fromB)
	n.awaitDelivered(c, fromB)
	n.awaitUnacked(a, 0)
	n.awaitUnacked(b, 0)
	n.settle()
}

func syncCausal(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 3)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)

	first := n.hold(a)
	m1 := n.send(a, "m1", nil, false)
	n.awaitSeen(first, "a frame from a after it sent m1")
	second := n.hold(a)
	m2 := n.send(a, "m2, child of m1", [][]byte{m1}, false)
	m3 := n.send(a, "m3, child of m2", [][]byte{m2}, false)
	n.awaitSeen(second, "a frame from a after it sent m2 and m3")
	time.Sleep(syncLinger)
	n.drop(a)

	n.release(second) // the children first
	time.Sleep(syncQuiet / 2)
	n.release(first)
	n.pass(a)
	n.awaitDelivered(b, [][]byte{m1, m2, m3})
	n.settle()
}

func syncEphemeral(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 4)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)

	e1 := n.send(a, "e1, ephemeral, perfect network", nil, true)
	n.awaitDelivered(b, [][]byte{e1})

	blackout := n.drop(a)
	sent := time.Now()
	e2 := n.send(a, "e2, ephemeral, all of its frames dropped", nil, true)
	n.never(e2)
	if st := n.state(a); st.GetUnacknowledged() != 0 {
		t.Errorf("State counts %d unacknowledged messages right after an ephemeral Send; ephemeral messages are never acknowledged", st.GetUnacknowledged())
	}
	n.awaitSeen(blackout, "a frame from a after the ephemeral Send")
	time.Sleep(time.Until(sent.Add(syncBlackout)))
	n.pass(a)

	m := n.send(a, "m, persistent, after e2", nil, false)
	n.awaitDelivered(b, [][]byte{m})
	n.awaitUnacked(a, 0)
	n.settle()
}

func syncRestartReceiver(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 5)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	dirB := t.TempDir()
	b := n.start("b", 1, dirB, view)

	tape := n.tap(a)
	var before [][]byte
	for i := range 5 {
		before = append(before, n.send(a, fmt.Sprintf("before the restart #%d", i), nil, false))
	}
	n.awaitDelivered(b, before)
	n.awaitAcked(b, before)
	n.untap(a)
	n.crash(b)

	var during [][]byte
	for i := range 5 {
		during = append(during, n.send(a, fmt.Sprintf("while b is down #%d", i), nil, false))
	}
	b = n.start("b", 1, dirB, view)
	n.replay(tape)
	n.awaitDelivered(b, during)
	n.awaitUnacked(a, 0)
	n.settle()
}

func syncRestartUnacknowledged(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 8)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	dirB := t.TempDir()
	b := n.startAcking("b", 1, dirB, view, false)

	var ids, parents [][]byte
	for i := range 5 {
		id := n.send(a, fmt.Sprintf("delivered, never acknowledged #%d", i), parents, false)
		ids = append(ids, id)
		parents = [][]byte{id}
	}
	n.awaitDelivered(b, ids)
	n.awaitUnacked(a, 0)
	n.crash(b)

	// The host never acknowledged them: the new b delivers them again, in
	// the order it first did. This time the suite acknowledges them.
	b = n.start("b", 1, dirB, view)
	deadline := time.Now().Add(o.timeout())
	for len(n.deliveries(b)) < 2*len(ids) {
		if time.Now().After(deadline) {
			n.fatalf("timed out after %v: after a restart %s delivered %d of the %d messages it had delivered and the host had not acknowledged", o.timeout(), b.name, len(n.deliveries(b))-len(ids), len(ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
	again := n.deliveries(b)[len(ids):]
	for i := range ids {
		if !bytes.Equal(again[i], ids[i]) {
			n.mu.Lock()
			got, want := n.label(again[i]), n.label(ids[i])
			n.mu.Unlock()
			t.Errorf("redelivery %d is %s, want %s: unacknowledged messages come again in the order of their first delivery", i, got, want)
			break
		}
	}
	n.awaitAcked(b, ids)
	n.crash(b)

	// Acknowledged now: a further restart delivers none of them.
	b = n.start("b", 1, dirB, view)
	n.settle()
	if got := len(n.deliveries(b)); got != 2*len(ids) {
		t.Errorf("%s delivered %d times in all, want %d: twice each, and never after the acknowledgement", b.name, got, 2*len(ids))
	}
}

func syncRestartSender(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 6)
	view := syncMembers("a", "b")
	dirA := t.TempDir()
	a := n.start("a", 0, dirA, view)
	b := n.start("b", 1, t.TempDir(), view)

	n.drop(a)
	m := n.send(a, "sent just before a crash", nil, false)
	n.crash(a)
	a = n.start("a", 0, dirA, view)
	if st := n.state(a); st.GetUnacknowledged() != 1 {
		t.Errorf("after a restart, State reports %d unacknowledged messages, want 1: the message Send acknowledged before the crash", st.GetUnacknowledged())
	}
	n.pass(a)
	n.awaitDelivered(b, [][]byte{m})
	n.awaitUnacked(a, 0)
	n.settle()
}

func syncNonMember(t testing.TB, open sdktest.Opener, o Options) {
	n := newSyncNet(t, open, o, 7)
	view := syncMembers("a", "b")
	a := n.start("a", 0, t.TempDir(), view)
	b := n.start("b", 1, t.TempDir(), view)
	x := n.start("x", 2, t.TempDir(), syncMembers("a", "b", "x"))

	var prev [][]byte
	for i := range 3 {
		id := n.send(x, fmt.Sprintf("x#%d, from an outsider", i), prev, false)
		n.never(id)
		prev = [][]byte{id}
	}
	n.never(n.send(x, "x, ephemeral, from an outsider", nil, true))

	rng := rand.New(rand.NewPCG(7, 8))
	for _, in := range []*instance{a.in, b.in} {
		var frames []*commonv1.Frame
		for i := range 200 {
			from := x.id
			if i%2 == 1 {
				from = syncIdentity("stranger")
			}
			payload := make([]byte, rng.IntN(512))
			for j := range payload {
				payload[j] = byte(rng.UintN(256))
			}
			f := up(from, "", payload)
			f.Conversation = n.group
			frames = append(frames, f)
		}
		in.send(frames...)
	}
	time.Sleep(syncQuiet) // x retransmits, if it does, meanwhile
	a.in.healthy()
	b.in.healthy()

	ma := n.send(a, "a, after the outsiders", nil, false)
	mb := n.send(b, "b, after the outsiders", nil, false)
	n.awaitDelivered(b, [][]byte{ma})
	n.awaitDelivered(a, [][]byte{mb})
	n.awaitUnacked(a, 0)
	n.awaitUnacked(b, 0)
	n.settle()
}

// syncIdentity is the fixed 32-byte identity key of the suite's node name.
func syncIdentity(name string) []byte {
	h := sha256.Sum256([]byte("strata sync conformance identity " + name))
	return h[:]
}

// syncMembers returns the identity keys of the named nodes.
func syncMembers(names ...string) [][]byte {
	ids := make([][]byte, len(names))
	for i, name := range names {
		ids[i] = syncIdentity(name)
	}
	return ids
}

func syncControl(in *instance) syncv1.ControlClient {
	return syncv1.NewControlClient(in.conn.Control())
}

// syncNode is one running instance of the layer on the suite's network.
type syncNode struct {
	name string
	id   []byte
	view [][]byte // the members it was told
	in   *instance

	stop chan struct{}
	wg   sync.WaitGroup
	wake chan struct{}
	mu   sync.Mutex
	// inbox holds UP frames on their way into the instance.
	inbox []*commonv1.Frame

	// noAck: the suite, playing the host, never acknowledges this
	// instance's deliveries.
	noAck bool
	// acks holds ids of deliveries waiting to be acknowledged.
	acks    [][]byte
	ackWake chan struct{}
	// verdict, if set, is the suite's validator as this instance's host:
	// a reason to reject a delivered message, or dependencies to defer it
	// to; neither accepts it. Set and called under the network's mu.
	verdict func(id []byte) (reject string, deps [][]byte)
}

// ack queues the acknowledgement of a delivered message.
func (s *syncNode) ack(id []byte) {
	if s.noAck {
		return
	}
	s.mu.Lock()
	s.acks = append(s.acks, bytes.Clone(id))
	s.mu.Unlock()
	select {
	case s.ackWake <- struct{}{}:
	default:
	}
}

// push queues f for the instance after delay.
func (s *syncNode) push(f *commonv1.Frame, delay time.Duration) {
	if delay > 0 {
		time.AfterFunc(delay, func() { s.push(f, 0) })
		return
	}
	s.mu.Lock()
	s.inbox = append(s.inbox, f)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump hands queued frames to the instance until stop.
func (s *syncNode) pump(timeout time.Duration) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		frames := s.inbox
		s.inbox = nil
		s.mu.Unlock()
		if len(frames) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_ = s.in.link.Emit(ctx, frames...) // fails only once the instance is gone
		cancel()
	}
}

// syncFaults is what the network does to frames in transit.
type syncFaults struct {
	drop, dup float64       // probabilities
	delay     time.Duration // each frame is delayed by up to this
}

// syncGate intercepts a sender's frames: it drops them or holds them.
type syncGate struct {
	drop bool
	held []syncPacket
	seen int // frames that met the gate
}

// syncTape records a sender's frames as they are routed.
type syncTape struct{ packets []syncPacket }

// syncPacket is an UP frame on its way to the instance with identity to.
type syncPacket struct {
	to    []byte
	frame *commonv1.Frame
}

// syncDelivery is an UP frame an instance emitted, and whether the suite
// had already acknowledged that message to it when the frame came.
type syncDelivery struct {
	frame    *commonv1.Frame
	afterAck bool
	run      *syncNode // the running instance that emitted it
}

// syncSent is what the suite knows of a message it sent.
type syncSent struct {
	label   string
	author  []byte
	payload []byte
	parents [][]byte
	never   bool // must never be delivered
	// neverAt are the members (identity keys) that must never deliver it.
	neverAt map[string]bool
}

// syncNet is the network, the host and the bookkeeping of one subtest.
type syncNet struct {
	t     testing.TB
	open  sdktest.Opener
	o     Options
	group []byte
	trace uint64 // the last trace id the suite gave a frame; under mu

	mu     sync.Mutex
	rng    *rand.Rand
	faults syncFaults
	names  map[string]string    // identity -> node name
	online map[string]*syncNode // identity -> running instance
	gates  map[string]*syncGate // sender identity -> gate
	cuts   map[string]bool      // sender identity + receiver identity -> the link drops everything
	// deferred counts the suite's deferrals, by receiver identity and
	// message id: each allows one more delivery in the same run.
	deferred map[string]map[string]int
	tapes    map[string]*syncTape       // sender identity -> tape
	logs     map[string][]syncDelivery  // receiver identity -> its deliveries
	acked    map[string]map[string]bool // receiver identity -> ids it acknowledged
	sent     map[string]*syncSent       // message id -> message
	given    map[string]map[uint64]bool // receiver identity -> trace ids of the frames handed to it
	// downTraces are the trace ids of the DOWN frames each node emitted.
	downTraces map[string]map[uint64]bool
	// problems are breaches of the contract seen in transit.
	problems     []string
	problemCount map[string]int
}

func newSyncNet(t testing.TB, open sdktest.Opener, o Options, seed uint64) *syncNet {
	group := sha256.Sum256([]byte("strata sync conformance group"))
	n := &syncNet{
		t: t, open: open, o: o, group: group[:],
		rng:        rand.New(rand.NewPCG(seed, 0x5eed)),
		names:      make(map[string]string),
		online:     make(map[string]*syncNode),
		gates:      make(map[string]*syncGate),
		cuts:       make(map[string]bool),
		deferred:   make(map[string]map[string]int),
		tapes:      make(map[string]*syncTape),
		logs:       make(map[string][]syncDelivery),
		acked:      make(map[string]map[string]bool),
		sent:       make(map[string]*syncSent),
		given:      make(map[string]map[uint64]bool),
		downTraces: make(map[string]map[uint64]bool),

		problemCount: make(map[string]int),
	}
	// Registered first, so it runs after the instances' own cleanups.
	t.Cleanup(func() {
		n.mu.Lock()
		nodes := make([]*syncNode, 0, len(n.online))
		for _, s := range n.online {
			nodes = append(nodes, s)
		}
		n.online = map[string]*syncNode{}
		n.mu.Unlock()
		for _, s := range nodes {
			close(s.stop)
			s.wg.Wait()
		}
	})
	return n
}

// start opens, configures and starts an instance named name with its state
// in dir, joins it to the network and sets the group to view.
func (n *syncNet) start(name string, cfg int, dir string, view [][]byte) *syncNode {
	n.t.Helper()
	return n.startAcking(name, cfg, dir, view, true)
}

// startAcking is start, with the suite acknowledging the instance's
// deliveries (as a host does) or not.
func (n *syncNet) startAcking(name string, cfg int, dir string, view [][]byte, ack bool) *syncNode {
	n.t.Helper()
	id := syncIdentity(name)
	in := setupAs(n.t, n.open, n.o.config(cfg), &commonv1.StartRequest{BelowAddress: id}, id, dir)
	s := &syncNode{name: name, id: id, view: view, in: in, stop: make(chan struct{}), wake: make(chan struct{}, 1), noAck: !ack, ackWake: make(chan struct{}, 1)}
	n.mu.Lock()
	n.names[string(id)] = name
	n.online[string(id)] = s
	n.mu.Unlock()
	s.wg.Add(3)
	go n.route(s)
	go s.pump(n.o.timeout())
	go n.acker(s)
	ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
	defer cancel()
	if _, err := syncControl(in).SetGroup(ctx, &syncv1.GroupRequest{Id: n.group, Members: view}); err != nil {
		n.t.Fatalf("%s: SetGroup: %v", name, err)
	}
	return s
}

// crash ends an instance as abruptly as its mode allows: out of process
// it kills the plugin process; in process it stops the layer. The instance
// leaves the network first; what it emitted before is still routed.
func (n *syncNet) crash(s *syncNode) {
	n.t.Helper()
	n.mu.Lock()
	delete(n.online, string(s.id))
	n.mu.Unlock()
	killed := false
	if p, ok := s.in.conn.(interface{ Pid() int }); ok && p.Pid() > 0 {
		if proc, err := os.FindProcess(p.Pid()); err == nil && proc.Kill() == nil {
			killed = true
			select {
			case <-s.in.conn.Done():
			case <-time.After(n.o.timeout()):
				n.t.Fatalf("%s: the plugin process did not exit after it was killed", s.name)
			}
		}
	}
	if !killed {
		ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
		err := s.in.conn.Stop(ctx)
		cancel()
		if err != nil {
			n.t.Fatalf("%s: Stop: %v", s.name, err)
		}
	}
	s.in.link.Close()
	s.in.conn.Close()
	close(s.stop)
	s.wg.Wait()
	for {
		select {
		case f := <-s.in.frames:
			n.take(s, f)
		default:
			return
		}
	}
}

// route takes what an instance emits until it stops.
func (n *syncNet) route(s *syncNode) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case f := <-s.in.frames:
			n.take(s, f)
		}
	}
}

// acker acknowledges the instance's deliveries with Ack, as a host does
// once it has stored them, until stop. An acknowledgement counts from the
// moment Ack returns without error: the layer has made it durable.
func (n *syncNet) acker(s *syncNode) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ackWake:
		}
		s.mu.Lock()
		ids := s.acks
		s.acks = nil
		s.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), syncAckChunk)]
			ids = ids[len(chunk):]
			req, done := n.verdicts(s, chunk)
			ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
			_, err := syncControl(s.in).Ack(ctx, req)
			cancel()
			if err != nil {
				break // the instance is gone or stopping: they stay unacknowledged
			}
			n.mu.Lock()
			set := n.acked[string(s.id)]
			if set == nil {
				set = make(map[string]bool)
				n.acked[string(s.id)] = set
			}
			for _, id := range done {
				set[string(id)] = true
			}
			n.mu.Unlock()
		}
	}
}

// verdicts makes the Ack of ids for s, with s's verdicts: a rejected
// message goes in AckRequest.rejected only (a layer acknowledges it from
// there), a deferred one in AckRequest.deferred only. done are the ids
// the Ack acknowledges.
func (n *syncNet) verdicts(s *syncNode, ids [][]byte) (req *syncv1.AckRequest, done [][]byte) {
	req = &syncv1.AckRequest{Group: n.group}
	n.mu.Lock()
	defer n.mu.Unlock()
	verdict := s.verdict
	for _, id := range ids {
		var reject string
		var deps [][]byte
		if verdict != nil {
			reject, deps = verdict(id)
		}
		switch {
		case reject != "":
			req.Rejected = append(req.Rejected, &syncv1.Rejection{MessageId: id, Reason: reject})
			done = append(done, id)
		case len(deps) > 0:
			req.Deferred = append(req.Deferred, &syncv1.Deferral{MessageId: id, Dependencies: deps})
			if n.deferred[string(s.id)] == nil {
				n.deferred[string(s.id)] = make(map[string]int)
			}
			n.deferred[string(s.id)][string(id)]++
		default:
			req.MessageIds = append(req.MessageIds, id)
			done = append(done, id)
		}
	}
	return req, done
}

// take handles one frame an instance emitted: a DOWN frame goes to the
// network, an UP frame is a delivery.
func (n *syncNet) take(s *syncNode, f *commonv1.Frame) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch f.GetDirection() {
	case commonv1.Direction_DIRECTION_UP:
		recv := string(s.id)
		n.inspect(s, f)
		n.logs[recv] = append(n.logs[recv], syncDelivery{frame: f, afterAck: n.acked[recv][string(f.GetMessageId())], run: s})
		s.ack(f.GetMessageId())
		return
	case commonv1.Direction_DIRECTION_DOWN:
	default:
		n.problem("%s emitted a frame with direction %v\n\tframe: %s", s.name, f.GetDirection(), sdktest.FormatFrame(f))
		return
	}
	if !bytes.Equal(f.GetConversation(), n.group) {
		n.problem("%s emitted a DOWN frame with conversation %x, want the group %x\n\tframe: %s", s.name, f.GetConversation(), n.group, sdktest.FormatFrame(f))
	}
	if n.downTraces[string(s.id)] == nil {
		n.downTraces[string(s.id)] = make(map[uint64]bool)
	}
	n.downTraces[string(s.id)][f.GetTraceId()] = true
	var to [][]byte
	switch {
	case len(f.GetPeer()) == 0:
		for _, m := range s.view {
			if !bytes.Equal(m, s.id) {
				to = append(to, m)
			}
		}
	case bytes.Equal(f.GetPeer(), s.id):
		n.problem("%s emitted a DOWN frame for itself\n\tframe: %s", s.name, sdktest.FormatFrame(f))
		return
	case !syncContains(s.view, f.GetPeer()):
		n.problem("%s emitted a DOWN frame for %s, not a member of its group\n\tframe: %s", s.name, n.nameOf(f.GetPeer()), sdktest.FormatFrame(f))
		return
	default:
		to = [][]byte{f.GetPeer()}
	}
	for _, dst := range to {
		n.trace++
		if n.given[string(dst)] == nil {
			n.given[string(dst)] = make(map[uint64]bool)
		}
		n.given[string(dst)][n.trace] = true
		p := syncPacket{to: dst, frame: &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_UP,
			TraceId:      n.trace,
			Conversation: bytes.Clone(f.GetConversation()),
			Peer:         bytes.Clone(s.id),
			Payload:      bytes.Clone(f.GetPayload()),
		}}
		if tape := n.tapes[string(s.id)]; tape != nil {
			tape.packets = append(tape.packets, syncClonePacket(p))
		}
		if n.cuts[string(s.id)+string(dst)] {
			continue
		}
		if g := n.gates[string(s.id)]; g != nil {
			g.seen++
			if !g.drop {
				g.held = append(g.held, p)
			}
			continue
		}
		n.transmit(p, n.faults)
	}
}

// transmit puts p on the wire with faults; n.mu is held.
func (n *syncNet) transmit(p syncPacket, faults syncFaults) {
	if faults.drop > 0 && n.rng.Float64() < faults.drop {
		return
	}
	copies := 1
	if faults.dup > 0 && n.rng.Float64() < faults.dup {
		copies = 2
	}
	dst := n.online[string(p.to)]
	if dst == nil {
		return // down: it misses the frame
	}
	for i := range copies {
		f := p.frame
		if i > 0 {
			f = syncClonePacket(p).frame
		}
		var delay time.Duration
		if faults.delay > 0 {
			delay = time.Duration(n.rng.Int64N(int64(faults.delay)))
		}
		dst.push(f, delay)
	}
}

func syncClonePacket(p syncPacket) syncPacket {
	return syncPacket{to: p.to, frame: &commonv1.Frame{
		Direction:    p.frame.GetDirection(),
		TraceId:      p.frame.GetTraceId(),
		Conversation: bytes.Clone(p.frame.GetConversation()),
		Peer:         bytes.Clone(p.frame.GetPeer()),
		Payload:      bytes.Clone(p.frame.GetPayload()),
	}}
}

// problem records a breach of the contract that the network saw; n.mu is
// held. Each distinct problem is kept once, with a count.
func (n *syncNet) problem(format string, args ...any) {
	const max = 20
	msg := fmt.Sprintf(format, args...)
	if n.problemCount[msg] == 0 && len(n.problems) < max {
		n.problems = append(n.problems, msg)
	}
	n.problemCount[msg]++
}

// problemList returns the problems seen, with their counts; n.mu is held.
func (n *syncNet) problemList() []string {
	list := make([]string, len(n.problems))
	for i, p := range n.problems {
		list[i] = p
		if c := n.problemCount[p]; c > 1 {
			list[i] += fmt.Sprintf(" (%d times)", c)
		}
	}
	return list
}

// inspect checks an UP frame as s emits it, for what can be told at once:
// it has a message id; a message's payload, conversation and author are
// those sent; the first delivery of a message at an instance carries the
// trace id of a frame the suite handed it. n.mu is held.
func (n *syncNet) inspect(s *syncNode, f *commonv1.Frame) {
	who, id := s.name, f.GetMessageId()
	if len(id) == 0 {
		n.problem("%s delivered a frame without a message id\n\tframe: %s", who, sdktest.FormatFrame(f))
		return
	}
	sent := n.sent[string(id)]
	if sent == nil {
		// Send may not have returned yet; but a payload the suite knows
		// under another id is a wrong id.
		for sid, x := range n.sent {
			if bytes.Equal(x.payload, f.GetPayload()) {
				n.problem("%s delivered %s with message id %x, want %x, the id Send returned\n\tframe: %s", who, n.label([]byte(sid)), id, []byte(sid), sdktest.FormatFrame(f))
			}
		}
		return
	}
	if !bytes.Equal(f.GetPayload(), sent.payload) {
		n.problem("%s delivered %s with payload %q, want %q\n\tframe: %s", who, n.label(id), f.GetPayload(), sent.payload, sdktest.FormatFrame(f))
	}
	if !bytes.Equal(f.GetConversation(), n.group) {
		n.problem("%s delivered %s with conversation %x, want the group %x\n\tframe: %s", who, n.label(id), f.GetConversation(), n.group, sdktest.FormatFrame(f))
	}
	if !bytes.Equal(f.GetPeer(), sent.author) {
		n.problem("%s delivered %s with peer %s, want its author %s\n\tframe: %s", who, n.label(id), n.nameOf(f.GetPeer()), n.nameOf(sent.author), sdktest.FormatFrame(f))
	}
	recv := string(s.id)
	again := slices.ContainsFunc(n.logs[recv], func(d syncDelivery) bool { return bytes.Equal(d.frame.GetMessageId(), id) })
	if !again && string(sent.author) != recv && !n.given[recv][f.GetTraceId()] {
		n.problem("%s delivered %s with trace id %d, which is none the suite gave the frames it handed %s: a layer copies the trace id of the frame it delivers from\n\tframe: %s", who, n.label(id), f.GetTraceId(), who, sdktest.FormatFrame(f))
	}
}

// failOnProblem ends the subtest if the network saw a breach of the
// contract; every wait calls it, so a bad frame fails at once.
func (n *syncNet) failOnProblem() {
	n.t.Helper()
	n.mu.Lock()
	problems := n.problemList()
	n.mu.Unlock()
	if len(problems) > 0 {
		n.t.Fatal("the network saw:\n\t" + strings.Join(problems, "\n\t"))
	}
}

// fatalf ends the subtest, adding what the network saw wrong so far: a
// wait that times out often has its cause there.
func (n *syncNet) fatalf(format string, args ...any) {
	n.t.Helper()
	msg := fmt.Sprintf(format, args...)
	n.mu.Lock()
	if len(n.problems) > 0 {
		msg += "\nthe network saw:\n\t" + strings.Join(n.problemList(), "\n\t")
	}
	n.mu.Unlock()
	n.t.Fatal(msg)
}

func (n *syncNet) nameOf(id []byte) string {
	if len(id) == 0 {
		return "- (empty)"
	}
	if name, ok := n.names[string(id)]; ok {
		return name
	}
	return fmt.Sprintf("%x", id)
}

// label names a message id in failure messages; n.mu is held.
func (n *syncNet) label(id []byte) string {
	if s := n.sent[string(id)]; s != nil {
		return fmt.Sprintf("%q", s.label)
	}
	return fmt.Sprintf("message %x", id)
}

func (n *syncNet) setFaults(f syncFaults) {
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
}

// hold makes the network hold every frame s emits from now on, until
// another gate replaces this one; release hands them on.
func (n *syncNet) hold(s *syncNode) *syncGate {
	g := &syncGate{}
	n.mu.Lock()
	n.gates[string(s.id)] = g
	n.mu.Unlock()
	return g
}

// drop makes the network drop every frame s emits from now on.
func (n *syncNet) drop(s *syncNode) *syncGate {
	g := &syncGate{drop: true}
	n.mu.Lock()
	n.gates[string(s.id)] = g
	n.mu.Unlock()
	return g
}

// pass lets s's frames through again.
func (n *syncNet) pass(s *syncNode) {
	n.mu.Lock()
	delete(n.gates, string(s.id))
	n.mu.Unlock()
}

// release delivers what g held, in order and without faults.
func (n *syncNet) release(g *syncGate) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range g.held {
		n.transmit(p, syncFaults{})
	}
	g.held = nil
}

// tap starts recording the frames s emits, as delivered (before faults).
func (n *syncNet) tap(s *syncNode) *syncTape {
	tape := &syncTape{}
	n.mu.Lock()
	n.tapes[string(s.id)] = tape
	n.mu.Unlock()
	return tape
}

func (n *syncNet) untap(s *syncNode) {
	n.mu.Lock()
	delete(n.tapes, string(s.id))
	n.mu.Unlock()
}

// replay delivers every recorded frame again, without faults: a late
// duplicate of each, which the network below may produce.
func (n *syncNet) replay(tape *syncTape) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range tape.packets {
		n.transmit(syncClonePacket(p), syncFaults{})
	}
}

// send sends a message from s with Send and records it.
func (n *syncNet) send(s *syncNode, label string, parents [][]byte, ephemeral bool) []byte {
	n.t.Helper()
	n.mu.Lock()
	payload := []byte(fmt.Sprintf("strata sync conformance: %s |", label))
	for range n.rng.IntN(32) {
		payload = append(payload, byte(n.rng.UintN(256)))
	}
	n.mu.Unlock()
	if limit := s.in.info.GetMaxPayload(); limit != 0 && uint32(len(payload)) > limit {
		n.t.Fatalf("%s declares a payload limit of %d bytes, too small for the suite's %d-byte messages", s.name, limit, len(payload))
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
	defer cancel()
	resp, err := syncControl(s.in).Send(ctx, &syncv1.SendRequest{Group: n.group, Payload: payload, Parents: parents, Ephemeral: ephemeral, TraceId: sendTrace(label)})
	if err != nil {
		n.t.Fatalf("%s: Send %q: %v", s.name, label, err)
	}
	id := resp.GetMessageId()
	if len(id) == 0 {
		n.t.Fatalf("%s: Send %q returned an empty message id", s.name, label)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if prev := n.sent[string(id)]; prev != nil {
		n.t.Fatalf("%s: Send returned the id %x for both %q and %q", s.name, id, prev.label, label)
	}
	n.sent[string(id)] = &syncSent{label: label, author: s.id, payload: payload, parents: parents}
	return id
}

// never marks a message that no member may deliver.
func (n *syncNet) never(id []byte) {
	n.mu.Lock()
	n.sent[string(id)].never = true
	n.mu.Unlock()
}

// neverAt marks a message that s may never deliver.
func (n *syncNet) neverAt(id []byte, s *syncNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sent := n.sent[string(id)]
	if sent.neverAt == nil {
		sent.neverAt = make(map[string]bool)
	}
	sent.neverAt[string(s.id)] = true
}

// cut makes the network drop every frame from one node to another.
func (n *syncNet) cut(from, to *syncNode, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[string(from.id)+string(to.id)] = cut
}

// setVerdict sets s's host's validator (syncNode.verdict).
func (n *syncNet) setVerdict(s *syncNode, v func(id []byte) (string, [][]byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s.verdict = v
}

// state asks s for the group's State.
func (n *syncNet) state(s *syncNode) *syncv1.StateResponse {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
	defer cancel()
	st, err := syncControl(s.in).State(ctx, &syncv1.StateRequest{Group: n.group})
	if err != nil {
		n.t.Fatalf("%s: State: %v", s.name, err)
	}
	return st
}

// awaitUnacked waits until s's State reports want unacknowledged messages.
func (n *syncNet) awaitUnacked(s *syncNode, want uint64) {
	n.t.Helper()
	deadline := time.Now().Add(n.o.timeout())
	for {
		n.failOnProblem()
		st := n.state(s)
		if st.GetUnacknowledged() == want {
			return
		}
		if time.Now().After(deadline) {
			n.fatalf("timed out after %v waiting for %s to report %d unacknowledged messages; State: %v", n.o.timeout(), s.name, want, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitSeen waits until g has met a frame.
func (n *syncNet) awaitSeen(g *syncGate, what string) {
	n.t.Helper()
	deadline := time.Now().Add(n.o.timeout())
	for {
		n.failOnProblem()
		n.mu.Lock()
		seen := g.seen
		n.mu.Unlock()
		if seen > 0 {
			return
		}
		if time.Now().After(deadline) {
			n.fatalf("timed out after %v waiting for %s", n.o.timeout(), what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// awaitAcked waits until the suite's acknowledgement of every message of
// ids to s has returned.
func (n *syncNet) awaitAcked(s *syncNode, ids [][]byte) {
	n.t.Helper()
	deadline := time.Now().Add(n.o.timeout())
	for {
		n.failOnProblem()
		n.mu.Lock()
		missing := 0
		for _, id := range ids {
			if !n.acked[string(s.id)][string(id)] {
				missing++
			}
		}
		n.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			n.fatalf("timed out after %v: Ack to %s did not return for %d of %d messages", n.o.timeout(), s.name, missing, len(ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveries returns the ids s delivered, in order, repeats included.
func (n *syncNet) deliveries(s *syncNode) [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][]byte
	for _, d := range n.logs[string(s.id)] {
		out = append(out, d.frame.GetMessageId())
	}
	return out
}

// awaitDelivered waits until s has delivered every message of ids.
func (n *syncNet) awaitDelivered(s *syncNode, ids [][]byte) {
	n.t.Helper()
	deadline := time.Now().Add(n.o.timeout())
	for {
		n.failOnProblem()
		n.mu.Lock()
		got := make(map[string]bool)
		for _, d := range n.logs[string(s.id)] {
			got[string(d.frame.GetMessageId())] = true
		}
		var missing []string
		for _, id := range ids {
			if !got[string(id)] {
				missing = append(missing, n.label(id))
			}
		}
		n.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			got := len(ids) - len(missing)
			if len(missing) > 5 {
				missing = append(missing[:5], "...")
			}
			n.fatalf("timed out after %v: %s delivered %d of %d messages; missing %s", n.o.timeout(), s.name, got, len(ids), strings.Join(missing, ", "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle watches for syncQuiet, then checks everything delivered so far
// and every problem the network saw.
func (n *syncNet) settle() {
	n.t.Helper()
	time.Sleep(syncQuiet)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.problemList() {
		n.t.Error(p)
	}
	for recv, deliveries := range n.logs {
		who := n.nameOf([]byte(recv))
		at := make(map[string]bool)
		runs := make(map[string]map[*syncNode]bool) // id -> runs that delivered it
		for _, d := range deliveries {
			f := d.frame
			id := f.GetMessageId()
			s := n.sent[string(id)]
			switch {
			case s == nil:
				n.t.Errorf("%s delivered a message no member sent: message id %x, peer %s, payload %q", who, id, n.nameOf(f.GetPeer()), f.GetPayload())
				continue
			case s.never:
				n.t.Errorf("%s delivered %s, which must never be delivered", who, n.label(id))
			case s.neverAt[recv]:
				n.t.Errorf("%s delivered %s, which it must never deliver", who, n.label(id))
			}
			if runs[string(id)] == nil {
				runs[string(id)] = make(map[*syncNode]bool)
			}
			if at[string(id)] {
				// Again after a restart is what an unacknowledged delivery
				// must be; again after the host acknowledged it, or twice in
				// one run of the instance, is not.
				switch {
				case d.afterAck:
					n.t.Errorf("%s delivered %s again after the host acknowledged it", who, n.label(id))
				case runs[string(id)][d.run] && n.deferred[recv][string(id)] > 0:
					n.deferred[recv][string(id)]-- // delivered again after a deferral
				case runs[string(id)][d.run]:
					n.t.Errorf("%s delivered %s more than once in one run", who, n.label(id))
				}
				runs[string(id)][d.run] = true
				continue
			}
			at[string(id)] = true
			runs[string(id)][d.run] = true
			if !bytes.Equal(f.GetPayload(), s.payload) {
				n.t.Errorf("%s delivered %s with payload %q, want %q", who, n.label(id), f.GetPayload(), s.payload)
			}
			if !bytes.Equal(f.GetConversation(), n.group) {
				n.t.Errorf("%s delivered %s with conversation %x, want the group %x", who, n.label(id), f.GetConversation(), n.group)
			}
			if !bytes.Equal(f.GetPeer(), s.author) {
				n.t.Errorf("%s delivered %s with peer %s, want its author %s", who, n.label(id), n.nameOf(f.GetPeer()), n.nameOf(s.author))
			}
			for _, p := range s.parents {
				if ps := n.sent[string(p)]; ps != nil && string(ps.author) == recv {
					continue // its own message: it need not deliver it
				}
				if !at[string(p)] {
					n.t.Errorf("%s delivered %s before its parent %s", who, n.label(id), n.label(p))
				}
			}
		}
	}
}

func syncContains(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
