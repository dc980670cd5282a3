package sdk_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// bareServerEnv makes the test binary serve the bare reference instead of
// running tests; bareTLSEnv, when set, holds the PEM certificate and key
// it serves TLS with.
const (
	bareServerEnv = "STRATA_BARE_GRPC_SOCKET"
	bareTLSEnv    = "STRATA_BARE_GRPC_TLS"
)

// bareCert makes a self-signed ECDSA P-256 certificate for the bare
// reference's TLS, as PEM (certificate, then key).
func bareCert() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...), nil
}

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
	var opts []grpc.ServerOption
	if pemData := os.Getenv(bareTLSEnv); pemData != "" {
		cert, err := tls.X509KeyPair([]byte(pemData), []byte(pemData))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})))
	}
	s := grpc.NewServer(opts...)
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
// of the same frames in the same batches (one frame per stream message, or
// up to 256), over a bare gRPC stream to another process on a Unix socket,
// in plaintext and with TLS 1.3 (what go-plugin's AutoMTLS gives the
// boundary). BenchmarkBoundary/process/<size>/<batching> divided by the
// plaintext case of the same name is the framework's whole tax (the SDK's
// queues, go-plugin and its TLS); divided by the TLS case, the tax of the
// SDK and go-plugin alone.
func BenchmarkBareGRPC(b *testing.B) {
	for _, c := range []struct {
		size, frames int
		tls          bool
	}{{64, 256, false}, {64, 1, false}, {1024, 256, false}, {1024, 1, false}, {1024, 256, true}, {1024, 1, true}} {
		name := "batched"
		if c.frames == 1 {
			name = "unbatched"
		}
		if c.tls {
			name += "/tls"
		}
		size := c.size
		b.Run(fmt.Sprintf("%dB/%s", size, name), func(b *testing.B) {
			cc := dialBare(b, c.tls)
			stream, err := commonv1.NewLayerClient(cc).Frames(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan int)
			go func() {
				n := 0
				for n < b.N {
					got, err := stream.Recv()
					if err != nil {
						break
					}
					n += len(got.GetFrames())
				}
				done <- n
			}()
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			began := time.Now()
			for i := 0; i < b.N; i += c.frames {
				batch := &commonv1.Batch{Frames: make([]*commonv1.Frame, 0, c.frames)}
				for j := i; j < min(i+c.frames, b.N); j++ {
					batch.Frames = append(batch.Frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, TraceId: uint64(j), Payload: payload})
				}
				if err := stream.Send(batch); err != nil {
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

// dialBare starts the bare reference server in a child process (the test
// binary itself, see bareServerEnv) and dials it, in plaintext or with
// TLS 1.3. The child and the connection end with the benchmark.
func dialBare(b *testing.B, withTLS bool) *grpc.ClientConn {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "bare.sock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), bareServerEnv+"="+sock)
	creds := insecure.NewCredentials()
	if withTLS {
		pemData, err := bareCert()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Env = append(cmd.Env, bareTLSEnv+"="+string(pemData))
		block, _ := pem.Decode(pemData)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		creds = credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	return cc
}
