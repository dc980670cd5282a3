package loopix_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

func FuzzDecodeFrame(f *testing.F) {
	g := testGeometry(f)
	f.Add(loopix.EncodePull(loopix.Pull{Ack: 3}))
	e, _ := loopix.EncodeEntry(g, loopix.Entry{Seq: 1, Real: true, Payload: make([]byte, loopix.EntryLength(g))})
	f.Add(e)
	d, _ := loopix.EncodeEntry(g, loopix.Entry{})
	f.Add(d)
	f.Add(loopix.EncodePacket(make([]byte, g.PacketLength)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := loopix.DecodeFrame(g, b)
		if err != nil {
			if !errors.Is(err, loopix.ErrFrame) {
				t.Fatalf("error %v is not ErrFrame", err)
			}
			return
		}
		var again []byte
		switch fr.Type {
		case loopix.FramePacket:
			again = loopix.EncodePacket(fr.Packet)
		case loopix.FramePull:
			again = loopix.EncodePull(fr.Pull)
		case loopix.FrameMailbox:
			if again, err = loopix.EncodeEntry(g, fr.Entry); err != nil {
				t.Fatal(err)
			}
		}
		if string(again) != string(b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func FuzzDecodeFragment(f *testing.F) {
	frags, _ := loopix.Split([16]byte{1}, []byte("a message"), 100)
	f.Add(frags[0])
	loop, _ := loopix.EncodeFragment(loopix.Fragment{Kind: loopix.KindLoop, Count: 1}, 100)
	f.Add(loop)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := loopix.DecodeFragment(b)
		if err != nil {
			if !errors.Is(err, loopix.ErrFragment) {
				t.Fatalf("error %v is not ErrFragment", err)
			}
			return
		}
		again, err := loopix.EncodeFragment(fr, len(b))
		if err != nil || string(again) != string(b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, b, again)
		}
		r := loopix.Reassembler{FragmentData: loopix.FragmentDataLength(len(b)), MaxPending: 2, MaxMessage: 1 << 16, Timeout: time.Minute}
		_, _ = r.Add(time.Unix(0, 0), fr)
	})
}

func FuzzUnmarshalMessage(f *testing.F) {
	b, _ := loopix.MarshalMessage(&loopix.Message{From: []byte("f"), Conversation: []byte("c"), Payload: []byte("p")})
	f.Add(b)
	b, _ = loopix.MarshalMessage(&loopix.Message{Conversation: []byte("c"), Payload: []byte("p"), ReplySURBs: [][]byte{[]byte("surb one"), []byte("surb two")}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := loopix.UnmarshalMessage(b)
		if err != nil {
			if !errors.Is(err, loopix.ErrFragment) {
				t.Fatalf("error %v is not ErrFragment", err)
			}
			return
		}
		again, err := loopix.MarshalMessage(m)
		if err != nil || string(again) != string(b) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	k, _ := loopix.NewKeyPair(seeded(3))
	a := loopix.Address{Key: k.Public}
	f.Add(a.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := loopix.ParseAddress(b)
		if err != nil {
			if !errors.Is(err, loopix.ErrAddress) {
				t.Fatalf("error %v is not ErrAddress", err)
			}
			return
		}
		if string(a.Marshal()) != string(b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzOpen(f *testing.F) {
	r := seeded(4)
	k, _ := loopix.NewKeyPair(r)
	sealed, _ := loopix.Seal(r, k.Public, []byte("x"))
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := loopix.Open(k, b); err != nil && !errors.Is(err, loopix.ErrOpen) {
			t.Fatalf("error %v is not ErrOpen", err)
		}
	})
}

// FuzzHandle gives every role arbitrary link frames from a relay's and a
// client's peer id: nothing panics, and the network keeps working.
func FuzzHandle(f *testing.F) {
	s := newSim(f, simOptions{seed: 7, rates: loopix.Rates{LambdaP: 1, Mu: 10}})
	_, ca := s.addClient("alice", "provider-0")
	s.run(3 * time.Second)
	f.Add(loopix.EncodePull(loopix.Pull{}))
	f.Add(loopix.EncodePacket(make([]byte, s.geo.PacketLength)))
	e, _ := loopix.EncodeEntry(s.geo, loopix.Entry{Seq: 9, Real: true, Payload: make([]byte, loopix.EntryLength(s.geo))})
	f.Add(e)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range []string{"mix-0-0", "provider-0", "alice"} {
			for _, from := range []loopix.PeerID{"provider-0", "alice", "mix-2-1"} {
				s.nodes[loopix.PeerID(n)].eng.Handle(s.ctx, s.now, from, append([]byte(nil), b...))
			}
		}
		_ = ca.Counters()
	})
}

func FuzzDecodeStored(f *testing.F) {
	g := testGeometry(f)
	fwd, _ := loopix.EncodeStored(g, loopix.Stored{Kind: loopix.StoredForward, Body: make([]byte, g.ForwardPayloadLength)})
	f.Add(fwd)
	reply, _ := loopix.EncodeStored(g, loopix.Stored{Kind: loopix.StoredSURBReply, SURBID: [16]byte{1}, Body: make([]byte, 32+g.ForwardPayloadLength)})
	f.Add(reply)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := loopix.DecodeStored(g, b)
		if err != nil {
			if !errors.Is(err, loopix.ErrFrame) {
				t.Fatalf("error %v is not ErrFrame", err)
			}
			return
		}
		again, err := loopix.EncodeStored(g, s)
		if err != nil || string(again) != string(b) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzParseReplyAddress(f *testing.F) {
	f.Add(loopix.ReplyAddress([loopix.ReplyTagLength]byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := loopix.ParseReplyAddress(b)
		if err != nil {
			if !errors.Is(err, loopix.ErrAddress) {
				t.Fatalf("error %v is not ErrAddress", err)
			}
			return
		}
		if !bytes.Equal(loopix.ReplyAddress(tag), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
