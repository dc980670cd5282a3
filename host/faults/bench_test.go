package faults

import (
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// BenchmarkApply measures Apply with batches of 16 frames; ns/frame is the
// cost per frame. deliver only counts.
func BenchmarkApply(b *testing.B) {
	specs := []struct {
		name string
		spec Spec
	}{
		{"none", Spec{}},
		{"drop+dup", Spec{Drop: 0.3, Duplicate: 0.1}},
		{"reorder", Spec{Reorder: 8}},
		{"drop+dup+reorder", Spec{Drop: 0.3, Duplicate: 0.1, Reorder: 8}},
		{"delay", Spec{Delay: time.Millisecond}},
		{"delay+jitter", Spec{Delay: time.Millisecond, Jitter: 500 * time.Microsecond}},
	}
	const batch = 16
	for _, s := range specs {
		b.Run(s.name, func(b *testing.B) {
			var n atomic.Int64
			in := New(s.spec, 1, "bench", func(fs []*commonv1.Frame) { n.Add(int64(len(fs))) })
			defer in.Close()
			fs := makeFrames(batch, 1)
			b.ReportAllocs()
			for b.Loop() {
				in.Apply(fs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
		})
	}
}
