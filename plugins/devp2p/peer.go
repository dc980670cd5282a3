package devp2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/p2p"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// outMsg is one message queued for a peer.
type outMsg struct {
	code uint64
	body []byte
	size int // the frame payload size, for the counters
}

// protoConn is one registered protocol running on one peer: Run's reader
// and a writer goroutine draining a bounded queue.
type protoConn struct {
	proto *protocol
	peer  *p2p.Peer
	ps    *peerState // set by attach, before the connection is seen by send
	rw    p2p.MsgReadWriter
	q     chan outMsg
	done  chan struct{}
	busy  atomic.Int32 // 1 while the writer holds a message it took off q
}

// errOversize ends a peer that sent a message above max_frame.
var errOversize = errors.New("message above max_frame")

// run is the devp2p Run function of protocol p on peer: it registers the
// connection, starts its writer, and reads messages until the connection
// ends.
func (n *node) run(p *protocol, peer *p2p.Peer, rw p2p.MsgReadWriter) error {
	pc := &protoConn{proto: p, peer: peer, rw: rw, q: make(chan outMsg, n.cfg.Queue), done: make(chan struct{})}
	n.attach(peer, pc)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		n.write(pc)
	}()
	err := n.read(pc, peer)
	close(pc.done)
	<-writerDone
	n.detach(peer, pc)
	for {
		select {
		case m := <-pc.q:
			pc.ps.out.Release(m.size)
			n.ctr.droppedWriteError.Add(1)
			continue
		default:
		}
		return err
	}
}

// read reads messages until the connection ends and puts them in the
// peer's queue up. While that queue is full, or the peer's token bucket in
// debt, it waits and reads nothing: devp2p stops reading the connection
// and TCP slows the peer, and no other peer, instead of losing its
// messages. It waits on the host only, never on a write to a peer (see
// docs/architecture.md, "Flow control").
//
// A message above max_frame is refused on its size, which ReadMsg gives
// before the payload is read from the Msg; but by then go-ethereum has
// read the whole RLPx frame (up to 16 MiB), decompressed it (snappy, up to
// 16 MiB) and copied it, and it keeps its read and decompression buffers
// at that size for the connection's life. So the peer is disconnected
// (peers_reset_oversize), which frees them, and the message is counted
// (dropped_oversize).
func (n *node) read(pc *protoConn, peer *p2p.Peer) error {
	id := peer.ID()
	in := n.up.Open(string(id[:]))
	defer in.Close()
	for {
		msg, err := pc.rw.ReadMsg()
		if err != nil {
			return err
		}
		if size := pc.proto.frameSize(msg.Size); size > uint64(n.cfg.MaxFrame) {
			n.ctr.droppedOversize.Add(1)
			n.ctr.peersResetOversize.Add(1)
			n.log.Debug("disconnecting a peer that sent a message above max_frame", "peer", id.TerminalString(), "protocol", pc.proto.name, "size", size, "max_frame", n.cfg.MaxFrame)
			_ = msg.Discard()
			return fmt.Errorf("%w: %d bytes, max_frame %d", errOversize, size, n.cfg.MaxFrame)
		}
		frame, body := pc.proto.newFrameBuffer(msg.Code, msg.Size)
		if _, err := io.ReadFull(msg.Payload, body); err != nil {
			n.ctr.droppedBadFrame.Add(1)
			return err
		}
		f := &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_UP,
			Peer:      id[:],
			Protocol:  pc.proto.name,
			Payload:   frame,
		}
		n.ctr.framesReceived.Add(1)
		n.ctr.bytesReceived.Add(uint64(len(frame)))
		if err := in.Put(n.ctx, f); err != nil {
			return err
		}
	}
}

// write sends the queued messages of pc, as they are, until the
// connection ends. After a write error the rest of the queue is dropped.
func (n *node) write(pc *protoConn) {
	for {
		select {
		case <-pc.done:
			return
		case m := <-pc.q:
			pc.busy.Store(1)
			err := pc.rw.WriteMsg(p2p.Msg{Code: m.code, Size: uint32(len(m.body)), Payload: bytes.NewReader(m.body)})
			pc.ps.out.Release(m.size)
			pc.busy.Store(0)
			if err != nil {
				n.ctr.droppedWriteError.Add(1)
				if !errors.Is(err, p2p.ErrShuttingDown) {
					n.log.Debug("write failed", "protocol", pc.proto.name, "error", err)
				}
				<-pc.done
				return
			}
			n.ctr.framesSent.Add(1)
			n.ctr.bytesSent.Add(uint64(m.size))
		}
	}
}

// enqueue queues m for pc. A frame needs room in the connection's queue
// (queue frames) and in its peer's byte budget (peer_out_bytes, over all
// the peer's protocols); without it, it waits, which slows the sender (the
// host, and the layer above) to the pace of the peer's connection instead
// of dropping the frame. So a peer that stops reading holds at most its
// budget. The wait ends without queueing when the connection ends
// (dropped_write_error), when ctx or the node ends (dropped_not_running),
// or after n.stall without room: the peer does not read, so it is
// disconnected (peers_reset_slow), what is queued for it is dropped, and
// so are this frame and later ones for it (dropped_slow_peer). That bound
// is what keeps a peer that never reads from holding the layer's one input
// stream for ever.
func (n *node) enqueue(ctx context.Context, pc *protoConn, m outMsg) {
	ps := pc.ps
	if ps.stalled.Load() {
		n.ctr.droppedSlowPeer.Add(1)
		return
	}
	if ok, _ := ps.out.TryTake(m.size); ok {
		select {
		case pc.q <- m:
			return
		default:
			ps.out.Release(m.size)
		}
	}
	n.ctr.queueFullWaits.Add(1)
	stall := time.NewTimer(n.stall)
	defer stall.Stop()
	// First room in the budget, then in the queue; either may be what
	// the peer does not make.
	for {
		if ps.stalled.Load() { // reset meanwhile, for another frame
			n.ctr.droppedSlowPeer.Add(1)
			return
		}
		ok, room := ps.out.TryTake(m.size)
		if ok {
			break
		}
		select {
		case <-room:
			continue
		case <-pc.done:
			n.ctr.droppedWriteError.Add(1)
		case <-ctx.Done():
			n.ctr.droppedNotRunning.Add(1)
		case <-n.ctx.Done():
			n.ctr.droppedNotRunning.Add(1)
		case <-stall.C:
			n.ctr.droppedSlowPeer.Add(1)
			n.resetSlow(pc)
		}
		return
	}
	select {
	case pc.q <- m:
		return
	case <-pc.done:
		n.ctr.droppedWriteError.Add(1)
	case <-ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-n.ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-stall.C:
		n.ctr.droppedSlowPeer.Add(1)
		n.resetSlow(pc)
	}
	ps.out.Release(m.size)
}

// resetSlow disconnects the peer of pc, which made no room for a frame on
// pc for the stall timeout, and drops what is queued for it on every
// protocol, unless another frame did so first. The connection's writers may
// hold a frame each in a write that only go-ethereum's write timeout ends.
func (n *node) resetSlow(pc *protoConn) {
	ps := pc.ps
	if !ps.stalled.CompareAndSwap(false, true) {
		return
	}
	n.mu.RLock()
	conns := make([]*protoConn, 0, len(ps.conns))
	for _, c := range ps.conns {
		conns = append(conns, c)
	}
	n.mu.RUnlock()
	dropped := 0
	for _, c := range conns {
	drain:
		for {
			select {
			case m := <-c.q:
				ps.out.Release(m.size)
				dropped++
			default:
				break drain
			}
		}
	}
	n.ctr.droppedSlowPeer.Add(uint64(dropped))
	n.ctr.peersResetSlow.Add(1)
	n.log.Warn("disconnecting a peer that made no room for a frame for the stall timeout", "peer", pc.peer.ID().TerminalString(), "protocol", pc.proto.name, "timeout", n.stall, "frames_dropped", dropped)
	pc.peer.Disconnect(p2p.DiscUselessPeer)
}

// send queues a DOWN frame: for its peer, or, without one, for every peer
// connected on its protocol. It may wait for room in a peer's queue (see
// enqueue); it never holds the node's peer lock while it waits.
func (n *node) send(ctx context.Context, f *commonv1.Frame) {
	p := n.protos.byName[f.GetProtocol()]
	if p == nil {
		n.ctr.droppedUnknownProtocol.Add(1)
		return
	}
	payload := f.GetPayload()
	if len(payload) > n.cfg.MaxFrame {
		n.ctr.droppedOversize.Add(1)
		return
	}
	code, body, err := p.splitFrame(payload)
	switch {
	case errors.Is(err, errBadCode):
		n.ctr.droppedBadCode.Add(1)
		return
	case err != nil:
		n.ctr.droppedBadFrame.Add(1)
		return
	}
	m := outMsg{code: code, body: body, size: len(payload)}
	if len(f.GetPeer()) == 0 {
		n.ctr.floodSent.Add(1)
		for _, pc := range n.conns(p.name) {
			n.enqueue(ctx, pc, m)
		}
		return
	}
	var id [32]byte
	if len(f.GetPeer()) != len(id) {
		n.ctr.droppedUnknownPeer.Add(1)
		return
	}
	copy(id[:], f.GetPeer())
	n.mu.RLock()
	var pc *protoConn
	if ps := n.peers[id]; ps != nil {
		pc = ps.conns[p.name]
	}
	n.mu.RUnlock()
	if pc == nil {
		n.ctr.droppedUnknownPeer.Add(1)
		return
	}
	n.enqueue(ctx, pc, m)
}

// conns returns the connections of every peer running protocol name.
func (n *node) conns(name string) []*protoConn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]*protoConn, 0, len(n.peers))
	for _, ps := range n.peers {
		if pc := ps.conns[name]; pc != nil {
			out = append(out, pc)
		}
	}
	return out
}
