package devp2p

import (
	"context"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
)

// connectPoll is how often Connect checks whether the peer is up.
const connectPoll = 20 * time.Millisecond

// running returns the started node, or a FailedPrecondition error.
func (l *Layer) running() (*node, error) {
	n := l.node.Load()
	if n == nil {
		return nil, status.Error(codes.FailedPrecondition, "devp2p: layer is not started")
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
		return nil, status.Errorf(codes.Internal, "devp2p: %v", err)
	}
	return local, nil
}

// Connect implements p2pv1.ControlServer. The peer is given by a contact
// section or an enode URL. The node is added to the server's static set,
// so devp2p dials it and redials it when it drops; without persistent it
// is taken out of the set again when its first connection ends (or when
// ctx ends before it is up). Connect returns once the peer runs one of the
// registered protocols (or, with none registered, once it is connected).
func (l *Layer) Connect(ctx context.Context, req *p2pv1.ConnectRequest) (*p2pv1.ConnectResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	var dest *enode.Node
	switch {
	case len(req.GetContactSection()) > 0 && req.GetAddress() != "":
		return nil, status.Error(codes.InvalidArgument, "devp2p: set contact_section or address, not both")
	case len(req.GetContactSection()) > 0:
		if dest, err = decodeContact(req.GetContactSection()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "devp2p: %v", err)
		}
	case req.GetAddress() != "":
		if dest, err = parseNode(req.GetAddress()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "devp2p: address %.200q: %v", req.GetAddress(), err)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "devp2p: set contact_section or address")
	}
	id := dest.ID()
	if id == n.self {
		return nil, status.Error(codes.InvalidArgument, "devp2p: cannot connect to this node itself")
	}
	if pi := n.peerInfo(id); pi != nil {
		if req.GetPersistent() {
			n.keep(dest)
		}
		return &p2pv1.ConnectResponse{Peer: pi}, nil
	}
	if req.GetPersistent() {
		n.keep(dest)
	} else {
		n.once(dest)
	}
	n.srv.AddPeer(dest)
	tick := time.NewTicker(connectPoll)
	defer tick.Stop()
	for {
		if pi := n.peerInfo(id); pi != nil {
			return &p2pv1.ConnectResponse{Peer: pi}, nil
		}
		if len(n.protos.list) == 0 && n.serverHas(id) {
			return &p2pv1.ConnectResponse{Peer: &p2pv1.PeerInfo{Id: id[:], DisplayId: dest.URLv4(), Addresses: []string{dest.URLv4()}, Outbound: true}}, nil
		}
		select {
		case <-ctx.Done():
			if n.forgetOnce(id) {
				go n.srv.RemovePeer(dest)
			}
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-n.ctx.Done():
			return nil, status.Error(codes.Unavailable, "devp2p: layer is stopping")
		case <-tick.C:
		}
	}
}

// Disconnect implements p2pv1.ControlServer. It takes the peer out of the
// static set, so that it is not redialed, and closes its connection. The
// peer may still connect to this node; Connect makes it reachable again.
func (l *Layer) Disconnect(ctx context.Context, req *p2pv1.DisconnectRequest) (*p2pv1.DisconnectResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	if len(req.GetId()) != len(enode.ID{}) {
		return nil, status.Errorf(codes.InvalidArgument, "devp2p: peer id is %d bytes, want a %d-byte node id", len(req.GetId()), len(enode.ID{}))
	}
	id := enode.ID(req.GetId())
	dest := n.forget(id)
	if dest == nil {
		return &p2pv1.DisconnectResponse{}, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.srv.RemovePeer(dest)
	}()
	select {
	case <-done:
		return &p2pv1.DisconnectResponse{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// Peers implements p2pv1.ControlServer. It lists peers that run at least
// one registered protocol.
func (l *Layer) Peers(ctx context.Context, req *p2pv1.PeersRequest) (*p2pv1.PeersResponse, error) {
	n, err := l.running()
	if err != nil {
		return nil, err
	}
	n.mu.RLock()
	ids := make([]enode.ID, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	n.mu.RUnlock()
	resp := &p2pv1.PeersResponse{Peers: make([]*p2pv1.PeerInfo, 0, len(ids))}
	for _, id := range ids {
		if pi := n.peerInfo(id); pi != nil {
			resp.Peers = append(resp.Peers, pi)
		}
	}
	return resp, nil
}

// Subscribe implements p2pv1.ControlServer. devp2p has no pubsub topics.
func (l *Layer) Subscribe(ctx context.Context, req *p2pv1.SubscribeRequest) (*p2pv1.SubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "devp2p: no broadcast topics; a DOWN frame without a peer goes to every peer of its protocol")
}

// Unsubscribe implements p2pv1.ControlServer. devp2p has no pubsub topics.
func (l *Layer) Unsubscribe(ctx context.Context, req *p2pv1.UnsubscribeRequest) (*p2pv1.UnsubscribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "devp2p: no broadcast topics")
}

// peerInfo describes a connected peer, or returns nil.
func (n *node) peerInfo(id enode.ID) *p2pv1.PeerInfo {
	n.mu.RLock()
	ps := n.peers[id]
	n.mu.RUnlock()
	if ps == nil {
		return nil
	}
	url := ps.p.Node().URLv4()
	return &p2pv1.PeerInfo{
		Id:        id[:],
		DisplayId: url,
		Addresses: []string{url},
		Outbound:  !ps.p.Inbound(),
		Protocols: n.sharedProtocols(ps.p),
	}
}

// serverHas reports whether the server has a connection to id, whatever
// its protocols.
func (n *node) serverHas(id enode.ID) bool {
	for _, p := range n.srv.Peers() {
		if p.ID() == id {
			return true
		}
	}
	return false
}

// keep makes dest a persistent peer.
func (n *node) keep(dest *enode.Node) {
	n.mu.Lock()
	delete(n.oneShot, dest.ID())
	n.mu.Unlock()
	n.srv.AddPeer(dest)
}

// once marks dest as dialed once, unless it is persistent already.
func (n *node) once(dest *enode.Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.cfg.static {
		if s.ID() == dest.ID() {
			return
		}
	}
	n.oneShot[dest.ID()] = dest
}

// forgetOnce drops a dial-once mark; it reports whether there was one.
func (n *node) forgetOnce(id enode.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.oneShot[id]
	delete(n.oneShot, id)
	return ok
}

// forget drops what the node knows of id's dialing and returns a node
// record to remove from the server, or nil when there is nothing to do.
func (n *node) forget(id enode.ID) *enode.Node {
	n.mu.Lock()
	dest := n.oneShot[id]
	delete(n.oneShot, id)
	if ps := n.peers[id]; ps != nil {
		dest = ps.p.Node()
	}
	n.mu.Unlock()
	if dest == nil {
		for _, s := range n.cfg.static {
			if s.ID() == id {
				dest = s
			}
		}
	}
	if dest == nil {
		// Connected, but running none of the registered protocols.
		for _, p := range n.srv.Peers() {
			if p.ID() == id {
				dest = p.Node()
			}
		}
	}
	return dest
}
