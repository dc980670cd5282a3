package loopix_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
)

// providerFrames are real frames for provider-1, captured on their way in
// a simulated network, with their senders: bob's pulls and packets (he is
// a client of provider-1) and the mixes' packets (drop cover, and bob's
// loops, which end in his mailbox).
type providerFrames struct {
	s       *sim
	at      time.Time
	bob     loopix.MailboxID
	from    []loopix.PeerID
	frames  [][]byte
	packets int // of frames, how many are packets from the mixes
}

// captureProviderFrames runs the network until provider-1 has received n
// packets from the mixes, and keeps every frame it received meanwhile
// (the first is bob's first pull, which registers him).
func captureProviderFrames(t testing.TB, seed uint64, n int) *providerFrames {
	t.Helper()
	s := newSim(t, simOptions{seed: seed, user: 2000, rates: loopix.Rates{LambdaP: 15, LambdaL: 15, Mu: 50}})
	c := &providerFrames{s: s}
	s.tap = func(from, to loopix.PeerID, frame []byte) {
		if to != "provider-1" || c.packets >= n || (len(c.frames) == 0 && frame[0] != loopix.FramePull) {
			return
		}
		if _, relay := s.dir.ByPeer(from); relay && frame[0] == loopix.FramePacket {
			c.packets++
		}
		c.from = append(c.from, from)
		c.frames = append(c.frames, append([]byte(nil), frame...))
	}
	_, bob := s.addClient("bob", "provider-1")
	s.addClient("alice", "provider-0")
	c.bob = bob.Address().Mailbox
	if !s.runUntil(s.now.Add(10*time.Minute), func() bool { return c.packets >= n }) {
		t.Fatalf("%d of %d packets for provider-1 captured", c.packets, n)
	}
	s.tap = nil
	c.at = s.now
	return c
}

// batch returns the captured frames i… as a batch (copies: the provider
// owns what it is given).
func (c *providerFrames) batch(i ...int) []loopix.Inbound {
	out := make([]loopix.Inbound, len(i))
	for k, j := range i {
		out[k] = loopix.Inbound{From: c.from[j], Frame: append([]byte(nil), c.frames[j]...)}
	}
	return out
}

var (
	providerPoolOnce sync.Once
	providerPool     *providerFrames
)

// BenchmarkProviderPackets is one provider (the state machine the plugin
// drives from one goroutine) taking what reaches it in a network of two
// clients at λP and λL 15/s: the mixes' packets (drop cover, discarded,
// and its client's loops, stored in the client's mailbox) and its
// client's packets (forwarded into the mixes) and pulls (answered from
// the mailbox), in the order they came, with a Tick every 256 frames.
// Two durabilities: full (the plugin's default: replay store and
// mailboxes fsync every commit) and normal (write, no fsync); and batches
// of 1 frame and of 32 (what arrives together at a busy provider).
// frames/s is the throughput; stored/op the mailbox entries per frame.
func BenchmarkProviderPackets(b *testing.B) {
	providerPoolOnce.Do(func() { providerPool = captureProviderFrames(b, 51, 1000) })
	p := providerPool
	if p == nil {
		b.Fatal("no frame pool")
	}
	for _, d := range []struct {
		name    string
		replay  replay.Durability
		mailbox string
	}{
		{"durability=full", replay.SyncFull, "FULL"},
		{"durability=normal", replay.SyncWrite, "NORMAL"},
	} {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/batch=%d", d.name, batch), func(b *testing.B) {
				benchProvider(b, p, d.replay, d.mailbox, batch)
			})
		}
	}
}

func benchProvider(b *testing.B, p *providerFrames, d replay.Durability, sync string, batch int) {
	s := p.s
	m := s.member("provider-1")
	ctx := context.Background()
	var stored uint64
	var prov *loopix.Provider
	newProvider := func() *loopix.Provider {
		if prov != nil {
			stored += prov.Counters().Stored.Load()
		}
		dir := b.TempDir()
		st, err := replay.Open(ctx, dir, simEpoch, replay.Options{ExpectedTags: 200000, Durability: d})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		boxes, err := mailbox.Open(ctx, dir+"/mailboxes.db", mailbox.Options{MaxMailboxes: 10, MaxEntries: 1 << 20, MaxBytes: 1 << 40, Synchronous: sync})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { boxes.Close() })
		keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
		if err != nil {
			b.Fatal(err)
		}
		rc := loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: st, MaxQueue: 100000, MaxDelay: time.Minute}
		rc.Rates.LambdaM, rc.Rates.LambdaL = 0, 0
		pr, err := loopix.NewProvider(ctx, loopix.ProviderConfig{
			RelayConfig: rc, Mailboxes: boxes, PullBatch: 4, ClientRate: 1e9, ClientBurst: 1e9, MaxClients: 10,
		}, s.dir, p.at)
		if err != nil {
			b.Fatal(err)
		}
		return pr
	}
	prov = newProvider()
	size := 0
	for _, f := range p.frames {
		size = max(size, len(f))
	}
	// The provider owns the frames it is given: one buffer per batch place.
	work := make([][]byte, batch)
	for i := range work {
		work[i] = make([]byte, size)
	}
	in := make([]loopix.Inbound, 0, batch)
	b.ReportAllocs()
	start := time.Now()
	var paused time.Duration
	for i := 0; b.Loop(); i++ {
		j := i % len(p.frames)
		if j == 0 && i > 0 {
			// A fresh provider: the pool's packets are new to it.
			t := time.Now()
			b.StopTimer()
			prov.HandleBatch(ctx, p.at, in)
			in = in[:0]
			prov.Tick(ctx, p.at.Add(time.Hour))
			prov.Ready()
			prov = newProvider()
			b.StartTimer()
			paused += time.Since(t)
		}
		w := work[len(in)][:len(p.frames[j])]
		copy(w, p.frames[j])
		in = append(in, loopix.Inbound{From: p.from[j], Frame: w})
		if len(in) == batch || j == len(p.frames)-1 {
			prov.HandleBatch(ctx, p.at, in)
			in = in[:0]
		}
		if j%256 == 255 {
			prov.Tick(ctx, p.at.Add(time.Minute))
			prov.Ready()
		}
	}
	prov.HandleBatch(ctx, p.at, in)
	per := (time.Since(start) - paused) / time.Duration(b.N)
	b.ReportMetric(float64(time.Second)/float64(per), "frames/s")
	c := prov.Counters()
	stored += c.Stored.Load()
	b.ReportMetric(float64(stored)/float64(b.N), "stored/op")
	if c.Replayed.Load()+c.Undecryptable.Load()+c.Malformed.Load()+c.BadCommands.Load()+c.MailboxError.Load()+c.RateLimited.Load() != 0 {
		b.Fatalf("the provider dropped frames: %d replayed, %d undecryptable, %d malformed, %d bad commands, %d mailbox errors, %d rate limited",
			c.Replayed.Load(), c.Undecryptable.Load(), c.Malformed.Load(), c.BadCommands.Load(), c.MailboxError.Load(), c.RateLimited.Load())
	}
}
