package libp2pplugin

import (
	"bufio"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// Timeouts of the stream writers.
const (
	openTimeout  = 15 * time.Second // dialing and negotiating an outbound stream
	writeTimeout = 30 * time.Second // one frame reaching the stream
	writerIdle   = time.Minute      // an idle writer closes its stream and exits
	// stallTimeout is how long a DOWN frame waits for room in a full
	// queue before the peer is disconnected: the breaker of last resort
	// for a peer that does not read (see unicast).
	stallTimeout = 20 * time.Second
)

// writeBuffer is the size of a writer's buffer. Frames that are queued
// together are written to the stream together.
const writeBuffer = 64 << 10

// streamKey names an outbound stream: one per peer and protocol.
type streamKey struct {
	peer  peer.ID
	proto protocol.ID
}

// outPeer is what the writers of one peer share: the byte budget of their
// queues, and whether the peer was reset for not reading.
type outPeer struct {
	budget *p2pkit.Budget
	// Guarded by outbound.mu: writers counts the peer's writers in the
	// set (the outPeer goes with the last); stalled is set when a frame
	// waited the stall timeout for room and the peer was reset, and
	// cleared when the peer connects again.
	writers int
	stalled bool
}

// writer owns one outbound stream and the queue of frames for it.
type writer struct {
	key   streamKey
	peer  *outPeer
	queue chan []byte

	// Guarded by outbound.mu: senders counts the frames waiting for room
	// (a writer with waiting senders is not retired).
	senders int
}

// outbound is the set of running writers.
type outbound struct {
	mu      sync.Mutex
	closed  bool
	writers map[streamKey]*writer
	peers   map[peer.ID]*outPeer
	tasks   group
	drainCh chan struct{} // closed when the writers are to flush and exit
	bufs    sync.Pool     // *bufio.Writer of writeBuffer bytes, held only while a writer has unflushed frames
}

// init prepares an outbound for use.
func (o *outbound) init() {
	o.writers = make(map[streamKey]*writer)
	o.peers = make(map[peer.ID]*outPeer)
	o.drainCh = make(chan struct{})
	o.bufs.New = func() any { return bufio.NewWriterSize(nil, writeBuffer) }
}

// drain stops new frames, tells the writers to write what they hold and
// exit, and waits for them until ctx ends.
func (o *outbound) drain(ctx context.Context) {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.drainCh)
	}
	o.mu.Unlock()
	_ = o.tasks.close(ctx) // stragglers are ended by the host closing
}

// queuedBytes is the payload bytes queued for all peers.
func (o *outbound) queuedBytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := 0
	for _, op := range o.peers {
		k += op.budget.Used()
	}
	return k
}

// connected clears the stall of a peer that connects again.
func (o *outbound) connected(p peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if op := o.peers[p]; op != nil {
		op.stalled = false
	}
}

// writerFor returns the writer of key, starting it if there is none, or
// nil when the node is stopping. The caller holds o.mu.
func (n *node) writerFor(key streamKey) *writer {
	o := &n.outq
	if w := o.writers[key]; w != nil {
		return w
	}
	op := o.peers[key.peer]
	if op == nil {
		op = &outPeer{budget: p2pkit.NewBudget(n.cfg.PeerOutBytes)}
	}
	w := &writer{key: key, peer: op, queue: make(chan []byte, n.cfg.Queue)}
	if !o.tasks.Go(func() { n.runWriter(w) }) {
		return nil
	}
	o.writers[key] = w
	o.peers[key.peer] = op
	op.writers++
	return w
}

// unicast queues payload for peer to on protocol proto, starting the
// writer of that stream if there is none. A frame needs room in its
// stream's queue (queue frames) and in its peer's byte budget
// (peer_out_bytes, over all the peer's streams); without it, it waits,
// which slows the sender (the host, and the layer above) to the pace of
// the peer instead of dropping the frame. So a peer that stops reading
// holds at most its budget. The wait ends without queueing when ctx or
// the node ends (dropped_not_running), or after n.stall without room: the
// peer does not read, so it is disconnected (peers_reset_slow), what is
// queued for it is dropped, and so are this frame and later ones until it
// connects again (dropped_slow_peer). That bound keeps a peer that never
// reads from holding the layer's one input stream for ever.
func (n *node) unicast(ctx context.Context, to peer.ID, proto protocol.ID, payload []byte) {
	o := &n.outq
	size := len(payload)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		n.ctr.droppedNotRunning.Add(1)
		return
	}
	w := n.writerFor(streamKey{peer: to, proto: proto})
	if w == nil {
		o.mu.Unlock()
		n.ctr.droppedNotRunning.Add(1)
		return
	}
	op := w.peer
	if op.stalled {
		o.mu.Unlock()
		n.ctr.droppedSlowPeer.Add(1)
		return
	}
	if ok, _ := op.budget.TryTake(size); ok {
		select {
		case w.queue <- payload:
			o.mu.Unlock()
			return
		default:
			op.budget.Release(size)
		}
	}
	w.senders++
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		w.senders--
		o.mu.Unlock()
	}()
	n.ctr.queueFullWaits.Add(1)
	stall := time.NewTimer(n.stall)
	defer stall.Stop()
	// First room in the budget, then in the queue; either may be what
	// the peer does not make.
	for {
		o.mu.Lock()
		stalled := op.stalled
		o.mu.Unlock()
		if stalled { // reset meanwhile, for another frame
			n.ctr.droppedSlowPeer.Add(1)
			return
		}
		ok, room := op.budget.TryTake(size)
		if ok {
			break
		}
		select {
		case <-room:
			continue
		case <-ctx.Done():
		case <-n.ctx.Done():
		case <-o.drainCh:
		case <-stall.C:
			n.ctr.droppedSlowPeer.Add(1)
			n.resetSlow(to, proto)
			return
		}
		n.ctr.droppedNotRunning.Add(1)
		return
	}
	select {
	case w.queue <- payload:
		return
	case <-ctx.Done():
	case <-n.ctx.Done():
	case <-o.drainCh:
	case <-stall.C:
		op.budget.Release(size)
		n.ctr.droppedSlowPeer.Add(1)
		n.resetSlow(to, proto)
		return
	}
	op.budget.Release(size)
	n.ctr.droppedNotRunning.Add(1)
}

// resetSlow disconnects peer to, which made no room for a frame on proto
// for the stall timeout, and drops what is queued for it, unless another
// frame did so first.
func (n *node) resetSlow(to peer.ID, proto protocol.ID) {
	o := &n.outq
	o.mu.Lock()
	op := o.peers[to]
	if op == nil || op.stalled {
		o.mu.Unlock()
		return
	}
	op.stalled = true
	dropped, bytes := 0, 0
	for key, w := range o.writers {
		if key.peer != to {
			continue
		}
		for len(w.queue) > 0 {
			select {
			case p := <-w.queue:
				dropped++
				bytes += len(p)
			default:
			}
		}
	}
	op.budget.Release(bytes)
	o.mu.Unlock()
	n.ctr.droppedSlowPeer.Add(uint64(dropped))
	n.ctr.peersResetSlow.Add(1)
	n.log.Warn("disconnecting a peer that made no room for a frame for the stall timeout", "peer", to, "protocol", proto, "timeout", n.stall, "frames_dropped", dropped)
	if err := n.h.Network().ClosePeer(to); err != nil {
		n.log.Debug("closing a stalled peer", "peer", to, "error", err)
	}
}

// retire removes w from the set if its queue is empty and no sender waits
// for room in it, and reports whether it did. Holding the lock that
// unicast holds, it cannot lose a frame.
func (o *outbound) retire(w *writer) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(w.queue) > 0 || w.senders > 0 {
		return false
	}
	delete(o.writers, w.key)
	if w.peer.writers--; w.peer.writers == 0 {
		delete(o.peers, w.key.peer)
	}
	return true
}

// idle reports whether w's queue is empty and no sender waits for room.
func (o *outbound) idle(w *writer) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(w.queue) == 0 && w.senders == 0
}

// runWriter is a writer's goroutine. It opens the stream when the first
// frame arrives, writes frames in order, and after an error resets the
// stream and opens a new one for the next frame. It exits when idle for
// writerIdle, when the node drains, or when the node closes.
func (n *node) runWriter(w *writer) {
	sw := streamWriter{n: n, key: w.key}
	defer sw.reset()
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	for {
		select {
		case <-n.ctx.Done():
			n.ctr.droppedNotRunning.Add(uint64(len(w.queue)))
			return
		case <-n.outq.drainCh:
			n.drainWriter(w, &sw)
			return
		case <-idle.C:
			if n.outq.retire(w) {
				sw.close()
				return
			}
			idle.Reset(writerIdle)
		case p := <-w.queue:
			sw.write(p, len(w.queue) == 0)
			w.peer.budget.Release(len(p))
			idle.Reset(writerIdle)
		}
	}
}

// drainWriter writes what w holds once the node drains. No sender starts
// waiting after drainCh closes, and those waiting give up or queue at once,
// so the loop ends as soon as the queue is empty and they are gone.
func (n *node) drainWriter(w *writer, sw *streamWriter) {
	for {
		select {
		case p := <-w.queue:
			sw.write(p, len(w.queue) == 0)
			w.peer.budget.Release(len(p))
			continue
		case <-n.ctx.Done():
			n.ctr.droppedNotRunning.Add(uint64(len(w.queue)))
			return
		default:
		}
		if n.outq.idle(w) {
			sw.close()
			return
		}
		select {
		case p := <-w.queue:
			sw.write(p, len(w.queue) == 0)
			w.peer.budget.Release(len(p))
		case <-n.ctx.Done():
			n.ctr.droppedNotRunning.Add(uint64(len(w.queue)))
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// streamWriter is the stream end of a writer.
type streamWriter struct {
	n       *node
	key     streamKey
	s       network.Stream // nil until opened, and after an error
	bw      *bufio.Writer  // from the pool while frames wait for a flush, else nil
	pending uint64         // frames buffered since the last flush
	bytes   uint64         // their payload bytes
}

// write writes one frame, opening the stream first if needed, and flushes
// when flush is set (the queue is empty). A frame that cannot be written
// is dropped and counted.
func (sw *streamWriter) write(p []byte, flush bool) {
	ctr := sw.n.ctr
	if sw.s == nil {
		if err := sw.open(); err != nil {
			ctr.droppedStreamError.Add(1)
			sw.n.log.Debug("cannot open stream", "peer", sw.key.peer, "protocol", sw.key.proto, "error", err)
			return
		}
	}
	if err := sw.s.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		sw.fail(fmt.Errorf("set write deadline: %w", err))
		ctr.droppedStreamError.Add(1)
		return
	}
	if err := writeFrame(sw.buffer(), p); err != nil {
		sw.fail(err)
		ctr.droppedStreamError.Add(1)
		return
	}
	sw.pending++
	sw.bytes += uint64(len(p))
	if flush {
		if err := sw.bw.Flush(); err != nil {
			sw.fail(err)
			return
		}
		ctr.framesSent.Add(sw.pending)
		ctr.bytesSent.Add(sw.bytes)
		sw.pending, sw.bytes = 0, 0
		sw.release()
	}
}

// buffer returns the stream's write buffer, taking one from the node's
// pool if it holds none. A writer holds a buffer only between a frame and
// the flush after it, so the memory of a node with many idle peers does
// not grow with them.
func (sw *streamWriter) buffer() *bufio.Writer {
	if sw.bw == nil {
		sw.bw = sw.n.outq.bufs.Get().(*bufio.Writer)
		sw.bw.Reset(sw.s)
	}
	return sw.bw
}

// release returns the write buffer to the pool; what it held unflushed
// is discarded.
func (sw *streamWriter) release() {
	if sw.bw == nil {
		return
	}
	sw.bw.Reset(nil)
	sw.n.outq.bufs.Put(sw.bw)
	sw.bw = nil
}

// open opens the outbound stream, dialing the peer if need be.
func (sw *streamWriter) open() error {
	ctx, cancel := context.WithTimeout(sw.n.ctx, openTimeout)
	defer cancel()
	s, err := sw.n.h.NewStream(ctx, sw.key.peer, sw.key.proto)
	if err != nil {
		return err
	}
	sw.n.ctr.streamsOpened.Add(1)
	sw.s = s
	return nil
}

// fail resets the stream after err; the frames buffered since the last
// flush are counted as lost.
func (sw *streamWriter) fail(err error) {
	sw.n.ctr.streamErrors.Add(1)
	sw.n.ctr.droppedStreamError.Add(sw.pending)
	sw.n.log.Debug("stream failed", "peer", sw.key.peer, "protocol", sw.key.proto, "error", err)
	sw.pending, sw.bytes = 0, 0
	sw.release()
	sw.s.Reset()
	sw.s = nil
}

// close flushes and closes the stream gracefully.
func (sw *streamWriter) close() {
	if sw.s == nil {
		return
	}
	if sw.pending > 0 {
		if err := sw.bw.Flush(); err != nil {
			sw.fail(err)
			return
		}
		sw.n.ctr.framesSent.Add(sw.pending)
		sw.n.ctr.bytesSent.Add(sw.bytes)
		sw.pending, sw.bytes = 0, 0
	}
	sw.release()
	if err := sw.s.Close(); err != nil {
		sw.s.Reset()
	}
	sw.s = nil
}

// reset aborts the stream if it is still open.
func (sw *streamWriter) reset() {
	if sw.s != nil {
		sw.n.ctr.droppedStreamError.Add(sw.pending)
		sw.s.Reset()
		sw.s = nil
	}
	sw.release()
}
