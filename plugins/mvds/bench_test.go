package mvds

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// wire is an sdk.Emitter that hands a layer's DOWN frames to its peer
// layer as UP frames, through a queue and a goroutine (as the host does),
// and counts the UP frames the layer delivers, which the goroutine
// acknowledges (as the host does, one Ack per lot).
type wire struct {
	self      []byte
	peer      *wire
	layer     *managed
	mu        sync.Mutex
	queue     []*commonv1.Frame
	acks      [][]byte
	wake      chan struct{}
	delivered atomic.Int64
	bytes     atomic.Int64
}

func (w *wire) Emit(_ context.Context, frames ...*commonv1.Frame) error {
	var ups []*commonv1.Frame
	for _, f := range frames {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_UP:
			w.delivered.Add(1)
			w.mu.Lock()
			w.acks = append(w.acks, f.GetMessageId())
			w.mu.Unlock()
			w.signal()
		case commonv1.Direction_DIRECTION_DOWN:
			w.bytes.Add(int64(len(f.GetPayload())))
			ups = append(ups, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Conversation: f.GetConversation(), Peer: w.self, Payload: f.GetPayload()})
		}
	}
	if len(ups) > 0 {
		w.peer.push(ups)
	}
	return nil
}

func (w *wire) EmitEvent(context.Context, *commonv1.Event) error { return nil }

func (w *wire) push(frames []*commonv1.Frame) {
	w.mu.Lock()
	w.queue = append(w.queue, frames...)
	w.mu.Unlock()
	w.signal()
}

func (w *wire) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pump hands queued frames to the layer, and acknowledges its deliveries,
// until ctx ends.
func (w *wire) pump(ctx context.Context, done *sync.WaitGroup) {
	defer done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		frames, acks := w.queue, w.acks
		w.queue, w.acks = nil, nil
		w.mu.Unlock()
		if len(frames) > 0 {
			w.layer.HandleBatch(ctx, &commonv1.Batch{Frames: frames})
		}
		for len(acks) > 0 {
			n := min(len(acks), MaxAckIDs)
			if _, err := w.layer.Ack(ctx, &syncv1.AckRequest{Group: testGroupID, MessageIds: acks[:n]}); err != nil && ctx.Err() == nil {
				panic(err)
			}
			acks = acks[n:]
		}
	}
}

// BenchmarkSync measures messages per second through the sync layer
// alone: two layers in process, wired directly in memory (no loss), one
// sending b.N messages, each committed before its call returns; the clock
// stops when the other has delivered them all (its acknowledgements of
// them, one Ack per lot of UP frames, run alongside). The epoch is 1 ms,
// the backoff starts at 100 epochs so that no round trip looks lost. The
// sender calls Send from one goroutine (seq), Send from several at once
// (conc=N: group commit), or SendBatch with batches of N messages
// (batch=N); eager is on (the default) unless the case says eager=off.
func BenchmarkSync(b *testing.B) {
	for _, tc := range []struct {
		mode, durability string
		senders, batch   int
		eagerOff         bool
	}{
		{mode: ModeBatch, durability: DurabilityFull, senders: 1},
		{mode: ModeBatch, durability: DurabilityFull, senders: 1, eagerOff: true},
		{mode: ModeBatch, durability: DurabilityNormal, senders: 1},
		{mode: ModeInteractive, durability: DurabilityFull, senders: 1},
		{mode: ModeBatch, durability: DurabilityFull, senders: 8},
		{mode: ModeBatch, durability: DurabilityFull, senders: 64},
		{mode: ModeBatch, durability: DurabilityFull, senders: 1, batch: 64},
		{mode: ModeBatch, durability: DurabilityFull, senders: 1, batch: 256},
	} {
		name := tc.mode + "/" + tc.durability
		switch {
		case tc.batch > 0:
			name += fmt.Sprintf("/batch=%d", tc.batch)
		case tc.senders > 1:
			name += fmt.Sprintf("/conc=%d", tc.senders)
		default:
			name += "/seq"
		}
		if tc.eagerOff {
			name += "/eager=off"
		}
		b.Run(name, func(b *testing.B) {
			cfg := fmt.Sprintf(`{"epoch": "1ms", "backoff_base": 100, "backoff_max": 1000, "mode": %q, "durability": %q, "eager": %t}`, tc.mode, tc.durability, !tc.eagerOff)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ids := [][]byte{identity("a"), identity("b")}
			wires := []*wire{{self: ids[0], wake: make(chan struct{}, 1)}, {self: ids[1], wake: make(chan struct{}, 1)}}
			wires[0].peer, wires[1].peer = wires[1], wires[0]
			var pumps sync.WaitGroup
			for i, w := range wires {
				l := manage(New())
				w.layer = l
				if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg, DataDir: b.TempDir(), NodeIdentity: ids[i]}, sdk.Env{Logger: hclog.NewNullLogger(), Out: w}); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
					b.Fatal(err)
				}
				if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: ids}); err != nil {
					b.Fatal(err)
				}
				pumps.Add(1)
				go w.pump(ctx, &pumps)
			}
			defer func() {
				cancel()
				pumps.Wait()
				for _, w := range wires {
					w.layer.Stop(context.Background())
				}
			}()
			payload := bytes.Repeat([]byte("m"), 100)
			sender := wires[0].layer
			b.ResetTimer()
			start := time.Now()
			switch {
			case tc.batch > 0:
				for done := 0; done < b.N; {
					k := min(tc.batch, b.N-done)
					req := &syncv1.SendBatchRequest{Messages: make([]*syncv1.SendRequest, k)}
					for i := range req.Messages {
						req.Messages[i] = &syncv1.SendRequest{Group: testGroupID, Payload: payload}
					}
					if _, err := sender.SendBatch(ctx, req); err != nil {
						b.Fatal(err)
					}
					done += k
				}
			default:
				var next atomic.Int64
				var senders sync.WaitGroup
				errs := make(chan error, tc.senders)
				for range tc.senders {
					senders.Add(1)
					go func() {
						defer senders.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := sender.Send(ctx, &syncv1.SendRequest{Group: testGroupID, Payload: payload}); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				senders.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			for wires[1].delivered.Load() < int64(b.N) {
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("delivered %d of %d", wires[1].delivered.Load(), b.N)
				}
				time.Sleep(100 * time.Microsecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(wires[0].bytes.Load()+wires[1].bytes.Load())/float64(b.N), "wire-bytes/msg")
			counts := sender.c.set.Snapshot()
			b.ReportMetric(float64(counts["retransmissions"])/float64(b.N), "retx/msg")
			b.ReportMetric(float64(counts["payloads_sent"]+wires[1].layer.c.set.Snapshot()["payloads_sent"])/float64(b.N), "payloads/msg")
			b.ReportMetric(float64(b.N)/float64(max(counts["send_commits"], 1)), "msgs/commit")
		})
	}
}

// BenchmarkWireBytes measures the bytes on the wire (payloads of both
// directions) per delivered message between two nodes, over an in-memory
// network that loses each payload with a seeded probability: a sends 200
// messages of 100 bytes, ten an epoch, and the network runs until b has
// them all and a holds no unacknowledged record. The default backoff (2
// to 1024 epochs) applies, in each wire mode. With eager on (the default)
// each Send is flushed at once, as the layer does on an idle link, and so
// is what the input makes new (requests, answers); the cases named
// eager=off send at epochs only, for the spec wire.
func BenchmarkWireBytes(b *testing.B) {
	for _, wireMode := range []string{WireSpec, WireBound} {
		for _, mode := range []string{ModeBatch, ModeInteractive} {
			for _, loss := range []float64{0, 0.1, 0.3} {
				benchWireBytes(b, wireMode, mode, loss, true)
			}
		}
	}
	for _, mode := range []string{ModeBatch, ModeInteractive} {
		for _, loss := range []float64{0, 0.1, 0.3} {
			benchWireBytes(b, WireSpec, mode, loss, false)
		}
	}
}

// benchWireBytes runs one case of BenchmarkWireBytes.
func benchWireBytes(b *testing.B, wireMode, mode string, loss float64, eager bool) {
	name := fmt.Sprintf("%s/%s/loss=%.0f%%", wireMode, mode, loss*100)
	if !eager {
		name += "/eager=off"
	}
	b.Run(name, func(b *testing.B) {
		var bytesTotal, delivered, epochs, payloads int
		for i := range b.N {
			cfg, err := sdk.LoadConfig[Config](fmt.Sprintf(`{"wire": %q, "mode": %q, "durability": "normal", "eager": %t}`, wireMode, mode, eager))
			if err != nil {
				b.Fatal(err)
			}
			nt := newTNet(b, cfg, "a", "b")
			nt.drop = lossy(uint64(i)+1, loss)
			a, r := nt.node("a"), nt.node("b")
			payload := string(bytes.Repeat([]byte("m"), 100))
			done := func() bool { return len(r.order) == 200 && a.state().unacknowledged == 0 }
			for range 20 {
				for range 10 {
					a.send(payload)
					if eager {
						nt.flush()
					}
				}
				nt.step()
				if eager {
					nt.flush()
				}
			}
			epochs += 20 + nt.run(100000, func() bool {
				if eager {
					nt.flush()
				}
				return done()
			})
			bytesTotal += nt.bytes
			delivered += len(r.order)
			payloads += int(a.counter("payloads_sent") + r.counter("payloads_sent"))
		}
		b.ReportMetric(float64(bytesTotal)/float64(delivered), "bytes/msg")
		b.ReportMetric(float64(payloads)/float64(delivered), "payloads/msg")
		b.ReportMetric(float64(epochs)/float64(b.N), "epochs/run")
		b.ReportMetric(0, "ns/op")
	})
}
