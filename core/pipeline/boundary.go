package pipeline

import (
	"sync"
	"sync/atomic"
)

// DropReason says why a frame was dropped at a boundary.
type DropReason int

// Reasons a boundary drops a frame. Every drop is counted under its reason.
const (
	// DropLayerDown: the receiving layer is not running and its door was
	// full, or its link ended while the frame was being handed.
	DropLayerDown DropReason = iota
	// DropStalled: the receiving layer took nothing for StallTimeout; the
	// stack was stalled (see the package doc).
	DropStalled
	// DropUnknownContact: a translate stage found no address for the
	// frame's peer.
	DropUnknownContact
	// DropInvalid: a frame with no direction, one that left the stack's
	// ends the wrong way (a DOWN frame from the bottom layer), or one the
	// receiving layer's link refused.
	DropInvalid
	// DropStoreError: a message for the application could not be stored,
	// so it was not delivered.
	DropStoreError
	numDropReasons
)

var dropNames = [numDropReasons]string{"layer_down", "stalled", "unknown_contact", "invalid", "store_error"}

// String returns the reason's metric label.
func (r DropReason) String() string { return dropNames[r] }

// DropReasons lists every reason, in order.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// Boundary counts what crosses between two adjacent layers (or the top
// layer and the application). Counters are atomics: the hot path takes no
// lock.
type Boundary struct {
	// Index is the boundary's position: k lies above layer k.
	Index int
	// Name is "<lower>|<upper>", e.g. "p2p|privacy" or "sync|app".
	Name string

	frames  [2]atomic.Uint64
	bytes   [2]atomic.Uint64
	dropped [numDropReasons]atomic.Uint64
	// unknownSender counts UP frames whose sender a translate stage could
	// not name.
	unknownSender atomic.Uint64

	mu     sync.Mutex
	extras map[string]func() map[string]uint64
}

// Crossed counts frames handed across the boundary in dir.
func (b *Boundary) Crossed(dir Dir, frames, bytes uint64) {
	b.frames[dir].Add(frames)
	b.bytes[dir].Add(bytes)
}

// Drop counts n frames dropped for reason.
func (b *Boundary) Drop(reason DropReason, n uint64) { b.dropped[reason].Add(n) }

// UnknownSender counts an UP frame whose sender could not be named.
func (b *Boundary) UnknownSender() { b.unknownSender.Add(1) }

// Frames returns the frames that crossed in dir.
func (b *Boundary) Frames(dir Dir) uint64 { return b.frames[dir].Load() }

// Bytes returns the payload bytes that crossed in dir.
func (b *Boundary) Bytes(dir Dir) uint64 { return b.bytes[dir].Load() }

// Dropped returns the frames dropped for reason.
func (b *Boundary) Dropped(reason DropReason) uint64 { return b.dropped[reason].Load() }

// UnknownSenders returns the UP frames whose sender could not be named.
func (b *Boundary) UnknownSenders() uint64 { return b.unknownSender.Load() }

// Report registers a source of extra counters for the boundary's snapshot
// (a fault-injection stage reports what it did); name groups them.
func (b *Boundary) Report(name string, f func() map[string]uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.extras == nil {
		b.extras = map[string]func() map[string]uint64{}
	}
	b.extras[name] = f
}

// Extra returns the counters a named source reports, or nil.
func (b *Boundary) Extra(name string) map[string]uint64 {
	b.mu.Lock()
	f := b.extras[name]
	b.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}
