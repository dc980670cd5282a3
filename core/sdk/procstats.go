package sdk

import "runtime/metrics"

// Counters that every plugin process adds to its layer's own in Health:
// the Go runtime's heap allocations since the process started, in objects
// and in bytes. `strata compare` divides them by the messages delivered to
// report allocations per message per process. A layer that runs in the
// host's process (inproc) has none of its own: its allocations are the
// host's, which the host reports in its Stats.
const (
	HeapAllocsCounter     = "process_heap_allocs"
	HeapAllocBytesCounter = "process_heap_alloc_bytes"
)

// HeapAllocs returns the heap allocations of this process since it
// started: objects and bytes, as the Go runtime counts them (cumulative,
// never decreasing; reading them does not stop the world).
func HeapAllocs() (objects, bytes uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		objects = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		bytes = s[1].Value.Uint64()
	}
	return objects, bytes
}
