package libp2pplugin

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// send routes one DOWN frame. A unicast frame may wait for room in its
// queue (see unicast).
func (n *node) send(ctx context.Context, f *commonv1.Frame) {
	payload := f.GetPayload()
	if len(payload) > n.cfg.MaxFrame {
		n.ctr.droppedOversize.Add(1)
		n.log.Debug("frame above max_frame refused", "size", len(payload), "max_frame", n.cfg.MaxFrame, "protocol", f.GetProtocol())
		return
	}
	if len(f.GetPeer()) == 0 {
		if n.bcast == nil {
			n.ctr.droppedBroadcast.Add(1)
			n.log.Debug("broadcast frame dropped: gossipsub is off", "topic", f.GetProtocol())
			return
		}
		n.bcast.publish(f.GetProtocol(), payload)
		return
	}
	to, err := peer.IDFromBytes(f.GetPeer())
	if err != nil || to == n.self {
		n.ctr.droppedBadPeer.Add(1)
		return
	}
	proto, ok := n.protos.byName[f.GetProtocol()]
	if !ok {
		n.ctr.droppedUnknownProtocol.Add(1)
		return
	}
	n.unicast(ctx, to, proto, payload)
}
