package mvds

import (
	"bytes"
	"slices"
	"testing"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// newMixedNet is a network whose nodes have a wire mode each.
func newMixedNet(t *testing.T, wires map[string]string, names ...string) *tnet {
	t.Helper()
	nt := &tnet{t: t, clk: newClock()}
	var members [][]byte
	for _, name := range names {
		cfg := testSettings()
		cfg.Wire = wires[name]
		nt.nodes = append(nt.nodes, newTNode(t, name, cfg, nt.clk))
		members = append(members, identity(name))
	}
	for _, n := range nt.nodes {
		n.setGroup(members...)
	}
	return nt
}

// TestWireModesMixed: in a group where b speaks the bound mode and a and
// c the spec mode, b's messages reach everyone (a spec node takes bound
// messages), and a's and c's reach each other but never b, which drops
// them, counts them (dropped_wire_mode) and delivers nothing it cannot
// attribute. No node delivers any message with an author other than its
// own, relayed copies included.
func TestWireModesMixed(t *testing.T) {
	nt := newMixedNet(t, map[string]string{"a": WireSpec, "b": WireBound, "c": WireSpec}, "a", "b", "c")
	authors := map[ID][]byte{}
	for _, name := range []string{"a", "b", "c"} {
		n := nt.node(name)
		authors[n.send(name+" 1")] = n.id
		authors[n.send(name+" 2", n.sent[0])] = n.id
	}
	for range 40 {
		nt.step()
	}
	for _, n := range nt.nodes {
		for _, d := range n.order {
			if !bytes.Equal(d.author, authors[d.id]) {
				t.Fatalf("%s delivered %s with author %x, want %x", n.name, d.id, d.author[:4], authors[d.id][:4])
			}
		}
	}
	a, b, c := nt.node("a"), nt.node("b"), nt.node("c")
	for _, pair := range []struct {
		to   *tnode
		from []*tnode
	}{{a, []*tnode{b, c}}, {c, []*tnode{a, b}}} {
		for _, from := range pair.from {
			for _, id := range from.sent {
				if !pair.to.delivered(id) {
					t.Errorf("%s did not get %s's %s", pair.to.name, from.name, id)
				}
			}
		}
	}
	if len(b.order) != 0 {
		t.Fatalf("b (bound) delivered %d spec messages", len(b.order))
	}
	if b.counter("dropped_wire_mode") == 0 {
		t.Fatal("b did not count the spec messages it dropped")
	}
	if a.counter("dropped_wire_mode")+c.counter("dropped_wire_mode") != 0 {
		t.Fatal("a spec node counted wire-mode drops")
	}
}

// TestBoundReadsOldStrata: a node in the bound mode takes a Body carried
// in Payload.messages, as Strata sent it before the spec wire, with the
// id, author and parents of the Body.
func TestBoundReadsOldStrata(t *testing.T) {
	cfg := testSettings()
	cfg.Wire = WireBound
	a := newTNode(t, "a", cfg, newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	m1, id1 := boundFrom(t, testGroupID, b, 1, "old 1", false)
	m2, id2 := boundFrom(t, testGroupID, b, 2, "old 2", false, id1)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m2, m1}}))
	if got := a.deliveredPersistent(); !slices.Equal(got, []ID{id1, id2}) {
		t.Fatalf("delivered %v, want the Body messages in order", got)
	}
	if d := a.order[1]; !bytes.Equal(d.author, b) || string(d.payload) != "old 2" {
		t.Fatalf("delivered %+v", d)
	}
}

// TestWhatEachModeProtects: the spec's id does not cover the metadata, so
// a member that relays a message can strip its parents, and the message
// with that id then goes up before its parent; in the bound mode the same
// tampering makes another message (another id), and the author's message
// still goes up only after its parent.
func TestWhatEachModeProtects(t *testing.T) {
	b, relay := identity("b"), identity("r")
	t.Run(WireSpec, func(t *testing.T) {
		c := newTNode(t, "c", testSettings(), newClock())
		c.setGroup(c.id, b, relay)
		_, id1 := messageFrom(t, testGroupID, b, 1, "first", false)
		m2, id2 := messageFrom(t, testGroupID, b, 2, "second", false, id1)
		m2.Metadata = nil // stripped by the relay
		c.receive(relay, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m2}}))
		if got := c.deliveredPersistent(); !slices.Equal(got, []ID{id2}) {
			t.Fatalf("delivered %v: the stripped copy keeps the id %s and goes up without its parent", got, id2)
		}
	})
	t.Run(WireBound, func(t *testing.T) {
		cfg := testSettings()
		cfg.Wire = WireBound
		c := newTNode(t, "c", cfg, newClock())
		c.setGroup(c.id, b, relay)
		m1, id1 := boundFrom(t, testGroupID, b, 1, "first", false)
		m2, id2 := boundFrom(t, testGroupID, b, 2, "second", false, id1)
		stripped, idStripped := boundFrom(t, testGroupID, b, 2, "second", false)
		if idStripped == id2 {
			t.Fatal("stripping the parents kept the id")
		}
		c.receive(relay, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{stripped, m2}}))
		c.receive(b, encode(t, &wirepb.Payload{BoundMessages: []*wirepb.Message{m1}}))
		got := c.deliveredPersistent()
		if i1, i2 := slices.Index(got, id1), slices.Index(got, id2); i1 < 0 || i2 < i1 {
			t.Fatalf("delivered %v: %s must follow its parent %s", got, id2, id1)
		}
	})
}

// TestSpecEphemeralFlagFlipped: the spec's id does not cover the ephemeral
// flag, so one message can arrive both ways. Delivered as ephemeral first,
// its persistent copy is stored, acked and relayed but not delivered
// again (not even after a restart); delivered as persistent first, an
// ephemeral copy is a duplicate.
func TestSpecEphemeralFlagFlipped(t *testing.T) {
	nt := newTNet(t, testSettings(), "a", "b", "c")
	a, b := nt.node("a"), identity("b")
	ts := nt.clk.now().UnixMilli()
	eph, id := messageFrom(t, testGroupID, b, ts, "flipped", true)
	pers, _ := messageFrom(t, testGroupID, b, ts, "flipped", false)
	child, idChild := messageFrom(t, testGroupID, b, ts+1, "child", false, id)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{eph}}))
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{pers, child}}))
	if a.got[id] != 1 || !a.delivered(idChild) {
		t.Fatalf("deliveries of the message %d, of its child %v", a.got[id], a.delivered(idChild))
	}
	if st := a.state(); st.messages != 2 {
		t.Fatalf("state %+v, want both stored", st)
	}
	var acked []ID
	for _, o := range a.tick() {
		if bytes.Equal(o.peer, b) {
			p, err := decodePayload(o.payload, 16)
			if err != nil {
				t.Fatal(err)
			}
			acked = wireIDs(p.Acks)
		}
	}
	if !slices.Equal(acked, []ID{id, idChild}) {
		t.Fatalf("acked %v, want the message and its child", acked)
	}
	a.restart()
	if a.got[id] != 1 {
		t.Fatal("the message went up again after a restart")
	}

	// Persistent first, then ephemeral.
	p2, id2 := messageFrom(t, testGroupID, b, ts+2, "persistent first", false)
	e2, _ := messageFrom(t, testGroupID, b, ts+2, "persistent first", true)
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{p2}}))
	a.receive(b, encode(t, &wirepb.Payload{Messages: []*wirepb.Message{e2}}))
	if a.got[id2] != 1 {
		t.Fatalf("delivered %d times", a.got[id2])
	}
}
