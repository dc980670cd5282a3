package libp2pplugin

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// BenchmarkUnicast1KiB measures unicast throughput of 1 KiB frames between
// two layers in one process over loopback TCP, with unlimited resources
// and no per-peer rate limit (what the transport and the layer can do).
// The sender keeps at most window frames in flight, below its queue
// length, so that no frame is dropped and every one is counted.
func BenchmarkUnicast1KiB(b *testing.B) {
	const (
		config = `{"listen":["/ip4/127.0.0.1/tcp/0"],"resource_limits":"infinite","gossipsub":false,"queue":16384,"peer_in_rate":0}`
		size   = 1024
		batch  = 256
		window = 4096
	)
	from := startNodeT(b, "", config, chat)
	to := startNodeT(b, "", config, chat)
	connect(b, from, to, false)

	// received counts the frames taken from the receiver's Recorder, which
	// wait takes as it polls, so that it keeps at most a window of them.
	var received int64
	frames := make([]*commonv1.Frame, batch)
	payload := make([]byte, size)
	for i := range frames {
		frames[i] = down(to.id(), "chat", payload)
	}
	ctx := context.Background()
	wait := func(n int64) {
		deadline := time.Now().Add(waitFor)
		for received += int64(len(to.rec.Take())); received < n; received += int64(len(to.rec.Take())) {
			if time.Now().After(deadline) {
				b.Fatalf("received %d of %d frames (dropped: slow peer %d, stream %d)", received, n, from.counter("dropped_slow_peer"), from.counter("dropped_stream_error"))
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	// Open the stream before timing.
	from.l.HandleBatch(ctx, &commonv1.Batch{Frames: frames[:1]})
	wait(1)
	received = 0

	b.SetBytes(size)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(batch, b.N-sent)
		wait(int64(sent + k - window))
		from.l.HandleBatch(ctx, &commonv1.Batch{Frames: frames[:k]})
		sent += k
	}
	wait(int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkQuietPeerShare measures what a quiet peer gets while another
// floods the same node. Three layers run in one process over loopback TCP;
// the receiver runs as the host runs a layer in process (sdk.InProcess:
// its output queue and delivering goroutine), behind a host that spends
// 50 µs per frame, so it takes at most 20,000 frames/s. One peer floods
// the receiver with 1 KiB frames on eight protocols (eight streams); the
// quiet peer offers 1 KiB frames at 8,000 frames/s, two fifths of what the
// host takes, on one. One op is one quiet frame offered.
//
// quiet_share is the quiet peer's delivered rate over its offered rate: 1
// when it gets all it asks for (less than its fair half), less when the
// flood holds it back (its sender is then slowed, or its frames wait).
// quiet_p99_ms is the 99th percentile of a quiet frame's time from its
// sender's HandleBatch to the host; most of it is the wait in the
// receiver's output queue (4,096 frames, first in first out), which every
// frame handed to the host shares. flood_frames/s is what the flooder gets
// meanwhile.
func BenchmarkQuietPeerShare(b *testing.B) {
	const (
		perFrame  = 50 * time.Microsecond
		quietRate = 8000 // frames/s
		tick      = time.Millisecond
		grace     = 2 * time.Second // for the quiet frames in flight at the end
	)
	ctx := context.Background()
	f := startNodeT(b, "", tcpOnly, floodProtocols...)
	q := startNodeT(b, "", tcpOnly, chat)
	quietID := q.id()
	var quiet, flooded atomic.Int64
	var delaysMu sync.Mutex
	var delays []time.Duration
	conn, err := sdk.InProcess(New(), sdk.InProcessConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: tcpOnly, DataDir: b.TempDir(), NodeName: "receiver"}); err != nil {
		b.Fatal(err)
	}
	link, err := conn.Open(ctx, func(batch *commonv1.Batch) {
		for _, fr := range batch.GetFrames() {
			if peer.ID(fr.GetPeer()) == quietID {
				quiet.Add(1)
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(fr.GetPayload())))
				delaysMu.Lock()
				delays = append(delays, time.Since(sent))
				delaysMu.Unlock()
			} else {
				flooded.Add(1)
			}
		}
		time.Sleep(time.Duration(len(batch.GetFrames())) * perFrame)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer link.Close()
	started, err := conn.Start(ctx, &commonv1.StartRequest{Protocols: append([]*commonv1.Protocol{chat}, floodProtocols...)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, waitFor)
		defer cancel()
		_ = conn.Stop(sctx)
	}()
	receiver := peer.ID(started.GetLocalAddress())
	for _, from := range []*testNode{f, q} {
		if _, err := from.l.Connect(ctx, &p2pv1.ConnectRequest{ContactSection: started.GetContactSection()}); err != nil {
			b.Fatal(err)
		}
	}
	flood(b, f, receiver, math.MaxInt32)
	// Let the flood fill the receiver's queues.
	deadline := time.Now().Add(waitFor)
	for flooded.Load() < 4096 {
		if time.Now().After(deadline) {
			b.Fatalf("the flood does not arrive: %d frames", flooded.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	quiet0, flood0 := quiet.Load(), flooded.Load()
	delaysMu.Lock()
	delays = delays[:0]
	delaysMu.Unlock()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		<-ticker.C
		// What is due by now, so that a late tick is caught up and only
		// a sender held back by the receiver falls behind.
		due := min(int(time.Since(start).Seconds()*quietRate)+1, b.N)
		batch := &commonv1.Batch{}
		now := uint64(time.Now().UnixNano())
		for range due - sent {
			payload := binary.BigEndian.AppendUint64(make([]byte, 0, 1024), now)
			batch.Frames = append(batch.Frames, down(receiver, "chat", payload[:1024]))
		}
		q.l.HandleBatch(ctx, batch)
		sent += len(batch.Frames)
	}
	elapsed := time.Since(start)
	floodRate := float64(flooded.Load()-flood0) / elapsed.Seconds()
	b.StopTimer()
	for end := time.Now().Add(grace); quiet.Load()-quiet0 < int64(b.N) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	offered := max(elapsed.Seconds()*quietRate, float64(b.N))
	b.ReportMetric(float64(quiet.Load()-quiet0)/offered, "quiet_share")
	b.ReportMetric(floodRate, "flood_frames/s")
	delaysMu.Lock()
	defer delaysMu.Unlock()
	if len(delays) > 0 {
		slices.Sort(delays)
		b.ReportMetric(float64(delays[len(delays)*99/100])/float64(time.Millisecond), "quiet_p99_ms")
	}
}
