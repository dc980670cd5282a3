package devp2p

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// Plugin identity, as reported by Describe.
const (
	name        = "devp2p"
	version     = "0.1.0"
	description = "P2P overlay on go-ethereum's devp2p: RLPx over TCP, secp256k1 node keys and enode URLs, registered subprotocols, optional discv4/discv5."
)

// Layer is the devp2p p2p overlay layer. Create it with New; the SDK
// drives it through sdk.P2P, in order (sdk.Lifecycle): Configure sets the
// fields below node, Start sets node and Stop clears it.
type Layer struct {
	ctr  counters
	node atomic.Pointer[node] // the running node; nil before Start and after Stop

	cfg *Config
	dir string
	key *ecdsa.PrivateKey
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
		// No "broadcast": devp2p has no pubsub topics. A DOWN frame
		// without a peer is flooded to the protocol's peers instead.
		Provides:   []string{sdk.CapUnicast, sdk.CapNamedProtocols, sdk.CapPeerEvents, sdk.CapFlood},
		MaxPayload: defaultMaxFrame,
	}
}

// Configure implements sdk.Layer. It checks the config section and loads
// the node key from req.DataDir or creates it there.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	if env.Out == nil {
		return nil, status.Error(codes.InvalidArgument, "devp2p: Configure without an emitter")
	}
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	sealKey, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, fmt.Errorf("devp2p: %w", err)
	}
	key, created, err := loadOrCreateNodeKey(req.GetDataDir(), sealKey)
	sealKey.Wipe()
	if err != nil {
		return nil, fmt.Errorf("devp2p: %w", err)
	}
	lg := env.Logger
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	lg.Info("node key loaded", "node_id", enode.PubkeyToIDV4(&key.PublicKey).String(), "created", created, "node", req.GetNodeName())
	l.cfg, l.key, l.out, l.log = &cfg, key, env.Out, lg
	l.dir = req.GetDataDir()
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. It registers every requested protocol as a
// devp2p subprotocol and starts the server: listener, static dials and
// discovery as configured.
func (l *Layer) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	protos, err := newProtocolTable(req.GetProtocols())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "devp2p: %v", err)
	}
	n, err := l.startSticky(ctx, protos)
	if err != nil {
		if ce := p2pkit.ListenError(err, "listen", []string{l.cfg.Listen}); ce != err {
			return nil, ce
		}
		return nil, fmt.Errorf("devp2p: start: %w", err)
	}
	local, err := n.localNode()
	if err != nil {
		if cerr := n.close(ctx); cerr != nil {
			l.log.Warn("closing node after failed start", "error", cerr)
		}
		return nil, fmt.Errorf("devp2p: start: %w", err)
	}
	l.node.Store(n)
	l.log.Info("started", "enode", local.GetDisplayId(), "listen", n.srv.ListenAddr, "discovery", l.cfg.Discovery)
	return &commonv1.StartResponse{
		LocalAddress:   n.self[:],
		ContactSection: local.GetContactSection(),
		DisplayAddress: local.GetDisplayId(),
	}, nil
}

// startSticky starts the node on the port it had last time when the
// listen port is 0 and sticky_port is on, and records the address it got.
// If the remembered port is taken now, the node starts on a fresh one.
func (l *Layer) startSticky(ctx context.Context, protos protocolTable) (*node, error) {
	cfg := l.cfg
	try := func(listen string) (*node, error) {
		n := newNode(ctx, cfg, protos, l.out, l.log, &l.ctr)
		if l.stall > 0 {
			n.stall = l.stall
		}
		if err := n.start(l.key, listen); err != nil {
			return nil, err
		}
		return n, nil
	}
	if cfg.StickyPort {
		listen, err := l.sticky().Resolve([]string{cfg.Listen})
		if err != nil {
			l.log.Warn("could not read the remembered listen port", "error", err)
		}
		if listen[0] != cfg.Listen {
			n, err := try(listen[0])
			if err == nil {
				l.rememberPort(n)
				return n, nil
			}
			l.log.Warn("the remembered listen port is not free; listening on a new one (contacts need the new enode URL)", "error", err)
		}
	}
	n, err := try(cfg.Listen)
	if err == nil && cfg.StickyPort {
		l.rememberPort(n)
	}
	return n, err
}

// sticky keeps the listen port in the data directory.
func (l *Layer) sticky() p2pkit.Sticky {
	return p2pkit.Sticky{Dir: l.dir, Shape: p2pkit.HostPortShape}
}

func (l *Layer) rememberPort(n *node) {
	if err := l.sticky().Save([]string{n.srv.ListenAddr}); err != nil {
		l.log.Warn("could not remember the listen port", "error", err)
	}
}

// HandleBatch implements sdk.Layer. DOWN frames with a peer are queued for
// that peer on their protocol; DOWN frames without one are queued for
// every peer that runs the protocol. A frame that finds a peer's queue
// full, or its byte budget spent, waits for room, which slows the sender
// to the peer's pace; only a peer that makes no room for the stall timeout
// is disconnected and its frames dropped (see enqueue).
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
	peers := n.peerCount()
	return &commonv1.HealthResponse{
		Serving:  true,
		Detail:   fmt.Sprintf("node %s, %d peers", n.self.TerminalString(), peers),
		Counters: l.ctr.snapshot(peers, n.queuedBytes()),
	}
}

// Stop implements sdk.Layer. It writes what is queued (briefly) and stops
// the server.
func (l *Layer) Stop(ctx context.Context) error {
	n := l.node.Swap(nil)
	if n == nil {
		return nil
	}
	if err := n.close(ctx); err != nil {
		return fmt.Errorf("devp2p: stop: %w", err)
	}
	l.log.Info("stopped")
	return nil
}
