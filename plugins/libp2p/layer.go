package libp2pplugin

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// Plugin identity, as reported by Describe.
const (
	name        = "libp2p"
	version     = "0.1.0"
	description = "P2P overlay on go-libp2p: TCP/QUIC, Noise/TLS, yamux, named-protocol streams and GossipSub broadcast."
)

// Layer is the libp2p p2p overlay layer. Create it with New; the SDK
// drives it through sdk.P2P, in order (sdk.Lifecycle): Configure sets the
// fields below node, Start sets node and Stop clears it.
type Layer struct {
	ctr  counters
	node atomic.Pointer[node] // the running node; nil before Start and after Stop

	cfg *Config
	dir string // the data directory
	key crypto.PrivKey
	out sdk.Emitter
	log hclog.Logger

	// stall, when set (by tests), replaces stallTimeout.
	stall time.Duration
}

var _ sdk.P2P = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer {
	l := &Layer{log: hclog.NewNullLogger()}
	l.ctr.set = sdk.NewCounters(&l.ctr)
	return l
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_P2P,
		Name:        name,
		Version:     version,
		Description: description,
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapUnicast, sdk.CapBroadcast, sdk.CapNamedProtocols, sdk.CapPeerEvents},
		MaxPayload:  defaultMaxFrame,
	}
}

// Configure implements sdk.Layer. It checks the config section, and loads
// the node's identity from req.DataDir or creates it there.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	if env.Out == nil {
		return nil, status.Error(codes.InvalidArgument, "libp2p: Configure without an emitter")
	}
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	sealKey, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, fmt.Errorf("libp2p: %w", err)
	}
	key, created, err := loadOrCreateIdentity(req.GetDataDir(), sealKey)
	sealKey.Wipe()
	if err != nil {
		return nil, fmt.Errorf("libp2p: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("libp2p: peer id of identity: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log.Info("identity loaded", "peer_id", id, "created", created, "node", req.GetNodeName())
	l.cfg, l.key, l.out, l.log = &cfg, key, env.Out, log
	l.dir = req.GetDataDir()
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. It builds the host, registers the stream
// handler of every requested protocol as /strata/<name>/<version>, and
// starts bootstrap dialing, GossipSub, the DHT and mDNS as configured.
func (l *Layer) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	protos, err := newProtocolTable(req.GetProtocols())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "libp2p: %v", err)
	}
	n, err := l.startSticky(ctx, protos)
	if err != nil {
		listen := make([]string, len(l.cfg.listen))
		for i, a := range l.cfg.listen {
			listen[i] = a.String()
		}
		if ce := p2pkit.ListenError(err, "listen", listen); ce != err {
			return nil, ce
		}
		return nil, fmt.Errorf("libp2p: start: %w", err)
	}
	local, err := n.localNode()
	if err != nil {
		if cerr := n.close(ctx); cerr != nil {
			l.log.Warn("closing node after failed start", "error", cerr)
		}
		return nil, fmt.Errorf("libp2p: start: %w", err)
	}
	if l.stall > 0 {
		n.stall = l.stall
	}
	l.node.Store(n)
	display := "/p2p/" + n.self.String()
	if len(local.GetListenAddresses()) > 0 {
		display = local.GetListenAddresses()[0]
	}
	l.log.Info("started", "peer_id", n.self, "addresses", local.GetListenAddresses())
	return &commonv1.StartResponse{
		LocalAddress:   []byte(n.self),
		ContactSection: local.GetContactSection(),
		DisplayAddress: display,
	}, nil
}

// startSticky starts the node on the ports it had last time when the
// config leaves them to the system (port 0) and sticky_ports is on, and
// records the ports it got. If a remembered port is taken now, the node
// starts on fresh ones.
func (l *Layer) startSticky(ctx context.Context, protos protocolTable) (*node, error) {
	cfg := l.cfg
	if cfg.StickyPorts && len(cfg.listen) > 0 {
		listen, err := l.stickyListen(cfg.listen)
		if err != nil {
			l.log.Warn("could not read the remembered listen ports", "error", err)
		}
		sticky := *cfg
		sticky.listen = listen
		n, err := startNode(ctx, &sticky, l.key, protos, l.out, l.log, &l.ctr)
		if err == nil {
			l.rememberPorts(n)
			return n, nil
		}
		if fmt.Sprint(listen) == fmt.Sprint(cfg.listen) {
			return nil, err
		}
		l.log.Warn("the remembered listen ports are not free; listening on new ones (contacts need the new card)", "error", err)
	}
	n, err := startNode(ctx, cfg, l.key, protos, l.out, l.log, &l.ctr)
	if err == nil && cfg.StickyPorts {
		l.rememberPorts(n)
	}
	return n, err
}

// sticky keeps the listen ports in the data directory.
func (l *Layer) sticky() p2pkit.Sticky {
	return p2pkit.Sticky{Dir: l.dir, Shape: p2pkit.MultiaddrShape}
}

// stickyListen returns the listen addresses to try first: each of listen
// with port 0 replaced by the address of its shape the node had last time.
func (l *Layer) stickyListen(listen []ma.Multiaddr) ([]ma.Multiaddr, error) {
	strs := make([]string, len(listen))
	for i, a := range listen {
		strs[i] = a.String()
	}
	got, err := l.sticky().Resolve(strs)
	out := make([]ma.Multiaddr, len(got))
	for i, s := range got {
		a, perr := ma.NewMultiaddr(s)
		if perr != nil { // a corrupt remembered address: the configured one
			a = listen[i]
		}
		out[i] = a
	}
	return out, err
}

func (l *Layer) rememberPorts(n *node) {
	var addrs []string
	for _, a := range n.h.Network().ListenAddresses() {
		addrs = append(addrs, a.String())
	}
	if err := l.sticky().Save(addrs); err != nil {
		l.log.Warn("could not remember the listen ports", "error", err)
	}
}

// HandleBatch implements sdk.Layer. DOWN frames with a peer are queued for
// that peer on their protocol; DOWN frames without one are broadcast on the
// topic their protocol names. A frame that finds its queue full, or its
// peer's byte budget spent, waits for room, which slows the sender to the
// peer's pace; only a peer that makes no room for the stall timeout is
// disconnected and its frames dropped (see unicast).
func (l *Layer) HandleBatch(ctx context.Context, batch *commonv1.Batch) {
	if k := len(batch.GetEvents()); k > 0 {
		l.ctr.ignoredEvents.Add(uint64(k))
	}
	n := l.node.Load()
	for _, f := range batch.GetFrames() {
		switch {
		case f.GetDirection() != commonv1.Direction_DIRECTION_DOWN:
			l.ctr.droppedWrongDirection.Add(1)
		default: // the SDK hands batches over only while the node runs
			n.send(ctx, f)
		}
	}
}

// Health implements sdk.Layer.
func (l *Layer) Health(ctx context.Context) *commonv1.HealthResponse {
	n := l.node.Load()
	if n == nil { // the SDK says why
		return &commonv1.HealthResponse{Counters: l.ctr.snapshot(0, 0)}
	}
	peers := len(n.h.Network().Peers())
	return &commonv1.HealthResponse{
		Serving:  true,
		Detail:   fmt.Sprintf("peer %s, %d peers", n.self, peers),
		Counters: l.ctr.snapshot(peers, n.outq.queuedBytes()),
	}
}

// Stop implements sdk.Layer. It writes what is queued (briefly), ends all
// of the layer's goroutines and closes GossipSub, the DHT, mDNS and the
// host.
func (l *Layer) Stop(ctx context.Context) error {
	n := l.node.Swap(nil)
	if n == nil {
		return nil
	}
	if err := n.close(ctx); err != nil {
		return fmt.Errorf("libp2p: stop: %w", err)
	}
	l.log.Info("stopped")
	return nil
}
