package libp2pplugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestUnicastBothWays connects two layers, checks the peer events on both
// sides and sends 1,000 frames each way at once: all arrive, intact and in
// order, from the right peer on the right protocol.
func TestUnicastBothWays(t *testing.T) {
	const frames = 1000
	a := startNodeT(t, "", "", chat)
	b := startNodeT(t, "", "", chat)
	connect(t, a, b, false)
	evA := waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	evB := waitPeerEvent(t, b, a.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	for _, ev := range []*commonv1.PeerEvent{evA, evB} {
		// Protocols are reported when identify has finished by then; the
		// contract says "when the overlay knows them".
		if p := ev.GetProtocols(); len(p) > 1 || len(p) == 1 && p[0] != "chat" {
			t.Errorf("CONNECTED event protocols = %v, want [chat] or none", p)
		}
	}

	var wg sync.WaitGroup
	for _, dir := range []struct {
		from, to *testNode
		tag      byte
	}{{a, b, 'a'}, {b, a, 'b'}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < frames; i += 100 {
				batch := &commonv1.Batch{}
				for j := i; j < i+100; j++ {
					batch.Frames = append(batch.Frames, down(dir.to.id(), "chat", numbered(dir.tag, j)))
				}
				dir.from.l.HandleBatch(context.Background(), batch)
			}
		}()
	}
	wg.Wait()

	for _, dir := range []struct {
		from, to *testNode
		tag      byte
	}{{a, b, 'a'}, {b, a, 'b'}} {
		for i := range frames {
			f := waitFrame(t, dir.to)
			if f.GetDirection() != commonv1.Direction_DIRECTION_UP || peer.ID(f.GetPeer()) != dir.from.id() || f.GetProtocol() != "chat" {
				t.Fatalf("frame %d: direction %v from %s on %q", i, f.GetDirection(), peer.ID(f.GetPeer()), f.GetProtocol())
			}
			if want := numbered(dir.tag, i); !bytes.Equal(f.GetPayload(), want) {
				t.Fatalf("frame %d from %c: got %d bytes (seq %d), want %d bytes", i, dir.tag, len(f.GetPayload()), binary.BigEndian.Uint32(f.GetPayload()[1:5]), len(want))
			}
		}
	}
	eventually(t, "send counters", func() bool {
		return a.counter("frames_sent") == frames && b.counter("frames_sent") == frames
	})
	for _, n := range []*testNode{a, b} {
		c := n.l.Health(context.Background()).GetCounters()
		if c["frames_received"] != frames || c["peers"] != 1 || c["bytes_sent"] != c["bytes_received"] || c["streams_opened"] != 1 {
			t.Errorf("counters = %v", c)
		}
	}
}

// TestTransportsAndSecurity runs a frame across each transport and
// security protocol, and with the DHT on.
func TestTransportsAndSecurity(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		security protocol.ID // negotiated security; empty for QUIC's own TLS
	}{
		{"tcp default", tcpOnly, noise.ID},
		{"tcp noise", `{"listen":["/ip4/127.0.0.1/tcp/0"],"security":["noise"]}`, noise.ID},
		{"tcp tls", `{"listen":["/ip4/127.0.0.1/tcp/0"],"security":["tls"]}`, libp2ptls.ID},
		{"tcp tls first", `{"listen":["/ip4/127.0.0.1/tcp/0"],"security":["tls","noise"]}`, libp2ptls.ID},
		{"quic", `{"listen":["/ip4/127.0.0.1/udp/0/quic-v1"]}`, ""},
		{"dht server", `{"listen":["/ip4/127.0.0.1/tcp/0"],"dht":"server","gossipsub":false}`, noise.ID},
		{"dht client", `{"listen":["/ip4/127.0.0.1/tcp/0"],"dht":"client"}`, noise.ID},
		{"infinite limits", `{"listen":["/ip4/127.0.0.1/tcp/0"],"resource_limits":"infinite"}`, noise.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startNodeT(t, "", tt.config, chat)
			b := startNodeT(t, "", tt.config, chat)
			connect(t, a, b, false)
			a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down(b.id(), "chat", []byte("hello"))}})
			if f := waitFrame(t, b); string(f.GetPayload()) != "hello" {
				t.Errorf("payload = %q", f.GetPayload())
			}
			if tt.security != "" {
				for _, c := range a.l.node.Load().h.Network().ConnsToPeer(b.id()) {
					if got := c.ConnState().Security; got != tt.security {
						t.Errorf("connection secured with %q, want %q", got, tt.security)
					}
				}
			}
		})
	}
}

// TestDHTRoutingTable checks that two DHT servers find each other.
func TestDHTRoutingTable(t *testing.T) {
	const config = `{"listen":["/ip4/127.0.0.1/tcp/0"],"dht":"server"}`
	a := startNodeT(t, "", config)
	b := startNodeT(t, "", config)
	connect(t, a, b, false)
	eventually(t, "DHT routing table entry", func() bool {
		return a.l.node.Load().dht.RoutingTable().Find(b.id()) != ""
	})
}

// TestBootstrap checks that a bootstrap peer is dialed at start and
// redialed after it disconnects, and that Disconnect stops the redialing.
// GossipSub is off: after a reconnect it reopens its stream with a delay,
// and b's GossipSub would then dial a back on its own.
func TestBootstrap(t *testing.T) {
	const noGossip = `{"listen":["/ip4/127.0.0.1/tcp/0"],"gossipsub":false}`
	b := startNodeT(t, "", noGossip, chat)
	local, err := b.l.NodeInfo(context.Background(), &p2pv1.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap list names the node itself too, as a shared list would.
	self := t.TempDir()
	key, _, err := loadOrCreateIdentity(self, nil)
	if err != nil {
		t.Fatal(err)
	}
	selfID, _ := peer.IDFromPrivateKey(key)
	config := `{"listen":["/ip4/127.0.0.1/tcp/0"],"gossipsub":false,"bootstrap":["` + local.GetListenAddresses()[0] + `","/ip4/127.0.0.1/tcp/9/p2p/` + selfID.String() + `"]}`
	a := startNodeT(t, self, config, chat)
	waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	waitPeerEvent(t, b, a.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	if !a.l.node.Load().h.ConnManager().IsProtected(b.id(), protectTag) {
		t.Error("bootstrap peer is not protected in the connection manager")
	}

	// b drops a; a redials.
	if _, err := b.l.Disconnect(context.Background(), &p2pv1.DisconnectRequest{Id: []byte(a.id())}); err != nil {
		t.Fatal(err)
	}
	waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_DISCONNECTED)
	waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_CONNECTED)

	// a drops b; nobody redials.
	if _, err := a.l.Disconnect(context.Background(), &p2pv1.DisconnectRequest{Id: []byte(b.id())}); err != nil {
		t.Fatal(err)
	}
	waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_DISCONNECTED)
	time.Sleep(2 * redialMin)
	if c := a.l.node.Load().h.Network().Connectedness(b.id()); c == network.Connected {
		t.Error("peer redialed after Disconnect")
	}
	if a.l.node.Load().h.ConnManager().IsProtected(b.id(), protectTag) {
		t.Error("peer still protected after Disconnect")
	}
}

// TestRedialAfterEarlyClose checks that a persistent peer whose first
// connection closes at once, before identify has run on it and the peer
// was reported connected, is redialed: the dialer hears of every
// disconnection, not only of peers reported connected (the 200-member
// runs left pairs of nodes unconnected for good this way).
func TestRedialAfterEarlyClose(t *testing.T) {
	const noGossip = `{"listen":["/ip4/127.0.0.1/tcp/0"],"gossipsub":false}`
	a := startNodeT(t, "", noGossip, chat)
	b := startNodeT(t, "", noGossip, chat)
	var closed atomic.Bool
	b.l.node.Load().h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if closed.CompareAndSwap(false, true) {
			go c.Close()
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// The close races a's Connect, which may or may not see it: either
	// way a keeps b.
	_, _ = a.l.Connect(ctx, &p2pv1.ConnectRequest{ContactSection: b.start.GetContactSection(), Persistent: true})
	eventually(t, "b closing a's first connection", closed.Load)
	eventually(t, "a connected to b again", func() bool {
		return a.l.node.Load().h.Network().Connectedness(b.id()) == network.Connected
	})
	// And it stays connected: b closed only the first connection.
	time.Sleep(2 * redialMin)
	if c := a.l.node.Load().h.Network().Connectedness(b.id()); c != network.Connected {
		t.Fatalf("a's connectedness to b = %v, want connected", c)
	}
}

// TestOversizeRefused checks that a DOWN frame above max_frame is dropped,
// counted and never sent, while the frames around it are.
func TestOversizeRefused(t *testing.T) {
	a := startNodeT(t, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"max_frame":1024}`, chat)
	b := startNodeT(t, "", tcpOnly, chat)
	connect(t, a, b, false)
	a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{
		down(b.id(), "chat", []byte("first")),
		down(b.id(), "chat", make([]byte, 1025)),
		down(b.id(), "chat", make([]byte, 1024)),
		down(b.id(), "chat", []byte("last")),
	}})
	for _, want := range []int{5, 1024, 4} {
		if f := waitFrame(t, b); len(f.GetPayload()) != want {
			t.Fatalf("received %d bytes, want %d", len(f.GetPayload()), want)
		}
	}
	noFrame(t, b, 100*time.Millisecond)
	if got := a.counter("dropped_oversize"); got != 1 {
		t.Errorf("dropped_oversize = %d, want 1", got)
	}
}

// TestInboundBadFrame checks that a receiver with a smaller max_frame
// resets the stream of a frame above it, counts it, and that the sender
// recovers on a new stream.
func TestInboundBadFrame(t *testing.T) {
	a := startNodeT(t, "", tcpOnly, chat)
	b := startNodeT(t, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"max_frame":100}`, chat)
	connect(t, a, b, false)
	a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down(b.id(), "chat", make([]byte, 101))}})
	eventually(t, "dropped_bad_frame on the receiver", func() bool { return b.counter("dropped_bad_frame") == 1 })

	// The sender learns of the reset when a write fails, so the first
	// frames after it may be lost; keep sending until one arrives.
	deadline := time.Now().Add(waitFor)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no frame arrived after the reset")
		}
		a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down(b.id(), "chat", []byte("again"))}})
		if f := b.rec.TryNext(50*time.Millisecond, nil); f != nil {
			if string(f.GetPayload()) != "again" {
				t.Fatalf("payload = %q", f.GetPayload())
			}
			if a.counter("streams_opened") < 2 {
				t.Errorf("streams_opened = %d, want a new stream", a.counter("streams_opened"))
			}
			return
		}
	}
}

// TestBroadcast checks that an empty-peer DOWN frame reaches a node that
// subscribed to its topic, from the publisher, and that the publisher's
// own subscription does not deliver it back.
func TestBroadcast(t *testing.T) {
	a := startNodeT(t, "", tcpOnly)
	b := startNodeT(t, "", tcpOnly)
	ctx := context.Background()
	for _, n := range []*testNode{a, b} {
		if _, err := n.l.Subscribe(ctx, &p2pv1.SubscribeRequest{Topic: "news"}); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	if _, err := b.l.Subscribe(ctx, &p2pv1.SubscribeRequest{Topic: "news"}); err != nil {
		t.Fatalf("second Subscribe: %v", err)
	}
	connect(t, a, b, false)
	eventually(t, "a to see b on the topic", func() bool {
		for _, p := range a.l.node.Load().bcast.ps.ListPeers("news") {
			if p == b.id() {
				return true
			}
		}
		return false
	})
	a.l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Protocol: "news", Payload: []byte("extra")}}})
	f := waitFrame(t, b)
	if string(f.GetPayload()) != "extra" || f.GetProtocol() != "news" || peer.ID(f.GetPeer()) != a.id() || f.GetDirection() != commonv1.Direction_DIRECTION_UP {
		t.Errorf("broadcast arrived as %q on %q from %s", f.GetPayload(), f.GetProtocol(), peer.ID(f.GetPeer()))
	}
	noFrame(t, a, 200*time.Millisecond)
	if a.counter("broadcast_sent") != 1 || b.counter("broadcast_received") != 1 {
		t.Errorf("broadcast_sent = %d, broadcast_received = %d", a.counter("broadcast_sent"), b.counter("broadcast_received"))
	}

	// After Unsubscribe, b gets nothing more.
	if _, err := b.l.Unsubscribe(ctx, &p2pv1.UnsubscribeRequest{Topic: "news"}); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	eventually(t, "a to see b leave the topic", func() bool { return len(a.l.node.Load().bcast.ps.ListPeers("news")) == 0 })
	a.l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Protocol: "news", Payload: []byte("late")}}})
	noFrame(t, b, 200*time.Millisecond)
}

// TestIdentityPersists checks that a layer restarted on the same data
// directory keeps its peer id, and that the key file is private.
func TestIdentityPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p2p")
	first := New()
	env := sdk.Env{Out: &sdktest.Recorder{}, Logger: testLogger(t)}
	ctx := context.Background()
	if _, err := first.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: tcpOnly, DataDir: dir}, env); err != nil {
		t.Fatal(err)
	}
	r1, err := first.Start(ctx, &commonv1.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	second := startNodeT(t, dir, tcpOnly)
	if !bytes.Equal(second.start.GetLocalAddress(), r1.GetLocalAddress()) {
		t.Errorf("peer id changed across restart: %s then %s", peer.ID(r1.GetLocalAddress()), second.id())
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, identityFile): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New().Configure(context.Background(), &commonv1.ConfigureRequest{DataDir: dir}, sdk.Env{Out: &sdktest.Recorder{}})
	if err == nil {
		t.Fatal("Configure accepted a corrupt identity file")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, identityFile)); string(b) != "garbage" {
		t.Error("Configure replaced a corrupt identity file")
	}
}

// TestStartResponse checks what Start reports against NodeInfo.
func TestStartResponse(t *testing.T) {
	n := startNodeT(t, "", "", chat)
	local, err := n.l.NodeInfo(context.Background(), &p2pv1.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromBytes(n.start.GetLocalAddress())
	if err != nil {
		t.Fatalf("LocalAddress is not a peer id: %v", err)
	}
	if peer.ID(local.GetId()) != id || local.GetDisplayId() != id.String() {
		t.Errorf("NodeInfo id = %s, want %s", peer.ID(local.GetId()), id)
	}
	ai, err := decodeContact(n.start.GetContactSection())
	if err != nil {
		t.Fatalf("contact section: %v", err)
	}
	var tcp, quic bool
	for _, a := range ai.Addrs {
		_, errT := a.ValueForProtocol(ma.P_TCP)
		_, errQ := a.ValueForProtocol(ma.P_QUIC_V1)
		tcp, quic = tcp || errT == nil, quic || errQ == nil
	}
	if ai.ID != id || !tcp || !quic {
		t.Errorf("contact section = %v, want TCP and QUIC addresses of %s", ai, id)
	}
	if n.start.GetDisplayAddress() != local.GetListenAddresses()[0] {
		t.Errorf("DisplayAddress = %q, want %q", n.start.GetDisplayAddress(), local.GetListenAddresses()[0])
	}
	if !n.l.Health(context.Background()).GetServing() {
		t.Error("not serving after Start")
	}
}

// TestHandleBatchDrops checks the frames HandleBatch refuses.
func TestHandleBatchDrops(t *testing.T) {
	a := startNodeT(t, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"gossipsub":false}`, chat)
	other := randomID(t)
	tests := []struct {
		name    string
		frame   *commonv1.Frame
		counter string
	}{
		{"UP frame", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte(other), Protocol: "chat"}, "dropped_wrong_direction"},
		{"no direction", &commonv1.Frame{Peer: []byte(other), Protocol: "chat"}, "dropped_wrong_direction"},
		{"unknown protocol", down(other, "mail", []byte("x")), "dropped_unknown_protocol"},
		{"bad peer id", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte("nope"), Protocol: "chat"}, "dropped_bad_peer"},
		{"to itself", down(a.id(), "chat", []byte("x")), "dropped_bad_peer"},
		{"oversize", down(other, "chat", make([]byte, defaultMaxFrame+1)), "dropped_oversize"},
		{"broadcast without gossipsub", down("", "news", []byte("x")), "dropped_broadcast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.counter(tt.counter)
			a.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{tt.frame}})
			if got := a.counter(tt.counter); got != before+1 {
				t.Errorf("%s = %d, want %d", tt.counter, got, before+1)
			}
		})
	}
	if _, err := a.l.Subscribe(context.Background(), &p2pv1.SubscribeRequest{Topic: "news"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Subscribe without gossipsub = %v, want FailedPrecondition", err)
	}
}

// TestStalledPeerIsReset checks that frames for a peer whose stream
// cannot be opened (a TCP server that accepts and then says nothing, so
// the security handshake never completes) fill the queue, the next one
// waits the stall timeout and is dropped, the peer is reset with what was
// queued for it, and the rest are dropped at once: HandleBatch returns.
func TestStalledPeerIsReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	l := New()
	l.stall = 300 * time.Millisecond
	a := startNodeWith(t, l, &sdktest.Recorder{}, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"queue":4}`, chat)
	silent := randomID(t)
	a.l.node.Load().h.Peerstore().AddAddr(silent, ma.StringCast("/ip4/127.0.0.1/tcp/"+portOf(ln)), peerstore.TempAddrTTL)

	batch := &commonv1.Batch{}
	for i := range 100 {
		batch.Frames = append(batch.Frames, down(silent, "chat", numbered('q', i)))
	}
	a.l.HandleBatch(context.Background(), batch)
	if got := a.counter("peers_reset_slow"); got != 1 {
		t.Errorf("peers_reset_slow = %d, want 1", got)
	}
	// One frame is in the writer's hands (it fails when the stream
	// cannot open); every other one is dropped: the four queued, the one
	// that waited and those after it.
	if got := a.counter("dropped_slow_peer"); got != 99 {
		t.Errorf("dropped_slow_peer = %d, want 99", got)
	}
	if got, want := a.counter("out_queued_bytes"), uint64(len(numbered('q', 0))); got != want {
		t.Errorf("out_queued_bytes = %d after the reset, want %d (the frame in the writer's hands)", got, want)
	}
}

// flowFrames is how many 2 KiB frames TestSlowReceiverSlowsSender sends:
// more than the sender's queue and the stream's and sockets' buffers hold.
const flowFrames = 16000

// TestSlowReceiverSlowsSender: the receiving node's host takes nothing for
// a while, so the receiver stops reading its stream and the sender's queue
// (4 frames) fills: HandleBatch waits instead of dropping, and once the
// host takes frames again every frame arrives, in order, with nothing
// dropped on either side.
func TestSlowReceiverSlowsSender(t *testing.T) {
	a := startNodeT(t, "", `{"listen":["/ip4/127.0.0.1/tcp/0"],"queue":4}`, chat)
	held := newGate()
	b := startNodeWith(t, New(), held, "", tcpOnly, chat)
	connect(t, a, b, false)

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		batch := &commonv1.Batch{}
		for i := range flowFrames {
			p := make([]byte, 2048)
			binary.BigEndian.PutUint32(p, uint32(i))
			batch.Frames = append(batch.Frames, down(b.id(), "chat", p))
		}
		a.l.HandleBatch(context.Background(), batch)
	}()
	// The sender is slowed: it waits for room rather than returning.
	eventually(t, "the sender to wait for room in its queue", func() bool { return a.counter("queue_full_waits") > 0 })
	held.open()
	for i := range flowFrames {
		f := waitFrame(t, b)
		if got := int(binary.BigEndian.Uint32(f.GetPayload())); got != i || peer.ID(f.GetPeer()) != a.id() {
			t.Fatalf("frame %d carries %d from %s", i, got, peer.ID(f.GetPeer()))
		}
	}
	<-sent
	eventually(t, "frames_sent", func() bool { return a.counter("frames_sent") == flowFrames })
	for _, n := range []*testNode{a, b} {
		for k, v := range n.l.Health(context.Background()).GetCounters() {
			if strings.HasPrefix(k, "dropped_") && v > 0 {
				t.Errorf("%s = %d", k, v)
			}
		}
	}
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestLifecycle checks the calls out of order and the control API's
// errors.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	l := New()
	lc := sdk.NewLifecycle(l) // the SDK's lifecycle, as Serve and InProcess run it
	if _, err := lc.Start(ctx, &commonv1.StartRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Start before Configure = %v, want FailedPrecondition", err)
	}
	if _, err := l.NodeInfo(ctx, &p2pv1.NodeInfoRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("NodeInfo before Start = %v, want FailedPrecondition", err)
	}
	if h := lc.Health(ctx); h.GetServing() || h.GetCounters()["peers"] != 0 {
		t.Errorf("Health before Start = %v", h)
	}
	if _, err := lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: tcpOnly, DataDir: t.TempDir()}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Start(ctx, &commonv1.StartRequest{Protocols: []*commonv1.Protocol{{Name: "a/b", Version: 1}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Start with a bad protocol name = %v, want InvalidArgument", err)
	}
	if _, err := lc.Start(ctx, &commonv1.StartRequest{Protocols: []*commonv1.Protocol{{Name: "x", Version: 1}, {Name: "x", Version: 2}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Start with one name at two versions = %v, want InvalidArgument", err)
	}
	if _, err := lc.Start(ctx, &commonv1.StartRequest{Protocols: []*commonv1.Protocol{chat, chat}}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := lc.Start(ctx, &commonv1.StartRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second Start = %v, want FailedPrecondition", err)
	}

	connectErrors := []struct {
		name string
		req  *p2pv1.ConnectRequest
	}{
		{"nothing", &p2pv1.ConnectRequest{}},
		{"both", &p2pv1.ConnectRequest{Address: "/ip4/127.0.0.1/tcp/1/p2p/" + randomID(t).String(), ContactSection: []byte{1}}},
		{"bad address", &p2pv1.ConnectRequest{Address: "/ip4/127.0.0.1/tcp/1"}},
		{"bad contact", &p2pv1.ConnectRequest{ContactSection: []byte("junk")}},
		{"itself", &p2pv1.ConnectRequest{Address: "/ip4/127.0.0.1/tcp/1/p2p/" + l.node.Load().self.String()}},
	}
	for _, tt := range connectErrors {
		if _, err := l.Connect(ctx, tt.req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Connect(%s) = %v, want InvalidArgument", tt.name, err)
		}
	}
	if _, err := l.Disconnect(ctx, &p2pv1.DisconnectRequest{Id: []byte("junk")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Disconnect(junk) = %v, want InvalidArgument", err)
	}
	if _, err := l.Subscribe(ctx, &p2pv1.SubscribeRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Subscribe(\"\") = %v, want InvalidArgument", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := l.Connect(cctx, &p2pv1.ConnectRequest{Address: "/ip4/127.0.0.1/tcp/1/p2p/" + randomID(t).String()})
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Errorf("Connect to a closed port = %v, want Unavailable or DeadlineExceeded", err)
	}
	if resp, err := l.Peers(ctx, &p2pv1.PeersRequest{}); err != nil || len(resp.GetPeers()) != 0 {
		t.Errorf("Peers = %v, %v", resp, err)
	}

	if err := lc.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := lc.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if lc.Health(ctx).GetServing() {
		t.Error("serving after Stop")
	}
	lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{down(randomID(t), "chat", nil)}})
	if got := lc.Health(ctx).GetCounters()["dropped_not_running"]; got != 1 {
		t.Errorf("dropped_not_running = %d, want 1", got)
	}
	if _, err := lc.Start(ctx, &commonv1.StartRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Start after Stop = %v, want FailedPrecondition", err)
	}
}

// TestPeers checks the Peers listing.
func TestPeers(t *testing.T) {
	a := startNodeT(t, "", tcpOnly, chat)
	b := startNodeT(t, "", tcpOnly, chat)
	connect(t, a, b, false)
	waitPeerEvent(t, a, b.id(), commonv1.PeerState_PEER_STATE_CONNECTED)
	// The peer's protocols come from identify, which may still be on its
	// way when the connection is reported: wait for them.
	var resp *p2pv1.PeersResponse
	eventually(t, "the peer listed with its protocols", func() bool {
		var err error
		resp, err = a.l.Peers(context.Background(), &p2pv1.PeersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetPeers()) == 1 && len(resp.GetPeers()[0].GetProtocols()) > 0
	})
	p := resp.GetPeers()[0]
	if peer.ID(p.GetId()) != b.id() || !p.GetOutbound() || len(p.GetAddresses()) == 0 || len(p.GetProtocols()) != 1 || p.GetProtocols()[0] != "chat" {
		t.Errorf("peer = %v", p)
	}
}
