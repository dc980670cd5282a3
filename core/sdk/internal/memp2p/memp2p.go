// Package memp2p is a p2p layer whose overlay is a map in memory: the
// instances of one process reach each other, nothing else does. It exists
// to show that the p2p conformance suite can be passed by a minimal honest
// layer, and that it fails layers broken on purpose (core/sdk's mutation
// tests). It runs in process only.
package memp2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// MaxPayload is the largest frame payload the layer carries.
const MaxPayload = 4096

// hub is the overlay: every started instance by its id.
var hub = struct {
	sync.Mutex
	nodes map[string]*Layer
}{nodes: map[string]*Layer{}}

// Layer is one overlay node.
type Layer struct {
	p2pv1.UnimplementedControlServer

	mu     sync.Mutex
	env    sdk.Env
	id     []byte
	peers  map[string]*Layer
	topics map[string]bool

	sent, received, oversize, unknownPeer atomic.Uint64
}

var _ sdk.P2P = (*Layer)(nil)

// New returns an unconfigured node.
func New() *Layer { return &Layer{peers: map[string]*Layer{}, topics: map[string]bool{}} }

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind: commonv1.LayerKind_LAYER_KIND_P2P, Name: "memp2p", Version: "1.0.0",
		Description: "an overlay in one process's memory; a test fixture",
		Provides:    []string{sdk.CapUnicast, sdk.CapBroadcast, sdk.CapNamedProtocols, sdk.CapPeerEvents},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer; the layer takes no keys.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	var none struct{}
	if err := sdk.DecodeConfig(req.GetConfigJson(), &none); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.env = env
	l.mu.Unlock()
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer: the node joins the hub under a random id.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	id := make([]byte, 8)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	l.mu.Lock()
	l.id = id
	l.mu.Unlock()
	hub.Lock()
	hub.nodes[string(id)] = l
	hub.Unlock()
	return &commonv1.StartResponse{LocalAddress: id, ContactSection: id, DisplayAddress: "mem:" + hex.EncodeToString(id)}, nil
}

// HandleBatch implements sdk.Layer: DOWN frames go to their peer, or to
// every connected peer subscribed to their topic.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	for _, f := range b.GetFrames() {
		if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
			continue
		}
		if len(f.GetPayload()) > MaxPayload {
			l.oversize.Add(1)
			continue
		}
		l.mu.Lock()
		var to []*Layer
		if len(f.GetPeer()) == 0 {
			for _, p := range l.peers {
				if p.subscribed(f.GetProtocol()) {
					to = append(to, p)
				}
			}
		} else if p := l.peers[string(f.GetPeer())]; p != nil {
			to = []*Layer{p}
		}
		id := l.id
		l.mu.Unlock()
		if len(to) == 0 && len(f.GetPeer()) > 0 {
			l.unknownPeer.Add(1)
		}
		for _, p := range to {
			l.sent.Add(1)
			p.receive(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: bytes.Clone(id), Protocol: f.GetProtocol(), Payload: bytes.Clone(f.GetPayload())})
		}
	}
}

func (l *Layer) subscribed(topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topics[topic]
}

func (l *Layer) receive(ctx context.Context, f *commonv1.Frame) {
	l.mu.Lock()
	out := l.env.Out
	l.mu.Unlock()
	if out != nil && out.Emit(ctx, f) == nil {
		l.received.Add(1)
	}
}

func (l *Layer) event(peer []byte, state commonv1.PeerState) {
	l.mu.Lock()
	out := l.env.Out
	l.mu.Unlock()
	if out != nil {
		_ = out.EmitEvent(context.Background(), &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: bytes.Clone(peer), State: state}}})
	}
}

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	started, peers := l.id != nil, len(l.peers)
	l.mu.Unlock()
	return &commonv1.HealthResponse{Serving: started, Counters: map[string]uint64{
		"frames_sent": l.sent.Load(), "frames_received": l.received.Load(), "peers": uint64(peers),
		"dropped_oversize": l.oversize.Load(), "dropped_unknown_peer": l.unknownPeer.Load(),
	}}
}

// Stop implements sdk.Layer: the node leaves the hub and its peers.
func (l *Layer) Stop(context.Context) error {
	l.mu.Lock()
	id := l.id
	peers := make([]*Layer, 0, len(l.peers))
	for _, p := range l.peers {
		peers = append(peers, p)
	}
	l.mu.Unlock()
	for _, p := range peers {
		l.unlink(p)
	}
	hub.Lock()
	delete(hub.nodes, string(id))
	hub.Unlock()
	return nil
}

// NodeInfo implements p2pv1.ControlServer.
func (l *Layer) NodeInfo(context.Context, *p2pv1.NodeInfoRequest) (*p2pv1.LocalNode, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &p2pv1.LocalNode{Id: l.id, DisplayId: hex.EncodeToString(l.id), ContactSection: l.id}, nil
}

// Connect implements p2pv1.ControlServer: it links two nodes of the hub
// and tells both.
func (l *Layer) Connect(_ context.Context, req *p2pv1.ConnectRequest) (*p2pv1.ConnectResponse, error) {
	hub.Lock()
	p := hub.nodes[string(req.GetContactSection())]
	hub.Unlock()
	if p == nil || p == l {
		return nil, status.Errorf(codes.NotFound, "memp2p: no node %x", req.GetContactSection())
	}
	l.mu.Lock()
	l.peers[string(p.id)] = p
	me := l.id
	l.mu.Unlock()
	p.mu.Lock()
	p.peers[string(me)] = l
	p.mu.Unlock()
	l.event(p.id, commonv1.PeerState_PEER_STATE_CONNECTED)
	p.event(me, commonv1.PeerState_PEER_STATE_CONNECTED)
	return &p2pv1.ConnectResponse{Peer: &p2pv1.PeerInfo{Id: p.id, DisplayId: hex.EncodeToString(p.id), Outbound: true}}, nil
}

// unlink ends the link between l and p and tells both.
func (l *Layer) unlink(p *Layer) {
	l.mu.Lock()
	delete(l.peers, string(p.id))
	me := l.id
	l.mu.Unlock()
	p.mu.Lock()
	delete(p.peers, string(me))
	p.mu.Unlock()
	l.event(p.id, commonv1.PeerState_PEER_STATE_DISCONNECTED)
	p.event(me, commonv1.PeerState_PEER_STATE_DISCONNECTED)
}

// Disconnect implements p2pv1.ControlServer.
func (l *Layer) Disconnect(_ context.Context, req *p2pv1.DisconnectRequest) (*p2pv1.DisconnectResponse, error) {
	l.mu.Lock()
	p := l.peers[string(req.GetId())]
	l.mu.Unlock()
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "memp2p: not connected to %x", req.GetId())
	}
	l.unlink(p)
	return &p2pv1.DisconnectResponse{}, nil
}

// Peers implements p2pv1.ControlServer.
func (l *Layer) Peers(context.Context, *p2pv1.PeersRequest) (*p2pv1.PeersResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	resp := &p2pv1.PeersResponse{}
	for id := range l.peers {
		resp.Peers = append(resp.Peers, &p2pv1.PeerInfo{Id: []byte(id), DisplayId: hex.EncodeToString([]byte(id))})
	}
	return resp, nil
}

// Subscribe implements p2pv1.ControlServer.
func (l *Layer) Subscribe(_ context.Context, req *p2pv1.SubscribeRequest) (*p2pv1.SubscribeResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "memp2p: empty topic")
	}
	l.mu.Lock()
	l.topics[req.GetTopic()] = true
	l.mu.Unlock()
	return &p2pv1.SubscribeResponse{}, nil
}

// Unsubscribe implements p2pv1.ControlServer.
func (l *Layer) Unsubscribe(_ context.Context, req *p2pv1.UnsubscribeRequest) (*p2pv1.UnsubscribeResponse, error) {
	l.mu.Lock()
	delete(l.topics, req.GetTopic())
	l.mu.Unlock()
	return &p2pv1.UnsubscribeResponse{}, nil
}

// String names the node for logs.
func (l *Layer) String() string { return fmt.Sprintf("memp2p %x", l.id) }
