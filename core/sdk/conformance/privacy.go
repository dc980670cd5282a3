package conformance

import (
	"bytes"
	"context"
	"testing"

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

		// The suite is the overlay: a's DOWN frames for b's overlay id (or
		// broadcasts) arrive at b as UP frames from a's overlay id.
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		go func() {
			for {
				select {
				case <-done:
					return
				case f := <-a.frames:
					if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
						continue
					}
					if len(f.GetPeer()) == 0 || bytes.Equal(f.GetPeer(), overlayB) {
						ctx, cancel := context.WithTimeout(context.Background(), o.timeout())
						_ = b.link.Emit(ctx, up(overlayA, f.GetProtocol(), f.GetPayload()))
						cancel()
					}
				}
			}
		}()

		msg := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			Peer:         b.started.GetContactSection(),
			Conversation: []byte("conformance-conversation"),
			Payload:      []byte("a message for b"),
		}
		a.send(msg)
		got := b.expect(o.timeout(), "the message at b", func(f *commonv1.Frame) bool {
			return f.GetDirection() == commonv1.Direction_DIRECTION_UP && bytes.Equal(f.GetPayload(), []byte("a message for b"))
		})
		if !bytes.Equal(got.GetConversation(), []byte("conformance-conversation")) {
			t.Fatalf("conversation %q did not survive", got.GetConversation())
		}
	})
}
