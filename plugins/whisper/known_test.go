package whisper

import (
	"context"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// knownBy is the number of pooled envelopes peer p knows.
func knownBy(l *Layer, p *peer) int {
	n := 0
	for _, ent := range l.pool {
		if ent.known.has(p.slot) {
			n++
		}
	}
	return n
}

func disconnect(l *Layer, id string) {
	l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(id), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
}

func TestKnownSet(t *testing.T) {
	var k knownSet
	in := []int{0, 1, 63, 64, 127, 200}
	for _, s := range in {
		k.set(s)
	}
	for s := 0; s < 260; s++ {
		want := false
		for _, x := range in {
			want = want || x == s
		}
		if k.has(s) != want {
			t.Fatalf("has(%d) = %v, want %v", s, !want, want)
		}
	}
	for _, s := range []int{63, 200, 500} {
		k.clear(s)
	}
	for _, s := range in {
		if want := s != 63 && s != 200; k.has(s) != want {
			t.Fatalf("after clears: has(%d) = %v, want %v (%+v)", s, !want, want, k)
		}
	}
}

// TestSlotOfAGonePeer checks that a peer slot is taken again only once no
// pooled envelope carries the gone peer's bit: a new peer on a reused
// slot must still be handed the whole pool. Slots come back either by the
// sweep (more than maxDirtySlots gone peers) or by the expiry of every
// envelope the gone peer could know.
func TestSlotOfAGonePeer(t *testing.T) {
	for _, how := range []string{"sweep", "expiry"} {
		t.Run(how, func(t *testing.T) {
			l, c := newTestLayer(t, nil)
			now := time.Now()
			fixClock(l, &now)
			handshake(l, 0.2, nil, "p")
			feed(l, upFrame("p", wire.MessagesCode, messages(symEnvelope(t, testTopic, 0.2, []byte("pooled")))))
			if counter(l, "envelopes_received") != 1 || knownBy(l, l.peers["p"]) != 1 {
				t.Fatalf("%v", l.Health(context.Background()).GetCounters())
			}
			slot := l.peers["p"].slot
			disconnect(l, "p")
			switch how {
			case "sweep":
				for i := 0; i < maxDirtySlots; i++ {
					id := fmt.Sprintf("churn%d", i)
					handshake(l, 0.2, nil, id)
					disconnect(l, id)
				}
				if len(l.slots.dirty) != 0 {
					t.Fatalf("%d dirty slots after %d gone peers", len(l.slots.dirty), maxDirtySlots+1)
				}
			case "expiry":
				// While the envelope p knows is pooled, its slot stays
				// dirty.
				l.mu.Lock()
				l.expire(now.Add(2 * time.Second))
				l.mu.Unlock()
				if len(l.pool) != 1 || len(l.slots.dirty) != 1 {
					t.Fatalf("pool %d, dirty slots %d before expiry, want 1 and 1", len(l.pool), len(l.slots.dirty))
				}
				// A later envelope would keep the slot dirty; with
				// the pool expired, the next expire frees it.
				now = now.Add(time.Duration(wire.DefaultTTL+60) * time.Second)
				l.mu.Lock()
				l.expire(now)
				l.mu.Unlock()
				if len(l.pool) != 0 || len(l.slots.dirty) != 0 {
					t.Fatalf("pool %d, dirty slots %d after expiry", len(l.pool), len(l.slots.dirty))
				}
				// An envelope pooled after the expiry, for the newcomer
				// to be handed (put in the pool directly: the layer's
				// clock is ahead of the one symEnvelope seals with).
				e := symEnvelope(t, testTopic, 0.2, []byte("fresh"))
				e.Expiry += uint32(wire.DefaultTTL + 60)
				l.mu.Lock()
				l.pooled(newEntry(e, e.Encode(), 1))
				l.mu.Unlock()
			}
			emitted(t, l, c)
			handshake(l, 0.2, nil, "q")
			if l.peers["q"].slot != slot {
				t.Fatalf("q took slot %d, want the swept slot %d", l.peers["q"].slot, slot)
			}
			fs := framesTo(emitted(t, l, c), "q", wire.MessagesCode)
			if len(fs) != 1 {
				t.Fatalf("a new peer on a reused slot got %d batches of the pool, want 1", len(fs))
			}
			if envs, err := decodeMessages(fs[0].GetPayload()[1:]); err != nil || len(envs) != 1 {
				t.Fatalf("a new peer on a reused slot got %d envelopes (%v), want 1", len(envs), err)
			}
			if how != "sweep" {
				return
			}
			// The churning peers had the envelope on slots 1–64, beyond
			// the first word of the known sets too: newcomers on each of
			// those slots are handed it as well.
			for i := 1; i <= maxDirtySlots; i++ {
				id := fmt.Sprintf("again%d", i)
				handshake(l, 0.2, nil, id)
				if got := l.peers[id].slot; got != i {
					t.Fatalf("%s took slot %d, want %d", id, got, i)
				}
				if fs := framesTo(emitted(t, l, c), id, wire.MessagesCode); len(fs) != 1 {
					t.Fatalf("a new peer on swept slot %d got %d batches of the pool, want 1", i, len(fs))
				}
			}
		})
	}
}
