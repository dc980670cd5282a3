package devp2p

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"

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
	rw    p2p.MsgReadWriter
	q     chan outMsg
	done  chan struct{}
	busy  atomic.Int32 // 1 while the writer holds a message it took off q
}

// run is the devp2p Run function of protocol p on peer: it registers the
// connection, starts its writer, and reads messages until the connection
// ends. It never waits for the host: inbound frames that find the queue to
// the host full are dropped and counted.
func (n *node) run(p *protocol, peer *p2p.Peer, rw p2p.MsgReadWriter) error {
	pc := &protoConn{proto: p, rw: rw, q: make(chan outMsg, n.cfg.queue), done: make(chan struct{})}
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

// read reads messages until the connection ends and queues them up.
func (n *node) read(pc *protoConn, peer *p2p.Peer) error {
	id := peer.ID()
	for {
		msg, err := pc.rw.ReadMsg()
		if err != nil {
			return err
		}
		if pc.proto.frameSize(msg.Size) > uint64(n.cfg.maxFrame) {
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
		if !n.up.put(upItem{frame: f}) {
			n.ctr.droppedUpQueueFull.Add(1)
			continue
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

// enqueue queues m for pc, dropping and counting it when the queue is full.
func (n *node) enqueue(pc *protoConn, m outMsg) {
	select {
	case pc.q <- m:
	default:
		n.ctr.droppedQueueFull.Add(1)
	}
}

// send queues a DOWN frame: for its peer, or, without one, for every peer
// connected on its protocol.
func (n *node) send(f *commonv1.Frame) {
	p := n.protos.byName[f.GetProtocol()]
	if p == nil {
		n.ctr.droppedUnknownProtocol.Add(1)
		return
	}
	payload := f.GetPayload()
	if len(payload) > n.cfg.maxFrame {
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
	n.mu.RLock()
	defer n.mu.RUnlock()
	if len(f.GetPeer()) == 0 {
		n.ctr.floodSent.Add(1)
		for _, ps := range n.peers {
			if pc := ps.conns[p.name]; pc != nil {
				n.enqueue(pc, m)
			}
		}
		return
	}
	var id [32]byte
	if len(f.GetPeer()) != len(id) {
		n.ctr.droppedUnknownPeer.Add(1)
		return
	}
	copy(id[:], f.GetPeer())
	ps := n.peers[id]
	if ps == nil || ps.conns[p.name] == nil {
		n.ctr.droppedUnknownPeer.Add(1)
		return
	}
	n.enqueue(ps.conns[p.name], m)
}
