package replay

import (
	"context"
	"encoding/binary"
	"testing"
)

// BenchmarkSeen measures Seen with new tags (the common case: every
// honest packet) at the default filter size: with SyncFull one caller at
// a time (each call waits for its own fsync) and many at once (group
// commit shares the fsyncs), with SyncWrite, and the in-memory filter
// alone for the floor.
func BenchmarkSeen(b *testing.B) {
	for _, bc := range []struct {
		name     string
		d        Durability
		parallel bool
	}{
		{"SyncFull/serial", SyncFull, false},
		{"SyncFull/parallel", SyncFull, true},
		{"SyncWrite/serial", SyncWrite, false},
		{"SyncWrite/parallel", SyncWrite, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), 1, Options{Durability: bc.d})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				b.StopTimer() // Close's snapshot is not part of Seen
				s.Close()
			}()
			ctx := context.Background()
			var ctr uint64
			next := func(worker uint64) [TagSize]byte {
				var t [TagSize]byte
				binary.LittleEndian.PutUint64(t[:], worker)
				ctr++
				binary.LittleEndian.PutUint64(t[8:], ctr)
				return t
			}
			b.ReportAllocs()
			b.ResetTimer()
			if !bc.parallel {
				for range b.N {
					if _, err := s.Seen(ctx, 1, next(0)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(16) // relays run many packet workers
			var worker uint64
			b.RunParallel(func(pb *testing.PB) {
				s.mu.Lock()
				worker++
				w := worker
				s.mu.Unlock()
				var t [TagSize]byte
				binary.LittleEndian.PutUint64(t[:], w)
				for i := uint64(0); pb.Next(); i++ {
					binary.LittleEndian.PutUint64(t[8:], i)
					if _, err := s.Seen(ctx, 1, t); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("filter only", func(b *testing.B) {
		m, k, _ := Sizing(DefaultExpectedTags, DefaultFalsePositiveRate)
		f := newFilter(DefaultExpectedTags, m, k, [32]byte{1})
		var t [TagSize]byte
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			binary.LittleEndian.PutUint64(t[:], uint64(i))
			f.insert(&t)
		}
	})
}
