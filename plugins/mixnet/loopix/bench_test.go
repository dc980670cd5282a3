package loopix_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// benchPool is a set of real packets for mix-0-0, captured on the way
// from the providers in a simulated network with the deployed geometry.
type benchPool struct {
	s       *sim
	at      time.Time
	from    []loopix.PeerID
	packets [][]byte
}

var (
	poolOnce sync.Once
	pool     *benchPool
)

// mixPool builds the pool once: a client at λP 15/s (no loops, drop
// cover only, which crosses every layer like a message) for long enough
// that mix-0-0 receives 1000 packets.
func mixPool(b *testing.B) *benchPool {
	poolOnce.Do(func() {
		s := newSim(b, simOptions{seed: 31, user: 2000, rates: loopix.Rates{LambdaP: 15, Mu: 50}})
		p := &benchPool{s: s}
		s.tap = func(from, to loopix.PeerID, frame []byte) {
			if to == "mix-0-0" && len(p.packets) < 1000 && frame[0] == 1 {
				p.from = append(p.from, from)
				p.packets = append(p.packets, append([]byte(nil), frame...))
			}
		}
		s.addClient("alice", "provider-0")
		s.addClient("bob", "provider-1")
		s.runUntil(s.now.Add(10*time.Minute), func() bool { return len(p.packets) >= 1000 })
		s.tap = nil
		p.at = s.now
		pool = p
	})
	if pool == nil || len(pool.packets) < 1000 {
		b.Fatal("no packet pool")
	}
	return pool
}

// BenchmarkMixPackets is one mix (the state machine the plugin drives
// from one goroutine, so one core) taking packets from the providers:
// HandleBatch (Sphinx unwrap with its epoch key, replay check, the routing
// policy, the delay queue) and, every 256 packets, a Tick that sends
// everything due. Three replay stores: in memory (the floor), package
// replay with durability normal (a write per commit), and with durability
// full (an fsync per commit, the plugin's default); and batches of 1
// packet (a commit per packet) and of 32 (what arrives together at a busy
// mix: one commit for 32 tags). packets/s is the throughput; unwrap-share
// is the time of a bare Sphinx Unwrap, timed in the same run right after
// the loop, over the time per packet.
func BenchmarkMixPackets(b *testing.B) {
	p := mixPool(b)
	stores := []struct {
		name string
		open func(b *testing.B) loopix.ReplayFilter
	}{
		{"replay=memory", func(*testing.B) loopix.ReplayFilter { return &memReplay{} }},
		{"replay=write", func(b *testing.B) loopix.ReplayFilter { return openReplay(b, replay.SyncWrite) }},
		{"replay=fsync", func(b *testing.B) loopix.ReplayFilter { return openReplay(b, replay.SyncFull) }},
	}
	for _, st := range stores {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/batch=%d", st.name, batch), func(b *testing.B) {
				benchMix(b, p, st.open, batch)
			})
		}
	}
}

func benchMix(b *testing.B, p *benchPool, open func(b *testing.B) loopix.ReplayFilter, batch int) {
	s := p.s
	m := s.member("mix-0-0")
	ctx := context.Background()
	newMix := func() *loopix.Mix {
		keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
		if err != nil {
			b.Fatal(err)
		}
		rc := loopix.RelayConfig{Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: open(b), MaxQueue: 100000, MaxDelay: time.Minute}
		rc.Rates.LambdaM = 0
		mx, err := loopix.NewMix(ctx, rc, s.dir, p.at)
		if err != nil {
			b.Fatal(err)
		}
		return mx
	}
	mx := newMix()
	// The mix owns the frames it is given: one buffer per batch place.
	work := make([][]byte, batch)
	for i := range work {
		work[i] = make([]byte, len(p.packets[0]))
	}
	in := make([]loopix.Inbound, 0, batch)
	handed := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(p.packets[0])))
	start := time.Now()
	var paused time.Duration
	for i := 0; b.Loop(); i++ {
		j := i % len(p.packets)
		if j == 0 && i > 0 {
			// A fresh mix: the pool's packets are new to it.
			t := time.Now()
			b.StopTimer()
			mx.HandleBatch(ctx, p.at, in)
			handed += len(in)
			in = in[:0]
			mx.Tick(ctx, p.at.Add(time.Hour))
			mx.Ready()
			mx = newMix()
			b.StartTimer()
			paused += time.Since(t)
		}
		w := work[len(in)]
		copy(w, p.packets[j])
		in = append(in, loopix.Inbound{From: p.from[j], Frame: w})
		if len(in) == batch || j == len(p.packets)-1 {
			mx.HandleBatch(ctx, p.at, in)
			handed += len(in)
			in = in[:0]
		}
		if j%256 == 255 {
			mx.Tick(ctx, p.at.Add(time.Minute))
			mx.Ready()
		}
	}
	mx.HandleBatch(ctx, p.at, in)
	handed += len(in)
	per := (time.Since(start) - paused) / time.Duration(b.N)
	b.ReportMetric(float64(time.Second)/float64(per), "packets/s")
	if handed != b.N {
		b.Fatalf("%d packets handed to the mix of %d", handed, b.N)
	}
	if c := mx.Counters(); c.Replayed.Load()+c.Undecryptable.Load()+c.Malformed.Load()+c.BadCommands.Load() != 0 {
		b.Fatalf("the mix dropped packets: %d replayed, %d undecryptable", c.Replayed.Load(), c.Undecryptable.Load())
	}
	kp, _ := m.Keys.Key(s.epochs.At(p.at))
	priv, _ := sphinx.NewPrivateKey(kp.Private[:])
	const n = 200
	w := work[0]
	t := time.Now()
	for i := range n {
		copy(w, p.packets[i][1:])
		if _, err := s.geo.Unwrap(priv, w[:len(w)-1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(t)/n)/float64(per), "unwrap-share")
}

func openReplay(b *testing.B, d replay.Durability) loopix.ReplayFilter {
	st, err := replay.Open(context.Background(), b.TempDir(), simEpoch, replay.Options{ExpectedTags: 200000, Durability: d})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
