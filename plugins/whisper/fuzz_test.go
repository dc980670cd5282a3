package whisper

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

func FuzzDecodeStatus(f *testing.F) {
	geth, _ := hex.DecodeString("cc06883fc999999999999a8080")
	f.Add(geth)
	f.Add(encodeStatus(1.5, make([]byte, 64), true))
	f.Add([]byte{0xc1, 0x06})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeStatus(b)
		if err != nil {
			return
		}
		if st.Version != 6 || !validPoW(st.PoW) || (st.Bloom != nil && len(st.Bloom) != 64) {
			t.Fatalf("accepted %+v", st)
		}
		if st.PoWSet {
			again, err := decodeStatus(encodeStatus(st.PoW, st.Bloom, st.Light))
			if err != nil || again.PoW != st.PoW || !bytes.Equal(again.Bloom, st.Bloom) || again.Light != st.Light {
				t.Fatalf("re-encoding: %+v %v", again, err)
			}
		}
	})
}

func FuzzDecodePoWRequirement(f *testing.F) {
	f.Add(encodePoWRequirement(0.2))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodePoWRequirement(b)
		if err != nil {
			return
		}
		if !validPoW(v) {
			t.Fatalf("accepted %v", v)
		}
	})
}

func FuzzDecodeBloom(f *testing.F) {
	f.Add(encodeBloom(make([]byte, 64)))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		bloom, err := decodeBloom(b)
		if err == nil && len(bloom) != wire.BloomFilterSize {
			t.Fatalf("accepted %d bytes", len(bloom))
		}
	})
}

func FuzzDecodeAddress(f *testing.F) {
	k := mustKey(f)
	f.Add(encodeContact(&k.PublicKey))
	key, _ := wire.SymKeyFromPassword("x")
	f.Add(encodeShared(NameTopic("x"), key))
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAddress(b)
		if err != nil {
			return
		}
		var again []byte
		if a.kind == addrKindContact {
			again = encodeContact(a.pub)
		} else {
			again = encodeShared(a.topic, a.symKey)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%x re-encodes as %x", b, again)
		}
	})
}

// FuzzReceive feeds arbitrary code+payload frames from peers (the first
// seed handshakes) and checks the layer neither panics nor stops serving.
func FuzzReceive(f *testing.F) {
	f.Add(byte(0), encodeStatus(0.2, nil, false), byte(1), []byte{0xc0})
	f.Add(byte(0), encodeStatus(0, nil, false), byte(1), messages(symEnvelope(f, testTopic, 0.2, []byte("seed"))))
	f.Add(byte(0), encodeStatus(0.2, nil, false), byte(3), encodeBloom(make([]byte, 64)))
	f.Add(byte(2), []byte{0x88}, byte(127), []byte{0xc0})
	l, _ := newTestLayer(f, map[string]any{"min_pow": 0})
	f.Fuzz(func(t *testing.T, c1 byte, p1 []byte, c2 byte, p2 []byte) {
		l.HandleBatch(context.Background(), &commonv1.Batch{
			Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("fz"), State: commonv1.PeerState_PEER_STATE_CONNECTED}}}},
			Frames: []*commonv1.Frame{upFrame("fz", c1, p1), upFrame("fz", c2, p2), {Direction: commonv1.Direction_DIRECTION_DOWN, Peer: p1, Payload: p2}},
		})
		l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("fz"), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
		if !l.Health(context.Background()).GetServing() {
			t.Fatal("not serving")
		}
	})
}

// FuzzDecodeInner: the conversation prefix of a received payload never
// panics, and whatever it accepts re-encodes to the same bytes.
func FuzzDecodeInner(f *testing.F) {
	f.Add(byte(0), []byte("plain"))
	f.Add(conversationFlag, []byte{3, 'a', 'b', 'c', 'x'})
	f.Add(conversationFlag, []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, flags byte, b []byte) {
		conv, payload, err := decodeInner(flags, b)
		if err != nil {
			return
		}
		again, gotFlags, err := appendInner(nil, conv, payload)
		if err != nil {
			t.Fatalf("accepted conversation of %d bytes does not re-encode: %v", len(conv), err)
		}
		if gotFlags != flags&conversationFlag || !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x (flags %#x) from %x (flags %#x)", again, gotFlags, b, flags)
		}
	})
}
