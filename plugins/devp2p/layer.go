package devp2p

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Plugin identity, as reported by Describe.
const (
	name        = "devp2p"
	version     = "0.1.0"
	description = "P2P overlay on go-ethereum's devp2p: RLPx over TCP, secp256k1 node keys and enode URLs, registered subprotocols, optional discv4/discv5."
)

// phase is where a Layer is in its life.
type phase int32

const (
	phaseNew phase = iota
	phaseConfigured
	phaseStarted
	phaseStopped
)

// String describes p for Health.
func (p phase) String() string {
	switch p {
	case phaseNew:
		return "not configured"
	case phaseConfigured:
		return "configured, not started"
	case phaseStarted:
		return "started"
	default:
		return "stopped"
	}
}

// Layer is the devp2p p2p overlay layer. Create it with New; the host
// drives it through sdk.P2P.
type Layer struct {
	ctr  counters
	node atomic.Pointer[node] // the running node; nil before Start and after Stop

	phase atomic.Int32 // a phase; written under mu, read by Health without it

	mu  sync.Mutex // serialises Configure, Start and Stop
	cfg *config
	dir string
	key *ecdsa.PrivateKey
	out sdk.Emitter
	log hclog.Logger

	// stall, when set (by tests), replaces stallTimeout.
	stall time.Duration
}

var _ sdk.P2P = (*Layer)(nil)

func (l *Layer) current() phase { return phase(l.phase.Load()) }

// enter moves the layer to phase p; the caller holds l.mu.
func (l *Layer) enter(p phase) { l.phase.Store(int32(p)) }

// New returns an unconfigured layer.
func New() *Layer {
	return &Layer{log: hclog.NewNullLogger()}
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_P2P,
		Name:        name,
		Version:     version,
		Description: description,
		Config:      configSchema(),
		// No "broadcast": devp2p has no pubsub topics. A DOWN frame
		// without a peer is flooded to the protocol's peers instead.
		Provides:   []string{"unicast", "named-protocols", "peer-events", "flood"},
		MaxPayload: defaultMaxFrame,
	}
}

// Configure implements sdk.Layer. It checks the config section and loads
// the node key from req.DataDir or creates it there. It may be called
// again before Start to replace the configuration.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current() > phaseConfigured {
		return nil, status.Error(codes.FailedPrecondition, "devp2p: Configure after Start")
	}
	if env.Out == nil {
		return nil, status.Error(codes.InvalidArgument, "devp2p: Configure without an emitter")
	}
	cfg, err := parseConfig(req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	key, created, err := loadOrCreateNodeKey(req.GetDataDir())
	if err != nil {
		return nil, fmt.Errorf("devp2p: %w", err)
	}
	lg := env.Logger
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	lg.Info("node key loaded", "node_id", enode.PubkeyToIDV4(&key.PublicKey).String(), "created", created, "node", req.GetNodeName())
	l.cfg, l.key, l.out, l.log = cfg, key, env.Out, lg
	l.dir = req.GetDataDir()
	l.enter(phaseConfigured)
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. It registers every requested protocol as a
// devp2p subprotocol and starts the server: listener, static dials and
// discovery as configured.
func (l *Layer) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.current() {
	case phaseNew:
		return nil, status.Error(codes.FailedPrecondition, "devp2p: Start before Configure")
	case phaseStarted:
		return nil, status.Error(codes.FailedPrecondition, "devp2p: already started")
	case phaseStopped:
		return nil, status.Error(codes.FailedPrecondition, "devp2p: Start after Stop")
	}
	protos, err := newProtocolTable(req.GetProtocols())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "devp2p: %v", err)
	}
	n, err := l.startSticky(ctx, protos)
	if err != nil {
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
	l.enter(phaseStarted)
	l.log.Info("started", "enode", local.GetDisplayId(), "listen", n.srv.ListenAddr, "discovery", l.cfg.discovery)
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
	if cfg.stickyPort {
		listen, err := stickyListen(l.dir, cfg.listen)
		if err != nil {
			l.log.Warn("could not read the remembered listen port", "error", err)
		}
		if listen != cfg.listen {
			n, err := try(listen)
			if err == nil {
				l.rememberPort(n)
				return n, nil
			}
			l.log.Warn("the remembered listen port is not free; listening on a new one (contacts need the new enode URL)", "error", err)
		}
	}
	n, err := try(cfg.listen)
	if err == nil && cfg.stickyPort {
		l.rememberPort(n)
	}
	return n, err
}

func (l *Layer) rememberPort(n *node) {
	if err := saveListen(l.dir, n.srv.ListenAddr); err != nil {
		l.log.Warn("could not remember the listen port", "error", err)
	}
}

// HandleBatch implements sdk.Layer. DOWN frames with a peer are queued for
// that peer on their protocol; DOWN frames without one are queued for
// every peer that runs the protocol. A frame that finds a peer's queue full
// waits for room, which slows the sender to the peer's pace; only a peer
// that takes nothing for the stall timeout is disconnected and its frames
// dropped (see enqueue).
func (l *Layer) HandleBatch(ctx context.Context, batch *commonv1.Batch) {
	if k := len(batch.GetEvents()); k > 0 {
		l.ctr.ignoredEvents.Add(uint64(k))
	}
	n := l.node.Load()
	for _, f := range batch.GetFrames() {
		switch {
		case f.GetDirection() != commonv1.Direction_DIRECTION_DOWN:
			l.ctr.droppedWrongDirection.Add(1)
		case n == nil:
			l.ctr.droppedNotRunning.Add(1)
		default:
			n.send(ctx, f)
		}
	}
}

// Health implements sdk.Layer.
func (l *Layer) Health(ctx context.Context) *commonv1.HealthResponse {
	n := l.node.Load()
	if n == nil {
		return &commonv1.HealthResponse{Detail: l.current().String(), Counters: l.ctr.snapshot(0)}
	}
	peers := n.peerCount()
	return &commonv1.HealthResponse{
		Serving:  true,
		Detail:   fmt.Sprintf("node %s, %d peers", n.self.TerminalString(), peers),
		Counters: l.ctr.snapshot(peers),
	}
}

// Stop implements sdk.Layer. It writes what is queued (briefly) and stops
// the server. It is idempotent; the layer cannot be started again.
func (l *Layer) Stop(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current() == phaseStopped {
		return nil
	}
	l.enter(phaseStopped)
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
