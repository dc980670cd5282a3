package bsp

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// FuzzBody decodes any bytes as a Strata sync body: an error or a body
// that encodes again to the same bytes; never a panic.
func FuzzBody(f *testing.F) {
	f.Add(encodeBody(body{author: key("a"), payload: []byte("x")}))
	f.Add(encodeBody(body{ephemeral: true, author: key("b"), parents: []wire.ID{{1}, {2}}, payload: []byte("y")}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := decodeBody(raw, MaxParentsLimit)
		if err != nil {
			return
		}
		if len(b.parents) > MaxParentsLimit || len(b.author) != IdentitySize {
			t.Fatalf("%d parents, author of %d bytes", len(b.parents), len(b.author))
		}
		if again := encodeBody(b); !bytes.Equal(again, raw) {
			t.Fatalf("re-encoded %x as %x", raw, again)
		}
	})
}

// FuzzNode drives three nodes over the manual-clock network with
// operations read from the input: sends (with parents), steps of the
// clock, lost links, crashes and restarts, hosts that hold back their
// acks, replays of earlier frames, arbitrary bytes injected as frames
// from a member, and hosts whose validator rejects some deliveries or
// defers them to the last message sent (the validator hook); frames for
// the whole group go as the default has them (multicast), and acks go to
// the whole group too (group_acks) when the input's length is odd.
// testNet.take fails on a delivery after the host's ack and on a delivery
// before a parent. At the end the links heal, every host acks, and every message
// an honest node sent must reach the other two, or be invalid there (its
// host rejected it or something it depends on); the levels the config
// bounds stay within them, and the pending count is the pending messages.
func FuzzNode(f *testing.F) {
	f.Add([]byte{9, 1, 100, 0, 0, 0, 1, 0, 0, 1, 0, 0, 2, 0, 3, 2, 0, 9, 2, 1, 0})
	f.Add([]byte{9, 1, 254, 3, 0, 1, 3, 2, 1, 3, 2, 0, 0, 0, 2, 0, 0, 1, 0, 2, 2, 0, 0, 1, 3, 0, 1, 2, 0, 7, 9, 9, 9, 9, 9, 9, 9, 9})
	f.Add([]byte{0, 0, 1, 5, 0, 1, 1, 9, 2, 1, 1, 3})
	f.Add([]byte{3, 1, 0, 0, 0, 0, 1, 4, 2, 0, 1, 20, 3, 1, 1, 20})
	f.Add([]byte{6, 1, 0, 2, 1, 2, 2, 1, 0, 1, 5, 1, 7})
	f.Add([]byte{4, 0, 2, 8, 0, 1, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 5, 3, 1, 3})
	f.Fuzz(fuzzNodeBody)
}

// fuzzNodeBody is FuzzNode's body.
func fuzzNodeBody(t *testing.T, ops []byte) {
	{
		// Under -fuzz every package is instrumented, SQLite included, and
		// one exec takes seconds: inputs stay short.
		if len(ops) > 96 {
			return
		}
		cfg := testCfg()
		cfg.MaxOffered = 8
		cfg.MaxPending = 16
		cfg.GroupAcks = len(ops)%2 == 1
		names := []string{"a", "b", "c"}
		tn := newNet(t, cfg, names...)
		down := map[[2]string]bool{}
		tn.drop = func(from, to string, _ []byte) bool { return down[[2]string{from, to}] }
		var sent []wire.ID
		last := map[string]wire.ID{}
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for i := 0; len(ops) > 0; i++ {
			op, x := next()%10, names[int(next())%3]
			switch op {
			case 0, 1: // send, with the sender's last message as parent on 1
				var parents []wire.ID
				if p, ok := last[x]; ok && op == 1 {
					parents = append(parents, p)
				}
				id := tn.send(x, string(rune('a'+i%26))+x+string(rune(i)), parents...)
				last[x] = id
				sent = append(sent, id)
			case 2: // steps
				for range int(next()%8) + 1 {
					tn.clk.advance(time.Duration(next()%50+1) * 10 * time.Millisecond)
					tn.step()
				}
			case 3: // a link goes down or up
				y := names[int(next())%3]
				down[[2]string{x, y}] = !down[[2]string{x, y}]
			case 4: // crash and restart
				tn.crash(x)
			case 5: // the host holds its acks, or acks again
				tn.nodes[x].holdAcks = !tn.nodes[x].holdAcks
			case 6: // replay an earlier frame
				if len(tn.tape) > 0 {
					fr := tn.tape[int(next())%len(tn.tape)]
					tn.deliver(fr.from, fr.to, fr.payload)
				}
			case 7: // an ephemeral message
				if _, err := tn.nodes[x].n.send(t.Context(), testGroup, []byte("eph"), nil, true, 0); err != nil {
					t.Fatal(err)
				}
			case 8: // arbitrary bytes from a member, or a crafted record
				y := names[int(next())%3]
				if x == y {
					continue
				}
				n := int(next() % 64)
				junk := make([]byte, 0, n+8)
				switch next() % 3 {
				case 0:
					junk = wire.AppendHeader(junk, wire.Type(next()%8), n)
				case 1:
					g := tn.nodes[y].n.groups[string(testGroup)]
					body := encodeBody(body{author: key(x), parents: []wire.ID{{next()}}, payload: []byte{next()}})
					junk = wire.AppendMessage(junk, wire.RawMessage{Group: g.bsp, Timestamp: uint64(tn.clk.ms()), Body: body})
					n = 0
				}
				for range n {
					junk = append(junk, next())
				}
				tn.deliver(x, y, junk)
			case 9: // the host's validator: accepts all, rejects some, or defers some
				nd, k := tn.nodes[x], next()
				switch k % 3 {
				case 0:
					nd.verdict = nil
				case 1:
					nd.verdict = func(d delivery) (string, []wire.ID) {
						if d.id[0] < k {
							return "fuzz", nil
						}
						return "", nil
					}
				case 2:
					nd.verdict = func(d delivery) (string, []wire.ID) {
						if len(sent) == 0 || d.id[0] >= k {
							return "", nil
						}
						dep := sent[len(sent)-1]
						if m := nd.n.groups[string(testGroup)].msgs[dep]; m != nil && m.state != stPending {
							return "", nil // met already: accepted
						}
						return "", []wire.ID{dep}
					}
				}
			}
		}
		clear(down)
		for _, name := range names {
			tn.nodes[name].verdict = nil
			tn.nodes[name].holdAcks = false
			tn.crash(name) // what was held back goes up again, and is acked
		}
		tn.run(100*time.Millisecond, 10*time.Minute, func() bool {
			for _, id := range sent {
				for _, name := range names {
					nd := tn.nodes[name]
					// Delivered, or invalid here (its host rejected it or
					// a message it depends on, or deferred it into a cycle).
					if m := nd.n.groups[string(testGroup)].msgs[id]; (m == nil || !m.own) && !tn.has(name, id) && (m == nil || m.state != stInvalid) {
						return false
					}
				}
			}
			return true
		})
		for _, name := range names {
			n := tn.nodes[name].n
			g := n.groups[string(testGroup)]
			if g.pending > cfg.MaxPending {
				t.Fatalf("%s: %d pending", name, g.pending)
			}
			pending := 0
			for _, m := range g.msgs {
				if m.state == stPending {
					pending++
				}
			}
			if pending != g.pending {
				t.Fatalf("%s: %d messages pending, counted %d", name, pending, g.pending)
			}
			for _, p := range g.peers {
				if len(p.offered) > cfg.MaxOffered {
					t.Fatalf("%s: %d offered", name, len(p.offered))
				}
			}
		}
	}
}

// FuzzAck hands a node's Ack arbitrary requests (the host's verdicts, as
// protobuf bytes) about messages it holds, delivered, pending and own:
// nothing panics, the pending count stays the pending messages, and an
// invalid message holds no status (it is never sent on).
func FuzzAck(f *testing.F) {
	tn := newNet(f, testCfg(), "a", "b")
	tn.nodes["a"].offline = true
	m1 := tn.send("a", "m1")
	m2 := tn.send("a", "m2", m1)
	// The frames that bring b m1 and m2, as a wrote them.
	var frames [][]byte
	ga := tn.nodes["a"].n.groups[string(testGroup)]
	for _, id := range []wire.ID{m1, m2} {
		rm := wire.RawMessage{Group: ga.bsp, Timestamp: ga.msgs[id].ts, Body: ga.msgs[id].raw}
		frames = append(frames, wire.AppendMessage(wire.AppendVersions(nil, 0), rm))
	}
	seed := func(req *syncv1.AckRequest) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&syncv1.AckRequest{Group: testGroup, Rejected: []*syncv1.Rejection{{MessageId: m1[:], Reason: "x"}}})
	seed(&syncv1.AckRequest{Group: testGroup, Deferred: []*syncv1.Deferral{{MessageId: m2[:], Dependencies: [][]byte{m1[:], bytes.Repeat([]byte{9}, 32)}}}})
	seed(&syncv1.AckRequest{Group: testGroup, MessageIds: [][]byte{m2[:]}, Rejected: []*syncv1.Rejection{{MessageId: m2[:]}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req syncv1.AckRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		dir := t.TempDir()
		cfg := testCfg()
		n, err := openNode(t.Context(), dir, key("b"), cfg, newCounters(), nil, tn.clk.now)
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		if err := n.setGroup(t.Context(), testGroup, tn.members()); err != nil {
			t.Fatal(err)
		}
		// b's state: m1 and m2 delivered, not acked.
		for _, fr := range frames {
			if _, err := n.receive(t.Context(), []inbound{{group: testGroup, from: key("a"), payload: fr}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := n.hostAck(t.Context(), req.GetGroup(), req.GetMessageIds(), decodeVerdicts(&req, n.c)); err != nil {
			t.Fatal(err)
		}
		g := n.groups[string(testGroup)]
		pending := 0
		for id, m := range g.msgs {
			if m.state == stPending {
				pending++
			}
			if m.state == stInvalid {
				for _, p := range g.peers {
					if p.status[id] != nil {
						t.Fatalf("invalid %x has a status", id[:4])
					}
				}
			}
		}
		if pending != g.pending {
			t.Fatalf("%d pending, counted %d", pending, g.pending)
		}
	})
}
