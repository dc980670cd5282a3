package devp2p

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// BenchmarkQuietPeerShare measures what a quiet peer gets while another
// floods the same node. Three layers run in one process over loopback TCP;
// the receiver runs as the host runs a layer in process (sdk.InProcess:
// its output queue and delivering goroutine), behind a host that spends
// 50 µs per frame, so it takes at most 20,000 frames/s. One peer floods
// the receiver with 1 KiB frames on eight protocols; the quiet peer offers
// 1 KiB frames at 8,000 frames/s, two fifths of what the host takes, on
// one. One op is one quiet frame offered.
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
	var quietID atomic.Pointer[enode.ID]
	var quiet, flooded atomic.Int64
	var delaysMu sync.Mutex
	var delays []time.Duration
	conn, err := sdk.InProcess(New(), sdk.InProcessConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: loopback, DataDir: b.TempDir(), NodeName: "receiver"}); err != nil {
		b.Fatal(err)
	}
	link, err := conn.Open(ctx, func(batch *commonv1.Batch) {
		q := quietID.Load()
		for _, fr := range batch.GetFrames() {
			if q != nil && enode.ID(fr.GetPeer()) == *q {
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
	receiver := enode.ID(started.GetLocalAddress())
	f := startNodeT(b, "", staticConfig(b, nil, started.GetDisplayAddress()), floodProtocols...)
	q := startNodeT(b, "", staticConfig(b, nil, started.GetDisplayAddress()), chat)
	id := q.id()
	quietID.Store(&id)
	f.expectPeer(b, commonv1.PeerState_PEER_STATE_CONNECTED, receiver)
	q.expectPeer(b, commonv1.PeerState_PEER_STATE_CONNECTED, receiver)
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
