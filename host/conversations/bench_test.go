package conversations

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// BenchmarkAppend measures the history's cost per message under the
// throughput scenario's shape: batches of 1 KiB messages with random
// 32-byte ids in ten 1:1 conversations, into a history that already holds
// prefill messages (the indexes' random keys cost more as they grow).
// ns/op is per message, wall time, most of it waiting for fsync;
// cpu-ns/msg is the CPU time (user and system, all threads) of the timed
// part per message, what the history costs a CPU-bound host.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		prefill, batch int
	}{
		{0, 64},
		{100_000, 64},
		{100_000, 512},
	} {
		b.Run(fmt.Sprintf("prefill=%d/batch=%d", tc.prefill, tc.batch), func(b *testing.B) {
			s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var convs [][]byte
			for i := range 10 {
				id := sha256.Sum256([]byte{byte(i)})
				pub, _, _ := ed25519.GenerateKey(rand.Reader)
				if err := s.Put(b.Context(), Conversation{ID: id[:], Members: []ed25519.PublicKey{pub}}); err != nil {
					b.Fatal(err)
				}
				convs = append(convs, id[:])
			}
			author := make([]byte, 32)
			payload := make([]byte, 1024)
			n := 0
			batch := func(size int) []*Message {
				msgs := make([]*Message, size)
				for i := range msgs {
					var id [32]byte
					binary.BigEndian.PutUint64(id[:], uint64(n))
					id = sha256.Sum256(id[:])
					env := sha256.Sum256(id[:])
					msgs[i] = &Message{Conversation: convs[n%len(convs)], MessageID: id[:], EnvelopeID: env[:],
						Author: author, Payload: payload, Time: time.Now(), Outgoing: n%2 == 0}
					n++
				}
				return msgs
			}
			for n < tc.prefill {
				if _, err := s.Append(b.Context(), batch(1000)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, cpuOK := sdktest.ProcessCPU()
			for done := 0; done < b.N; done += tc.batch {
				if _, err := s.Append(b.Context(), batch(min(tc.batch, b.N-done))); err != nil {
					b.Fatal(err)
				}
			}
			if cpu1, ok := sdktest.ProcessCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/msg")
			}
		})
	}
}
