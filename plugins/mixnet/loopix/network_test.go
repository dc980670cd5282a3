package loopix_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// message returns a recognisable plaintext of n bytes.
func message(tag string, n int) []byte {
	b := bytes.Repeat([]byte(fmt.Sprintf("<%s plaintext>", tag)), n/len(tag)+1)
	return b[:n]
}

func delivered(n *simNode, payload []byte) *loopix.Message {
	for _, m := range n.delivered {
		if bytes.Equal(m.Payload, payload) {
			return m
		}
	}
	return nil
}

// TestClientToClientBothDirections: a message of several fragments goes
// from a client of provider-0 to a client of provider-1 and another back,
// each through the sender's provider, one mix of each of the three layers
// and the recipient's provider, with all cover traffic on. The recipient
// learns the sender's address and conversation, sealed inside the payload.
func TestClientToClientBothDirections(t *testing.T) {
	s := newSim(t, simOptions{seed: 1})
	a, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second) // both register with a first pull

	toBob, toAlice := message("to bob", 1500), message("to alice", 700)
	if err := ca.Send(cb.Address(), &loopix.Message{From: ca.Address().Marshal(), Conversation: []byte("conv-1"), Payload: toBob}); err != nil {
		t.Fatal(err)
	}
	if err := cb.Send(ca.Address(), &loopix.Message{From: cb.Address().Marshal(), Conversation: []byte("conv-2"), Payload: toAlice}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return delivered(b, toBob) != nil && delivered(a, toAlice) != nil }) {
		t.Fatalf("not delivered within 2 minutes: bob has %d messages, alice %d; alice %s; bob %s", len(b.delivered), len(a.delivered), counters(a), counters(b))
	}
	m := delivered(b, toBob)
	if !bytes.Equal(m.From, ca.Address().Marshal()) || string(m.Conversation) != "conv-1" {
		t.Fatalf("bob got from %x conversation %q", m.From, m.Conversation)
	}
	if m := delivered(a, toAlice); !bytes.Equal(m.From, cb.Address().Marshal()) || string(m.Conversation) != "conv-2" {
		t.Fatalf("alice got from %x conversation %q", m.From, m.Conversation)
	}
	if got := len(b.delivered) + len(a.delivered); got != 2 {
		t.Fatalf("%d messages delivered, want 2", got)
	}
	// Every layer forwarded packets, and every client's packet went to its
	// own provider only.
	for layer := -1; layer < 3; layer++ {
		if n := sum(s.relays(layer), func(c *loopix.Counters) uint64 { return c.Forwarded.Load() }); n == 0 {
			t.Errorf("layer %d forwarded nothing", layer)
		}
	}
	for _, l := range s.links {
		if (l.from == "alice" && l.to != "provider-0") || (l.from == "bob" && l.to != "provider-1") {
			t.Fatalf("a client sent to %s", l.to)
		}
	}
	for _, n := range append(s.relays(-1), append(s.relays(0), append(s.relays(1), s.relays(2)...)...)...) {
		if d := drops(n.counters); d != "" {
			t.Errorf("%s dropped: %s", n.name, d)
		}
	}
	if ca.Counters().LoopsReturned.Load() == 0 || cb.Counters().LoopsReturned.Load() == 0 {
		t.Errorf("no client loop came back: alice %d, bob %d", ca.Counters().LoopsReturned.Load(), cb.Counters().LoopsReturned.Load())
	}
	if sum(s.relays(1), func(c *loopix.Counters) uint64 { return c.LoopsReturned.Load() }) == 0 {
		t.Errorf("no mix loop came back")
	}
}

// TestPathThroughEveryLayer: with only the λP stream (no loops, no λD),
// every packet a client sends crosses its provider, every mix layer and a
// provider: each layer forwards exactly the packets the clients sent, the
// recipient's provider stores exactly the message's fragments, and the
// sender's provider the recipient's acknowledgements of them.
func TestPathThroughEveryLayer(t *testing.T) {
	s := newSim(t, simOptions{seed: 2, rates: loopix.Rates{LambdaP: 2, Mu: 10}})
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	payload := message("path", 2500) // 5 fragments of 529 bytes
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, payload) != nil && ca.Counters().AcksReceived.Load() == 5 }) {
		t.Fatalf("not delivered and acknowledged; alice %s; bob %s", counters(s.nodes["alice"]), counters(b))
	}
	// Stop the clients and let the network drain.
	s.nodes["alice"].offline, s.nodes["bob"].offline = true, true
	s.run(time.Minute)
	sent := ca.Counters().PacketsOut.Load() + cb.Counters().PacketsOut.Load()
	if got := sum(s.relays(-1), func(c *loopix.Counters) uint64 { return c.Forwarded.Load() }); got != sent {
		t.Errorf("providers forwarded %d packets, clients sent %d", got, sent)
	}
	for layer := range 3 {
		if got := sum(s.relays(layer), func(c *loopix.Counters) uint64 { return c.Forwarded.Load() }); got != sent {
			t.Errorf("layer %d forwarded %d packets, clients sent %d", layer, got, sent)
		}
	}
	// provider-1 stored alice's five fragments for bob, provider-0 bob's
	// five acknowledgements for alice; the rest was drop cover.
	p0, p1 := s.nodes["provider-0"].counters, s.nodes["provider-1"].counters
	if p1.Stored.Load() != 5 || p0.Stored.Load() != 5 || ca.Counters().RealSent.Load() != 5 || cb.Counters().AcksSent.Load() != 5 {
		t.Errorf("provider-1 stored %d, provider-0 %d; alice sent %d fragments, bob %d acknowledgements; want 5 of each",
			p1.Stored.Load(), p0.Stored.Load(), ca.Counters().RealSent.Load(), cb.Counters().AcksSent.Load())
	}
	discarded := sum(s.relays(-1), func(c *loopix.Counters) uint64 { return c.CoverDiscarded.Load() })
	if discarded+10 != sent {
		t.Errorf("providers discarded %d drop cover packets and stored 10 of %d sent", discarded, sent)
	}
}

// TestOfflineRecipientPullsLater: the recipient is offline while the
// message crosses the network; its provider keeps it in the (durable)
// mailbox, across a restart of the provider, until the recipient comes
// back and pulls.
func TestOfflineRecipientPullsLater(t *testing.T) {
	s := newSim(t, simOptions{seed: 3})
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	s.nodes["bob"].offline = true
	payload := message("offline", 1200)
	if err := ca.Send(cb.Address(), &loopix.Message{Payload: payload}); err != nil {
		t.Fatal(err)
	}
	p1 := s.nodes["provider-1"]
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return p1.counters.Stored.Load() >= 3 }) {
		t.Fatalf("provider-1 stored %d entries", p1.counters.Stored.Load())
	}
	s.run(time.Minute)
	if len(b.delivered) != 0 {
		t.Fatal("an offline client received a message")
	}
	// The provider restarts on the same database.
	s.startRelay(s.member("provider-1"), filepath.Dir(s.mailbox["provider-1"]))
	s.nodes["bob"].offline = false
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, payload) != nil }) {
		t.Fatalf("bob did not get the message after coming back: %s", counters(b))
	}
}

// TestRelaysSeeNoPlaintextNorBothEnds: what each relay stores (the
// providers' mailbox databases) holds no plaintext, and no relay learns
// both ends: the sender's provider is the only relay that talks to the
// sender and never learns the recipient's mailbox; the recipient's
// provider stores and talks to the recipient and never learns the
// sender's address; mixes never talk to clients.
func TestRelaysSeeNoPlaintextNorBothEnds(t *testing.T) {
	s := newSim(t, simOptions{seed: 4})
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	s.nodes["bob"].offline = true // so that the message stays in the mailbox
	payload := message("secret", 1000)
	if err := ca.Send(cb.Address(), &loopix.Message{From: ca.Address().Marshal(), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	p1 := s.nodes["provider-1"]
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return p1.counters.Stored.Load() >= 2 }) {
		t.Fatalf("stored %d", p1.counters.Stored.Load())
	}
	s.run(10 * time.Second)
	stored := map[string][]byte{}
	for name, path := range s.mailbox {
		var all []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		stored[string(name)] = all
	}
	if len(stored["provider-1"]) == 0 {
		t.Fatal("provider-1 stores nothing")
	}
	aAddr, bAddr := ca.Address(), cb.Address()
	for name, data := range stored {
		for _, secret := range [][]byte{payload[:32], payload[500:532], aAddr.Marshal(), aAddr.Key[:], bAddr.Key[:], []byte("alice"), []byte("bob")} {
			if bytes.Contains(data, secret) {
				t.Errorf("%s stores %q", name, secret)
			}
		}
	}
	if !bytes.Contains(stored["provider-1"], bAddr.Mailbox[:]) {
		t.Error("provider-1 does not store bob's mailbox id (is the test looking at the right bytes?)")
	}
	if bytes.Contains(stored["provider-0"], bAddr.Mailbox[:]) {
		t.Error("provider-0, the sender's provider, stores the recipient's mailbox id")
	}
	if bytes.Contains(stored["provider-1"], aAddr.Mailbox[:]) {
		t.Error("provider-1, the recipient's provider, stores the sender's mailbox id")
	}
	peers := map[string]map[string]bool{}
	for _, l := range s.links {
		for _, p := range [][2]string{{string(l.from), string(l.to)}, {string(l.to), string(l.from)}} {
			if peers[p[0]] == nil {
				peers[p[0]] = map[string]bool{}
			}
			peers[p[0]][p[1]] = true
		}
	}
	for name, seen := range peers {
		if name == "alice" || name == "bob" {
			continue
		}
		if seen["alice"] && seen["bob"] {
			t.Errorf("%s talked to both clients", name)
		}
		if name != "provider-0" && name != "provider-1" && (seen["alice"] || seen["bob"]) {
			t.Errorf("mix %s talked to a client", name)
		}
	}
	_ = b
}

func counters(n *simNode) string {
	return fmt.Sprintf("out %d real %d drop %d loops %d/%d pulls-in %d delivered %d drops [%s]",
		n.counters.PacketsOut.Load(), n.counters.RealSent.Load(), n.counters.DropCoverSent.Load(), n.counters.LoopsReturned.Load(), n.counters.LoopsSent.Load(),
		n.counters.EntriesIn.Load(), n.counters.Delivered.Load(), drops(n.counters))
}

// drops lists the non-zero drop counters.
func drops(c *loopix.Counters) string {
	var out string
	for name, v := range map[string]uint64{
		"malformed": c.Malformed.Load(), "unknown_peer": c.UnknownPeer.Load(), "undecryptable": c.Undecryptable.Load(),
		"replayed": c.Replayed.Load(), "replay_error": c.ReplayError.Load(), "bad_commands": c.BadCommands.Load(),
		"unknown_next_hop": c.UnknownNextHop.Load(), "queue_full": c.QueueFull.Load(), "delay_too_long": c.DelayTooLong.Load(),
		"rate_limited": c.RateLimited.Load(), "unknown_recipient": c.UnknownRecipient.Load(), "mailbox_full": c.MailboxFull.Load(),
		"too_many_clients": c.TooManyClients.Load(), "mailbox_error": c.MailboxError.Load(), "unexpected_frame": c.UnexpectedFrame.Load(),
		"no_route": c.NoRoute.Load(), "bad_fragment": c.BadFragment.Load(), "duplicate_entry": c.DuplicateEntry.Load(),
	} {
		if v != 0 {
			out += fmt.Sprintf("%s=%d ", name, v)
		}
	}
	return out
}

// TestClientPullsWhenProviderConnects: a client pulls at once when the
// overlay connects it to its provider, not a pull interval later (its
// first pull, made before the link was up, may have been lost, and the
// provider takes its packets only once a pull registered it); a
// connection to another peer changes nothing.
func TestClientPullsWhenProviderConnects(t *testing.T) {
	s := newSim(t, simOptions{seed: 3})
	_, c := s.addClient("carol", "provider-0")
	p, _ := s.dir.ByName("provider-0")
	pullType := loopix.EncodePull(loopix.Pull{})[0]
	pulls := func() int {
		n := 0
		for _, o := range c.Ready().Out {
			if o.To == p.Peer && len(o.Frame) > 0 && o.Frame[0] == pullType && len(o.Frame) < 200 {
				n++
			}
		}
		return n
	}
	c.Tick(s.now)
	pulls() // the first pull, at start
	soon := s.now.Add(100 * time.Millisecond)
	c.Connected("provider-1", soon)
	c.Tick(soon)
	if n := pulls(); n != 0 {
		t.Fatalf("%d pulls after a connection to another peer", n)
	}
	c.Connected(p.Peer, soon)
	c.Tick(soon)
	if n := pulls(); n != 1 {
		t.Fatalf("%d pulls right after the provider connected, want 1", n)
	}
}
