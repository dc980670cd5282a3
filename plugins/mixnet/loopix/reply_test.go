package loopix_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestSURBReplies: alice writes to bob anonymously with reply SURBs; bob
// gets the message with no sender address, only a reply address, and
// replies through it — a message of two fragments, on two SURBs — and
// alice gets the reply as from bob's address. Bob never held alice's
// address: not in the message, and the SURBs' route is sealed to the
// relays on it. A second anonymous message of the same conversation
// refills the same reply address, and bob replies again; a reply with
// more fragments than there are SURBs is refused whole; and bob, who is
// not anonymous, gets replies through SURBs he sends alice the same way.
func TestSURBReplies(t *testing.T) {
	s := newSim(t, simOptions{seed: 21, user: 2000, ackTimeout: 15 * time.Second, rates: loopix.Rates{LambdaP: 4, LambdaL: 0.5, LambdaD: 0.5, Mu: 10}})
	a, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	conv := []byte("anonymous conversation")

	ask := message("question", 500)
	if err := ca.SendWithSURBs(s.now, cb.Address(), &loopix.Message{Conversation: conv, Payload: ask}, 3); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, ask) != nil }) {
		t.Fatalf("bob did not get the question: %s", counters(b))
	}
	got := delivered(b, ask)
	if got.From != nil || len(got.ReplySURBs) != 0 {
		t.Fatalf("bob got a sender address %x or raw SURBs", got.From)
	}
	tag, err := loopix.ParseReplyAddress(got.ReplyTo)
	if err != nil {
		t.Fatalf("reply address %x: %v", got.ReplyTo, err)
	}
	if n := cb.ReplySURBs(tag); n != 3 {
		t.Fatalf("bob holds %d SURBs for the reply address, want 3", n)
	}
	aliceAddr := ca.Address().Marshal()
	if bytes.Contains(got.ReplyTo, aliceAddr[1:33]) || bytes.Contains(got.ReplyTo, aliceAddr[33:65]) {
		t.Fatal("the reply address names alice's provider or mailbox")
	}

	answer := message("answer", 3000) // two fragments
	if err := cb.Reply(s.now, tag, &loopix.Message{From: cb.Address().Marshal(), Conversation: conv, Payload: answer}); err != nil {
		t.Fatal(err)
	}
	if n := cb.ReplySURBs(tag); n != 1 {
		t.Fatalf("bob holds %d SURBs after a reply of two fragments, want 1", n)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(a, answer) != nil }) {
		t.Fatalf("alice did not get the reply: %s; bob %s", counters(a), counters(b))
	}
	if m := delivered(a, answer); !bytes.Equal(m.From, cb.Address().Marshal()) || !bytes.Equal(m.Conversation, conv) {
		t.Fatalf("the reply is from %x in %q; want bob's address and the conversation", m.From, m.Conversation)
	}
	if ca.Counters().RepliesIn.Load() != 2 || cb.Counters().RepliesSent.Load() != 2 {
		t.Fatalf("replies in %d at alice, sent %d by bob; want 2 and 2", ca.Counters().RepliesIn.Load(), cb.Counters().RepliesSent.Load())
	}

	// Too long for the one SURB left: refused, the SURB kept.
	if err := cb.Reply(s.now, tag, &loopix.Message{Conversation: conv, Payload: message("long", 3000)}); !errors.Is(err, loopix.ErrNoReplySURBs) || cb.ReplySURBs(tag) != 1 {
		t.Fatalf("a reply over the SURBs held: %v, %d SURBs left", err, cb.ReplySURBs(tag))
	}
	if err := cb.Reply(s.now, [loopix.ReplyTagLength]byte{1}, &loopix.Message{Payload: []byte("x")}); !errors.Is(err, loopix.ErrNoReplySURBs) {
		t.Fatalf("a reply to an unknown reply address: %v", err)
	}

	// The same conversation again: the same reply address, refilled.
	again := message("again", 200)
	if err := ca.SendWithSURBs(s.now, cb.Address(), &loopix.Message{Conversation: conv, Payload: again}, 2); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, again) != nil }) {
		t.Fatal("bob did not get the second message")
	}
	if m := delivered(b, again); !bytes.Equal(m.ReplyTo, got.ReplyTo) || cb.ReplySURBs(tag) != 3 {
		t.Fatalf("second reply address %x (first %x), %d SURBs; want the same address and 3", m.ReplyTo, got.ReplyTo, cb.ReplySURBs(tag))
	}
	second := message("second answer", 100)
	if err := cb.Reply(s.now, tag, &loopix.Message{Conversation: conv, Payload: second}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(a, second) != nil }) {
		t.Fatal("alice did not get the second reply")
	}

	// The other way: bob sends alice SURBs with his address; alice
	// replies through them.
	hello := message("hello", 100)
	if err := cb.SendWithSURBs(s.now, ca.Address(), &loopix.Message{From: cb.Address().Marshal(), Conversation: conv, Payload: hello}, 1); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(a, hello) != nil }) {
		t.Fatal("alice did not get bob's message")
	}
	h := delivered(a, hello)
	btag, err := loopix.ParseReplyAddress(h.ReplyTo)
	if err != nil || !bytes.Equal(h.From, cb.Address().Marshal()) {
		t.Fatalf("bob's message: from %x, reply address %x (%v)", h.From, h.ReplyTo, err)
	}
	back := message("back", 100)
	if err := ca.Reply(s.now, btag, &loopix.Message{Conversation: conv, Payload: back}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, back) != nil }) {
		t.Fatal("bob did not get alice's reply")
	}
	if m := delivered(b, back); !bytes.Equal(m.From, ca.Address().Marshal()) {
		t.Fatalf("alice's reply is from %x, want alice's address (the SURB's recipient)", m.From)
	}
	for _, n := range []*simNode{a, b} {
		c := n.counters
		if c.BadSURB.Load()+c.UnknownSURB.Load()+c.Undecryptable.Load()+c.BadFragment.Load()+c.Malformed.Load() != 0 {
			t.Fatalf("%s: %s", n.name, counters(n))
		}
	}
	// Every message was delivered once.
	if len(a.delivered) != 3 || len(b.delivered) != 3 {
		t.Fatalf("alice got %d messages, bob %d; want 3 each", len(a.delivered), len(b.delivered))
	}
}

// TestReplySURBsExpire: reply SURBs held past an epoch period are dropped
// and counted, and a reply through them is refused.
func TestReplySURBsExpire(t *testing.T) {
	s := newSim(t, simOptions{seed: 22, user: 2000, epoch: 30 * time.Second, rates: loopix.Rates{LambdaP: 4, LambdaL: 0.5, LambdaD: 0.5, Mu: 10}})
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	p := message("q", 100)
	if err := ca.SendWithSURBs(s.now, cb.Address(), &loopix.Message{Payload: p}, 2); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, p) != nil }) {
		t.Fatal("not delivered")
	}
	tag, _ := loopix.ParseReplyAddress(delivered(b, p).ReplyTo)
	s.run(31 * time.Second)
	if err := cb.Reply(s.now, tag, &loopix.Message{Payload: []byte("late")}); !errors.Is(err, loopix.ErrNoReplySURBs) {
		t.Fatalf("a reply on expired SURBs: %v", err)
	}
	if cb.Counters().ReplySURBsExpired.Load() != 2 {
		t.Fatalf("%d SURBs expired, want 2", cb.Counters().ReplySURBsExpired.Load())
	}
	if err := ca.SendWithSURBs(s.now, cb.Address(), &loopix.Message{Payload: p}, loopix.MaxReplySURBs+1); err == nil {
		t.Fatal("more reply SURBs than a message may carry were sent")
	}
}
