package devp2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/p2p/enode"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// flowFrames is how many 2 KiB frames the flow-control tests send: more
// than the receiver's queue to the host (4096 frames, and as many in the
// hands of its emitter), the loopback socket buffers and the sender's
// queue together hold, so the sender must wait.
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

// TestStalledPeerIsReset: a peer that reads nothing (a devp2p node whose
// shh handler never reads) is disconnected after the stall timeout, the
// frame that waited and those after it are dropped and counted, and
// HandleBatch returns.
func TestStalledPeerIsReset(t *testing.T) {
	l := New()
	l.stall = 300 * time.Millisecond
	a := startNodeWith(t, l, &sdktest.Recorder{}, "", `{"listen":"127.0.0.1:0","queue":4}`, shh)
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	srv := &p2p.Server{Config: p2p.Config{
		PrivateKey: key, MaxPeers: 1, NoDiscovery: true, ListenAddr: "127.0.0.1:0",
		Logger: log.NewLogger(log.DiscardHandler()),
		Protocols: []p2p.Protocol{{Name: "shh", Version: 6, Length: 128, Run: func(*p2p.Peer, p2p.MsgReadWriter) error {
			<-quit
			return nil
		}}},
	}}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	defer close(quit) // before Stop, which waits for the handler
	deaf := srv.Self().ID()
	srv.AddPeer(enode.MustParse(a.url()))
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, deaf)

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
