package doubleratchet

import (
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// FuzzOpen feeds arbitrary payloads from a contact into the layer's open
// path, next to an established session and a pending initial message. The
// layer must never panic, and whatever does not open must leave every
// session state as it was.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Add(make([]byte, 100))
	a, b := pair(f, nil)
	first := send(f, a, b, conv, []byte("first"))
	f.Add(first.GetPayload())
	mustOpen(f, a, b, first, []byte("first"))
	reply := send(f, b, a, conv, []byte("reply"))
	mustOpen(f, b, a, reply, []byte("reply"))
	later := send(f, a, b, conv, []byte("later"))
	f.Add(later.GetPayload())
	f.Add(marshalEnvelope(f, &wirepb.Envelope{Version: 1, Body: &wirepb.Envelope_BundleRequest{BundleRequest: &wirepb.BundleRequest{}}}))
	f.Add(marshalEnvelope(f, &wirepb.Envelope{Version: 1, Body: &wirepb.Envelope_Bundle{Bundle: a.l.publicBundle(nil, nil).Proto()}}))
	f.Fuzz(func(t *testing.T, payload []byte) {
		before := b.states()
		out := b.handle(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: a.id, Payload: payload})
		opened := false
		for _, o := range out {
			if o.GetDirection() == commonv1.Direction_DIRECTION_UP {
				opened = true
			}
		}
		if !opened && !equalStates(before, b.states()) {
			// A bundle request or bundle changes no session; anything else
			// that did not open must not either.
			t.Fatalf("a payload that did not open changed the session state")
		}
		if e := b.l.storeErr.Load(); e != nil {
			t.Fatalf("storage failed: %s", *e)
		}
	})
}

// FuzzOpenGroup feeds arbitrary payloads into the group path of a layer
// with sender keys, next to a member's chain it holds. The layer must
// never panic, and what does not open must leave the chains as they were.
func FuzzOpenGroup(f *testing.F) {
	nodes := mesh(f, senderKeys, 3)
	a, b := nodes[0], nodes[1]
	group := []byte("group")
	for _, n := range nodes {
		setGroup(f, group, n, nodes...)
	}
	first := a.handle(down(nil, group, []byte("first")))
	route(nodes, a, first)
	later := a.handle(down(nil, group, []byte("later")))
	f.Add(later[0].GetPayload(), true)
	f.Add(later[0].GetPayload(), false)
	for _, o := range first {
		f.Add(o.GetPayload(), true)
	}
	f.Fuzz(func(t *testing.T, payload []byte, fromA bool) {
		before := b.chainStates()
		in := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Conversation: group, Payload: payload}
		if fromA {
			in.Peer = a.id
		}
		opened := false
		for _, o := range b.handle(in) {
			if o.GetDirection() == commonv1.Direction_DIRECTION_UP {
				opened = true
			}
		}
		if !opened && before != b.chainStates() && b.counter(cGroupPending) == 0 {
			t.Fatal("a payload that did not open changed a sender key chain")
		}
		if e := b.l.storeErr.Load(); e != nil {
			t.Fatalf("storage failed: %s", *e)
		}
	})
}
