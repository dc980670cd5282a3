package conformance

import (
	"bytes"
	"context"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// Privacy runs Layer, then checks the privacy contract between two
// instances joined by an in-memory overlay that the suite plays itself: a
// message sent to the other's contact section arrives with its payload and
// conversation, and OwnAddress agrees with the contact section.
func Privacy(t *testing.T, open sdktest.Opener, o Options) {
	Layer(t, open, o)

	t.Run("SendToContact", func(t *testing.T) {
		overlayA, overlayB := []byte("overlay-node-a"), []byte("overlay-node-b")
		a := setup(t, open, o.config(0), &commonv1.StartRequest{BelowAddress: overlayA})
		b := setup(t, open, o.config(1), &commonv1.StartRequest{BelowAddress: overlayB})
		for _, p := range []struct {
			in   *instance
			peer []byte
		}{{a, overlayB}, {b, overlayA}} {
			if err := p.in.link.EmitEvent(context.Background(), &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: p.peer, State: commonv1.PeerState_PEER_STATE_CONNECTED}}}); err != nil {
				t.Fatal(err)
			}
		}
		own, err := privacyv1.NewControlClient(b.conn.Control()).OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
		if err != nil {
			t.Fatalf("OwnAddress: %v", err)
		}
		if !bytes.Equal(own.GetAddress(), b.started.GetContactSection()) {
			t.Fatalf("OwnAddress %x differs from the contact section %x", own.GetAddress(), b.started.GetContactSection())
		}

		// The suite is the overlay, both ways (a layer may need a
		// handshake): a's DOWN frames for b's overlay id (or broadcasts)
		// arrive at b as UP frames from a's overlay id, and b's at a. A
		// frame that is not DOWN goes back for the test to see.
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		carry := func(from, to *instance, fromID, toID []byte, seen chan<- *commonv1.Frame) {
			for {
				select {
				case <-done:
					return
				case f := <-from.frames:
					if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
						select {
						case seen <- f:
						case <-done:
							return
						}
						continue
					}
					if len(f.GetPeer()) == 0 || bytes.Equal(f.GetPeer(), toID) {
						ctx, cancel := context.WithTimeout(context.Background(), o.timeout())
						_ = to.link.Emit(ctx, up(fromID, f.GetProtocol(), f.GetPayload()))
						cancel()
					}
				}
			}
		}
		upAtB := make(chan *commonv1.Frame, 64)
		go carry(a, b, overlayA, overlayB, make(chan *commonv1.Frame, 64))
		go carry(b, a, overlayB, overlayA, upAtB)

		msg := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			Peer:         b.started.GetContactSection(),
			Conversation: []byte("conformance-conversation"),
			Payload:      []byte("a message for b"),
		}
		a.send(msg)
		var got *commonv1.Frame
		deadline := time.After(o.timeout())
		for got == nil {
			select {
			case f := <-upAtB:
				if f.GetDirection() == commonv1.Direction_DIRECTION_UP && bytes.Equal(f.GetPayload(), []byte("a message for b")) {
					got = f
				}
			case <-deadline:
				t.Fatalf("timed out after %v waiting for the message at b", o.timeout())
			}
		}
		if !bytes.Equal(got.GetConversation(), []byte("conformance-conversation")) {
			t.Fatalf("conversation %q did not survive", got.GetConversation())
		}
	})
}
