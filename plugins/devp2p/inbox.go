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
//
// A frame that finds maxFrames frames waiting waits for room (putFrame
// blocks): the peer's protocol goroutine stops reading its connection, and
// TCP slows the peer down, as a slow reader does in geth. An event never
// waits (it is queued under the node's peer lock); one that finds
// maxEvents events waiting is refused.
type inbox struct {
	maxFrames, maxEvents int
	ready                chan struct{} // holds a token while items wait

	mu             sync.Mutex
	items          []upItem
	frames, events int
	room           chan struct{} // closed and replaced when take empties a full inbox
	full           bool          // a putFrame is waiting on room
}

func newInbox(maxFrames, maxEvents int) *inbox {
	return &inbox{maxFrames: maxFrames, maxEvents: maxEvents, ready: make(chan struct{}, 1), room: make(chan struct{})}
}

// putFrame queues an inbound frame, waiting while maxFrames frames wait.
// It fails only when ctx ends.
func (q *inbox) putFrame(ctx context.Context, f *commonv1.Frame) error {
	for {
		q.mu.Lock()
		if q.frames < q.maxFrames {
			q.frames++
			q.items = append(q.items, upItem{frame: f})
			q.mu.Unlock()
			q.signal()
			return nil
		}
		q.full = true
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// putEvent queues a peer event and reports whether there was room for it.
func (q *inbox) putEvent(ev *commonv1.PeerEvent) bool {
	q.mu.Lock()
	if q.events >= q.maxEvents {
		q.mu.Unlock()
		return false
	}
	q.events++
	q.items = append(q.items, upItem{event: ev})
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *inbox) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take waits until items are queued or ctx ends, and returns them all, in
// order; frames waiting for room are let in.
func (q *inbox) take(ctx context.Context) ([]upItem, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			items := q.items
			q.items, q.frames, q.events = nil, 0, 0
			if q.full {
				close(q.room)
				q.room, q.full = make(chan struct{}), false
			}
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
