package devp2p

import (
	"context"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// upItem is one thing for the host: an inbound frame or a peer event.
type upItem struct {
	frame *commonv1.Frame
	event *commonv1.PeerEvent
}

// inbox is the one ordered queue of what goes up to the host. Frames and
// peer events share it so that the host sees them in the order they
// happened: a peer's CONNECTED before its first frame, its DISCONNECTED
// after its last. Frames and events have separate bounds, so a flood of
// frames never costs a peer event its place.
type inbox struct {
	maxFrames, maxEvents int
	ready                chan struct{} // holds a token while items wait

	mu             sync.Mutex
	items          []upItem
	frames, events int
}

func newInbox(maxFrames, maxEvents int) *inbox {
	return &inbox{maxFrames: maxFrames, maxEvents: maxEvents, ready: make(chan struct{}, 1)}
}

// put queues it and reports whether there was room for it.
func (q *inbox) put(it upItem) bool {
	q.mu.Lock()
	if it.frame != nil {
		if q.frames >= q.maxFrames {
			q.mu.Unlock()
			return false
		}
		q.frames++
	} else {
		if q.events >= q.maxEvents {
			q.mu.Unlock()
			return false
		}
		q.events++
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take waits until items are queued or ctx ends, and returns them all, in
// order.
func (q *inbox) take(ctx context.Context) ([]upItem, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			items := q.items
			q.items, q.frames, q.events = nil, 0, 0
			q.mu.Unlock()
			return items, nil
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.ready:
		}
	}
}
