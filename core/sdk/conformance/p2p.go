package conformance

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// testProtocol is the overlay protocol the P2P suite registers.
var testProtocol = &commonv1.Protocol{Name: "conformance", Version: 1, MessageCodes: 1}

// P2P runs Layer, then checks the p2p contract between two instances:
// connect, unicast both ways intact and in order, the frame size limit,
// broadcast (when provided), peer events and disconnect.
func P2P(t *testing.T, open sdktest.Opener, o Options) {
	Layer(t, open, o)

	start := func(t *testing.T) (a, b *instance) {
		req := func() *commonv1.StartRequest {
			return &commonv1.StartRequest{Protocols: []*commonv1.Protocol{testProtocol}}
		}
		a = setup(t, open, o.config(0), req())
		b = setup(t, open, o.config(1), req())
		connect(t, a, b)
		a.expectPeer(o.timeout(), commonv1.PeerState_PEER_STATE_CONNECTED, b.started.GetLocalAddress())
		b.expectPeer(o.timeout(), commonv1.PeerState_PEER_STATE_CONNECTED, a.started.GetLocalAddress())
		return a, b
	}

	t.Run("UnicastBothWays", func(t *testing.T) {
		a, b := start(t)
		const n = 1000
		for _, dir := range []struct {
			name     string
			from, to *instance
		}{{"a to b", a, b}, {"b to a", b, a}} {
			frames := make([]*commonv1.Frame, n)
			for i := range frames {
				frames[i] = downTo(dir.to.started.GetLocalAddress(), testProtocol.GetName(), payload(i, 1+i%1500))
			}
			dir.from.send(frames...)
			for i := range n {
				f := dir.to.expect(o.timeout(), fmt.Sprintf("%s: frame %d", dir.name, i), func(f *commonv1.Frame) bool { return f.GetProtocol() == testProtocol.GetName() })
				if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
					t.Fatalf("%s: frame %d has direction %v, want UP", dir.name, i, f.GetDirection())
				}
				if !bytes.Equal(f.GetPeer(), dir.from.started.GetLocalAddress()) {
					t.Fatalf("%s: frame %d is from %x, want the sender %x", dir.name, i, f.GetPeer(), dir.from.started.GetLocalAddress())
				}
				if want := payload(i, 1+i%1500); !bytes.Equal(f.GetPayload(), want) {
					t.Fatalf("%s: frame %d arrived out of order or damaged", dir.name, i)
				}
			}
		}
	})

	t.Run("RefusesOversize", func(t *testing.T) {
		a, b := start(t)
		limit := a.info.GetMaxPayload()
		if limit == 0 {
			t.Skip("the layer declares no payload limit")
		}
		big := bytes.Repeat([]byte{0xAB}, int(limit)+1)
		a.send(downTo(b.started.GetLocalAddress(), testProtocol.GetName(), big),
			downTo(b.started.GetLocalAddress(), testProtocol.GetName(), []byte("after")))
		f := b.expect(o.timeout(), "the frame after the oversize one", func(f *commonv1.Frame) bool { return f.GetProtocol() == testProtocol.GetName() })
		if !bytes.Equal(f.GetPayload(), []byte("after")) {
			t.Fatalf("got a %d-byte frame; the oversize frame was not refused", len(f.GetPayload()))
		}
	})

	t.Run("Broadcast", func(t *testing.T) {
		a, b := start(t)
		if !provides(a.info, "broadcast") {
			t.Skip("the layer does not provide broadcast")
		}
		const topic = "conformance-topic"
		for _, in := range []*instance{a, b} {
			if _, err := control(in).Subscribe(context.Background(), &p2pv1.SubscribeRequest{Topic: topic}); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
		}
		// A pubsub mesh takes a moment to form; publish until one arrives.
		deadline := time.Now().Add(o.timeout())
		got := make(chan *commonv1.Frame, 1)
		go func() {
			got <- b.expect(o.timeout(), "a broadcast", func(f *commonv1.Frame) bool { return f.GetProtocol() == topic })
		}()
		for {
			a.send(downTo(nil, topic, []byte("to everyone")))
			select {
			case f := <-got:
				if !bytes.Equal(f.GetPayload(), []byte("to everyone")) {
					t.Fatalf("broadcast payload %q", f.GetPayload())
				}
				return
			case <-time.After(500 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no broadcast arrived")
			}
		}
	})

	t.Run("Disconnect", func(t *testing.T) {
		a, b := start(t)
		if _, err := control(a).Disconnect(context.Background(), &p2pv1.DisconnectRequest{Id: b.started.GetLocalAddress()}); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
		a.expectPeer(o.timeout(), commonv1.PeerState_PEER_STATE_DISCONNECTED, b.started.GetLocalAddress())
		peers, err := control(a).Peers(context.Background(), &p2pv1.PeersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers.GetPeers() {
			if bytes.Equal(p.GetId(), b.started.GetLocalAddress()) {
				t.Fatal("peer still listed after Disconnect")
			}
		}
	})
}

func control(in *instance) p2pv1.ControlClient { return p2pv1.NewControlClient(in.conn.Control()) }

// connect dials b from a with b's contact section.
func connect(t testing.TB, a, b *instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := control(a).Connect(ctx, &p2pv1.ConnectRequest{ContactSection: b.started.GetContactSection()}); err != nil {
		t.Fatalf("Connect: %v", err)
	}
}

func provides(info *commonv1.PluginInfo, capability string) bool {
	for _, p := range info.GetProvides() {
		if p == capability {
			return true
		}
	}
	return false
}

// payload is frame i's deterministic content of n bytes.
func payload(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	copy(b, fmt.Sprintf("%08d", i))
	return b
}
