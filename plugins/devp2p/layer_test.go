package devp2p

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/rlp"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// staticConfig is a loopback config with static peers.
func staticConfig(t testing.TB, extra map[string]any, static ...string) string {
	t.Helper()
	m := map[string]any{"listen": "127.0.0.1:0", "static": static}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCodedFramesBothWays runs a 128-code protocol between two nodes joined
// by a static peer: frames keep their code and raw RLP bytes both ways.
func TestCodedFramesBothWays(t *testing.T) {
	a := startNodeT(t, "", loopback, shh)
	b := startNodeT(t, "", staticConfig(t, nil, a.url()), shh)
	ev := a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, b.id())
	if got := ev.GetProtocols(); len(got) != 1 || got[0] != "shh" {
		t.Fatalf("peer event protocols %v, want [shh]", got)
	}
	b.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, a.id())

	body, err := rlp.EncodeToBytes([]any{uint64(6), "status", []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	// Not valid RLP: the layer must pass bytes through unchanged.
	raw := []byte{0xff, 0x00, 0x13, 0x37}
	cases := []struct {
		code byte
		body []byte
	}{{0, body}, {1, raw}, {127, nil}, {126, bytes.Repeat([]byte{0xab}, 100_000)}}
	for _, dir := range []struct{ from, to *testNode }{{a, b}, {b, a}} {
		for _, c := range cases {
			dir.from.send(down(dir.to.id(), "shh", append([]byte{c.code}, c.body...)))
		}
		for _, c := range cases {
			f := dir.to.expectFrame(t)
			want := append([]byte{c.code}, c.body...)
			if f.GetProtocol() != "shh" || enode.ID(f.GetPeer()) != dir.from.id() || f.GetDirection() != commonv1.Direction_DIRECTION_UP {
				t.Fatalf("frame %s from %x dir %v", f.GetProtocol(), f.GetPeer(), f.GetDirection())
			}
			if !bytes.Equal(f.GetPayload(), want) {
				t.Fatalf("code %d: payload %d bytes, not byte-identical to the %d sent", c.code, len(f.GetPayload()), len(want))
			}
		}
	}
	a.waitCounter(t, "frames_sent", uint64(len(cases)))
	if got := a.counter("frames_received"); got != uint64(len(cases)) {
		t.Errorf("frames_received = %d, want %d", got, len(cases))
	}
	if a.counter("peers") != 1 {
		t.Errorf("peers = %d, want 1", a.counter("peers"))
	}
}

// TestRefusesBadCodes checks that a code at or above message_codes and a
// frame without a code byte are never sent, and are counted.
func TestRefusesBadCodes(t *testing.T) {
	a := startNodeT(t, "", loopback, shh)
	b := startNodeT(t, "", staticConfig(t, nil, a.url()), shh)
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, b.id())
	a.send(down(b.id(), "shh", []byte{128, 1}), down(b.id(), "shh", []byte{255}), down(b.id(), "shh", nil),
		down(b.id(), "other", []byte{1}), down(enode.ID{1}, "shh", []byte{1}),
		down(b.id(), "shh", []byte{3, 'o', 'k'}))
	f := b.expectFrame(t)
	if !bytes.Equal(f.GetPayload(), []byte{3, 'o', 'k'}) {
		t.Fatalf("first frame through is %x, want the valid one", f.GetPayload())
	}
	a.waitCounter(t, "frames_sent", 1)
	for name, want := range map[string]uint64{"dropped_bad_code": 2, "dropped_bad_frame": 1, "dropped_unknown_protocol": 1, "dropped_unknown_peer": 1} {
		if got := a.counter(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	// The connection is still up.
	if b.counter("peers") != 1 {
		t.Fatal("peer dropped")
	}
}

// TestOpaqueProtocol checks that a single-code protocol carries whole
// payloads, whatever their first byte.
func TestOpaqueProtocol(t *testing.T) {
	direct := &commonv1.Protocol{Name: "direct", Version: 1, MessageCodes: 1}
	a := startNodeT(t, "", loopback, direct, shh)
	b := startNodeT(t, "", staticConfig(t, nil, a.url()), direct)
	ev := a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, b.id())
	if got := ev.GetProtocols(); len(got) != 1 || got[0] != "direct" {
		t.Fatalf("protocols %v, want [direct]", got)
	}
	a.send(down(b.id(), "shh", []byte{1}), down(b.id(), "direct", []byte{200, 1, 2}), down(b.id(), "direct", nil))
	for _, want := range [][]byte{{200, 1, 2}, {}} {
		f := b.expectFrame(t)
		if f.GetProtocol() != "direct" || !bytes.Equal(f.GetPayload(), want) {
			t.Fatalf("got %s %x, want direct %x", f.GetProtocol(), f.GetPayload(), want)
		}
	}
	if got := a.counter("dropped_unknown_peer"); got != 1 {
		t.Errorf("dropped_unknown_peer = %d, want 1 (b does not run shh)", got)
	}
}

// TestFlood checks that a frame without a peer reaches every peer of its
// protocol.
func TestFlood(t *testing.T) {
	hub := startNodeT(t, "", loopback, shh)
	var spokes []*testNode
	for range 3 {
		s := startNodeT(t, "", staticConfig(t, nil, hub.url()), shh)
		hub.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, s.id())
		spokes = append(spokes, s)
	}
	hub.send(down(enode.ID{}, "shh", []byte{2, 0xc0}))
	for _, s := range spokes {
		f := s.expectFrame(t)
		if !bytes.Equal(f.GetPayload(), []byte{2, 0xc0}) || enode.ID(f.GetPeer()) != hub.id() {
			t.Fatalf("spoke got %x from %x", f.GetPayload(), f.GetPeer())
		}
	}
	hub.waitCounter(t, "frames_sent", 3)
	if hub.counter("flood_sent") != 1 {
		t.Fatalf("flood_sent %d, want 1", hub.counter("flood_sent"))
	}
}

// TestConnectControl joins two nodes with Connect and a contact section,
// lists peers and disconnects.
func TestConnectControl(t *testing.T) {
	a := startNodeT(t, "", loopback, shh)
	b := startNodeT(t, "", loopback, shh)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := a.l.Connect(ctx, &p2pv1.ConnectRequest{ContactSection: b.start.GetContactSection(), Persistent: true})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if enode.ID(resp.GetPeer().GetId()) != b.id() || !resp.GetPeer().GetOutbound() {
		t.Fatalf("Connect peer %+v", resp.GetPeer())
	}
	b.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, a.id())
	peers, err := b.l.Peers(ctx, &p2pv1.PeersRequest{})
	if err != nil || len(peers.GetPeers()) != 1 || enode.ID(peers.GetPeers()[0].GetId()) != a.id() || peers.GetPeers()[0].GetOutbound() {
		t.Fatalf("Peers: %v %v", peers, err)
	}
	info, err := a.l.NodeInfo(ctx, &p2pv1.NodeInfoRequest{})
	if err != nil || info.GetDisplayId() != a.url() || !bytes.Equal(info.GetContactSection(), a.start.GetContactSection()) {
		t.Fatalf("NodeInfo: %v %v", info, err)
	}
	// By address too, and errors.
	if _, err := a.l.Connect(ctx, &p2pv1.ConnectRequest{Address: b.url()}); err != nil {
		t.Fatalf("Connect by URL to a connected peer: %v", err)
	}
	if _, err := a.l.Connect(ctx, &p2pv1.ConnectRequest{Address: a.url()}); err == nil {
		t.Fatal("Connect to self succeeded")
	}
	if _, err := a.l.Connect(ctx, &p2pv1.ConnectRequest{ContactSection: []byte("junk")}); err == nil {
		t.Fatal("Connect with junk succeeded")
	}
	if _, err := a.l.Disconnect(ctx, &p2pv1.DisconnectRequest{Id: b.start.GetLocalAddress()}); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_DISCONNECTED, b.id())
	// Persistent, but disconnected: not redialed.
	time.Sleep(300 * time.Millisecond)
	if a.counter("peers") != 0 {
		t.Fatal("peer redialed after Disconnect")
	}
}

// TestRestartKeepsIdentityAndPort restarts a node on its data directory:
// same node key, and with sticky_port the same port, so a static peer
// reconnects with the old enode URL.
func TestRestartKeepsIdentityAndPort(t *testing.T) {
	dir := t.TempDir()
	a := startNodeT(t, dir, loopback, shh)
	firstURL, firstID := a.url(), a.id()
	st, err := os.Stat(filepath.Join(dir, nodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("nodekey mode %v, want 0600", st.Mode().Perm())
	}
	b := startNodeT(t, "", staticConfig(t, nil, firstURL), shh)
	a.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, b.id())
	a.stop(t)
	b.expectPeer(t, commonv1.PeerState_PEER_STATE_DISCONNECTED, firstID)

	a2 := startNodeT(t, dir, loopback, shh)
	if a2.id() != firstID {
		t.Fatalf("node id changed across restart: %s -> %s", firstID, a2.id())
	}
	if a2.url() != firstURL {
		t.Fatalf("enode URL changed across restart with sticky_port: %s -> %s", firstURL, a2.url())
	}
	// b would redial only after devp2p's 35 s dial history expires; a new
	// node with the old URL shows that it is still valid.
	c := startNodeT(t, "", staticConfig(t, nil, firstURL), shh)
	c.expectPeer(t, commonv1.PeerState_PEER_STATE_CONNECTED, firstID)

	// Without sticky_port the port is new (almost surely) but the id stays.
	a2.stop(t)
	a3 := startNodeT(t, dir, `{"listen":"127.0.0.1:0","sticky_port":false}`, shh)
	if a3.id() != firstID {
		t.Fatal("node id changed")
	}
}

// TestStickyPortTaken checks that a remembered port that is taken gives a
// fresh one instead of failing.
func TestStickyPortTaken(t *testing.T) {
	dir := t.TempDir()
	a := startNodeT(t, dir, loopback)
	a.stop(t)
	resolved, err := p2pkit.Sticky{Dir: dir, Shape: p2pkit.HostPortShape}.Resolve([]string{"127.0.0.1:0"})
	saved := resolved[0]
	if err != nil || saved == "127.0.0.1:0" {
		t.Fatalf("the remembered address = %q, %v", saved, err)
	}
	ln, err := net.Listen("tcp", saved)
	if err != nil {
		t.Skipf("cannot hold the port: %v", err)
	}
	defer ln.Close()
	a2 := startNodeT(t, dir, loopback)
	if a2.url() == a.url() {
		t.Fatal("started on a taken port")
	}
}

// TestDiscovery starts three nodes that know only a bootstrap node and
// checks that they find each other through discv4 (and discv5).
func TestDiscovery(t *testing.T) {
	if testing.Short() {
		t.Skip("discovery takes a few seconds")
	}
	for _, mode := range []string{discV4, discV5} {
		t.Run(mode, func(t *testing.T) {
			boot := startNodeT(t, "", fmt.Sprintf(`{"listen":"127.0.0.1:0","discovery":%q}`, mode), shh)
			cfg := fmt.Sprintf(`{"listen":"127.0.0.1:0","discovery":%q,"bootstrap":[%q]}`, mode, boot.url())
			var nodes []*testNode
			for range 3 {
				nodes = append(nodes, startNodeT(t, "", cfg, shh))
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				full := true
				for _, n := range nodes {
					if n.counter("peers") < 2 {
						full = false
					}
				}
				if full {
					return
				}
				if time.Now().After(deadline) {
					for i, n := range nodes {
						t.Logf("node %d: %d peers", i, n.counter("peers"))
					}
					t.Fatalf("nodes did not find each other with %s", mode)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestLifecycleErrors checks the phase rules.
func TestLifecycleErrors(t *testing.T) {
	l := New()
	lc := sdk.NewLifecycle(l) // the SDK's lifecycle, as Serve and InProcess run it
	ctx := context.Background()
	if _, err := lc.Start(ctx, &commonv1.StartRequest{}); err == nil {
		t.Fatal("Start before Configure succeeded")
	}
	if _, err := l.Connect(ctx, &p2pv1.ConnectRequest{Address: "x"}); err == nil {
		t.Fatal("Connect before Start succeeded")
	}
	tn := startNodeT(t, "", loopback)
	if _, err := tn.lc.Start(ctx, &commonv1.StartRequest{}); err == nil {
		t.Fatal("second Start succeeded")
	}
	bad := []*commonv1.Protocol{{Name: "shh", Version: 6, MessageCodes: 300}}
	l2 := New()
	if _, err := l2.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: loopback, DataDir: t.TempDir()}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Start(ctx, &commonv1.StartRequest{Protocols: bad}); err == nil {
		t.Fatal("Start with 300 message codes succeeded")
	}
	tn.stop(t)
	tn.send(down(enode.ID{1}, "shh", []byte{1}))
	if tn.counter("dropped_not_running") != 1 {
		t.Fatal("frame after Stop not counted")
	}
}

// TestStartFailsOnTakenPort checks that a fixed listen port in use is a
// Start error that leaves nothing running.
func TestStartFailsOnTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := New()
	ctx := context.Background()
	cfg := fmt.Sprintf(`{"listen":%q}`, ln.Addr().String())
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg, DataDir: t.TempDir()}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Start(ctx, &commonv1.StartRequest{Protocols: []*commonv1.Protocol{shh}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Start on a taken port succeeded")
		}
	case <-time.After(waitFor):
		t.Fatal("Start on a taken port hangs")
	}
	if l.Health(ctx).GetServing() {
		t.Fatal("serving after a failed Start")
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestListenInUseIsConfigError: a listen address in use makes Start fail
// with a config error that names the key and the fix, so the host can tell
// the user which setting to change.
func TestListenInUseIsConfigError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	lc := sdk.NewLifecycle(New())
	ctx := context.Background()
	cfg := fmt.Sprintf(`{"listen": %q, "discovery": "off", "sticky_port": false}`, addr)
	if _, err := lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg, DataDir: t.TempDir(), NodeName: t.Name()}, sdk.Env{Logger: testLogger(t), Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	defer lc.Stop(ctx)
	_, err = lc.Start(ctx, &commonv1.StartRequest{})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "listen" || !strings.Contains(ce.Problem, addr+" is in use") || ce.Fix == "" {
		t.Fatalf("Start on a busy address: %v, want a config error for key listen saying %s is in use", err, addr)
	}
}
