package conformance

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// testProtocol is the overlay protocol the P2P suite registers.
var testProtocol = &commonv1.Protocol{Name: "conformance", Version: 1, MessageCodes: 1}

// P2P runs Layer, then checks the p2p contract (core/api/p2p/v1) between
// two instances: connect, unicast both ways intact and in order, the frame
// size limit, broadcast (when provided), peer events and disconnect. Every
// frame an instance emits while the suite waits for traffic must be an UP
// frame with Frame.peer = the sender's overlay id (its
// StartResponse.local_address) and Frame.protocol = the protocol or topic
// it was sent on, carrying the payload sent; the first that is not fails
// the subtest at once.
func P2P[T TB[T]](t T, open sdktest.Opener, o Options) {
	Layer(t, open, o)

	start := func(t testing.TB) (a, b *instance) {
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

	t.Run("UnicastBothWays", func(t T) {
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
				f := dir.to.expect(o.timeout(), fmt.Sprintf("%s: frame %d", dir.name, i), anyFrame, p2pInbound(dir.from, testProtocol.GetName()))
				if want := payload(i, 1+i%1500); !bytes.Equal(f.GetPayload(), want) {
					t.Fatalf("%s: frame %d arrived out of order or damaged: want %d bytes %s\n\tframe: %s", dir.name, i, len(want), sdktest.FormatBytes(want), sdktest.FormatFrame(f))
				}
			}
		}
	})

	t.Run("RefusesOversize", func(t T) {
		a, b := start(t)
		limit := a.info.GetMaxPayload()
		if limit == 0 {
			t.Skip("the layer declares no payload limit")
		}
		big := bytes.Repeat([]byte{0xAB}, int(limit)+1)
		a.send(downTo(b.started.GetLocalAddress(), testProtocol.GetName(), big),
			downTo(b.started.GetLocalAddress(), testProtocol.GetName(), []byte("after")))
		f := b.expect(o.timeout(), "the frame after the oversize one", anyFrame, p2pInbound(a, testProtocol.GetName()))
		if !bytes.Equal(f.GetPayload(), []byte("after")) {
			t.Fatalf("got a %d-byte frame; the oversize frame was not refused", len(f.GetPayload()))
		}
	})

	t.Run("Broadcast", func(t T) {
		a, b := start(t)
		if !provides(a.info, sdk.CapBroadcast) {
			t.Skip("the layer does not provide broadcast")
		}
		const topic = "conformance-topic"
		for _, in := range []*instance{a, b} {
			if _, err := control(in).Subscribe(context.Background(), &p2pv1.SubscribeRequest{Topic: topic}); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
		}
		// A pubsub mesh takes a moment to form; publish until one arrives.
		deadline := time.After(o.timeout())
		check := p2pInbound(a, topic)
		for {
			a.send(downTo(nil, topic, []byte("to everyone")))
			select {
			case f := <-b.frames:
				if problem := check(f); problem != "" {
					t.Fatalf("while waiting for a broadcast: %s\n\tframe: %s", problem, sdktest.FormatFrame(f))
				}
				if !bytes.Equal(f.GetPayload(), []byte("to everyone")) {
					t.Fatalf("a broadcast arrived damaged, want payload \"to everyone\"\n\tframe: %s", sdktest.FormatFrame(f))
				}
				return
			case <-time.After(500 * time.Millisecond):
			case <-deadline:
				t.Fatalf("timed out after %v waiting for a broadcast", o.timeout())
			}
		}
	})

	t.Run("Disconnect", func(t T) {
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

// anyFrame matches every frame.
func anyFrame(*commonv1.Frame) bool { return true }

// p2pInbound checks a frame that arrives while the suite waits for traffic
// from one sender on one protocol or topic: it must be an UP frame from
// that sender's overlay id on that protocol.
func p2pInbound(from *instance, protocol string) func(*commonv1.Frame) string {
	return func(f *commonv1.Frame) string {
		switch {
		case f.GetDirection() != commonv1.Direction_DIRECTION_UP:
			return fmt.Sprintf("a frame with direction %v, want UP: a frame received from a peer goes up", f.GetDirection())
		case !bytes.Equal(f.GetPeer(), from.started.GetLocalAddress()):
			return fmt.Sprintf("a frame from peer %s, want the sender's overlay id %s (its StartResponse.local_address)", sdktest.FormatBytes(f.GetPeer()), sdktest.FormatBytes(from.started.GetLocalAddress()))
		case f.GetProtocol() != protocol:
			return fmt.Sprintf("a frame on protocol %q, want %q, the protocol it was sent on", f.GetProtocol(), protocol)
		}
		return ""
	}
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
