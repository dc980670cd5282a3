package mvds

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestLimits feeds node a, in a group with b, one kind of bad input per
// case and checks that exactly the matching dropped_ counter grew, by the
// count given, that nothing went up, and (for inputs that must not be
// answered) that a answers nothing.
func TestLimits(t *testing.T) {
	b, x := identity("b"), identity("x")
	id := ID{7}
	msg := func(t *testing.T, author []byte, ts int64, eph bool, parents ...ID) []byte {
		m, _ := messageFrom(t, testGroupID, author, ts, "p", eph, parents...)
		return encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})
	}
	rawBody := func(t *testing.T, pb *wirepb.Body) []byte {
		body, err := proto.Marshal(pb)
		if err != nil {
			t.Fatal(err)
		}
		return encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{{GroupId: testGroupID, Timestamp: 1, Body: body}}})
	}
	spec := func(t *testing.T, m *wirepb.Message) []byte {
		m.GroupId = testGroupID
		return encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})
	}
	for _, tc := range []struct {
		name   string
		tune   func(*Config)
		feed   func(t *testing.T, a *tnode)
		want   string
		count  uint64
		silent bool // a must send nothing in answer
	}{
		{name: "unknown group", want: "unknown_group", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			in := []inbound{{group: []byte("another group"), from: b, payload: msg(t, b, 1, false)}}
			if _, err := a.n.receive(context.Background(), in, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "non member", want: "non_member", count: 3, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(x, msg(t, x, 1, false))
			a.receive(x, encode(t, &wirepb.Payload{Requests: [][]byte{id[:]}}))
			a.receive(a.id, msg(t, a.id, 1, false)) // from itself
		}},
		{name: "oversize frame", want: "oversize", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, make([]byte, a.cfg.MaxFrame+1))
		}},
		{name: "oversize payload", want: "oversize", count: 2, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, rawBody(t, &wirepb.Body{Version: 1, Author: b, Payload: make([]byte, MaxPayload+1)}))
			a.receive(b, spec(t, &wirepb.Message{Body: make([]byte, MaxPayload+1)}))
		}},
		{name: "malformed", want: "malformed", count: 7, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, []byte{0xff, 0x01, 0x02})
			a.receive(b, nil)                                  // no record at all
			a.receive(b, rawBody(t, &wirepb.Body{Version: 1})) // no author
			a.receive(b, spec(t, &wirepb.Message{Body: []byte("p"), Author: b[:31]}))
			a.receive(b, spec(t, &wirepb.Message{Body: []byte("p"), Metadata: &wirepb.Metadata{Parents: [][]byte{id[:], id[:]}}}))
			self := MessageID(testGroupID, 1, []byte("p")) // a message naming itself
			a.receive(b, spec(t, &wirepb.Message{Timestamp: 1, Body: []byte("p"), Metadata: &wirepb.Metadata{Parents: [][]byte{self[:]}}}))
			body, err := encodeBody(b, nil, []byte("p"), false) // a bound message with metadata
			if err != nil {
				t.Fatal(err)
			}
			a.receive(b, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{{GroupId: testGroupID, Body: body, Metadata: &wirepb.Metadata{}}}}))
		}},
		{name: "wire mode", tune: func(s *Config) { s.Wire = WireBound }, want: "wire_mode", count: 3, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, b, 1, false))                                                  // names its author
			a.receive(b, spec(t, &wirepb.Message{Timestamp: 2, Body: []byte("plain")}))        // a payload that is no Body
			a.receive(b, spec(t, &wirepb.Message{Timestamp: 3, Metadata: &wirepb.Metadata{}})) // metadata
		}},
		{name: "too many ids", tune: func(s *Config) { s.MaxIDs = 2 }, want: "too_many_ids", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, encode(t, &wirepb.Payload{Offers: [][]byte{{1: 1, 31: 0}, make([]byte, 32), make([]byte, 32)}}))
		}},
		{name: "bad id", want: "bad_id", count: 3, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, encode(t, &wirepb.Payload{Acks: [][]byte{make([]byte, 31)}}))
			a.receive(b, rawBody(t, &wirepb.Body{Version: 1, Author: b, Parents: [][]byte{{1}}}))
			a.receive(b, spec(t, &wirepb.Message{Metadata: &wirepb.Metadata{Parents: [][]byte{{1}}}}))
		}},
		{name: "wrong group", want: "wrong_group", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			m, _ := messageFrom(t, []byte("another group"), b, 1, "p", false)
			a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}}))
		}},
		{name: "body version", want: "version", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, rawBody(t, &wirepb.Body{Version: 2, Author: b}))
		}},
		{name: "non member author", want: "non_member_author", count: 2, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, x, 1, false)) // relayed by a member
			m, _ := boundFrom(t, testGroupID, x, 1, "p", false)
			a.receive(b, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{m}}))
		}},
		{name: "too many parents", tune: func(s *Config) { s.MaxParents = 1 }, want: "too_many_parents", count: 2, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, b, 1, false, ID{1}, ID{2}))
			m, _ := boundFrom(t, testGroupID, b, 1, "p", false, ID{1}, ID{2})
			a.receive(b, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{m}}))
		}},
		{name: "pending full", tune: func(s *Config) { s.MaxPending = 1 }, want: "pending_full", count: 2, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, b, 1, false, ID{1}))
			a.receive(b, msg(t, b, 2, false, ID{2}))                      // not stored, not acked
			a.receive(b, msg(t, b, a.clk.now().UnixMilli(), true, ID{3})) // ephemeral too
			if st := a.state(); st.pending != 1 || st.messages != 1 {
				t.Fatalf("state %+v, want the first message pending", st)
			}
			out := a.tick()
			p, err := decodePayload(out[0].payload, 10)
			if err != nil || len(p.Acks) != 1 {
				t.Fatalf("a sent %v (%v), want one ack", p, err)
			}
		}},
		{name: "pending expired", want: "pending_expired", count: 2, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, b, 1, false, ID{1}))
			a.receive(b, msg(t, b, a.clk.now().UnixMilli(), true, ID{1}))
			a.clk.advance(a.cfg.EphemeralWindow + time.Second)
			a.tick()
			if st := a.state(); st.pending != 1 {
				t.Fatalf("state %+v, want the persistent message still pending", st)
			}
			a.clk.advance(a.cfg.PendingExpiry)
			a.tick()
			if st := a.state(); st.pending != 0 || st.messages != 0 {
				t.Fatalf("state %+v after the expiry, want nothing", st)
			}
			if len(a.n.groups[string(testGroupID)].waiting) != 0 {
				t.Fatal("the waiting index still holds the expired messages")
			}
		}},
		{name: "offer flood", tune: func(s *Config) { s.MaxRequests = 2 }, want: "offer_flood", count: 1, feed: func(t *testing.T, a *tnode) {
			a.receive(b, encode(t, &wirepb.Payload{Offers: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)}}))
			out := a.tick()
			p, err := decodePayload(out[0].payload, 10)
			if err != nil || len(p.Requests) != 2 {
				t.Fatalf("a sent %v (%v), want two requests", p, err)
			}
		}},
		{name: "unknown ack", want: "unknown_ack", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, encode(t, &wirepb.Payload{Acks: [][]byte{id[:]}}))
		}},
		{name: "unknown request", want: "unknown_request", count: 1, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, encode(t, &wirepb.Payload{Requests: [][]byte{id[:]}}))
		}},
		{name: "unrequested", tune: func(s *Config) { s.AcceptUnsolicited = false }, want: "unrequested", count: 1, feed: func(t *testing.T, a *tnode) {
			m, mid := messageFrom(t, testGroupID, b, 1, "p", false)
			one := encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})
			a.receive(b, one)
			if a.state().messages != 0 {
				t.Fatal("an unrequested message was stored")
			}
			// Offered, then requested: now it is taken.
			a.receive(b, encode(t, &wirepb.Payload{Offers: [][]byte{mid[:]}}))
			a.receive(b, one)
			if !a.delivered(mid) {
				t.Fatal("a requested message was not delivered")
			}
			a.order = nil
		}},
		{name: "relayed", tune: func(s *Config) { s.Relay = false }, want: "relayed", count: 2, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, a.id, 1, false)) // b forwards a message "by a"
			m, _ := boundFrom(t, testGroupID, a.id, 1, "p", false)
			a.receive(b, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{m}}))
		}},
		{name: "stale ephemeral", want: "stale", count: 4, silent: true, feed: func(t *testing.T, a *tnode) {
			a.receive(b, msg(t, b, 1, true))
			a.receive(b, msg(t, b, a.clk.now().Add(a.cfg.EphemeralWindow+time.Second).UnixMilli(), true))
			a.receive(b, msg(t, b, -a.clk.now().UnixMilli(), true))
			a.receive(b, msg(t, b, a.clk.now().Add(-a.cfg.EphemeralWindow-time.Second).Unix(), true)) // in seconds
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testSettings()
			if tc.tune != nil {
				tc.tune(&cfg)
			}
			a := newTNode(t, "a", cfg, newClock())
			a.setGroup(a.id, b)
			tc.feed(t, a)
			for name, v := range a.c.set.Snapshot() {
				if !strings.HasPrefix(name, "dropped_") {
					continue
				}
				want := uint64(0)
				if name == "dropped_"+tc.want {
					want = tc.count
				}
				if v != want {
					t.Errorf("%s = %d, want %d", name, v, want)
				}
			}
			if len(a.order) != 0 {
				t.Errorf("delivered %v", a.order)
			}
			if tc.silent {
				if out := a.tick(); len(out) != 0 {
					t.Errorf("a answered with %d payloads", len(out))
				}
			}
		})
	}
}
