package loopix_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// rawPacket builds a packet frame along the named nodes with the keys of
// epoch, giving hop i the commands cmds[i].
func (s *sim) rawPacket(epoch uint64, names []string, cmds []sphinx.Commands) []byte {
	s.t.Helper()
	var path []sphinx.PathHop
	for i, name := range names {
		n, ok := s.dir.ByName(name)
		if !ok {
			s.t.Fatalf("no node %s", name)
		}
		key, ok := n.Descriptor.SphinxKey(epoch)
		if !ok {
			s.t.Fatalf("%s has no key for epoch %d", name, epoch)
		}
		path = append(path, sphinx.PathHop{ID: n.ID, PublicKey: sphinx.PublicKey(key), Commands: cmds[i]})
	}
	payload, err := s.geo.EncodeForwardPayload(nil, make([]byte, s.geo.UserForwardPayloadLength))
	if err != nil {
		s.t.Fatal(err)
	}
	pkt, err := s.geo.NewPacket(s.rnd, path, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	return loopix.EncodePacket(pkt)
}

func delay(ms uint32) sphinx.Commands { return sphinx.Commands{sphinx.NodeDelay{Delay: ms}} }

// TestBadInputIsDroppedAndCounted feeds every kind of bad input to the
// roles; each is dropped, counted under its own reason, and nothing
// panics.
func TestBadInputIsDroppedAndCounted(t *testing.T) {
	s := newSim(t, simOptions{seed: 5, rates: loopix.Rates{LambdaP: 1, LambdaL: 1, Mu: 10}})
	_, ca := s.addClient("alice", "provider-0")
	s.run(3 * time.Second)
	mix := s.nodes["mix-0-0"]
	p0 := s.nodes["provider-0"]
	alice := s.nodes["alice"]
	type check struct {
		name  string
		input func()
		node  *simNode
		ctr   func(*loopix.Counters) uint64
		want  uint64
	}
	queued := mix.counters.QueueLength.Load() // packets of the network's own held at the mix
	good := s.rawPacket(simEpoch, []string{"mix-0-0", "mix-1-0"}, []sphinx.Commands{delay(10), {sphinx.Recipient{}}})
	checks := []check{
		{"empty frame", func() { mix.eng.Handle(s.ctx, s.now, "provider-0", nil) }, mix, func(c *loopix.Counters) uint64 { return c.Malformed.Load() }, 1},
		{"unknown frame type", func() { mix.eng.Handle(s.ctx, s.now, "provider-0", []byte{9, 1, 2}) }, mix, func(c *loopix.Counters) uint64 { return c.Malformed.Load() }, 2},
		{"truncated packet", func() { mix.eng.Handle(s.ctx, s.now, "provider-0", good[:100]) }, mix, func(c *loopix.Counters) uint64 { return c.Malformed.Load() }, 3},
		{"pull to a mix", func() {
			mix.eng.Handle(s.ctx, s.now, "provider-0", loopix.EncodePull(loopix.Pull{}))
		}, mix, func(c *loopix.Counters) uint64 { return c.UnexpectedFrame.Load() }, 1},
		{"packet from a stranger", func() { mix.eng.Handle(s.ctx, s.now, "stranger", bytes.Clone(good)) }, mix, func(c *loopix.Counters) uint64 { return c.UnknownPeer.Load() }, 1},
		{"unknown epoch", func() {
			mix.eng.Handle(s.ctx, s.now, "provider-0", s.rawPacket(simEpoch+2, []string{"mix-0-0"}, []sphinx.Commands{{sphinx.Recipient{}}}))
		}, mix, func(c *loopix.Counters) uint64 { return c.Undecryptable.Load() }, 1},
		{"tampered header", func() {
			b := bytes.Clone(good)
			b[1+40] ^= 1
			mix.eng.Handle(s.ctx, s.now, "provider-0", b)
		}, mix, func(c *loopix.Counters) uint64 { return c.Undecryptable.Load() }, 2},
		{"valid packet", func() { mix.eng.Handle(s.ctx, s.now, "provider-0", bytes.Clone(good)) }, mix, func(c *loopix.Counters) uint64 { return c.QueueLength.Load() - queued }, 1},
		{"replay", func() { mix.eng.Handle(s.ctx, s.now, "provider-0", bytes.Clone(good)) }, mix, func(c *loopix.Counters) uint64 { return c.Replayed.Load() }, 1},
		{"terminal packet at a mix", func() {
			mix.eng.Handle(s.ctx, s.now, "provider-0", s.rawPacket(simEpoch, []string{"mix-0-0"}, []sphinx.Commands{{sphinx.Recipient{}}}))
		}, mix, func(c *loopix.Counters) uint64 { return c.BadCommands.Load() }, 1},
		{"delay over the bound", func() {
			mix.eng.Handle(s.ctx, s.now, "provider-0", s.rawPacket(simEpoch, []string{"mix-0-0", "mix-1-0"}, []sphinx.Commands{delay(3_600_000), {sphinx.Recipient{}}}))
		}, mix, func(c *loopix.Counters) uint64 { return c.DelayTooLong.Load() }, 1},
		{"packet from an unregistered client", func() {
			p0.eng.Handle(s.ctx, s.now, "mallory", s.rawPacket(simEpoch, []string{"provider-0", "mix-0-0"}, []sphinx.Commands{delay(1), {sphinx.Recipient{}}}))
		}, p0, func(c *loopix.Counters) uint64 { return c.UnknownPeer.Load() }, 1},
		{"client over its rate", func() {
			for range 40 { // the bucket holds 20
				p0.eng.Handle(s.ctx, s.now, "alice", s.rawPacket(simEpoch, []string{"provider-0", "mix-0-0"}, []sphinx.Commands{delay(1), {sphinx.Recipient{}}}))
			}
		}, p0, func(c *loopix.Counters) uint64 { return c.RateLimited.Load() }, 20},
		{"unknown recipient", func() {
			p0.eng.Handle(s.ctx, s.now, "mix-2-0", s.rawPacket(simEpoch, []string{"provider-0"}, []sphinx.Commands{{sphinx.Recipient{ID: sphinx.RecipientID{1, 2, 3}}}}))
		}, p0, func(c *loopix.Counters) uint64 { return c.UnknownRecipient.Load() }, 1},
		{"mailbox frame to a provider", func() {
			f, _ := loopix.EncodeEntry(s.geo, loopix.Entry{})
			p0.eng.Handle(s.ctx, s.now, "alice", f)
		}, p0, func(c *loopix.Counters) uint64 { return c.UnexpectedFrame.Load() }, 1},
		{"mailbox frame from a stranger", func() {
			f, _ := loopix.EncodeEntry(s.geo, loopix.Entry{})
			alice.eng.Handle(s.ctx, s.now, "mix-0-0", f)
		}, alice, func(c *loopix.Counters) uint64 { return c.UnknownPeer.Load() }, 1},
		{"mailbox entry that does not open", func() {
			f, _ := loopix.EncodeEntry(s.geo, loopix.Entry{Seq: 3000, Real: true, Payload: make([]byte, loopix.EntryLength(s.geo))})
			alice.eng.Handle(s.ctx, s.now, "provider-0", f)
		}, alice, func(c *loopix.Counters) uint64 { return c.Malformed.Load() + c.Undecryptable.Load() }, 1},
		{"replayed mailbox entry", func() {
			f, _ := loopix.EncodeEntry(s.geo, loopix.Entry{Seq: 3000, Real: true, Payload: make([]byte, loopix.EntryLength(s.geo))})
			alice.eng.Handle(s.ctx, s.now, "provider-0", f)
		}, alice, func(c *loopix.Counters) uint64 { return c.DuplicateEntry.Load() }, 1},
		{"oversize message", func() {
			_ = ca.Send(ca.Address(), &loopix.Message{Payload: make([]byte, 65<<10)})
		}, alice, func(c *loopix.Counters) uint64 { return c.Oversize.Load() }, 1},
	}
	for _, c := range checks {
		c.input()
		if got := c.ctr(c.node.counters); got != c.want {
			t.Errorf("%s: counter at %d, want %d (%s)", c.name, got, c.want, drops(c.node.counters))
		}
	}
	// The network still works afterwards.
	s.run(10 * time.Second)
	if ca.Counters().LoopsReturned.Load() == 0 {
		t.Error("no loop came back after the bad input")
	}
}

// TestMailboxBounds: a mailbox over its entry bound refuses (and counts)
// what does not fit; the recipient gets what was kept.
func TestMailboxBounds(t *testing.T) {
	o := simOptions{seed: 6, rates: loopix.Rates{LambdaP: 4, Mu: 10}}
	o.boxOpts.MaxMailboxes, o.boxOpts.MaxEntries, o.boxOpts.MaxBytes, o.boxOpts.Synchronous = 10, 3, 1<<20, "NORMAL"
	s := newSim(t, o)
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	s.nodes["bob"].offline = true
	for i := range 6 {
		if err := ca.Send(cb.Address(), &loopix.Message{Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.run(20 * time.Second)
	p1 := s.nodes["provider-1"].counters
	if p1.Stored.Load() != 3 || p1.MailboxFull.Load() != 3 {
		t.Fatalf("stored %d, refused %d; want 3 and 3", p1.Stored.Load(), p1.MailboxFull.Load())
	}
	s.nodes["bob"].offline = false
	s.run(10 * time.Second)
	if len(b.delivered) != 3 {
		t.Fatalf("bob got %d messages, want the 3 stored", len(b.delivered))
	}
}

// TestMailboxEntriesOutOfOrder: a pull's entries that arrive out of
// order, twice, or after a gap are each taken once, and the ack moves
// only over what is contiguous, so that the provider sends a lost entry
// again.
func TestMailboxEntriesOutOfOrder(t *testing.T) {
	s := newSim(t, simOptions{seed: 8, rates: loopix.Rates{LambdaP: 1, Mu: 10}})
	a, ca := s.addClient("alice", "provider-0")
	s.nodes["alice"].offline = true
	entry := func(seq uint64) []byte {
		k := ca.Address().Key
		msg, _ := loopix.MarshalMessage(&loopix.Message{Payload: []byte{byte(seq)}})
		inner, _ := loopix.EncodeFragment(loopix.Fragment{Kind: loopix.KindFragment, ID: [16]byte{byte(seq)}, Count: 1, Data: msg}, s.geo.UserForwardPayloadLength-loopix.SealOverhead)
		sealed, _ := loopix.Seal(s.rnd, k, inner)
		payload, _ := s.geo.EncodeForwardPayload(nil, sealed)
		stored, _ := loopix.EncodeStored(s.geo, loopix.Stored{Kind: loopix.StoredForward, Body: payload})
		f, _ := loopix.EncodeEntry(s.geo, loopix.Entry{Seq: seq, Real: true, Payload: stored})
		return f
	}
	for _, seq := range []uint64{3, 1, 3, 2, 1, 5} {
		a.eng.Handle(s.ctx, s.now, "provider-0", entry(seq))
	}
	a.delivered = append(a.delivered, a.eng.Ready().Delivered...)
	if len(a.delivered) != 4 || ca.Counters().DuplicateEntry.Load() != 2 {
		t.Fatalf("delivered %d, duplicates %d; want 4 and 2", len(a.delivered), ca.Counters().DuplicateEntry.Load())
	}
	ca.Tick(s.now) // its first pull
	for _, o := range a.eng.Ready().Out {
		if f, err := loopix.DecodeFrame(s.geo, o.Frame); err == nil && f.Type == loopix.FramePull && f.Pull.Ack != 3 {
			t.Fatalf("pull acks %d, want 3 (4 is missing)", f.Pull.Ack)
		}
	}
}

// TestPullFlood: pulls beyond the client's rate are dropped and counted
// like packets, and answered with nothing.
func TestPullFlood(t *testing.T) {
	s := newSim(t, simOptions{seed: 9, rates: loopix.Rates{LambdaP: 1, Mu: 10}})
	s.addClient("alice", "provider-0")
	s.run(time.Second)
	p0 := s.nodes["provider-0"]
	p0.eng.Ready()
	var tok [loopix.TokenLength]byte
	for range 100 {
		p0.eng.Handle(s.ctx, s.now, "alice", loopix.EncodePull(loopix.Pull{Token: tok}))
	}
	if got := p0.counters.RateLimited.Load(); got < 75 {
		t.Fatalf("rate limited %d of 100 pulls at one instant; the bucket holds 20", got)
	}
	if out := len(p0.eng.Ready().Out); out > 4*25 {
		t.Fatalf("%d frames answered a flood of pulls", out)
	}
}
