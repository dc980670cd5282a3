package mvds

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

func FuzzDecodePayload(f *testing.F) {
	id := bytes.Repeat([]byte{1}, 32)
	m, _ := messageFrom(f, testGroupID, identity("a"), 1, "x", false, ID{2})
	bm, _ := boundFrom(f, testGroupID, identity("a"), 1, "x", false, ID{2})
	f.Add(encode(f, &wirepb.Payload{Acks: [][]byte{id}, Offers: [][]byte{id}, Requests: [][]byte{id}, Messages: []*wirepb.Message{m}, BoundMessages: []*wirepb.Message{bm}}))
	for _, fx := range specFixtures {
		f.Add(readSpec(f, fx.name))
	}
	f.Add([]byte{0xca, 0xb8, 0x02, 0x20})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePayload(data, 64)
		if err != nil {
			return
		}
		again, err := decodePayload(encode(t, p), 64)
		if err != nil {
			t.Fatalf("a decoded payload does not decode once re-encoded: %v", err)
		}
		if len(again.Acks) != len(p.Acks) || len(again.Offers) != len(p.Offers) || len(again.Requests) != len(p.Requests) || len(again.Messages) != len(p.Messages) || len(again.BoundMessages) != len(p.BoundMessages) {
			t.Fatal("re-encoding changed the payload")
		}
	})
}

// FuzzDecodeSpec feeds decodeSpec and decodeBound any Message: they return
// errors, never panic, and a spec message they take, rebuilt by Strata's
// encoder (specMessage), decodes to the same content with the same id.
func FuzzDecodeSpec(f *testing.F) {
	for _, fx := range specFixtures {
		var p wirepb.Payload
		if err := proto.Unmarshal(readSpec(f, fx.name), &p); err != nil {
			f.Fatal(err)
		}
		for _, m := range p.Messages {
			f.Add(encodeMessage(f, m))
		}
	}
	m, _ := messageFrom(f, testGroupID, identity("a"), -1, "x", true, ID{1}, ID{2})
	f.Add(encodeMessage(f, m))
	bm, _ := boundFrom(f, testGroupID, identity("a"), 1, "x", false, ID{2})
	f.Add(encodeMessage(f, bm))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wirepb.Message
		if err := unmarshal.Unmarshal(data, &m); err != nil {
			return
		}
		if _, err := decodeBound(&m, 16); err == nil && (m.Metadata != nil || len(m.Author) > 0) {
			t.Fatal("decodeBound took a message with metadata or an author")
		}
		c, err := decodeSpec(&m, 16)
		if err != nil {
			return
		}
		own := specMessage(m.GroupId, m.Timestamp, c.payload, c.parents, c.ephemeral)
		own.Author = c.author
		again, err := decodeSpec(own, 16)
		if err != nil {
			t.Fatalf("Strata's encoding of a decoded message does not decode: %v", err)
		}
		if !bytes.Equal(again.payload, c.payload) || !bytes.Equal(again.author, c.author) || again.ephemeral != c.ephemeral || !slices.Equal(again.parents, c.parents) {
			t.Fatalf("re-encoding changed the message: %+v, then %+v", c, again)
		}
		if MessageID(own.GroupId, own.Timestamp, own.Body) != MessageID(m.GroupId, m.Timestamp, m.Body) {
			t.Fatal("re-encoding changed the id")
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	good, err := encodeBody(identity("a"), []ID{{1}, {2}}, []byte("payload"), true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBody(data, 16)
		if err != nil {
			return
		}
		enc, err := encodeBody(b.author, b.parents, b.payload, b.ephemeral)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeBody(enc, 16)
		if err != nil {
			t.Fatalf("a decoded body does not decode once re-encoded: %v", err)
		}
		if !bytes.Equal(again.author, b.author) || !bytes.Equal(again.payload, b.payload) || again.ephemeral != b.ephemeral || len(again.parents) != len(b.parents) {
			t.Fatal("re-encoding changed the body")
		}
	})
}

// reader hands out the fuzz input a byte at a time, zeros once it runs
// out.
type reader struct{ b []byte }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	n = min(n, len(r.b))
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// FuzzNode drives node a, in a group with b and c, in the wire mode the
// first byte picks, with a random sequence of inbound payloads from
// members and from a stranger x (spec and bound messages with random
// parents and authors, named or not, copies with the ephemeral flag
// flipped, acks, offers, requests, garbage, replays),
// epochs, Sends, the host's Acks (of deliveries, and of unknown, pending
// and own ids), restarts and crashes. Invariants: no panic or storage
// error, pending within max_pending, requests within max_requests,
// nothing delivered twice within one run, nothing acknowledged (or
// ephemeral) delivered again, every unacknowledged delivery delivered
// again at each restart in the order it first went up, the count of
// unacknowledged deliveries exact, nothing delivered before its parents,
// and no payload for anyone but b and c.
func FuzzNode(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 1, 1, 1, 5, 5, 0, 2, 2, 1, 8, 3})
	f.Add([]byte{0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 5, 7, 5, 0, 1, 1, 2, 0, 1, 9, 9, 9, 6, 5})
	f.Add(bytes.Repeat([]byte{0, 1, 0, 0, 1, 2, 1, 0, 5}, 8))
	// Bound mode; a message delivered ephemeral, then its persistent copy.
	f.Add([]byte{1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 5, 0, 1, 0, 0, 1, 0, 7})
	f.Add([]byte{0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 5, 0, 11})
	// Messages, an ack of some, a restart, more, a crash.
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 10, 3, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 11})
	f.Fuzz(fuzzNode)
}

// fuzzNode is FuzzNode's body: one random program against a fresh node.
func fuzzNode(t *testing.T, data []byte) {
	if len(data) > 512 {
		return
	}
	cfg := testSettings()
	cfg.MaxPending, cfg.MaxRequests, cfg.MaxParents, cfg.MaxIDs = 4, 4, 3, 8
	cfg.Durability = DurabilityNormal
	if len(data) > 0 && data[0]%2 == 1 {
		cfg.Wire = WireBound
	}
	clk := newClock()
	a := newTNode(t, "a", cfg, clk)
	a.manualAck = true
	b, c, x := identity("b"), identity("c"), identity("x")
	a.setGroup(a.id, b, c)
	senders := [][]byte{b, c, x}

	// Messages made so far, with their parents, and how to make them again.
	type made struct {
		parents   []ID
		ephemeral bool
		again     func(ephemeral bool) *wirepb.Payload
	}
	pool := map[ID]made{}
	var ids []ID
	var replay [][]byte
	// done is what a has delivered (or sent), in the order it did;
	// seen is how far a.order has been checked.
	done := map[ID]bool{}
	seen := 0
	pick := func(r *reader) ID {
		if len(ids) == 0 || r.byte()%4 == 0 {
			return ID{r.byte()}
		}
		return ids[int(r.byte())%len(ids)]
	}
	check := func() {
		t.Helper()
		g := a.n.groups[string(testGroupID)]
		if len(g.pending) > cfg.MaxPending {
			t.Fatalf("%d pending, above max_pending %d", len(g.pending), cfg.MaxPending)
		}
		for peer, n := range g.requests {
			if n > cfg.MaxRequests {
				t.Fatalf("%d requests for %x, above max_requests", n, peer)
			}
		}
		if a.n.failed != nil {
			t.Fatalf("the node failed: %v", a.n.failed)
		}
		if got, want := a.n.health().unacked, len(a.unacked()); got != want {
			t.Fatalf("%d unacknowledged deliveries, want %d", got, want)
		}
		for _, d := range a.order[seen:] {
			for _, p := range pool[d.id].parents {
				if !done[p] {
					t.Fatalf("%s was delivered before its parent %s", d.id, p)
				}
			}
			done[d.id] = true
		}
		seen = len(a.order)
	}
	r := &reader{b: data}
	for step := 0; len(r.b) > 0 && step < 64; step++ {
		from := senders[int(r.byte())%len(senders)]
		var payload []byte
		reopen := func(how func()) {
			want := a.unacked()
			how()
			if !slices.Equal(a.redelivered, want) {
				t.Fatalf("redelivered %v, want the unacknowledged %v in order", a.redelivered, want)
			}
		}
		switch r.byte() % 12 {
		case 0: // a message
			author := senders[int(r.byte())%len(senders)]
			var parents []ID
			for range int(r.byte()) % 4 {
				p := pick(r)
				if !containsID(parents, p) {
					parents = append(parents, p)
				}
			}
			how := r.byte()
			eph := how%5 == 0
			ts := clk.now().UnixMilli() - int64(r.byte())
			text := fmt.Sprint(step)
			build := func(eph bool) (*wirepb.Payload, ID) {
				if how%3 == 0 {
					m, id := boundFrom(t, testGroupID, author, ts, text, eph, parents...)
					return &wirepb.Payload{BoundMessages: []*wirepb.Message{m}}, id
				}
				m, id := messageFrom(t, testGroupID, author, ts, text, eph, parents...)
				if how%3 == 1 && bytes.Equal(author, from) {
					m.Author = nil // first hand, named by nobody
				}
				return &wirepb.Payload{Messages: []*wirepb.Message{m}}, id
			}
			p, id := build(eph)
			if _, ok := pool[id]; !ok {
				pool[id] = made{parents: parents, ephemeral: eph, again: func(e bool) *wirepb.Payload { p, _ := build(e); return p }}
				ids = append(ids, id)
			}
			payload = encode(t, p)
		case 1: // a copy of a message made before, its ephemeral flag flipped
			if len(ids) > 0 {
				m := pool[ids[int(r.byte())%len(ids)]]
				if m.again != nil {
					payload = encode(t, m.again(!m.ephemeral))
				}
			}
		case 2:
			id := pick(r)
			payload = encode(t, &wirepb.Payload{Acks: [][]byte{id[:]}})
		case 3:
			id := pick(r)
			payload = encode(t, &wirepb.Payload{Offers: [][]byte{id[:]}})
		case 4:
			id := pick(r)
			payload = encode(t, &wirepb.Payload{Requests: [][]byte{id[:]}})
		case 5:
			clk.advance(time.Duration(r.byte()) * time.Minute)
			for _, o := range a.tick() {
				if !bytes.Equal(o.peer, b) && !bytes.Equal(o.peer, c) {
					t.Fatalf("a sent a payload to %x", o.peer)
				}
			}
		case 6:
			var parents []ID
			for _, d := range a.order {
				if !d.ephemeral {
					parents = append(parents, d.id) // delivered as persistent
					break
				}
			}
			id := a.send(fmt.Sprint("own ", step), parents...)
			done[id] = true
			// The layer flushes after a Send (eager, the default).
			out, _, err := a.n.flush(context.Background())
			if err != nil {
				t.Fatalf("flush: %v", err)
			}
			for _, o := range out {
				if !bytes.Equal(o.peer, b) && !bytes.Equal(o.peer, c) {
					t.Fatalf("a flushed a payload to %x", o.peer)
				}
			}
		case 7:
			reopen(a.restart)
		case 8:
			if len(replay) > 0 {
				payload = replay[int(r.byte())%len(replay)]
			}
		case 9:
			payload = r.bytes(int(r.byte()) % 64)
		case 10: // the host acknowledges: deliveries, and ids of any kind
			var acks []ID
			unacked := a.unacked()
			for range int(r.byte()) % 4 {
				switch k := r.byte() % 3; {
				case k == 0 && len(unacked) > 0:
					acks = append(acks, unacked[int(r.byte())%len(unacked)])
				case k == 1 && len(a.sent) > 0:
					acks = append(acks, a.sent[int(r.byte())%len(a.sent)])
				default:
					acks = append(acks, pick(r))
				}
			}
			want := 0
			for _, id := range unacked {
				if containsID(acks, id) {
					want++
				}
			}
			if acked, ignored := a.ack(acks...); acked != want || ignored != len(acks)-want {
				t.Fatalf("ack of %d ids: %d taken, %d ignored; want %d taken", len(acks), acked, ignored, want)
			}
		case 11:
			reopen(a.crash)
		}
		if payload != nil {
			replay = append(replay, payload)
			a.receive(from, payload)
		}
		check()
	}
}

func containsID(ids []ID, id ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
