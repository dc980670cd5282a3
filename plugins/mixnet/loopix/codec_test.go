package loopix_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

func testGeometry(t testing.TB) *sphinx.Geometry {
	g, err := sphinx.NewGeometry(600, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestFrameRoundTrip(t *testing.T) {
	g := testGeometry(t)
	pkt := bytes.Repeat([]byte{7}, g.PacketLength)
	var tok [loopix.TokenLength]byte
	tok[0] = 9
	entry, err := loopix.EncodeEntry(g, loopix.Entry{Seq: 42, Real: true, Payload: bytes.Repeat([]byte{5}, loopix.EntryLength(g))})
	if err != nil {
		t.Fatal(err)
	}
	dummy, err := loopix.EncodeEntry(g, loopix.Entry{Seq: 42, Payload: []byte("ignored")})
	if err != nil {
		t.Fatal(err)
	}
	if len(dummy) != len(entry) {
		t.Fatalf("dummy of %d bytes, real entry of %d: a pull answer's size would tell them apart", len(dummy), len(entry))
	}
	tests := []struct {
		name  string
		frame []byte
		check func(loopix.Frame) bool
	}{
		{"packet", loopix.EncodePacket(pkt), func(f loopix.Frame) bool { return f.Type == loopix.FramePacket && bytes.Equal(f.Packet, pkt) }},
		{"pull", loopix.EncodePull(loopix.Pull{Token: tok, Ack: 77}), func(f loopix.Frame) bool {
			return f.Type == loopix.FramePull && f.Pull.Token == tok && f.Pull.Ack == 77
		}},
		{"entry", entry, func(f loopix.Frame) bool { return f.Entry.Real && f.Entry.Seq == 42 && f.Entry.Payload[0] == 5 }},
		{"dummy", dummy, func(f loopix.Frame) bool { return !f.Entry.Real && f.Entry.Seq == 0 && f.Entry.Payload == nil }},
	}
	for _, tt := range tests {
		f, err := loopix.DecodeFrame(g, tt.frame)
		if err != nil || !tt.check(f) {
			t.Errorf("%s: %+v, %v", tt.name, f.Type, err)
		}
		for _, bad := range [][]byte{tt.frame[:len(tt.frame)-1], append(bytes.Clone(tt.frame), 0)} {
			if _, err := loopix.DecodeFrame(g, bad); !errors.Is(err, loopix.ErrFrame) {
				t.Errorf("%s of %d bytes: %v", tt.name, len(bad), err)
			}
		}
	}
	bad := bytes.Clone(entry)
	bad[9] = 7
	if _, err := loopix.DecodeFrame(g, bad); !errors.Is(err, loopix.ErrFrame) {
		t.Errorf("bad entry flags: %v", err)
	}
}

func TestStoredEntries(t *testing.T) {
	g := testGeometry(t)
	body := bytes.Repeat([]byte{3}, g.ForwardPayloadLength)
	fwd, err := loopix.EncodeStored(g, loopix.Stored{Kind: loopix.StoredForward, Body: body})
	if err != nil || len(fwd) != loopix.EntryLength(g) {
		t.Fatalf("forward entry of %d bytes, %v", len(fwd), err)
	}
	reply, err := loopix.EncodeStored(g, loopix.Stored{Kind: loopix.StoredSURBReply, SURBID: [16]byte{9}, Body: append(bytes.Clone(body), make([]byte, 32)...)})
	if err != nil || len(reply) != len(fwd) {
		t.Fatalf("reply entry of %d bytes (forward %d), %v", len(reply), len(fwd), err)
	}
	if s, err := loopix.DecodeStored(g, fwd); err != nil || s.Kind != loopix.StoredForward || !bytes.Equal(s.Body, body) {
		t.Fatalf("forward: %+v, %v", s.Kind, err)
	}
	if s, err := loopix.DecodeStored(g, reply); err != nil || s.Kind != loopix.StoredSURBReply || s.SURBID[0] != 9 || len(s.Body) != len(body)+32 {
		t.Fatalf("reply: %+v, %v", s.Kind, err)
	}
	for _, bad := range []loopix.Stored{
		{Kind: 3, Body: body},
		{Kind: loopix.StoredForward, Body: body[1:]},
		{Kind: loopix.StoredForward, SURBID: [16]byte{1}, Body: body},
		{Kind: loopix.StoredSURBReply, Body: body},
	} {
		if _, err := loopix.EncodeStored(g, bad); !errors.Is(err, loopix.ErrFrame) {
			t.Errorf("kind %d, %d bytes: %v", bad.Kind, len(bad.Body), err)
		}
	}
	padded := bytes.Clone(fwd)
	padded[len(padded)-1] = 1
	if _, err := loopix.DecodeStored(g, padded); !errors.Is(err, loopix.ErrFrame) {
		t.Errorf("non-zero padding: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	r := seeded(1)
	k, err := loopix.NewKeyPair(r)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := loopix.NewKeyPair(r)
	pt := []byte("inner payload")
	sealed, err := loopix.Seal(r, k.Public, pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(pt)+loopix.SealOverhead || bytes.Contains(sealed, pt) {
		t.Fatalf("sealed %x", sealed)
	}
	if got, err := loopix.Open(k, sealed); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := loopix.Open(other, sealed); !errors.Is(err, loopix.ErrOpen) {
		t.Fatalf("opened with another key: %v", err)
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x80
		if _, err := loopix.Open(k, b); !errors.Is(err, loopix.ErrOpen) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := loopix.Seal(r, [32]byte{}, pt); err == nil {
		t.Fatal("sealed to the zero key")
	}
}

func TestAddress(t *testing.T) {
	k, _ := loopix.NewKeyPair(seeded(2))
	a := loopix.Address{Provider: sphinx.NodeID{1}, Mailbox: loopix.MailboxID{2}, Key: k.Public}
	got, err := loopix.ParseAddress(a.Marshal())
	if err != nil || *got != a {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b := a.Marshal()
	for _, bad := range [][]byte{b[:len(b)-1], append([]byte{2}, b[1:]...), append(b[:len(b)-32:len(b)-32], make([]byte, 32)...)} {
		if _, err := loopix.ParseAddress(bad); !errors.Is(err, loopix.ErrAddress) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestSplitReassemble(t *testing.T) {
	const inner = 552
	per := loopix.FragmentDataLength(inner)
	now := time.Unix(1000, 0)
	for _, n := range []int{0, 1, per - 1, per, per + 1, 5*per + 3} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		frags, err := loopix.Split([16]byte{byte(n)}, msg, inner)
		if err != nil {
			t.Fatal(err)
		}
		if want := max(1, (n+per-1)/per); len(frags) != want {
			t.Fatalf("%d bytes: %d fragments, want %d", n, len(frags), want)
		}
		r := loopix.Reassembler{FragmentData: per, MaxPending: 4, MaxMessage: 1 << 20, Timeout: time.Minute}
		var got []byte
		// Out of order, and every fragment twice.
		for i := len(frags) - 1; i >= 0; i-- {
			for range 2 {
				if len(frags[i]) != inner {
					t.Fatalf("fragment of %d bytes", len(frags[i]))
				}
				f, err := loopix.DecodeFragment(frags[i])
				if err != nil {
					t.Fatal(err)
				}
				m, err := r.Add(now, f)
				if err != nil {
					t.Fatal(err)
				}
				if m != nil {
					if got != nil {
						t.Fatalf("%d bytes: delivered twice", n)
					}
					got = m
				}
			}
		}
		if !bytes.Equal(got, msg) || r.Pending() != 0 {
			t.Fatalf("%d bytes: got %d bytes, %d pending", n, len(got), r.Pending())
		}
	}
}

func TestReassemblerBounds(t *testing.T) {
	const inner = 552
	per := loopix.FragmentDataLength(inner)
	now := time.Unix(1000, 0)
	r := loopix.Reassembler{FragmentData: per, MaxPending: 2, MaxMessage: 3 * per, Timeout: time.Minute}
	frag := func(id byte, i, count int) loopix.Fragment {
		return loopix.Fragment{Kind: loopix.KindFragment, ID: [16]byte{id}, Index: i, Count: count, Data: make([]byte, per)}
	}
	if _, err := r.Add(now, frag(1, 0, 5)); err == nil {
		t.Fatal("a message over MaxMessage was started")
	}
	for id := byte(1); id <= 3; id++ {
		if _, err := r.Add(now.Add(time.Duration(id)*time.Second), frag(id, 0, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Pending() != 2 || r.Evicted != 1 {
		t.Fatalf("%d pending, %d evicted; want 2 and 1", r.Pending(), r.Evicted)
	}
	if _, err := r.Add(now, frag(3, 0, 3)); err == nil {
		t.Fatal("a fragment with another count was taken")
	}
	r.Expire(now.Add(2 * time.Minute))
	if r.Pending() != 0 || r.Expired != 2 {
		t.Fatalf("%d pending, %d expired after the timeout", r.Pending(), r.Expired)
	}
}

func TestMessageEncoding(t *testing.T) {
	m := &loopix.Message{From: []byte("from"), Conversation: []byte("conv"), Payload: []byte("payload")}
	b, err := loopix.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loopix.UnmarshalMessage(b)
	if err != nil || string(got.From) != "from" || string(got.Conversation) != "conv" || string(got.Payload) != "payload" {
		t.Fatalf("%+v, %v", got, err)
	}
	if _, err := loopix.MarshalMessage(&loopix.Message{Conversation: make([]byte, loopix.MaxConversationLength+1)}); err == nil {
		t.Fatal("oversize conversation encoded")
	}
	for i := range len(b) - len("payload") {
		if _, err := loopix.UnmarshalMessage(b[:i]); err == nil {
			t.Errorf("truncated to %d bytes: decoded", i)
		}
	}

	// With reply SURBs: version 02.
	r := &loopix.Message{Conversation: []byte("conv"), Payload: []byte("payload"), ReplyTag: [loopix.ReplyTagLength]byte{7}, ReplySURBs: [][]byte{bytes.Repeat([]byte{1}, 40), bytes.Repeat([]byte{2}, 40)}}
	b, err = loopix.MarshalMessage(r)
	if err != nil || b[0] != 2 || len(b) != r.EncodedLen() {
		t.Fatalf("%x, %v", b, err)
	}
	got, err = loopix.UnmarshalMessage(b)
	if err != nil || got.From != nil || got.ReplyTag != r.ReplyTag || len(got.ReplySURBs) != 2 || !bytes.Equal(got.ReplySURBs[1], r.ReplySURBs[1]) || string(got.Payload) != "payload" {
		t.Fatalf("%+v, %v", got, err)
	}
	for i := range len(b) - len("payload") {
		if _, err := loopix.UnmarshalMessage(b[:i]); err == nil {
			t.Errorf("with SURBs, truncated to %d bytes: decoded", i)
		}
	}
	for _, bad := range [][][]byte{
		make([][]byte, loopix.MaxReplySURBs+1),
		{{1}, {1, 2}},
		{{}},
	} {
		for i := range bad {
			if bad[i] == nil {
				bad[i] = []byte{1}
			}
		}
		if _, err := loopix.MarshalMessage(&loopix.Message{ReplySURBs: bad}); err == nil {
			t.Errorf("%d SURBs of sizes %d, %d encoded", len(bad), len(bad[0]), len(bad[len(bad)-1]))
		}
	}
	// A zero SURB count is not an encoding.
	zero := append([]byte{2, 0, 0, 0}, make([]byte, loopix.ReplyTagLength)...)
	if _, err := loopix.UnmarshalMessage(append(zero, 0, 0, 40)); err == nil {
		t.Error("a version-02 message with no SURBs decoded")
	}
}
