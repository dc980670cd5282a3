package devp2p

import (
	"bytes"
	"context"
	"errors"
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
	rw    p2p.MsgReadWriter
	q     chan outMsg
	done  chan struct{}
	busy  atomic.Int32 // 1 while the writer holds a message it took off q
	// stalled is set once a frame waited stallTimeout for room in q and
	// the peer was disconnected; later frames for it are dropped at once.
	stalled atomic.Bool
}

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
	if k := len(pc.q); k > 0 {
		n.ctr.droppedWriteError.Add(uint64(k))
	}
	return err
}

// read reads messages until the connection ends and queues them up. When
// the queue to the host is full it waits for room and reads nothing
// meanwhile: the host (and so the layer above) slows the peer down through
// TCP instead of losing its messages. It waits on the host only, never on
// a write to a peer (see docs/architecture.md, "Flow control").
func (n *node) read(pc *protoConn, peer *p2p.Peer) error {
	id := peer.ID()
	for {
		msg, err := pc.rw.ReadMsg()
		if err != nil {
			return err
		}
		if pc.proto.frameSize(msg.Size) > uint64(n.cfg.MaxFrame) {
			n.ctr.droppedOversize.Add(1)
			if err := msg.Discard(); err != nil {
				return err
			}
			continue
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
		if err := n.up.putFrame(n.ctx, f); err != nil {
			n.ctr.droppedNotRunning.Add(1)
			return err
		}
		n.ctr.framesReceived.Add(1)
		n.ctr.bytesReceived.Add(uint64(len(frame)))
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

// enqueue queues m for pc. When the queue is full it waits for room, which
// slows the sender (the host, and the layer above) to the pace of the
// peer's connection instead of dropping the frame. The wait ends without
// queueing when the connection ends (dropped_write_error), when ctx or the
// node ends (dropped_not_running), or after n.stall without room: the peer
// does not read, so it is disconnected (peers_reset_slow) and this frame
// and later ones for it are dropped (dropped_slow_peer). That bound is
// what keeps a peer that never reads from holding the layer's one input
// stream for ever.
func (n *node) enqueue(ctx context.Context, pc *protoConn, m outMsg) {
	if pc.stalled.Load() {
		n.ctr.droppedSlowPeer.Add(1)
		return
	}
	select {
	case pc.q <- m:
		return
	default:
	}
	n.ctr.queueFullWaits.Add(1)
	stall := time.NewTimer(n.stall)
	defer stall.Stop()
	select {
	case pc.q <- m:
	case <-pc.done:
		n.ctr.droppedWriteError.Add(1)
	case <-ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-n.ctx.Done():
		n.ctr.droppedNotRunning.Add(1)
	case <-stall.C:
		n.ctr.droppedSlowPeer.Add(1)
		if pc.stalled.CompareAndSwap(false, true) {
			n.ctr.peersResetSlow.Add(1)
			n.log.Warn("disconnecting a peer that took no frame for the stall timeout", "peer", pc.peer.ID().TerminalString(), "protocol", pc.proto.name, "timeout", n.stall)
			pc.peer.Disconnect(p2p.DiscUselessPeer)
		}
	}
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
