package sdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// ratioRound is how many frames one round carries through one side of
// BenchmarkBoundaryVsBare before the other side's turn.
const ratioRound = 16 * 1024

// echoRig carries frames through an echo and back: round sends n frames of
// the rig's size and returns once all n came back.
type echoRig struct {
	send func(ctx context.Context, i int, last bool) error // queue frame i; last ends the round
	back chan int                                          // frames received, per batch
	errs chan error
}

// round sends n frames from a goroutine (so a full pipe cannot deadlock the
// sender against the counter) and waits for all n to come back.
func (r *echoRig) round(ctx context.Context, b *testing.B, n int) time.Duration {
	began := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			if err := r.send(ctx, i, i == n-1); err != nil {
				r.errs <- err
				return
			}
		}
		r.errs <- nil
	}()
	got := 0
	sent := false
	for got < n || !sent {
		select {
		case k := <-r.back:
			got += k
		case err := <-r.errs:
			if err != nil {
				b.Fatal(err)
			}
			sent = true
		case <-time.After(2 * time.Minute):
			b.Fatalf("round stalled: %d of %d frames back", got, n)
		}
	}
	return time.Since(began)
}

// BenchmarkBoundaryVsBare measures the out-of-process boundary against the
// bare gRPC stream (plaintext, no SDK, no go-plugin; see BenchmarkBareGRPC)
// in alternating rounds of ratioRound frames on one pair of connections,
// so a change of machine load during the run hits both sides alike. The
// "ratio" metric is the boundary's throughput divided by the bare
// stream's: the figure the framework is held to.
func BenchmarkBoundaryVsBare(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("%dB/batched", size), func(b *testing.B) {
			ctx := context.Background()
			bare := bareRig(b, size, 256)
			boundary := boundaryRig(b, size, 256)
			b.SetBytes(int64(size))
			b.ResetTimer()
			var tBare, tBoundary time.Duration
			for done := 0; done < b.N; {
				n := min(ratioRound, b.N-done)
				tBare += bare.round(ctx, b, n)
				tBoundary += boundary.round(ctx, b, n)
				done += n
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/tBoundary.Seconds(), "frames/s")
			b.ReportMetric(float64(b.N)/tBare.Seconds(), "bare-frames/s")
			b.ReportMetric(tBare.Seconds()/tBoundary.Seconds(), "ratio")
		})
	}
}

// bareRig is the bare plaintext stream as an echoRig, batching as the
// boundary does: up to batch frames per message, sent when full or at the
// round's last frame (the boundary's queue sends what it holds as soon as
// its sender is free, so it never waits for a full batch either).
func bareRig(b *testing.B, size, batch int) *echoRig {
	cc := dialBare(b, false)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	stream, err := commonv1.NewLayerClient(cc).Frames(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r := &echoRig{back: make(chan int, 1024), errs: make(chan error, 1)}
	go func() {
		for {
			got, err := stream.Recv()
			if err != nil {
				return
			}
			r.back <- len(got.GetFrames())
		}
	}()
	payload := make([]byte, size)
	pending := &commonv1.Batch{}
	r.send = func(_ context.Context, i int, last bool) error {
		pending.Frames = append(pending.Frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(i), Payload: payload})
		if len(pending.Frames) < batch && !last {
			return nil
		}
		out := pending
		pending = &commonv1.Batch{}
		return stream.Send(out)
	}
	return r
}

// boundaryRig is the echo layer as a plugin process, as BenchmarkBoundary
// launches it, as an echoRig.
func boundaryRig(b *testing.B, size, batch int) *echoRig {
	ctx := context.Background()
	conn, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, AllowUnverified: true, Logger: hclog.NewNullLogger(), Batch: sdk.BatchOptions{MaxFrames: batch}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: "{}", DataDir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	r := &echoRig{back: make(chan int, 1024), errs: make(chan error, 1)}
	link, err := conn.Open(ctx, func(batch *commonv1.Batch) { r.back <- len(batch.GetFrames()) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = link.Close() })
	if _, err := conn.Start(ctx, &commonv1.StartRequest{}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, size)
	r.send = func(ctx context.Context, i int, _ bool) error {
		return link.Emit(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(i), Payload: payload})
	}
	return r
}
