package libp2pplugin

import (
	"context"
	"errors"
	"io"

	"github.com/libp2p/go-libp2p/core/network"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// maxEmitBatch bounds how many already-buffered frames one Emit carries.
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

// readStream reads frames from an inbound stream and sends them up until
// the stream ends. Frames that are already buffered go up together. Bytes
// that are not a valid frame reset the stream and are counted.
func (n *node) readStream(s network.Stream, name string) {
	stop := context.AfterFunc(n.ctx, func() { s.Reset() })
	defer stop()
	from := s.Conn().RemotePeer()
	fr := newFrameReader(s, n.cfg.MaxFrame)
	batch := make([]*commonv1.Frame, 0, maxEmitBatch)
	for {
		p, err := fr.ReadFrame()
		if err != nil {
			if len(batch) > 0 && n.emit(batch...) != nil {
				s.Reset()
				return
			}
			n.endStream(s, err)
			return
		}
		n.ctr.framesReceived.Add(1)
		n.ctr.bytesReceived.Add(uint64(len(p)))
		batch = append(batch, &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_UP,
			Peer:      []byte(from),
			Protocol:  name,
			Payload:   p,
		})
		if len(batch) < maxEmitBatch && fr.complete() {
			continue
		}
		if err := n.emit(batch...); err != nil {
			s.Reset()
			return
		}
		batch = make([]*commonv1.Frame, 0, maxEmitBatch)
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
