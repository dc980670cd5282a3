package sdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/echolayer"
)

// BenchmarkBoundary measures the plugin boundary: frames sent down into the
// echo layer and received back up, so every frame crosses the boundary
// twice. It compares in-process with out-of-process (gRPC over a Unix
// socket with AutoMTLS, the production setting) and batched (up to 256
// frames per stream message) with unbatched (one frame per message).
func BenchmarkBoundary(b *testing.B) {
	for _, mode := range []string{"inproc", "process"} {
		for _, size := range []int{64, 1024} {
			for _, batch := range []struct {
				name   string
				frames int
			}{{"batched", 256}, {"unbatched", 1}} {
				b.Run(fmt.Sprintf("%s/%dB/%s", mode, size, batch.name), func(b *testing.B) {
					benchEcho(b, mode, size, sdk.BatchOptions{MaxFrames: batch.frames})
				})
			}
		}
	}
}

func benchEcho(b *testing.B, mode string, size int, batch sdk.BatchOptions) {
	ctx := context.Background()
	var (
		conn sdk.Conn
		err  error
	)
	if mode == "inproc" {
		conn, err = sdk.InProcess(echolayer.New(), sdk.InProcessConfig{Batch: batch})
	} else {
		conn, err = sdk.Launch(ctx, sdk.LaunchConfig{Path: echoBinary, Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY, AllowUnverified: true, Logger: hclog.NewNullLogger(), Batch: batch})
	}
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: "{}", DataDir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	want := b.N
	got := 0
	link, err := conn.Open(ctx, func(batch *commonv1.Batch) {
		got += len(batch.GetFrames())
		if got == want {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Start(ctx, &commonv1.StartRequest{}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	for i := 0; i < b.N; i++ {
		f := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(i), Payload: payload}
		if err := link.Emit(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d frames came back", got, want)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "frames/s")
	link.Close()
}
