package mixnet_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// TestMixLayerBatch: a mix layer hands the frames of a batch from below to
// its state machine together, which checks their replay tags in one
// commit (replay_batches 1): of two copies of a packet in one batch it
// forwards one, and the replay is counted.
func TestMixLayerBatch(t *testing.T) {
	n := newNetwork(t)
	geo, err := sphinx.NewGeometry(2000, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	mb := &mixBench{n: n, mix: member(t, n, "mix-0-0"), feeder: member(t, n, "provider-0"), sink: member(t, n, "mix-1-0"), geo: geo}
	p := mb.frames(t, 2)
	for _, durability := range []string{"full", "normal"} {
		t.Run("durability="+durability, func(t *testing.T) {
			o := &overlay{nodes: map[string]*layerNode{}}
			mix := o.start(t, "mix-0-0", n.peerID(t, "mix-0-0"), n.config(mixnet.RoleMix, "mix-0-0", map[string]any{"durability": durability, "lambda_m": 0}))
			from := []byte(n.peerID(t, "provider-0"))
			up := func(frame []byte) *commonv1.Frame {
				return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: from, Protocol: mixnet.ProtocolName, Payload: append([]byte(nil), frame...)}
			}
			ctx := context.Background()
			mix.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{up(p[0]), up(p[1]), up(p[0])}})
			counters := func() map[string]uint64 { return mix.l.Health(ctx).GetCounters() }
			deadline := time.Now().Add(10 * time.Second)
			for counters()["packets_forwarded"] < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // a third would come now
			c := counters()
			mix.mu.Lock()
			down := mix.down
			mix.mu.Unlock()
			if c["packets_in"] != 3 || c["packets_forwarded"] != 2 || down != 2 || c["dropped_replayed"] != 1 || c["replay_batches"] != 1 {
				t.Fatalf("of 3 packets (one a copy) in one batch: %d in, %d forwarded, %d frames down, %d replays, %d replay batches; want 3, 2, 2, 1, 1",
					c["packets_in"], c["packets_forwarded"], down, c["dropped_replayed"], c["replay_batches"])
			}
		})
	}
}

// TestProviderLayerBatch: a provider layer hands the frames of a batch
// from below to its state machine together: a client's pull (which
// registers its mailbox) and three packets from a mix for that mailbox,
// one a copy. It checks their replay tags in one commit (replay_batches
// 1) and stores the two new entries in one mailbox transaction
// (mailbox_batches 1); the copy is counted as a replay.
func TestProviderLayerBatch(t *testing.T) {
	n := newNetwork(t)
	geo, err := sphinx.NewGeometry(2000, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	prov := member(t, n, "provider-0")
	kp, err := prov.Keys.Key(n.epoch)
	if err != nil {
		t.Fatal(err)
	}
	var token [loopix.TokenLength]byte
	token[0] = 7
	id := loopix.MailboxIDOf(token)
	// Packets whose only hop is the provider, for the client's mailbox.
	var p [2][]byte
	for i := range p {
		pkt, err := geo.NewPacket(rand.Reader, []sphinx.PathHop{{
			ID: prov.Descriptor.NodeID(), PublicKey: sphinx.PublicKey(kp.Public),
			Commands: sphinx.Commands{sphinx.Recipient{ID: sphinx.RecipientID(id)}},
		}}, make([]byte, geo.ForwardPayloadLength))
		if err != nil {
			t.Fatal(err)
		}
		p[i] = loopix.EncodePacket(pkt)
	}
	for _, durability := range []string{"full", "normal"} {
		t.Run("durability="+durability, func(t *testing.T) {
			o := &overlay{nodes: map[string]*layerNode{}}
			node := o.start(t, "provider-0", n.peerID(t, "provider-0"), n.config(mixnet.RoleProvider, "provider-0", map[string]any{"durability": durability, "lambda_m": 0}))
			mix, client := []byte(n.peerID(t, "mix-2-0")), []byte("a client")
			up := func(from, frame []byte) *commonv1.Frame {
				return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: from, Protocol: mixnet.ProtocolName, Payload: append([]byte(nil), frame...)}
			}
			ctx := context.Background()
			node.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{
				up(client, loopix.EncodePull(loopix.Pull{Token: token})), up(mix, p[0]), up(mix, p[1]), up(mix, p[0]),
			}})
			counters := func() map[string]uint64 { return node.l.Health(ctx).GetCounters() }
			deadline := time.Now().Add(10 * time.Second)
			for counters()["mailbox_stored"] < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // a third would come now
			c := counters()
			if c["pulls"] != 1 || c["packets_in"] != 3 || c["mailbox_stored"] != 2 || c["dropped_replayed"] != 1 || c["replay_batches"] != 1 || c["mailbox_batches"] != 1 {
				t.Fatalf("a pull and 3 packets (one a copy) in one batch: %d pulls, %d in, %d stored, %d replays, %d replay batches, %d mailbox batches; want 1, 3, 2, 1, 1, 1",
					c["pulls"], c["packets_in"], c["mailbox_stored"], c["dropped_replayed"], c["replay_batches"], c["mailbox_batches"])
			}
		})
	}
}
