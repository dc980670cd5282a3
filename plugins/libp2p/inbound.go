package libp2pplugin

import (
	"context"
	"errors"
	"io"

	"github.com/libp2p/go-libp2p/core/network"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// newInbox returns the node's way up to the host: per-peer queues with the
// peer's token bucket, handed up in turns (see p2pkit.Inbox).
func (n *node) newInbox() *p2pkit.Inbox {
	return p2pkit.NewInbox(p2pkit.InboxConfig{
		Out:         n.out,
		Rate:        n.cfg.PeerInRate,
		Burst:       n.cfg.PeerInBurst,
		BatchFrames: maxEmitBatch,
		RateWaits:   &n.ctr.rateWaits,
		FullWaits:   &n.ctr.inboxFullWaits,
	})
}

// maxEmitBatch bounds how many frames one Emit carries.
const maxEmitBatch = 64

// streamHandler returns the handler of inbound streams on the protocol
// called name.
func (n *node) streamHandler(name string) network.StreamHandler {
	return func(s network.Stream) {
		if !n.tasks.enter() {
			s.Reset()
			return
		}
		defer n.tasks.leave()
		n.readStream(s, name)
	}
}

// readStream reads frames from an inbound stream and puts them in the
// sender's queue up until the stream ends. While the sender's queue is full,
// or its token bucket in debt, the stream is not read: yamux's window, then
// TCP, slow the sender, and no other peer. Bytes that are not a valid frame
// reset the stream and are counted.
func (n *node) readStream(s network.Stream, name string) {
	stop := context.AfterFunc(n.ctx, func() { s.Reset() })
	defer stop()
	from := s.Conn().RemotePeer()
	in := n.in.Open(string(from))
	defer in.Close()
	fr := newFrameReader(s, n.cfg.MaxFrame)
	for {
		p, err := fr.ReadFrame()
		if err != nil {
			n.endStream(s, err)
			return
		}
		n.ctr.framesReceived.Add(1)
		n.ctr.bytesReceived.Add(uint64(len(p)))
		err = in.Put(n.ctx, &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_UP,
			Peer:      []byte(from),
			Protocol:  name,
			Payload:   p,
		})
		if err != nil {
			s.Reset()
			return
		}
	}
}

// endStream closes an inbound stream after ReadFrame returned err.
func (n *node) endStream(s network.Stream, err error) {
	switch {
	case errors.Is(err, io.EOF):
		s.Close()
	case errors.Is(err, errFrameTooLarge), errors.Is(err, errBadLength), errors.Is(err, io.ErrUnexpectedEOF):
		n.ctr.droppedBadFrame.Add(1)
		n.log.Debug("bad frame, resetting stream", "peer", s.Conn().RemotePeer(), "protocol", s.Protocol(), "error", err)
		s.Reset()
	default:
		s.Reset()
	}
}
