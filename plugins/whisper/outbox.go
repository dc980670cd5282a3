package whisper

import (
	"context"
	"sync"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// stopDrain bounds how long Stop waits for the outbox to be emitted.
const stopDrain = 2 * time.Second

// outbox is everything the layer has decided to send and not yet handed
// to the host, in the order it was decided: Statuses, forwarded envelopes,
// posts, requirement changes and opened messages alike. One goroutine
// (Layer.sender) emits it.
//
// It is what keeps whisper's read path from waiting on a write, as geth's
// envelope pool and per-peer broadcast loops do: HandleBatch handles UP
// frames (adds envelopes to the pool, decides what to forward to whom) and
// appends the result here without waiting for the host, so a peer that
// reads slowly, which makes the overlay's HandleBatch and so the sender's
// Emit wait, never stops this node from reading its other peers (or that
// peer). The outbox is not bounded by a count: each pooled envelope enters
// it at most once per peer (the peer's known set), so it is bounded by the
// pool, which expiry bounds, as geth's pool is.
type outbox struct {
	mu    sync.Mutex
	idle  sync.Cond // signalled when frames is empty and nothing is being emitted
	ready chan struct{}
	// frames wait to be emitted; busy is set while the sender emits a
	// batch it took.
	frames []*commonv1.Frame
	busy   bool
}

func (o *outbox) init() {
	o.idle.L = &o.mu
	o.ready = make(chan struct{}, 1)
}

// put appends frames. The caller holds Layer.mu, which orders it with
// every other put.
func (o *outbox) put(frames []*commonv1.Frame) {
	if len(frames) == 0 {
		return
	}
	o.mu.Lock()
	o.frames = append(o.frames, frames...)
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// take waits for frames, or for ctx to end, and returns them all.
func (o *outbox) take(ctx context.Context) ([]*commonv1.Frame, error) {
	for {
		o.mu.Lock()
		if len(o.frames) > 0 {
			fs := o.frames
			o.frames, o.busy = nil, true
			o.mu.Unlock()
			return fs, nil
		}
		o.mu.Unlock()
		select {
		case <-o.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// done marks the batch from take emitted.
func (o *outbox) done() {
	o.mu.Lock()
	o.busy = false
	if len(o.frames) == 0 {
		o.idle.Broadcast()
	}
	o.mu.Unlock()
}

// len is the number of frames waiting.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.frames)
}

// waitIdle waits until everything put has been emitted, or until ctx ends.
func (o *outbox) waitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		o.mu.Lock()
		o.idle.Broadcast()
		o.mu.Unlock()
	})
	defer stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.frames) > 0 || o.busy {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.idle.Wait()
	}
	return nil
}

// sender emits the outbox in order until ctx ends. It is the only
// goroutine of the layer that waits on the host to take its output.
func (l *Layer) sender(ctx context.Context) {
	defer l.wg.Done()
	for {
		fs, err := l.out.take(ctx)
		if err != nil {
			return
		}
		if err := l.env.Out.Emit(ctx, fs...); err != nil {
			l.c.add("dropped_emit_failed", uint64(len(fs)))
			l.logf("whisper: emit failed: %v", err)
		}
		l.out.done()
	}
}

// enqueue queues frames for the sender; the caller holds l.mu. After Stop
// nothing takes them.
func (l *Layer) enqueue(frames []*commonv1.Frame) {
	if len(frames) == 0 || l.env.Out == nil {
		return
	}
	l.out.put(frames)
}
