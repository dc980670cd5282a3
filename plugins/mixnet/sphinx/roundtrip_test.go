package sphinx

import (
	"bytes"
	"fmt"
	"testing"
)

// unwrapPath unwraps pkt hop by hop along nodes, checking each hop's
// commands against path, and returns the terminal Result.
func unwrapPath(t *testing.T, g *Geometry, nodes []testNode, path []PathHop, pkt []byte) *Result {
	t.Helper()
	seen := map[ReplayTag]bool{}
	for i, nd := range nodes {
		before := bytes.Clone(pkt)
		res, err := g.Unwrap(nd.priv, pkt)
		if err != nil {
			t.Fatalf("hop %d: Unwrap: %v", i, err)
		}
		if len(pkt) != g.PacketLength {
			t.Fatalf("hop %d: packet length changed", i)
		}
		if seen[res.ReplayTag] {
			t.Fatalf("hop %d: replay tag repeats an earlier hop's", i)
		}
		seen[res.ReplayTag] = true
		if res.ReplayTag != sha512_256(before[alphaOffset:betaOffset]) {
			t.Fatalf("hop %d: replay tag is not SHA-512/256(alpha)", i)
		}
		own := res.Commands
		if i < len(nodes)-1 {
			next, ok := res.Commands.NextNodeHop()
			if !ok || next.ID != nodes[i+1].id || res.IsTerminal() {
				t.Fatalf("hop %d: NextNodeHop %v %x, want %x", i, ok, next.ID, nodes[i+1].id)
			}
			if res.Commands[len(res.Commands)-1] != next {
				t.Fatalf("hop %d: NextNodeHop is not the last command", i)
			}
			own = res.Commands[:len(res.Commands)-1]
			if bytes.Equal(before[:g.HeaderLength], pkt[:g.HeaderLength]) || bytes.Equal(before[g.HeaderLength:], pkt[g.HeaderLength:]) {
				t.Fatalf("hop %d: header or payload unchanged by unwrap", i)
			}
		} else if !res.IsTerminal() || !bytes.Equal(before, pkt) {
			t.Fatalf("terminal hop: not terminal, or packet modified")
		}
		if !bytes.Equal(own.AppendTo(nil), path[i].Commands.AppendTo(nil)) {
			t.Fatalf("hop %d: commands %#v, want %#v", i, own, path[i].Commands)
		}
		if i < len(nodes)-1 {
			continue
		}
		return res
	}
	t.Fatal("empty path")
	return nil
}

// TestRoundTripForward creates and unwraps forward packets for every hop
// count of several geometries, with random payloads (seeded property test).
func TestRoundTripForward(t *testing.T) {
	geoms := []*Geometry{DefaultGeometry()}
	for _, c := range []struct{ user, hops int }{{103, 5}, {0, 1}, {500, 10}} {
		g, err := NewGeometry(c.user, c.hops, false)
		if err != nil {
			t.Fatal(err)
		}
		geoms = append(geoms, g)
	}
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for _, g := range geoms {
		for n := 1; n <= g.NrHops; n++ {
			t.Run(fmt.Sprintf("hops%d-of-%d/user%d", n, g.NrHops, g.UserForwardPayloadLength), func(t *testing.T) {
				for round := range rounds {
					label := fmt.Sprintf("fwd/%d/%d/%d/%d", g.NrHops, g.UserForwardPayloadLength, n, round)
					r := seeded(label)
					nodes := newNodes(t, n, label)
					var rcpt RecipientID
					r.Read(rcpt[:])
					path := forwardPath(nodes, rcpt, nil)
					payload := make([]byte, g.ForwardPayloadLength)
					r.Read(payload)
					pkt, err := g.NewPacket(r, path, payload)
					if err != nil {
						t.Fatalf("NewPacket: %v", err)
					}
					if len(pkt) != g.PacketLength {
						t.Fatalf("packet is %d bytes, want %d", len(pkt), g.PacketLength)
					}
					res := unwrapPath(t, g, nodes, path, pkt)
					if !bytes.Equal(res.Payload, payload) {
						t.Fatalf("payload differs")
					}
				}
			})
		}
	}
}

// TestRoundTripSURB creates a SURB for every hop count, replies with it and
// decrypts the reply.
func TestRoundTripSURB(t *testing.T) {
	geoms := []*Geometry{DefaultGeometry()}
	for _, c := range []struct{ user, hops int }{{103, 5}, {500, 10}} {
		g, err := NewGeometry(c.user, c.hops, false)
		if err != nil {
			t.Fatal(err)
		}
		geoms = append(geoms, g)
	}
	for _, g := range geoms {
		for n := 1; n <= g.NrHops; n++ {
			for round := range 2 {
				testSURBRoundTrip(t, g, n, round)
			}
		}
	}
}

func testSURBRoundTrip(t *testing.T, g *Geometry, n, round int) {
	t.Helper()
	t.Run(fmt.Sprintf("hops%d-of-%d/user%d/%d", n, g.NrHops, g.UserForwardPayloadLength, round), func(t *testing.T) {
		label := fmt.Sprintf("surb/%d/%d/%d/%d", g.NrHops, g.UserForwardPayloadLength, n, round)
		r := seeded(label)
		nodes := newNodes(t, n, label)
		var rcpt RecipientID
		var id SURBID
		r.Read(rcpt[:])
		r.Read(id[:])
		path := forwardPath(nodes, rcpt, &id)
		surb, keys, err := g.NewSURB(r, path)
		if err != nil {
			t.Fatalf("NewSURB: %v", err)
		}
		if len(surb) != g.SURBLength || len(keys) != (n+1)*SPRPKeyMaterialLength {
			t.Fatalf("SURB %d bytes, keys %d bytes", len(surb), len(keys))
		}
		reply := make([]byte, g.ForwardPayloadLength)
		r.Read(reply)
		pkt, first, err := g.NewPacketFromSURB(surb, reply)
		if err != nil {
			t.Fatalf("NewPacketFromSURB: %v", err)
		}
		if first != nodes[0].id {
			t.Fatalf("first hop %x, want %x", first, nodes[0].id)
		}
		res := unwrapPath(t, g, nodes, path, pkt)
		if got, ok := res.Commands.SURBReply(); !ok || got.ID != id {
			t.Fatalf("terminal SURBReply %v %x, want %x", ok, got.ID, id)
		}
		if len(res.Payload) != PayloadTagLength+g.ForwardPayloadLength {
			t.Fatalf("SURB payload is %d bytes", len(res.Payload))
		}
		got, err := g.DecryptSURBPayload(res.Payload, keys)
		if err != nil {
			t.Fatalf("DecryptSURBPayload: %v", err)
		}
		if !bytes.Equal(got, reply) {
			t.Fatal("reply differs")
		}
		if !isZero(keys) {
			t.Fatal("keys not erased")
		}
	})
}

// TestForwardWithSURB sends a forward packet carrying a SURB (geometry
// WithSURB), and the recipient answers with it: the full exchange.
func TestForwardWithSURB(t *testing.T) {
	g := DefaultGeometry()
	r := seeded("exchange")
	fwdNodes := newNodes(t, 5, "exchange/fwd")
	replyNodes := newNodes(t, 5, "exchange/reply")
	var alice, bob RecipientID
	var id SURBID
	r.Read(alice[:])
	r.Read(bob[:])
	r.Read(id[:])
	replyPath := forwardPath(replyNodes, alice, &id)
	surb, keys, err := g.NewSURB(r, replyPath)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("hello bob "), 200)
	body, err := g.EncodeForwardPayload(surb, msg)
	if err != nil {
		t.Fatal(err)
	}
	fwdPath := forwardPath(fwdNodes, bob, nil)
	pkt, err := g.NewPacket(r, fwdPath, body)
	if err != nil {
		t.Fatal(err)
	}
	res := unwrapPath(t, g, fwdNodes, fwdPath, pkt)
	gotSURB, gotMsg, err := g.DecodeForwardPayload(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotMsg, msg) || !bytes.Equal(gotSURB, surb) {
		t.Fatal("forward payload differs")
	}
	answer := make([]byte, g.ForwardPayloadLength)
	copy(answer, "hello alice")
	rpkt, first, err := g.NewPacketFromSURB(gotSURB, answer)
	if err != nil {
		t.Fatal(err)
	}
	if first != replyNodes[0].id {
		t.Fatal("wrong first hop")
	}
	rres := unwrapPath(t, g, replyNodes, replyPath, rpkt)
	got, err := g.DecryptSURBPayload(rres.Payload, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, answer) {
		t.Fatal("answer differs")
	}

	// Without a SURB the slot is zero and DecodeForwardPayload returns nil.
	body, err = g.EncodeForwardPayload(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if s, m, err := g.DecodeForwardPayload(body); err != nil || s != nil || !bytes.Equal(m, msg) {
		t.Fatalf("no-SURB payload: %v %v", s != nil, err)
	}
}

// TestPacketsDiffer checks that two packets for the same path and payload
// share nothing visible: fresh ephemeral keys every time.
func TestPacketsDiffer(t *testing.T) {
	g := DefaultGeometry()
	nodes := newNodes(t, 5, "differ")
	path := forwardPath(nodes, RecipientID{1}, nil)
	payload := make([]byte, g.ForwardPayloadLength)
	r := seeded("differ")
	a, err := g.NewPacket(r, path, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.NewPacket(r, path, payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, span := range [][2]int{{alphaOffset, betaOffset}, {betaOffset, g.macOffset()}, {g.macOffset(), g.HeaderLength}, {g.HeaderLength, g.PacketLength}} {
		if bytes.Equal(a[span[0]:span[1]], b[span[0]:span[1]]) {
			t.Fatalf("bytes %d..%d equal in two packets", span[0], span[1])
		}
	}
}
