package p2pkit

import "sync"

// DefaultPeerOutBytes is the default byte budget of one peer's outbound
// queues: what a node holds at most for a peer that stops reading.
const DefaultPeerOutBytes = 4 << 20

// Budget bounds the payload bytes queued for one peer, over all its
// protocols: a frame takes its bytes when it is queued and gives them back
// once it is written or dropped. A frame that does not fit waits for room
// (its sender is slowed to the peer's pace) and the overlay resets a peer
// that makes no room for its stall timeout; so a peer that stops reading
// holds at most the budget, not its queues' length times max_frame. A
// frame larger than the whole budget fits when nothing else is queued, so
// that every frame max_frame allows can be sent.
//
// A Budget is safe for concurrent use. The zero value is not usable; use
// NewBudget.
type Budget struct {
	max int

	mu   sync.Mutex
	used int
	room chan struct{} // closed and replaced by Release when a taker waits
	wait bool
}

// NewBudget returns an empty budget of max bytes.
func NewBudget(max int) *Budget {
	return &Budget{max: max, room: make(chan struct{})}
}

// TryTake takes n bytes if they fit and reports whether they did. When they
// do not, room is a channel closed at the next Release: wait on it (and on
// whatever else ends the wait) before trying again.
func (b *Budget) TryTake(n int) (ok bool, room <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == 0 || b.used+n <= b.max {
		b.used += n
		return true, nil
	}
	b.wait = true
	return false, b.room
}

// Release gives back n bytes taken before.
func (b *Budget) Release(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.used < 0 {
		panic("p2pkit: Budget released more than was taken")
	}
	if b.wait {
		close(b.room)
		b.room, b.wait = make(chan struct{}), false
	}
}

// Used returns the bytes taken now.
func (b *Budget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
