package libp2pplugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

// running returns the started node, or a FailedPrecondition error.
func (l *Layer) running() (*node, error) {
	n := l.node.Load()
	if n == nil {
		return nil, status.Error(codes.FailedPrecondition, "libp2p: layer is not started")
	}
	return n, nil
}

// NodeInfo implements p2pv1.ControlServer.
func (l *Layer) NodeInfo(ctx context.Context, req *p2pv1.NodeInfoRequest) (*p2pv1.LocalNode, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	local, err := n.localNode()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "libp2p: %v", err)
	}
	return local, nil
}

// Connect implements p2pv1.ControlServer. The peer is given by a contact
// section or a full multiaddr. It returns once the connection is up or ctx
// ends. A persistent peer is kept connected from then on, even when this
// first dial fails.
func (l *Layer) Connect(ctx context.Context, req *p2pv1.ConnectRequest) (*p2pv1.ConnectResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	var ai peer.AddrInfo
	switch {
	case len(req.GetContactSection()) > 0 && req.GetAddress() != "":
		return nil, status.Error(codes.InvalidArgument, "libp2p: set contact_section or address, not both")
	case len(req.GetContactSection()) > 0:
		if ai, err = decodeContact(req.GetContactSection()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "libp2p: %v", err)
		}
	case req.GetAddress() != "":
		if ai, err = parseAddress(req.GetAddress()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "libp2p: address %q: %v", req.GetAddress(), err)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "libp2p: set contact_section or address")
	}
	if ai.ID == n.self {
		return nil, status.Error(codes.InvalidArgument, "libp2p: cannot connect to this node itself")
	}
	if req.GetPersistent() {
		n.dialer.keep(ai)
	}
	if err := n.h.Connect(ctx, ai); err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "libp2p: connect to %s: %v", ai.ID, err)
	}
	return &p2pv1.ConnectResponse{Peer: n.peerInfo(ai.ID)}, nil
}

// Disconnect implements p2pv1.ControlServer. It stops redialing the peer,
// forgets its addresses, so that nothing inside the node (a unicast frame,
// GossipSub reopening its stream) dials it again, and closes its
// connections. The peer may still connect to this node, and Connect makes
// it reachable again.
func (l *Layer) Disconnect(ctx context.Context, req *p2pv1.DisconnectRequest) (*p2pv1.DisconnectResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromBytes(req.GetId())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "libp2p: peer id: %v", err)
	}
	n.dialer.forget(id)
	n.h.Peerstore().ClearAddrs(id)
	if err := n.h.Network().ClosePeer(id); err != nil {
		return nil, status.Errorf(codes.Internal, "libp2p: disconnect %s: %v", id, err)
	}
	return &p2pv1.DisconnectResponse{}, nil
}

// Peers implements p2pv1.ControlServer.
func (l *Layer) Peers(ctx context.Context, req *p2pv1.PeersRequest) (*p2pv1.PeersResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	ids := n.h.Network().Peers()
	resp := &p2pv1.PeersResponse{Peers: make([]*p2pv1.PeerInfo, 0, len(ids))}
	for _, id := range ids {
		resp.Peers = append(resp.Peers, n.peerInfo(id))
	}
	return resp, nil
}

// Subscribe implements p2pv1.ControlServer.
func (l *Layer) Subscribe(ctx context.Context, req *p2pv1.SubscribeRequest) (*p2pv1.SubscribeResponse, error) {
	b, err := l.broadcaster()
	if err != nil {
		return nil, err
	}
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "libp2p: %v", err)
	}
	if err := b.subscribe(req.GetTopic()); err != nil {
		if errors.Is(err, errTooManyTopics) {
			return nil, status.Errorf(codes.ResourceExhausted, "libp2p: %v", err)
		}
		return nil, status.Errorf(codes.Internal, "libp2p: %v", err)
	}
	return &p2pv1.SubscribeResponse{}, nil
}

// Unsubscribe implements p2pv1.ControlServer. Leaving a topic that is not
// subscribed is not an error.
func (l *Layer) Unsubscribe(ctx context.Context, req *p2pv1.UnsubscribeRequest) (*p2pv1.UnsubscribeResponse, error) {
	b, err := l.broadcaster()
	if err != nil {
		return nil, err
	}
	if err := checkTopic(req.GetTopic()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "libp2p: %v", err)
	}
	b.unsubscribe(req.GetTopic())
	return &p2pv1.UnsubscribeResponse{}, nil
}

// broadcaster returns the running node's broadcaster, or a
// FailedPrecondition error.
func (l *Layer) broadcaster() (*broadcaster, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	if n.bcast == nil {
		return nil, status.Error(codes.FailedPrecondition, "libp2p: broadcast needs gossipsub: true")
	}
	return n.bcast, nil
}

// peerInfo describes a peer: its remote addresses, whether the first
// connection was dialed by this node, and the registered protocols it
// speaks.
func (n *node) peerInfo(id peer.ID) *p2pv1.PeerInfo {
	pi := &p2pv1.PeerInfo{Id: []byte(id), DisplayId: id.String()}
	conns := n.h.Network().ConnsToPeer(id)
	for _, c := range conns {
		pi.Addresses = append(pi.Addresses, fmt.Sprintf("%s/p2p/%s", c.RemoteMultiaddr(), id))
	}
	if len(conns) > 0 {
		pi.Outbound = conns[0].Stat().Direction == network.DirOutbound
	}
	if protos, err := n.h.Peerstore().GetProtocols(id); err == nil {
		pi.Protocols = n.protos.names(protos)
	}
	return pi
}
