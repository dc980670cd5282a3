package sdk_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// bareServerEnv makes the test binary serve the bare reference instead of
// running tests.
const bareServerEnv = "STRATA_BARE_GRPC_SOCKET"

// bareEcho is the reference: a plain gRPC bidirectional stream that echoes
// each message, with no SDK, no batching, no go-plugin and no TLS.
type bareEcho struct{ commonv1.LayerServer }

func (bareEcho) Frames(stream grpc.BidiStreamingServer[commonv1.Batch, commonv1.Batch]) error {
	for {
		b, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := stream.Send(b); err != nil {
			return err
		}
	}
}

func serveBare(sock string) {
	lis, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	commonv1.RegisterLayerServer(s, bareEcho{})
	go func() {
		// Exit with the benchmark process.
		for os.Getppid() != 1 {
			time.Sleep(200 * time.Millisecond)
		}
		os.Exit(0)
	}()
	_ = s.Serve(lis)
}

// BenchmarkBareGRPC is the reference for BenchmarkBoundary: the same echo
// of one frame per stream message, over a bare gRPC stream to another
// process on a Unix socket. BenchmarkBoundary/process/.../unbatched divided
// by this is the framework's tax; .../batched divided by this is what
// batching buys back.
func BenchmarkBareGRPC(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			sock := filepath.Join(b.TempDir(), "bare.sock")
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), bareServerEnv+"="+sock)
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			for i := 0; i < 200; i++ {
				if _, err := os.Stat(sock); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			stream, err := commonv1.NewLayerClient(cc).Frames(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan int)
			go func() {
				n := 0
				for n < b.N {
					if _, err := stream.Recv(); err != nil {
						break
					}
					n++
				}
				done <- n
			}()
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			began := time.Now()
			for i := 0; i < b.N; i++ {
				f := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(i), Payload: payload}
				if err := stream.Send(&commonv1.Batch{Frames: []*commonv1.Frame{f}}); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-done; n != b.N {
				b.Fatalf("%d of %d came back", n, b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "frames/s")
			_ = stream.CloseSend()
		})
	}
}
