package devp2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/p2p/enode"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// flowFrames is how many 2 KiB frames the flow-control tests send: more
// than the receiver's queue to the host (1 MiB for the peer, and a batch
// in the hands of its emitter), the loopback socket buffers and the
// sender's queue together hold, so the sender must wait.
const flowFrames = 16000

// numberedFrame is a DOWN frame on shh, code 1, that carries i and random
// bytes (which devp2p's snappy compression cannot shrink).
func numberedFrame(to enode.ID, i int) *commonv1.Frame {
	p := make([]byte, 2048)
	var seed [32]byte
	binary.BigEndian.PutUint32(seed[:], uint32(i))
	_, _ = rand.NewChaCha8(seed).Read(p[5:])
	p[0] = 1
	binary.BigEndian.PutUint32(p[1:], uint32(i))
	return down(to, "shh", p)
}

// droppedCounters returns a layer's non-zero dropped_* counters.
func droppedCounters(tn *testNode) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range tn.l.Health(context.Background()).GetCounters() {
		if v > 0 && len(k) > 8 && k[:8] == "dropped_" {
			out[k] = v
		}
	}
	return out
}

// TestSlowReceiverSlowsSender: the receiving node's host takes nothing for
// a while, so its layer stops reading the connection and the sender's
// queue (4 frames) fills: HandleBatch waits instead of dropping, and once
// the host takes frames again every frame arrives, in order, with nothing
// dropped on either side.
func TestSlowReceiverSlowsSender(t *testing.T) {
	a := startNodeT(t, "", `{"listen":"127.0.0.1:0","queue":4}`, shh)
	held := newGate()
	b := startNodeWith(t, New(), held, "", staticConfig(t, nil, a.url()), shh)
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, b.id())

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		batch := &commonv1.Batch{}
		for i := range flowFrames {
			batch.Frames = append(batch.Frames, numberedFrame(b.id(), i))
		}
		a.l.HandleBatch(context.Background(), batch)
	}()
	// The sender is slowed: it waits for room rather than returning.
	deadline := time.Now().Add(waitFor)
	for a.counter("queue_full_waits") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the sender never waited for room; counters %v", a.l.Health(context.Background()).GetCounters())
		}
		time.Sleep(10 * time.Millisecond)
	}
	held.open()
	for i := range flowFrames {
		f := b.expectFrame(t)
		if got := int(binary.BigEndian.Uint32(f.GetPayload()[1:])); got != i || !bytes.Equal(f.GetPeer(), a.id().Bytes()) {
			t.Fatalf("frame %d carries %d", i, got)
		}
	}
	<-sent
	a.waitCounter(t, "frames_sent", flowFrames)
	for _, n := range []*testNode{a, b} {
		if d := droppedCounters(n); len(d) > 0 {
			t.Errorf("dropped: %v", d)
		}
	}
}

// rawPeer starts a go-ethereum devp2p server whose shh handler is run,
// connects it to tn, and returns its id once tn has it as a peer.
func rawPeer(t *testing.T, tn *testNode, run func(*p2p.Peer, p2p.MsgReadWriter) error) enode.ID {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := &p2p.Server{Config: p2p.Config{
		PrivateKey: key, MaxPeers: 1, NoDiscovery: true, ListenAddr: "127.0.0.1:0",
		Logger:    log.NewLogger(log.DiscardHandler()),
		Protocols: []p2p.Protocol{{Name: "shh", Version: 6, Length: 128, Run: run}},
	}}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	id := srv.Self().ID()
	srv.AddPeer(enode.MustParse(tn.url()))
	tn.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, id)
	return id
}

// deafPeer connects tn to a devp2p node whose shh handler never reads: a
// peer that takes nothing.
func deafPeer(t *testing.T, tn *testNode) enode.ID {
	quit := make(chan struct{})
	id := rawPeer(t, tn, func(*p2p.Peer, p2p.MsgReadWriter) error {
		<-quit
		return nil
	})
	t.Cleanup(func() { close(quit) }) // before the server's Stop, which waits for the handler
	return id
}

// TestStalledPeerIsReset: a peer that reads nothing (a devp2p node whose
// shh handler never reads) is disconnected after the stall timeout, what
// was queued for it, the frame that waited and those after it are dropped
// and counted, and HandleBatch returns.
func TestStalledPeerIsReset(t *testing.T) {
	l := New()
	l.stall = 300 * time.Millisecond
	a := startNodeWith(t, l, &sdktest.Recorder{}, "", `{"listen":"127.0.0.1:0","queue":4}`, shh)
	deaf := deafPeer(t, a)

	batch := &commonv1.Batch{}
	for i := range flowFrames {
		batch.Frames = append(batch.Frames, numberedFrame(deaf, i))
	}
	a.l.HandleBatch(context.Background(), batch)
	if got := a.counter("peers_reset_slow"); got != 1 {
		t.Errorf("peers_reset_slow = %d, want 1", got)
	}
	if a.counter("dropped_slow_peer") == 0 {
		t.Errorf("no frame counted in dropped_slow_peer")
	}
	if testing.Short() {
		return
	}
	// The connection goes once devp2p's own write timeout (20 s) ends the
	// write that is stuck; then every frame is either sent or counted.
	a.rec.NextEvent(t, 30*time.Second, "the stalled peer to be disconnected", func(ev *commonv1.Event) bool {
		e := ev.GetPeer()
		return e.GetState() == commonv1.PeerState_PEER_STATE_DISCONNECTED && enode.ID(e.GetPeer()) == deaf
	})
	c := a.l.Health(context.Background()).GetCounters()
	lost := c["dropped_slow_peer"] + c["dropped_write_error"]
	if c["dropped_slow_peer"] == 0 || c["frames_sent"]+lost != flowFrames {
		t.Errorf("want every frame sent or counted lost, with some dropped_slow_peer; counters %v", c)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestDeafPeerHoldsOnlyItsBudget: frames of 64 KiB for a peer that takes
// nothing are queued up to the peer's byte budget (4 MiB by default), not
// up to the queue's 1,024 frames (64 MiB): the sender's heap grows by the
// budget while the next frame waits, and the peer is reset once that frame
// has waited the stall timeout, with what was queued for it dropped.
func TestDeafPeerHoldsOnlyItsBudget(t *testing.T) {
	const size = 64 << 10
	l := New()
	l.stall = 2 * time.Second
	a := startNodeWith(t, l, &sdktest.Recorder{}, "", loopback, shh)
	deaf := deafPeer(t, a)

	before := heapInUse()
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := make([]byte, size) // the host's batch is gone once HandleBatch returns
			p[0] = 1
			binary.BigEndian.PutUint32(p[1:], uint32(i))
			a.send(down(deaf, "shh", p))
		}
	}()
	defer func() { close(stop); <-sent }()
	// The loopback socket's buffers take frames until they are full;
	// then the writer is stuck, and the sender waits for good.
	stuck(t, a)
	after := heapInUse()
	held := after - min(before, after)
	queued := a.counter("out_queued_bytes")
	t.Logf("while the frame waits: heap +%d KiB, out_queued_bytes %d KiB", held>>10, queued>>10)
	if queued > p2pkit.DefaultPeerOutBytes {
		t.Errorf("out_queued_bytes = %d, above the budget %d", queued, p2pkit.DefaultPeerOutBytes)
	}
	// The budget, the frame that waits, one in the writer's hands and
	// go-ethereum's write buffer, and some slack for the heap's own noise.
	if limit := uint64(p2pkit.DefaultPeerOutBytes + 4<<20); held > limit {
		t.Errorf("the sender holds %d KiB more heap for a peer that takes nothing; want at most %d KiB", held>>10, limit>>10)
	}
	eventually(t, "the peer to be reset", func() bool { return a.counter("peers_reset_slow") == 1 })
	eventually(t, "what was queued for it to be dropped", func() bool { return a.counter("out_queued_bytes") <= size })
	if a.counter("dropped_slow_peer") < p2pkit.DefaultPeerOutBytes/size-1 {
		t.Errorf("dropped_slow_peer = %d, want at least the %d frames queued", a.counter("dropped_slow_peer"), p2pkit.DefaultPeerOutBytes/size-1)
	}
}

// stuck waits until tn's sender waits for room and its writers have sent
// nothing for 200 ms.
func stuck(t testing.TB, tn *testNode) {
	t.Helper()
	eventually(t, "a frame to wait for room", func() bool { return tn.counter("queue_full_waits") > 0 })
	sent, since := tn.counter("frames_sent"), time.Now()
	eventually(t, "the writers to be stuck", func() bool {
		if now := tn.counter("frames_sent"); now != sent {
			sent, since = now, time.Now()
		}
		return time.Since(since) > 200*time.Millisecond
	})
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOversizeMessageDisconnects: a peer that sends a message above
// max_frame is disconnected as soon as the layer sees the message's size,
// the message is counted, and nothing goes up.
func TestOversizeMessageDisconnects(t *testing.T) {
	a := startNodeT(t, "", `{"listen":"127.0.0.1:0","max_frame":1024}`, shh)
	ended := make(chan error, 1)
	big := rawPeer(t, a, func(_ *p2p.Peer, rw p2p.MsgReadWriter) error {
		// 1,024 bytes and the code byte: one above max_frame.
		if err := rw.WriteMsg(p2p.Msg{Code: 1, Size: 1024, Payload: bytes.NewReader(make([]byte, 1024))}); err != nil {
			ended <- err
			return err
		}
		for {
			if _, err := rw.ReadMsg(); err != nil {
				ended <- err
				return err
			}
		}
	})
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_DISCONNECTED, big)
	<-ended
	if a.counter("dropped_oversize") != 1 || a.counter("peers_reset_oversize") != 1 {
		t.Errorf("counters %v", a.l.Health(context.Background()).GetCounters())
	}
	if f := a.rec.TryNext(0, nil); f != nil {
		t.Errorf("a frame went up: %d bytes", len(f.GetPayload()))
	}
}

// TestPeerRateSlowsNotDrops: a receiver with peer_in_rate 1 MiB/s and a
// 64 KiB burst gets 512 KiB from a peer: its reader waits for the bucket
// (rate_waits), and every frame arrives, in order, with nothing dropped.
func TestPeerRateSlowsNotDrops(t *testing.T) {
	b := startNodeT(t, "", `{"listen":"127.0.0.1:0","peer_in_rate":1048576,"peer_in_burst":65536}`, shh)
	a := startNodeT(t, "", staticConfig(t, nil, b.url()), shh)
	connected(t, b, a)
	const n = 512
	for i := range n {
		p := make([]byte, 1024)
		p[0] = 1
		binary.BigEndian.PutUint32(p[1:], uint32(i))
		a.send(down(b.id(), "shh", p))
	}
	for i := range n {
		if got := int(binary.BigEndian.Uint32(b.expectFrame(t).GetPayload()[1:])); got != i {
			t.Fatalf("frame %d carries %d", i, got)
		}
	}
	if b.counter("rate_waits") == 0 {
		t.Error("the reader never waited for its bucket")
	}
	for _, n := range []*testNode{a, b} {
		if d := droppedCounters(n); len(d) > 0 {
			t.Errorf("dropped: %v", d)
		}
	}
}

// opaque is a protocol of one message code: frames are the message.
func opaque(name string) *commonv1.Protocol {
	return &commonv1.Protocol{Name: name, Version: 1, MessageCodes: 1}
}

// floodProtocols are the protocols a flooder sends on.
var floodProtocols = func() []*commonv1.Protocol {
	var out []*commonv1.Protocol
	for i := range 8 {
		out = append(out, opaque(fmt.Sprintf("flood%d", i)))
	}
	return out
}()

// chat is the quiet peer's protocol.
var chat = opaque("chat")

// flood sends n frames of 1 KiB from f to peer to, spread over
// floodProtocols, in the background until the test ends.
func flood(t testing.TB, f *testNode, to enode.ID, n int) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		for i := 0; i < n; i += 256 {
			batch := &commonv1.Batch{}
			for j := i; j < min(i+256, n); j++ {
				p := make([]byte, 1024)
				p[0] = 'F'
				binary.BigEndian.PutUint32(p[1:], uint32(j))
				batch.Frames = append(batch.Frames, down(to, floodProtocols[j%len(floodProtocols)].GetName(), p))
			}
			f.l.HandleBatch(ctx, batch)
			if ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// floodSetup starts a receiver whose host takes one call per step, a
// flooder sending it frames on eight protocols, and a quiet peer on chat;
// it returns once the flooder waits for room (the receiver stopped reading
// it).
func floodSetup(t *testing.T) (r, f, q *testNode, host *stepHost) {
	host = newStepHost()
	r = startNodeWith(t, New(), host, "", loopback, append([]*commonv1.Protocol{chat}, floodProtocols...)...)
	f = startNodeT(t, "", staticConfig(t, nil, r.url()), floodProtocols...)
	q = startNodeT(t, "", staticConfig(t, nil, r.url()), chat)
	connected(t, r, f, q)
	host.stepping.Store(true)
	flood(t, f, r.id(), 1<<20)
	eventually(t, "the flooder to wait for room", func() bool { return f.counter("queue_full_waits") > 0 })
	t.Cleanup(host.free) // first, so that the flooder's Stop can drain
	eventually(t, "the receiver to wait on its host", func() bool { return host.waiting.Load() > 0 })
	return r, f, q, host
}

// connected waits until tn and each of peers have each other as a peer, in
// whatever order the events come.
func connected(t *testing.T, tn *testNode, peers ...*testNode) {
	t.Helper()
	want := map[enode.ID]bool{}
	for _, p := range peers {
		want[p.id()] = true
		p.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, tn.id())
	}
	for len(want) > 0 {
		ev := tn.rec.TryNextEvent(waitFor, func(ev *commonv1.Event) bool {
			return ev.GetPeer().GetState() == commonv1.PeerState_PEER_STATE_CONNECTED
		})
		if ev == nil {
			t.Fatalf("%d peers never connected", len(want))
		}
		delete(want, enode.ID(ev.GetPeer().GetPeer()))
	}
}

// waiting reports whether peer p has something waiting in r's inbox.
func waiting(r *testNode, p enode.ID) bool { return r.l.node.Load().up.Waiting(string(p[:])) > 0 }

// TestFloodDoesNotStarveQuietPeer: with one peer flooding the receiver on
// eight protocols and the receiver's host taking one call at a time, each
// frame of a quiet peer goes up, in order, on the first or second call of
// the host after it arrives (the batch in flight, then the next), behind
// at most two batches of flood frames. Before, all peers shared one queue
// to the host in arrival order: a quiet frame waited behind everything the
// flood had queued (4,096 frames).
func TestFloodDoesNotStarveQuietPeer(t *testing.T) {
	r, f, q, host := floodSetup(t)
	maxCalls, maxBefore := 0, 0
	for k := range 10 {
		p := binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(k))
		q.send(down(r.id(), "chat", p))
		eventually(t, "the quiet frame to reach the receiver's queue", func() bool { return waiting(r, q.id()) })
		calls, before := 0, 0
		for found := false; !found; {
			host.turn(t)
			calls++
			for _, fr := range r.rec.Take() {
				switch enode.ID(fr.GetPeer()) {
				case f.id():
					if !found {
						before++
					}
				case q.id():
					if got := binary.BigEndian.Uint32(fr.GetPayload()[1:]); got != uint32(k) {
						t.Fatalf("quiet frame %d arrived as %d", k, got)
					}
					found = true
				}
			}
			if !found && calls == 100 {
				t.Fatalf("quiet frame %d not up after %d calls of the host (%d flood frames)", k, calls, before)
			}
		}
		maxCalls, maxBefore = max(maxCalls, calls), max(maxBefore, before)
	}
	t.Logf("a quiet frame went up within %d calls of the host, behind at most %d flood frames", maxCalls, maxBefore)
	if maxCalls > 2 || maxBefore > 2*maxEmitBatch {
		t.Errorf("a quiet frame went up on call %d of the host, behind %d flood frames; want at most 2 calls and %d frames", maxCalls, maxBefore, 2*maxEmitBatch)
	}
	if d := droppedCounters(r); len(d) > 0 {
		t.Errorf("dropped: %v", d)
	}
}

// TestPeerEventsUnderFlood: while one peer floods the receiver and its host
// takes one call at a time, another peer connects and disconnects: the
// receiver's host gets both events, each within three calls of the event
// happening (the batch in flight, the next batch's frames, the event), and
// no event is dropped.
func TestPeerEventsUnderFlood(t *testing.T) {
	r, _, _, host := floodSetup(t)
	await := func(e enode.ID, state commonv1.PeerState) {
		t.Helper()
		eventually(t, fmt.Sprintf("the %v event to reach the receiver's queue", state), func() bool { return waiting(r, e) })
		for calls := 1; ; calls++ {
			host.turn(t)
			for _, ev := range r.rec.TakeEvents() {
				if p := ev.GetPeer(); enode.ID(p.GetPeer()) == e && p.GetState() == state {
					t.Logf("%v went up on call %d", state, calls)
					return
				}
			}
			if calls == 3 {
				t.Fatalf("%v of a new peer is not up after %d calls of the host", state, calls)
			}
		}
	}
	e := startNodeT(t, "", staticConfig(t, nil, r.url()), chat)
	await(e.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	if _, err := e.l.Disconnect(context.Background(), &p2pv1.DisconnectRequest{Id: r.id().Bytes()}); err != nil {
		t.Fatal(err)
	}
	await(e.id(), commonv1.PeerState_PEER_STATE_DISCONNECTED)
	if got := r.counter("dropped_events"); got != 0 {
		t.Errorf("dropped_events = %d", got)
	}
}
