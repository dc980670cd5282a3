package libp2pplugin

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// deafListener is a TCP server that accepts and then says nothing, so the
// security handshake never completes and a stream to it never opens: a
// peer that takes nothing.
func deafListener(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln
}

// TestDeafPeerHoldsOnlyItsBudget: frames of 64 KiB for a peer that takes
// nothing are queued up to the peer's byte budget (4 MiB by default), not
// up to the queue's 1,024 frames (64 MiB): the sender's heap grows by the
// budget while the next frame waits, and the peer is reset once that frame
// has waited the stall timeout, with what was queued for it dropped.
func TestDeafPeerHoldsOnlyItsBudget(t *testing.T) {
	const size = 64 << 10
	l := New()
	l.stall = time.Second
	a := startNodeWith(t, l, &sdktest.Recorder{}, "", tcpOnly, chat)
	deaf := randomID(t)
	a.l.node.Load().h.Peerstore().AddAddr(deaf, ma.StringCast("/ip4/127.0.0.1/tcp/"+portOf(deafListener(t))), peerstore.TempAddrTTL)

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
			binary.BigEndian.PutUint32(p, uint32(i))
			a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down(deaf, "chat", p)}})
		}
	}()
	defer func() { close(stop); <-sent }()
	eventually(t, "a frame to wait for room", func() bool { return a.counter("queue_full_waits") > 0 })
	after := heapInUse()
	held := after - min(before, after)
	queued := a.counter("out_queued_bytes")
	t.Logf("while the frame waits: heap +%d KiB, out_queued_bytes %d KiB", held>>10, queued>>10)
	if queued > p2pkit.DefaultPeerOutBytes {
		t.Errorf("out_queued_bytes = %d, above the budget %d", queued, p2pkit.DefaultPeerOutBytes)
	}
	// The budget, the frame that waits and one in the writer's hands, and
	// some slack for the heap's own noise.
	if limit := uint64(p2pkit.DefaultPeerOutBytes + 4<<20); held > limit {
		t.Errorf("the sender holds %d KiB more heap for a peer that takes nothing; want at most %d KiB", held>>10, limit>>10)
	}
	eventually(t, "the peer to be reset", func() bool { return a.counter("peers_reset_slow") == 1 })
	eventually(t, "what was queued for it to be dropped", func() bool { return a.counter("out_queued_bytes") <= size })
	if a.counter("dropped_slow_peer") < p2pkit.DefaultPeerOutBytes/size {
		t.Errorf("dropped_slow_peer = %d, want at least the %d frames queued", a.counter("dropped_slow_peer"), p2pkit.DefaultPeerOutBytes/size)
	}
}

// floodProtocols are the protocols a flooder sends on: one stream each.
var floodProtocols = func() []*commonv1.Protocol {
	var out []*commonv1.Protocol
	for i := range 8 {
		out = append(out, &commonv1.Protocol{Name: fmt.Sprintf("flood%d", i), Version: 1})
	}
	return out
}()

// flood sends n frames of 1 KiB from f to peer to, spread over
// floodProtocols, in the background until the test ends; the frames carry
// 'F' and their number.
func flood(t testing.TB, f *testNode, to peer.ID, n int) {
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
// flooder sending it frames on eight streams, and a quiet peer on chat;
// it returns once the receiver has stopped reading the flooder (its queue
// to the host is full and the host takes nothing).
func floodSetup(t *testing.T) (r, f, q *testNode, host *stepHost) {
	protos := append([]*commonv1.Protocol{chat}, floodProtocols...)
	host = newStepHost()
	r = startNodeWith(t, New(), host, "", tcpOnly, protos...)
	f = startNodeT(t, "", tcpOnly, floodProtocols...)
	q = startNodeT(t, "", tcpOnly, chat)
	connect(t, f, r, false)
	connect(t, q, r, false)
	want := map[peer.ID]bool{f.id(): true, q.id(): true}
	for len(want) > 0 {
		ev := r.rec.TryNextEvent(waitFor, func(ev *commonv1.Event) bool {
			return ev.GetPeer().GetState() == commonv1.PeerState_PEER_STATE_CONNECTED
		})
		if ev == nil {
			t.Fatalf("%d peers never connected", len(want))
		}
		delete(want, peer.ID(ev.GetPeer().GetPeer()))
	}
	host.stepping.Store(true)
	flood(t, f, r.id(), 1<<20)
	// The flooder's share of the receiver's queue fills, and its writers
	// wait.
	eventually(t, "the flooder to wait for room", func() bool { return f.counter("queue_full_waits") > 0 })
	t.Cleanup(host.free) // first, so that the flooder's Stop can drain
	eventually(t, "the receiver to wait on its host", func() bool { return host.waiting.Load() > 0 })
	return r, f, q, host
}

// waiting reports whether peer p has something waiting in r's inbox.
func waiting(r *testNode, p peer.ID) bool { return r.l.node.Load().in.Waiting(string(p)) > 0 }

// TestFloodDoesNotStarveQuietPeer: with one peer flooding the receiver on
// eight streams and the receiver's host taking one call at a time, each
// frame of a quiet peer goes up, in order, on the first or second call of
// the host after it arrives (the batch in flight, then the next), behind
// at most two batches of flood frames. Before the layer took its peers in
// turn, each stream's reader waited for the host on its own, so the
// flooder's eight streams had eight calls for the quiet peer's one.
func TestFloodDoesNotStarveQuietPeer(t *testing.T) {
	r, f, q, host := floodSetup(t)
	maxCalls, maxBefore := 0, 0
	for k := range 10 {
		p := binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(k))
		q.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down(r.id(), "chat", p)}})
		eventually(t, "the quiet frame to reach the receiver's queue", func() bool { return waiting(r, q.id()) })
		calls, before := 0, 0
		for found := false; !found; {
			host.turn(t)
			calls++
			for _, fr := range r.rec.Take() {
				switch peer.ID(fr.GetPeer()) {
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
			if !found && calls == 20 {
				t.Fatalf("quiet frame %d not up after %d calls of the host (%d flood frames)", k, calls, before)
			}
		}
		maxCalls, maxBefore = max(maxCalls, calls), max(maxBefore, before)
	}
	t.Logf("a quiet frame went up within %d calls of the host, behind at most %d flood frames", maxCalls, maxBefore)
	if maxCalls > 2 || maxBefore > 2*maxEmitBatch {
		t.Errorf("a quiet frame went up on call %d of the host, behind %d flood frames; want at most 2 calls and %d frames", maxCalls, maxBefore, 2*maxEmitBatch)
	}
	if r.counter("dropped_events")+r.counter("dropped_bad_frame") > 0 {
		t.Errorf("counters %v", r.l.Health(context.Background()).GetCounters())
	}
}

// TestPeerEventsUnderFlood: while one peer floods the receiver and its host
// takes one call at a time, another peer connects and disconnects: the
// receiver's host gets both events, each within three calls of the event
// happening (the batch in flight, the next batch's frames, the event), and
// no event is dropped.
func TestPeerEventsUnderFlood(t *testing.T) {
	r, _, _, host := floodSetup(t)
	e := startNodeT(t, "", tcpOnly, chat)
	await := func(state commonv1.PeerState) {
		t.Helper()
		eventually(t, fmt.Sprintf("the %v event to reach the receiver's queue", state), func() bool { return waiting(r, e.id()) })
		for calls := 1; ; calls++ {
			host.turn(t)
			for _, ev := range r.rec.TakeEvents() {
				if p := ev.GetPeer(); peer.ID(p.GetPeer()) == e.id() && p.GetState() == state {
					t.Logf("%v went up on call %d", state, calls)
					return
				}
			}
			if calls == 3 {
				t.Fatalf("%v of a new peer is not up after %d calls of the host", state, calls)
			}
		}
	}
	connect(t, e, r, false)
	await(commonv1.PeerState_PEER_STATE_CONNECTED)
	if _, err := e.l.Disconnect(context.Background(), &p2pv1.DisconnectRequest{Id: []byte(r.id())}); err != nil {
		t.Fatal(err)
	}
	await(commonv1.PeerState_PEER_STATE_DISCONNECTED)
	if got := r.counter("dropped_events"); got != 0 {
		t.Errorf("dropped_events = %d", got)
	}
}

// TestPeerRateSlowsNotDrops: a receiver with peer_in_rate 1 MiB/s and a
// 64 KiB burst gets 512 KiB from a peer: its reader waits for the bucket
// (rate_waits), and every frame arrives, in order, with nothing dropped.
func TestPeerRateSlowsNotDrops(t *testing.T) {
	b := startNodeT(t, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"peer_in_rate":1048576,"peer_in_burst":65536}`, chat)
	a := startNodeT(t, "", tcpOnly, chat)
	connect(t, a, b, false)
	const n = 512
	batch := &commonv1.Batch{}
	for i := range n {
		p := make([]byte, 1024)
		binary.BigEndian.PutUint32(p, uint32(i))
		batch.Frames = append(batch.Frames, down(b.id(), "chat", p))
	}
	a.l.HandleBatch(context.Background(), batch)
	for i := range n {
		if got := int(binary.BigEndian.Uint32(waitFrame(t, b).GetPayload())); got != i {
			t.Fatalf("frame %d carries %d", i, got)
		}
	}
	if b.counter("rate_waits") == 0 {
		t.Error("the reader never waited for its bucket")
	}
	for _, tn := range []*testNode{a, b} {
		for k, v := range tn.l.Health(context.Background()).GetCounters() {
			if strings.HasPrefix(k, "dropped_") && v > 0 {
				t.Errorf("%s = %d", k, v)
			}
		}
	}
}
