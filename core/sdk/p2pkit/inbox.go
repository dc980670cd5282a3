package p2pkit

import (
	"context"
	"errors"
	"sync"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Defaults of InboxConfig.
const (
	// DefaultPeerInBytes bounds what one peer has waiting to go up.
	DefaultPeerInBytes = 1 << 20
	// DefaultInboxEvents bounds the peer events waiting to go up.
	DefaultInboxEvents = 1024
	// DefaultBatchFrames bounds the frames of one Emit.
	DefaultBatchFrames = 64
	// DefaultBatchBytes bounds the payload bytes of one Emit (a frame
	// larger than it goes alone).
	DefaultBatchBytes = 1 << 20
	// DefaultQuantum is what a peer may send up per turn, in bytes.
	DefaultQuantum = 8 << 10
	// DefaultPeerInRate and DefaultPeerInBurst are the overlays' defaults
	// of a peer's token bucket: 16 MiB/s, 4 MiB at once.
	DefaultPeerInRate  = 16 << 20
	DefaultPeerInBurst = 4 << 20
)

// FrameOverhead is what a queued frame costs besides its payload (the
// Frame, its peer and protocol), so that a flood of empty frames is bounded
// too.
const FrameOverhead = 128

// Errors of Inbox.TryPut, for traffic that may be dropped.
var (
	// ErrRateLimited: the peer's token bucket does not hold the frame.
	ErrRateLimited = errors.New("p2pkit: peer above its rate")
	// ErrPeerFull: the peer already has PeerBytes waiting.
	ErrPeerFull = errors.New("p2pkit: peer's inbound queue is full")
)

// InboxConfig configures an Inbox. Zero fields take the defaults above,
// except Rate: 0 is no rate limit.
type InboxConfig struct {
	// Out is the host: Run hands it everything.
	Out sdk.Emitter
	// PeerBytes bounds the bytes (payload plus FrameOverhead per frame)
	// one peer has waiting; a Put beyond it waits. A frame always fits a
	// peer that has nothing waiting.
	PeerBytes int
	// Events bounds the peer events waiting, over all peers; an event
	// beyond it is refused (Event returns false) and the caller counts it.
	Events int
	// Rate (bytes per second) and Burst (bytes) are each peer's token
	// bucket, taken by every frame the peer sends up.
	Rate, Burst int
	// BatchFrames and BatchBytes bound one Emit.
	BatchFrames, BatchBytes int
	// Quantum is the bytes a peer may send up per turn (deficit round
	// robin); a frame larger than it waits for as many turns as it needs.
	Quantum int
	// RateWaits, when set, counts the Puts that then waited for the
	// peer's bucket; FullWaits the Puts that waited for room. Neither is
	// a loss.
	RateWaits, FullWaits *sdk.Counter
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (c InboxConfig) withDefaults() InboxConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.PeerBytes, DefaultPeerInBytes)
	def(&c.Events, DefaultInboxEvents)
	def(&c.BatchFrames, DefaultBatchFrames)
	def(&c.BatchBytes, DefaultBatchBytes)
	def(&c.Quantum, DefaultQuantum)
	if c.Rate < 0 {
		c.Rate = 0
	}
	def(&c.Burst, DefaultPeerInBurst)
	if c.RateWaits == nil {
		c.RateWaits = new(sdk.Counter)
	}
	if c.FullWaits == nil {
		c.FullWaits = new(sdk.Counter)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Inbox is what an overlay sends up to the host through: inbound frames
// and peer events, queued per peer and handed to the host by one pump
// (Run) in turns, so that one peer's flood cannot starve the others.
//
//   - Where frames enter: each peer has a token bucket (Rate, Burst). A
//     reader that Puts a frame then waits until the peer's bucket is out of
//     debt, so it reads nothing more from that peer meanwhile: TCP (and a
//     multiplexer's window) slows the peer, and nothing is dropped.
//   - Where frames wait: each peer has its own queue, bounded in bytes
//     (PeerBytes). A Put that finds it full waits for room, which again
//     stops that peer's reader, and only that peer's.
//   - At the boundary: the pump takes from the peers in turn, by deficit
//     round robin on bytes (Quantum per turn), into batches of at most
//     BatchFrames; while the host is slow the pump waits, the queues fill
//     and the readers stop. A peer with frames waiting gets its turn within
//     one round of the peers, whatever the others have queued.
//   - Events: a peer event goes in its peer's queue, so the host sees a
//     peer's CONNECTED before its first frame and its DISCONNECTED after
//     its last, and never waits: events have their own bound (Events,
//     over all peers), separate from the frames', so frames cannot push an
//     event out. An event beyond it is refused and the caller counts it.
//
// Peers are named by strings (the overlay's peer id bytes). A peer's state
// is kept while it has readers (Open), things waiting, or a bucket that is
// not yet full again, so closing and reopening a stream does not refill a
// flooder's bucket.
type Inbox struct {
	cfg   InboxConfig
	ready chan struct{} // holds a token while things may be waiting

	mu     sync.Mutex
	peers  map[string]*inPeer
	active []*inPeer // peers with things waiting, in turn order
	events int       // events waiting, over all peers
	frames int       // frames waiting, over all peers
	batch  uint64    // number of the batch being built
}

// inPeer is one peer's state.
type inPeer struct {
	key    string
	items  []inItem // waiting, oldest first, from head
	head   int
	bytes  int // cost of the frames waiting
	refs   int // open handles
	bucket Bucket

	active  bool   // in Inbox.active
	deficit int    // bytes the peer may still send up this turn
	evBatch uint64 // the last batch the peer gave an event to

	room chan struct{} // closed and replaced when the pump takes from a peer a Put waits on
	wait bool
}

// inItem is one waiting frame or event.
type inItem struct {
	frame *commonv1.Frame
	event *commonv1.Event
	cost  int
}

func (p *inPeer) len() int { return len(p.items) - p.head }

func (p *inPeer) push(it inItem) { p.items = append(p.items, it) }

func (p *inPeer) pop() inItem {
	it := p.items[p.head]
	p.items[p.head] = inItem{}
	p.head++
	if p.head == len(p.items) {
		p.items, p.head = p.items[:0], 0
	}
	return it
}

// NewInbox returns an inbox; Run starts its pump.
func NewInbox(cfg InboxConfig) *Inbox {
	return &Inbox{cfg: cfg.withDefaults(), ready: make(chan struct{}, 1), peers: make(map[string]*inPeer)}
}

// peer returns the state of key, making it if need be. The caller holds
// q.mu.
func (q *Inbox) peer(key string) *inPeer {
	if p := q.peers[key]; p != nil {
		return p
	}
	now := q.cfg.Now()
	for k, p := range q.peers { // new peers are rare: forget the idle ones
		q.forget(k, p, now)
	}
	p := &inPeer{key: key, bucket: NewBucket(q.cfg.Rate, q.cfg.Burst, now), room: make(chan struct{})}
	q.peers[key] = p
	return p
}

// forget drops p's state if it holds nothing worth keeping. The caller
// holds q.mu.
func (q *Inbox) forget(key string, p *inPeer, now time.Time) {
	if p.refs == 0 && p.len() == 0 && p.bucket.Full(now) {
		delete(q.peers, key)
	}
}

// enqueue appends it to p's queue. The caller holds q.mu.
func (q *Inbox) enqueue(p *inPeer, it inItem) {
	p.push(it)
	if !p.active {
		p.active = true
		q.active = append(q.active, p)
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// PeerIn is a reader's handle on one peer of an Inbox.
type PeerIn struct {
	q      *Inbox
	p      *inPeer
	closed bool
}

// Open returns a handle to put the frames of peer key with; the reader
// closes it when it stops reading. A peer may have several handles open
// (a stream per protocol) sharing its bucket and queue.
func (q *Inbox) Open(key string) *PeerIn {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peer(key)
	p.refs++
	return &PeerIn{q: q, p: p}
}

// Close ends the handle.
func (h *PeerIn) Close() {
	q := h.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.p.refs--
	if q.peers[h.p.key] == h.p {
		q.forget(h.p.key, h.p, q.cfg.Now())
	}
}

// Put queues f, waiting while the peer has PeerBytes waiting, then takes
// its payload from the peer's bucket and, if that put the bucket in debt,
// waits until the debt is repaid: the caller reads nothing more from the
// peer meanwhile. It fails only when ctx ends; f is then not queued, or
// queued and the wait cut short.
func (h *PeerIn) Put(ctx context.Context, f *commonv1.Frame) error {
	q, p := h.q, h.p
	cost := len(f.GetPayload()) + FrameOverhead
	q.mu.Lock()
	if p.bytes > 0 && p.bytes+cost > q.cfg.PeerBytes {
		q.cfg.FullWaits.Inc()
		for p.bytes > 0 && p.bytes+cost > q.cfg.PeerBytes {
			p.wait = true
			room := p.room
			q.mu.Unlock()
			select {
			case <-room:
			case <-ctx.Done():
				return ctx.Err()
			}
			q.mu.Lock()
		}
	}
	p.bytes += cost
	q.frames++
	q.enqueue(p, inItem{frame: f, cost: cost})
	delay := p.bucket.Take(q.cfg.Now(), len(f.GetPayload()))
	q.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	q.cfg.RateWaits.Inc()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryPut queues f for peer key if the peer's bucket holds it and its
// queue has room, and never waits: it is for traffic whose protocol
// allows drops (GossipSub, whose own queues drop for a slow subscriber).
// It returns ErrRateLimited or ErrPeerFull when it did not queue f.
func (q *Inbox) TryPut(key string, f *commonv1.Frame) error {
	cost := len(f.GetPayload()) + FrameOverhead
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peer(key)
	if p.bytes > 0 && p.bytes+cost > q.cfg.PeerBytes {
		q.forget(key, p, q.cfg.Now())
		return ErrPeerFull
	}
	if !p.bucket.TryTake(q.cfg.Now(), len(f.GetPayload())) {
		q.forget(key, p, q.cfg.Now())
		return ErrRateLimited
	}
	p.bytes += cost
	q.frames++
	q.enqueue(p, inItem{frame: f, cost: cost})
	return nil
}

// Event queues a peer event behind what peer key has waiting, and reports
// whether there was room: false when Events events already wait. It never
// waits.
func (q *Inbox) Event(key string, ev *commonv1.Event) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.events >= q.cfg.Events {
		return false
	}
	q.events++
	q.enqueue(q.peer(key), inItem{event: ev})
	return true
}

// Waiting returns the frames and events peer key has waiting.
func (q *Inbox) Waiting(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.peers[key]; p != nil {
		return p.len()
	}
	return 0
}

// Frames returns the frames waiting, over all peers.
func (q *Inbox) Frames() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.frames
}

// Run is the pump: it hands batches to the host until ctx ends or the host
// fails, and returns why. Each batch's frames go in one Emit, then its
// events one EmitEvent each; a peer's frames and events keep their order
// (a peer that gives an event to a batch gives it no frame after it).
func (q *Inbox) Run(ctx context.Context) error {
	for {
		frames, events, err := q.next(ctx)
		if err != nil {
			return err
		}
		if len(frames) > 0 {
			if err := q.cfg.Out.Emit(ctx, frames...); err != nil {
				return err
			}
		}
		for _, ev := range events {
			if err := q.cfg.Out.EmitEvent(ctx, ev); err != nil {
				return err
			}
		}
	}
}

// next waits until something is waiting, then builds a batch by deficit
// round robin over the active peers.
func (q *Inbox) next(ctx context.Context) ([]*commonv1.Frame, []*commonv1.Event, error) {
	q.mu.Lock()
	for len(q.active) == 0 {
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	q.batch++
	var (
		frames []*commonv1.Frame
		events []*commonv1.Event
		bytes  int
	)
	full := func() bool { return len(frames) >= q.cfg.BatchFrames || (len(frames) > 0 && bytes >= q.cfg.BatchBytes) }
	// open counts the active peers that may still give a frame to this
	// batch; a peer that gave it an event may not.
	open := len(q.active)
	for len(q.active) > 0 && open > 0 && !full() {
		p := q.active[0]
		q.active = q.active[1:]
		if p.evBatch == q.batch {
			q.active = append(q.active, p)
			continue
		}
		p.deficit += q.cfg.Quantum
		took := false
		for p.len() > 0 {
			it := p.items[p.head]
			if it.event != nil {
				p.pop()
				q.events--
				events = append(events, it.event)
				if p.evBatch != q.batch {
					p.evBatch = q.batch
					open--
				}
				continue
			}
			if p.evBatch == q.batch || it.cost > p.deficit || full() {
				break
			}
			p.pop()
			q.frames--
			p.bytes -= it.cost
			p.deficit -= it.cost
			bytes += len(it.frame.GetPayload())
			frames = append(frames, it.frame)
			took = true
		}
		if took && p.wait {
			close(p.room)
			p.room, p.wait = make(chan struct{}), false
		}
		if p.len() == 0 {
			if p.evBatch != q.batch {
				open--
			}
			p.active, p.deficit = false, 0
			q.forget(p.key, p, q.cfg.Now())
			continue
		}
		q.active = append(q.active, p)
	}
	if len(q.active) > 0 { // more waits: the next call must not sleep
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return frames, events, nil
}
