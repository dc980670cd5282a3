package sdk

import (
	"context"
	"errors"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// ErrClosed is returned by a queue, an Emitter or a Link that was closed.
var ErrClosed = errors.New("sdk: closed")

// BatchOptions bounds the batches that carry frames across a boundary.
type BatchOptions struct {
	// MaxFrames is the largest number of frames and events in one batch.
	// 1 turns batching off. Default 256.
	MaxFrames int
	// MaxBytes bounds the payload bytes of one batch. Default 1 MiB.
	MaxBytes int
	// QueueLen is the number of frames and events that may wait to be sent
	// before senders block. Default 4096.
	QueueLen int
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.MaxFrames <= 0 {
		o.MaxFrames = 256
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	return o
}

// item is one queued frame or event.
type item struct {
	frame *commonv1.Frame
	event *commonv1.Event
}

// queue is a bounded multi-producer queue of frames and events, drained in
// batches by one pump at a time. It is the one mechanism behind every
// boundary: plugin output to the host, host input to a plugin, in process
// and out. A producer that finds it full blocks (flow control) until the
// pump makes room, its context ends or the queue closes. Producers append
// and the pump takes whole runs under one lock, so a batch of n frames costs
// two lock round trips, not n channel operations.
type queue struct {
	opts BatchOptions

	mu sync.Mutex
	// items are the queued items, a window of base; base never grows, as
	// QueueLen bounds the queue.
	items  []item
	base   []item
	closed bool
	// ready has a token while items may be waiting for the pump.
	ready chan struct{}
	// room is closed, and replaced, when the pump takes items from a full
	// queue; producers waiting for room wait on it.
	room chan struct{}
	done chan struct{}

	// drain serialises next.
	drain sync.Mutex
}

func newQueue(opts BatchOptions) *queue {
	opts = opts.withDefaults()
	base := make([]item, 0, opts.QueueLen)
	return &queue{
		opts:  opts,
		items: base,
		base:  base,
		ready: make(chan struct{}, 1),
		room:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// put queues items in order, blocking while the queue is full.
func (q *queue) put(ctx context.Context, items ...item) error {
	for len(items) > 0 {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		free := q.opts.QueueLen - len(q.items)
		if free <= 0 {
			room := q.room
			q.mu.Unlock()
			select {
			case <-room:
				continue
			case <-q.done:
				return ErrClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		k := min(free, len(items))
		if cap(q.items)-len(q.items) < k {
			// The window reached the end of base: move it to the front.
			n := copy(q.base[:cap(q.base)], q.items)
			clear(q.base[n:cap(q.base)])
			q.items = q.base[:n]
		}
		q.items = append(q.items, items[:k]...)
		q.mu.Unlock()
		items = items[k:]
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return nil
}

// ErrInvalidFrame is returned by Emit for a frame that cannot cross a
// process boundary (its protocol is not valid UTF-8, which proto3 strings
// must be). The frame is refused alone; the stream goes on.
var ErrInvalidFrame = errors.New("sdk: invalid frame: protocol is not valid UTF-8")

// Emit implements Emitter. Frames before an invalid one are queued; the
// invalid one and those after it are not.
func (q *queue) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	items := make([]item, 0, len(frames))
	var bad error
	for _, f := range frames {
		if !utf8.ValidString(f.GetProtocol()) {
			bad = ErrInvalidFrame
			break
		}
		items = append(items, item{frame: f})
	}
	if err := q.put(ctx, items...); err != nil {
		return err
	}
	return bad
}

// EmitEvent implements Emitter.
func (q *queue) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	return q.put(ctx, item{event: ev})
}

// close stops the queue; blocked and later puts return ErrClosed.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

// next blocks for the first item, then gathers whatever else is queued, up
// to the batch bounds, into one batch. A batch is read as its frames, then
// its events (see commonv1.Batch), so a frame queued after an event is left
// for the next batch: that keeps the order in which they were emitted.
func (q *queue) next(ctx context.Context) (*commonv1.Batch, error) {
	q.drain.Lock()
	defer q.drain.Unlock()
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			break
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
			return nil, ErrClosed
		}
	}
	defer q.mu.Unlock()
	b := &commonv1.Batch{}
	size, n := 0, 0
	for n < len(q.items) && n < q.opts.MaxFrames && (n == 0 || size < q.opts.MaxBytes) {
		it := q.items[n]
		if it.frame != nil && len(b.Events) > 0 {
			break
		}
		size += add(b, it)
		n++
	}
	full := len(q.items) >= q.opts.QueueLen
	clear(q.items[:n])
	q.items = q.items[n:]
	if len(q.items) == 0 {
		q.items = q.base[:0] // start again at the front
	} else {
		select { // more waits: the next call must not sleep
		case q.ready <- struct{}{}:
		default:
		}
	}
	if full {
		close(q.room)
		q.room = make(chan struct{})
	}
	return b, nil
}

func add(b *commonv1.Batch, it item) int {
	if it.frame != nil {
		b.Frames = append(b.Frames, it.frame)
		return len(it.frame.GetPayload())
	}
	b.Events = append(b.Events, it.event)
	return proto.Size(it.event)
}

// pump sends batches to flush until ctx ends, the queue closes or flush
// fails. A batch whose flush failed is lost: frames are best effort across a
// boundary.
func (q *queue) pump(ctx context.Context, flush func(*commonv1.Batch) error) error {
	for {
		b, err := q.next(ctx)
		if err != nil {
			return err
		}
		if err := flush(b); err != nil {
			return err
		}
	}
}
