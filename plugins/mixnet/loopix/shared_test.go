package loopix_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestDeriveChannel: the derivation is the same for every caller, differs
// with the name and with the key, and picks a provider of the directory
// that stays when another provider leaves.
func TestDeriveChannel(t *testing.T) {
	s := newSim(t, simOptions{seed: 40})
	a1, err := loopix.DeriveChannel("strata", nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := loopix.DeriveChannel("strata", nil)
	b, _ := loopix.DeriveChannel("strata2", nil)
	k, _ := loopix.DeriveChannel("strata", []byte("key"))
	if *a1 != *a2 {
		t.Fatal("two derivations of one name differ")
	}
	for _, o := range []*loopix.Channel{b, k} {
		if o.Mailbox == a1.Mailbox || o.Key == a1.Key || o.Selector == a1.Selector {
			t.Fatal("another name or key gives the same mailbox, key or selector")
		}
	}
	if a1.Mailbox == loopix.MailboxID(a1.Key) {
		t.Fatal("mailbox id and seal key are not separated")
	}
	id, err := loopix.ParseSharedAddress(a1.Address())
	if err != nil || id != a1.Mailbox || len(a1.Address()) != loopix.SharedAddressLength {
		t.Fatalf("shared address round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, {3}, append([]byte{1}, a1.Mailbox[:]...), append(a1.Address(), 0)} {
		if _, err := loopix.ParseSharedAddress(bad); err == nil {
			t.Errorf("ParseSharedAddress(%x) accepted", bad)
		}
	}
	// Rendezvous hashing: the chosen provider stays as long as it is
	// listed; dropping another provider moves nothing.
	p, err := a1.ProviderOf(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	d := *s.dir
	d.Providers = nil
	for _, q := range s.dir.Providers {
		if q != p {
			d.Providers = append(d.Providers, q)
		}
	}
	d2 := d
	d2.Providers = append(append([]*loopix.Node{}, d.Providers...), p)
	if q, _ := a1.ProviderOf(&d2); q != p {
		t.Fatal("the provider changed when the list order did")
	}
	if q, _ := a1.ProviderOf(&d); q == p || q == nil {
		t.Fatal("a provider that left is still chosen")
	}
	// Across many names both providers are used.
	seen := map[string]bool{}
	for i := range 32 {
		ch, _ := loopix.DeriveChannel(string(rune('a'+i)), nil)
		q, _ := ch.ProviderOf(s.dir)
		seen[q.Name()] = true
	}
	if len(seen) != 2 {
		t.Fatalf("32 names chose providers %v", seen)
	}
}

// TestSharedMailboxPublicChat: a public chat of three clients on two
// providers. Alice (provider-0) and bob (provider-1) follow it and post
// messages of several fragments; each gets the other's, with the shared
// address and the sender's address, and not its own. Carol (provider-0)
// joins later and reads the backlog; bob restarts (his positions are
// lost) and reads it again from the oldest entry without stalling, then
// gets a message posted after. The shared mailbox's provider stores only
// ciphertext.
func TestSharedMailboxPublicChat(t *testing.T) {
	s := newSim(t, simOptions{seed: 41})
	ch, err := loopix.DeriveChannel("#strata-public", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, ca := s.addClient("alice", "provider-0")
	var bobToken [loopix.TokenLength]byte
	s.rnd.Read(bobToken[:])
	bobKeys, err := loopix.NewKeyPair(s.rnd)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := s.dir.ByName("provider-1")
	startBob := func() (*simNode, *loopix.Client) {
		c, err := loopix.NewClient(loopix.ClientConfig{
			Common: s.common(), Provider: p1.ID, Token: bobToken, Keys: bobKeys,
			PullInterval: 2 * time.Second, MaxQueue: 256, MaxMessage: 64 << 10, MaxPending: 16, ReassemblyTimeout: 10 * time.Minute,
			AckTimeout: s.ackTimeout, MaxRetransmissions: 3,
		}, s.dir, s.now)
		if err != nil {
			t.Fatal(err)
		}
		n := &simNode{name: "bob", eng: c, tick: func(_ context.Context, now time.Time) { c.Tick(now) }, counters: c.Counters()}
		s.add(n)
		return n, c
	}
	b, cb := startBob()
	for _, c := range []*loopix.Client{ca, cb} {
		if err := c.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	fromAlice := message("alice to the chat", 1500)
	fromBob := message("bob to the chat", 700)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{From: ca.Address().Marshal(), Payload: fromAlice}); err != nil {
		t.Fatal(err)
	}
	if err := cb.SendShared(s.now, ch.Mailbox, &loopix.Message{From: cb.Address().Marshal(), Payload: fromBob}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(3*time.Minute), func() bool { return delivered(a, fromBob) != nil && delivered(b, fromAlice) != nil }) {
		t.Fatalf("the posts did not cross: alice %s / bob %s", counters(a), counters(b))
	}
	for _, x := range []struct {
		n    *simNode
		m    []byte
		from *loopix.Client
	}{{a, fromBob, cb}, {b, fromAlice, ca}} {
		m := delivered(x.n, x.m)
		if !bytes.Equal(m.Shared, ch.Address()) || !bytes.Equal(m.From, x.from.Address().Marshal()) || len(m.Conversation) != 0 {
			t.Errorf("%s got shared %x from %x conversation %x", x.n.name, m.Shared, m.From, m.Conversation)
		}
	}
	s.run(10 * time.Second)
	if delivered(a, fromAlice) != nil || delivered(b, fromBob) != nil {
		t.Error("a client got its own post back")
	}
	if n := len(a.delivered) + len(b.delivered); n != 2 {
		t.Errorf("%d messages delivered in all, want 2", n)
	}
	if a.counters.Unacked.Load()+b.counters.Unacked.Load() != 0 {
		t.Error("a post was not acknowledged by the shared mailbox's provider")
	}
	holder, _ := ch.ProviderOf(s.dir)
	stored := s.nodes[holder.Peer].counters.SharedStored.Load()
	if stored < 4 { // 3 fragments from alice, 2 from bob (copies may add)
		t.Errorf("the shared mailbox's provider stored %d posts", stored)
	}

	// Carol joins later and reads the backlog.
	c, cc := s.addClient("carol", "provider-0")
	if err := cc.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(3*time.Minute), func() bool { return delivered(c, fromBob) != nil && delivered(c, fromAlice) != nil }) {
		t.Fatalf("carol did not read the backlog: %s", counters(c))
	}

	// Bob restarts: his position is lost, he reads from the oldest entry
	// (his own post comes back as well: the layer above drops
	// duplicates), and a new post reaches him.
	s.nodes["bob"].offline = true
	b, cb = startBob()
	if err := cb.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	after := message("alice after bob's restart", 300)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{From: ca.Address().Marshal(), Payload: after}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(3*time.Minute), func() bool { return delivered(b, after) != nil && delivered(c, after) != nil }) {
		t.Fatalf("bob after his restart or carol did not get the new post: bob %s / carol %s", counters(b), counters(c))
	}
	if delivered(b, fromAlice) == nil {
		t.Error("bob after his restart did not read the backlog")
	}
	if pos := cb.SharedPosition(ch.Mailbox); pos == 0 {
		t.Error("bob's position did not move")
	}

	// Bob restarts again, this time resuming from the position he had
	// stored: he does not read the chat again, and a new post reaches him.
	saved := cb.SharedPositions()[ch.Mailbox]
	if saved.Pos == 0 {
		t.Fatal("no position to store")
	}
	s.nodes["bob"].offline = true
	b, cb = startBob()
	if err := cb.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	cb.ResumeShared(ch.Mailbox, saved)
	again := message("alice after bob resumed", 300)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{From: ca.Address().Marshal(), Payload: again}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(3*time.Minute), func() bool { return delivered(b, again) != nil }) {
		t.Fatalf("bob did not get the post after resuming: %s", counters(b))
	}
	if len(b.delivered) != 1 {
		t.Errorf("bob, resumed from his stored position, got %d messages, want only the new one", len(b.delivered))
	}

	// Unsubscribe stops the pulls.
	cc.Unsubscribe(ch.Mailbox)
	pulls := c.counters.SharedPullsSent.Load()
	s.run(20 * time.Second)
	if got := c.counters.SharedPullsSent.Load(); got != pulls {
		t.Errorf("carol pulled %d times after unsubscribing", got-pulls)
	}

	// The providers' stores hold no plaintext.
	for _, path := range s.mailbox {
		for _, f := range []string{path, path + "-wal"} {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, p := range [][]byte{fromAlice[:40], fromBob[:40], after[:40], ch.Key[:]} {
				if bytes.Contains(raw, p) {
					t.Errorf("%s holds plaintext or the chat's key", filepath.Base(f))
				}
			}
		}
	}
}

// TestSharedMailboxBadInput: a pull of a shared mailbox nobody posted to,
// a provider full of shared mailboxes, and a flood of pulls over the
// provider's rate are dropped and counted; the chat keeps working.
func TestSharedMailboxBadInput(t *testing.T) {
	s := newSim(t, simOptions{seed: 42, sharedPullRate: 0.2, sharedPullBurst: 2})
	s.boxOpts.MaxShared = 1
	_ = s
	// The providers were started with MaxShared 10: start them again
	// with a bound of one shared mailbox each.
	for _, p := range s.dir.Providers {
		s.startRelay(s.member(p.Name()), t.TempDir())
	}
	a, ca := s.addClient("alice", "provider-0")
	// Two chats on the same provider, and one nobody posts to.
	var chans []*loopix.Channel
	var holder string
	for i := 0; len(chans) < 3 && i < 100; i++ {
		ch, _ := loopix.DeriveChannel("chat-"+string(rune('a'+i)), nil)
		p, _ := ch.ProviderOf(s.dir)
		if holder == "" {
			holder = p.Name()
		}
		if p.Name() == holder {
			chans = append(chans, ch)
		}
	}
	for _, ch := range chans {
		if err := ca.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	first, second := message("first chat", 100), message("second chat", 100)
	if err := ca.SendShared(s.now, chans[0].Mailbox, &loopix.Message{Payload: first}); err != nil {
		t.Fatal(err)
	}
	s.run(20 * time.Second)
	if err := ca.SendShared(s.now, chans[1].Mailbox, &loopix.Message{Payload: second}); err != nil {
		t.Fatal(err)
	}
	s.run(time.Minute)
	hc := s.nodes[loopix.PeerID(holder)].counters
	if hc.TooManyShared.Load() == 0 {
		t.Errorf("a second shared mailbox past the bound of one was not refused: %s", drops(hc))
	}
	if hc.UnknownShared.Load() == 0 {
		t.Errorf("pulls of shared mailboxes nobody posted to were not counted: %s", drops(hc))
	}
	if hc.SharedPullRateLimited.Load() == 0 {
		t.Errorf("pulls over the rate were not dropped: %s", drops(hc))
	}
	if a.counters.Delivered.Load() != 0 {
		t.Error("alice got her own post")
	}
	if hc.SharedStored.Load() == 0 {
		t.Error("the first chat's post was not stored")
	}
}

// TestSharedMailboxMoves: when the PKI document no longer lists the
// provider of a chat's shared mailbox, the chat moves to the provider
// with the next rendezvous score; readers start there from its oldest
// entry and new posts reach them.
func TestSharedMailboxMoves(t *testing.T) {
	s := newSim(t, simOptions{seed: 43})
	var ch *loopix.Channel
	for i := 0; ch == nil; i++ {
		c, _ := loopix.DeriveChannel("moving-"+string(rune('a'+i)), nil)
		if p, _ := c.ProviderOf(s.dir); p.Name() == "provider-1" {
			ch = c
		}
	}
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-0")
	for _, c := range []*loopix.Client{ca, cb} {
		if err := c.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	before := message("before the move", 200)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{Payload: before}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return delivered(b, before) != nil }) {
		t.Fatalf("bob did not get the first post: %s", counters(b))
	}
	// provider-1 leaves the clients' document.
	d := *s.dir
	d.Providers = nil
	for _, p := range s.dir.Providers {
		if p.Name() != "provider-1" {
			d.Providers = append(d.Providers, p)
		}
	}
	for _, c := range []*loopix.Client{ca, cb} {
		if err := c.SetDirectory(&d); err != nil {
			t.Fatal(err)
		}
	}
	after := message("after the move", 200)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{Payload: after}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(2*time.Minute), func() bool { return delivered(b, after) != nil }) {
		t.Fatalf("bob did not get the post after the move: %s", counters(b))
	}
	if got := s.nodes["provider-0"].counters.SharedStored.Load(); got == 0 {
		t.Error("provider-0 stored no post after the move")
	}
}

// TestSharedPullsPipelined: a reader whose pulls go out faster than their
// answers come back (pull_interval below the round trip) asks each pull
// above what the pulls in flight asked for, so that it reads a backlog
// without asking for the same entries again and again.
func TestSharedPullsPipelined(t *testing.T) {
	s := newSim(t, simOptions{seed: 43, sharedPullRate: 1000, sharedPullBurst: 1000})
	ch, err := loopix.DeriveChannel("#backlog", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, ca := s.addClient("alice", "provider-0")
	if err := ca.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	const posts = 40
	var sent [][]byte
	for i := range posts {
		m := message(fmt.Sprintf("post %d", i), 200)
		sent = append(sent, m)
		if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{From: ca.Address().Marshal(), Payload: m}); err != nil {
			t.Fatal(err)
		}
	}
	holder, _ := ch.ProviderOf(s.dir)
	if !s.runUntil(s.now.Add(5*time.Minute), func() bool { return s.nodes[holder.Peer].counters.SharedStored.Load() >= posts }) {
		t.Fatalf("the posts were not stored: %s", counters(a))
	}
	b, cb := s.addClientPulling("bob", "provider-1", 50*time.Millisecond)
	if err := cb.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(5*time.Minute), func() bool {
		for _, m := range sent {
			if delivered(b, m) == nil {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("bob did not read the backlog: %s", counters(b))
	}
	entries, dups := b.counters.SharedEntriesIn.Load(), b.counters.DuplicateEntry.Load()
	t.Logf("bob: %d entries, %d duplicates, %d pulls", entries, dups, b.counters.SharedPullsSent.Load())
	if dups > entries/2 {
		t.Errorf("bob took %d entries and %d duplicates: his pulls asked for the same entries again", entries, dups)
	}
}

// TestSharedPullOfUnknownMailbox: a pull of a shared mailbox nobody posted
// to yet is answered with dummies, as one of an empty mailbox, so that the
// reader's pulls settle instead of holding its pulls in flight until their
// SURBs expire, and it reads the first post as soon as it comes.
func TestSharedPullOfUnknownMailbox(t *testing.T) {
	s := newSim(t, simOptions{seed: 44})
	ch, err := loopix.DeriveChannel("#nobody-yet", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ca := s.addClient("alice", "provider-0")
	b, cb := s.addClient("bob", "provider-1")
	for _, c := range []*loopix.Client{ca, cb} {
		if err := c.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	s.run(30 * time.Second)
	holder, _ := ch.ProviderOf(s.dir)
	if got := s.nodes[holder.Peer].counters.UnknownShared.Load(); got == 0 {
		t.Fatal("no pull of the unknown mailbox reached its provider")
	}
	if got := b.counters.SharedDummiesIn.Load(); got == 0 {
		t.Fatalf("bob's pulls of the unknown mailbox were not answered: %s", counters(b))
	}
	first := message("the first post", 100)
	if err := ca.SendShared(s.now, ch.Mailbox, &loopix.Message{From: ca.Address().Marshal(), Payload: first}); err != nil {
		t.Fatal(err)
	}
	if !s.runUntil(s.now.Add(time.Minute), func() bool { return delivered(b, first) != nil }) {
		t.Fatalf("bob did not read the first post: %s", counters(b))
	}
}
