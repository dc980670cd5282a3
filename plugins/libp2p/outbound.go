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

// writer owns one outbound stream and the queue of frames for it.
type writer struct {
	key   streamKey
	queue chan []byte

	// Guarded by outbound.mu: senders counts the frames waiting for room
	// in queue (a writer with waiting senders is not retired); stalled is
	// set when one waited stallTimeout in vain, and cleared when the queue
	// has room again.
	senders int
	stalled bool
}

// outbound is the set of running writers.
type outbound struct {
	mu      sync.Mutex
	closed  bool
	writers map[streamKey]*writer
	tasks   group
	drainCh chan struct{} // closed when the writers are to flush and exit
}

// init prepares an outbound for use.
func (o *outbound) init() {
	o.writers = make(map[streamKey]*writer)
	o.drainCh = make(chan struct{})
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

// unicast queues payload for peer to on protocol proto, starting the
// writer of that stream if there is none. When the queue is full it waits
// for room, which slows the sender (the host, and the layer above) to the
// pace of the stream instead of dropping the frame. The wait ends without
// queueing when ctx or the node ends (dropped_not_running), or after
// n.stall without room: the peer does not read, so it is disconnected
// (peers_reset_slow) and this frame, and later ones while its queue stays
// full, are dropped (dropped_slow_peer). That bound keeps a peer that
// never reads from holding the layer's one input stream for ever.
func (n *node) unicast(ctx context.Context, to peer.ID, proto protocol.ID, payload []byte) {
	o := &n.outq
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		n.ctr.droppedNotRunning.Add(1)
		return
	}
	key := streamKey{peer: to, proto: proto}
	w := o.writers[key]
	if w == nil {
		w = &writer{key: key, queue: make(chan []byte, n.cfg.Queue)}
		if !o.tasks.Go(func() { n.runWriter(w) }) {
			o.mu.Unlock()
			n.ctr.droppedNotRunning.Add(1)
			return
		}
		o.writers[key] = w
	}
	select {
	case w.queue <- payload:
		w.stalled = false
		o.mu.Unlock()
		return
	default:
	}
	if w.stalled {
		o.mu.Unlock()
		n.ctr.droppedSlowPeer.Add(1)
		return
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
	select {
	case w.queue <- payload:
	case <-ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-n.ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-o.drainCh:
		n.ctr.droppedNotRunning.Add(1)
	case <-stall.C:
		n.ctr.droppedSlowPeer.Add(1)
		o.mu.Lock()
		first := !w.stalled
		w.stalled = true
		o.mu.Unlock()
		if first {
			n.ctr.peersResetSlow.Add(1)
			n.log.Warn("disconnecting a peer that took no frame for the stall timeout", "peer", to, "protocol", proto, "timeout", n.stall)
			if err := n.h.Network().ClosePeer(to); err != nil {
				n.log.Debug("closing a stalled peer", "peer", to, "error", err)
			}
		}
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
	bw      *bufio.Writer
	pending uint64 // frames buffered since the last flush
	bytes   uint64 // their payload bytes
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
	if err := writeFrame(sw.bw, p); err != nil {
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
	}
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
	if sw.bw == nil {
		sw.bw = bufio.NewWriterSize(s, writeBuffer)
	} else {
		sw.bw.Reset(s)
	}
	return nil
}

// fail resets the stream after err; the frames buffered since the last
// flush are counted as lost.
func (sw *streamWriter) fail(err error) {
	sw.n.ctr.streamErrors.Add(1)
	sw.n.ctr.droppedStreamError.Add(sw.pending)
	sw.n.log.Debug("stream failed", "peer", sw.key.peer, "protocol", sw.key.proto, "error", err)
	sw.pending, sw.bytes = 0, 0
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
}
