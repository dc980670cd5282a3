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
// and out.
type queue struct {
	opts   BatchOptions
	ch     chan item
	done   chan struct{}
	closed sync.Once

	// drain serialises next; held is a frame that came off ch after an
	// event of the batch being gathered, so it opens the next batch.
	drain sync.Mutex
	held  *item
}

func newQueue(opts BatchOptions) *queue {
	opts = opts.withDefaults()
	return &queue{opts: opts, ch: make(chan item, opts.QueueLen), done: make(chan struct{})}
}

func (q *queue) put(ctx context.Context, it item) error {
	select {
	case <-q.done:
		return ErrClosed
	default:
	}
	select {
	case q.ch <- it:
		return nil
	case <-q.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrInvalidFrame is returned by Emit for a frame that cannot cross a
// process boundary (its protocol is not valid UTF-8, which proto3 strings
// must be). The frame is refused alone; the stream goes on.
var ErrInvalidFrame = errors.New("sdk: invalid frame: protocol is not valid UTF-8")

// Emit implements Emitter. Frames before an invalid one are queued; the
// invalid one and those after it are not.
func (q *queue) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	for _, f := range frames {
		if !utf8.ValidString(f.GetProtocol()) {
			return ErrInvalidFrame
		}
		if err := q.put(ctx, item{frame: f}); err != nil {
			return err
		}
	}
	return nil
}

// EmitEvent implements Emitter.
func (q *queue) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	return q.put(ctx, item{event: ev})
}

// close stops the queue; blocked and later puts return ErrClosed.
func (q *queue) close() {
	q.closed.Do(func() { close(q.done) })
}

// next blocks for the first item, then gathers whatever else is queued, up
// to the batch bounds, into one batch. A batch is read as its frames, then
// its events (see commonv1.Batch), so a frame queued after an event is held
// back for the next batch: that keeps the order in which they were emitted.
func (q *queue) next(ctx context.Context) (*commonv1.Batch, error) {
	q.drain.Lock()
	defer q.drain.Unlock()
	var first item
	if q.held != nil {
		first, q.held = *q.held, nil
	} else {
		select {
		case first = <-q.ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
			return nil, ErrClosed
		}
	}
	b := &commonv1.Batch{}
	size := add(b, first)
gather:
	for n := 1; n < q.opts.MaxFrames && size < q.opts.MaxBytes; n++ {
		select {
		case it := <-q.ch:
			if it.frame != nil && len(b.Events) > 0 {
				q.held = &it
				break gather
			}
			size += add(b, it)
		default:
			break gather
		}
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
