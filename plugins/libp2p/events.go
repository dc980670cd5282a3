package libp2pplugin

import (
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// watchPeers turns the host's connectivity events into PeerEvents, one per
// change of a peer's state. A peer counts as connected once identify has
// run on its first connection, so that the event can name the protocols it
// speaks and a stream opened in response does not wait; it counts as
// disconnected when its last connection closes. Persistent peers that
// disconnect, reported connected or not yet, are handed to the dialer; a peer that connects again is no
// longer taken for one that does not read (see unicast). An event goes
// up behind the frames its peer has waiting and never waits itself, so
// the event bus never backs up; one that finds the inbox's event bound
// reached is dropped and counted (dropped_events).
func (n *node) watchPeers(sub event.Subscription) {
	defer sub.Close()
	connected := make(map[peer.ID]bool)
	for {
		var e any
		var ok bool
		select {
		case <-n.ctx.Done():
			return
		case e, ok = <-sub.Out():
			if !ok {
				return
			}
		}
		var ev *commonv1.PeerEvent
		switch e := e.(type) {
		case event.EvtPeerIdentificationCompleted:
			ev = n.peerUp(connected, e.Peer, e.Protocols)
		case event.EvtPeerIdentificationFailed:
			ev = n.peerUp(connected, e.Peer, nil)
		case event.EvtPeerConnectednessChanged:
			if e.Connectedness == network.Connected {
				n.outq.connected(e.Peer)
			}
			if e.Connectedness != network.Connected {
				// A persistent peer is redialed whether or not it was
				// reported connected: its connection may have closed
				// while identify ran.
				n.dialer.lost(e.Peer)
			}
			if e.Connectedness != network.Connected && connected[e.Peer] {
				delete(connected, e.Peer)
				ev = &commonv1.PeerEvent{Peer: []byte(e.Peer), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}
			}
		}
		if ev == nil {
			continue
		}
		if !n.in.Event(string(ev.GetPeer()), &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: ev}}) {
			n.ctr.droppedPeerEvents.Add(1)
			n.log.Warn("peer event dropped: too many events wait for the host", "peer", peer.ID(ev.GetPeer()), "state", ev.GetState())
		}
	}
}

// peerUp returns the CONNECTED event for p after identify, or nil when p
// was already reported or is no longer connected.
func (n *node) peerUp(connected map[peer.ID]bool, p peer.ID, protos []protocol.ID) *commonv1.PeerEvent {
	if connected[p] || n.h.Network().Connectedness(p) != network.Connected {
		return nil
	}
	if protos == nil {
		protos, _ = n.h.Peerstore().GetProtocols(p)
	}
	connected[p] = true
	return &commonv1.PeerEvent{
		Peer:      []byte(p),
		State:     commonv1.PeerState_PEER_STATE_CONNECTED,
		Protocols: n.protos.names(protos),
	}
}
