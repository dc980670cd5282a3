package doubleratchet

import (
	"fmt"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// BenchmarkLayerSealOpen measures a message through the whole layer:
// sealed at a and opened at b by HandleBatch, each batch committed to
// SQLite (WAL, synchronous=FULL) and the write-ahead log checkpointed and
// truncated (the superseded states erased) before its frames are emitted.
// With one message per batch every message pays a commit; with 64 the
// commit is shared, as it is under load. The figure is per message; next
// to ratchet.BenchmarkSealOpen it shows what durability, erasure and the
// envelope cost. The passphrase case seals every state under an at-rest
// key, as the layer does when the user configured a passphrase.
func BenchmarkLayerSealOpen(bm *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, batch := range []int{1, 64} {
			bm.Run(fmt.Sprintf("%dB/batch=%d", size, batch), func(bm *testing.B) {
				benchSealOpen(bm, size, batch, nil)
			})
		}
	}
	bm.Run("64B/batch=64/passphrase", func(bm *testing.B) {
		benchSealOpen(bm, 64, 64, testKey(1))
	})
}

func benchSealOpen(bm *testing.B, size, batch int, key []byte) {
	a, b := pairKeys(bm, nil, key, key)
	// Past the initial message, in one sending chain.
	mustOpen(bm, a, b, send(bm, a, b, conv, []byte("warm-up message")), []byte("warm-up message"))
	mustOpen(bm, b, a, send(bm, b, a, conv, []byte("warm-up reply")), []byte("warm-up reply"))
	payload := make([]byte, size)
	frames := make([]*commonv1.Frame, batch)
	bm.SetBytes(int64(size))
	bm.ReportAllocs()
	bm.ResetTimer()
	for done := 0; done < bm.N; done += batch {
		for i := range frames {
			frames[i] = down(b.id, conv, payload)
		}
		sealed := a.handle(frames...)
		in := make([]*commonv1.Frame, len(sealed))
		for i, f := range sealed {
			in[i] = arrive(a, f)
		}
		if got := b.handle(in...); len(got) != batch {
			bm.Fatalf("opened %d of %d", len(got), batch)
		}
	}
}
