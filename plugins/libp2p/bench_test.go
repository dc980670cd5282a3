package libp2pplugin

import (
	"context"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// BenchmarkUnicast1KiB measures unicast throughput of 1 KiB frames between
// two layers in one process over loopback TCP, with unlimited resources.
// The sender keeps at most window frames in flight, below its queue
// length, so that no frame is dropped and every one is counted.
func BenchmarkUnicast1KiB(b *testing.B) {
	const (
		config = `{"listen":["/ip4/127.0.0.1/tcp/0"],"resource_limits":"infinite","gossipsub":false,"queue":16384}`
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
