package devp2p

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// Timing and sizing of a node.
const (
	// drainTimeout bounds how long close waits for queued frames to be
	// written.
	drainTimeout = 2 * time.Second
	// maxEmitBatch bounds how many queued frames one Emit carries.
	maxEmitBatch = 64
	// stallTimeout is how long a DOWN frame waits for room in a peer's
	// full outbound queue before the peer is disconnected: the breaker of
	// last resort for a peer that does not read (geth's RLPx write timeout
	// is 20 s too).
	stallTimeout = 20 * time.Second
	// clientName is sent in the devp2p hello.
	clientName = "strata/devp2p/" + version
)

// node is a started layer: the devp2p server and the per-peer state of the
// registered protocols. Start creates one and Stop closes it.
type node struct {
	cfg    *Config
	ctr    *counters
	out    sdk.Emitter
	log    hclog.Logger
	protos protocolTable
	srv    *p2p.Server
	self   enode.ID

	ctx    context.Context // ends when close begins
	cancel context.CancelFunc
	tasks  sync.WaitGroup // the emitter
	up     *p2pkit.Inbox  // inbound frames and peer events, per peer, to the host in turns
	stall  time.Duration  // see stallTimeout

	mu      sync.RWMutex
	peers   map[enode.ID]*peerState
	oneShot map[enode.ID]*enode.Node // peers Connect dialed without persistent; forgotten when they drop
}

// peerState is one connected peer and its running protocols.
type peerState struct {
	p     *p2p.Peer
	conns map[string]*protoConn // by protocol name; guarded by node.mu
	out   *p2pkit.Budget        // the bytes queued for the peer, over its protocols
	// stalled is set once a frame waited stallTimeout for room and the
	// peer was disconnected; later frames for it are dropped at once.
	stalled atomic.Bool
}

// newNode builds a node; start starts it.
func newNode(startCtx context.Context, cfg *Config, protos protocolTable, out sdk.Emitter, lg hclog.Logger, ctr *counters) *node {
	ctx, cancel := context.WithCancel(context.WithoutCancel(startCtx))
	return &node{
		cfg:    cfg,
		ctr:    ctr,
		out:    out,
		log:    lg,
		protos: protos,
		ctx:    ctx,
		cancel: cancel,
		up: p2pkit.NewInbox(p2pkit.InboxConfig{
			Out:         out,
			Rate:        cfg.PeerInRate,
			Burst:       cfg.PeerInBurst,
			BatchFrames: maxEmitBatch,
			RateWaits:   &ctr.rateWaits,
			FullWaits:   &ctr.inboxFullWaits,
		}),
		stall:   stallTimeout,
		peers:   make(map[enode.ID]*peerState),
		oneShot: make(map[enode.ID]*enode.Node),
	}
}

// start starts the devp2p server listening on listen and the emitters. On
// error nothing is left running.
func (n *node) start(key *ecdsa.PrivateKey, listen string) error {
	cfg := n.cfg
	protos := make([]p2p.Protocol, 0, len(n.protos.list))
	for _, p := range n.protos.list {
		protos = append(protos, p2p.Protocol{
			Name:    p.name,
			Version: p.version,
			Length:  p.length,
			Run: func(peer *p2p.Peer, rw p2p.MsgReadWriter) error {
				return n.run(p, peer, rw)
			},
		})
	}
	disc := cfg.Discovery
	n.srv = &p2p.Server{Config: p2p.Config{
		PrivateKey:       key,
		MaxPeers:         cfg.MaxPeers,
		NoDiscovery:      disc == discOff,
		DiscoveryV4:      disc == discV4 || disc == discBoth,
		DiscoveryV5:      disc == discV5 || disc == discBoth,
		BootstrapNodes:   cfg.bootstrap,
		BootstrapNodesV5: cfg.bootstrap,
		StaticNodes:      cfg.static,
		NetRestrict:      cfg.netRestrict,
		Protocols:        protos,
		ListenAddr:       listen,
		NAT:              cfg.nat,
		Name:             clientName,
		Logger:           log.NewLogger(log.DiscardHandler()),
	}}
	if err := n.srv.Start(); err != nil {
		n.srv.Stop()
		n.cancel()
		return err
	}
	n.self = n.srv.Self().ID()
	n.tasks.Add(1)
	go func() { defer n.tasks.Done(); _ = n.up.Run(n.ctx) }()
	return nil
}

// close stops the node: it writes what is queued (for at most
// drainTimeout), stops the server, which ends every peer, and waits for
// the emitters until ctx ends.
func (n *node) close(ctx context.Context) error {
	dctx, dcancel := context.WithTimeout(ctx, drainTimeout)
	n.drain(dctx)
	dcancel()
	n.cancel()
	stopped := make(chan struct{})
	go func() {
		n.srv.Stop()
		n.tasks.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		n.ctr.droppedNotRunning.Add(uint64(n.up.Frames())) // read, never handed up
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the server to stop: %w", ctx.Err())
	}
}

// drain waits until every outbound queue is empty or ctx ends.
func (n *node) drain(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.queued() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// queued is the number of frames waiting in outbound queues.
func (n *node) queued() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	k := 0
	for _, ps := range n.peers {
		for _, pc := range ps.conns {
			k += len(pc.q) + int(pc.busy.Load())
		}
	}
	return k
}

// queuedBytes is the payload bytes queued for all peers.
func (n *node) queuedBytes() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	k := 0
	for _, ps := range n.peers {
		k += ps.out.Used()
	}
	return k
}

// localNode describes the node for NodeInfo.
func (n *node) localNode() (*p2pv1.LocalNode, error) {
	self := n.srv.Self()
	contact, err := encodeContact(self)
	if err != nil {
		return nil, err
	}
	id := self.ID()
	url := self.URLv4()
	return &p2pv1.LocalNode{
		Id:              id[:],
		DisplayId:       url,
		ListenAddresses: []string{url},
		ContactSection:  contact,
	}, nil
}

// peerCount is the number of peers running at least one protocol.
func (n *node) peerCount() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.peers)
}

// attach records a protocol starting on a peer; the first one makes the
// peer connected.
func (n *node) attach(p *p2p.Peer, pc *protoConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := n.peers[p.ID()]
	if ps == nil {
		ps = &peerState{p: p, conns: make(map[string]*protoConn), out: p2pkit.NewBudget(n.cfg.PeerOutBytes)}
		n.peers[p.ID()] = ps
		id := p.ID()
		n.event(&commonv1.PeerEvent{Peer: id[:], State: commonv1.PeerState_PEER_STATE_CONNECTED, Protocols: n.sharedProtocols(p)})
		n.log.Debug("peer connected", "peer", p.ID().TerminalString(), "inbound", p.Inbound())
	}
	ps.conns[pc.proto.name] = pc
	pc.ps = ps
}

// detach records a protocol ending on a peer; the last one makes the peer
// disconnected. A peer that Connect dialed once is not redialed.
func (n *node) detach(p *p2p.Peer, pc *protoConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := n.peers[p.ID()]
	if ps == nil || ps.conns[pc.proto.name] != pc {
		return
	}
	delete(ps.conns, pc.proto.name)
	if len(ps.conns) > 0 {
		return
	}
	delete(n.peers, p.ID())
	id := p.ID()
	n.event(&commonv1.PeerEvent{Peer: id[:], State: commonv1.PeerState_PEER_STATE_DISCONNECTED})
	n.log.Debug("peer disconnected", "peer", p.ID().TerminalString())
	if dest, ok := n.oneShot[id]; ok {
		delete(n.oneShot, id)
		go n.srv.RemovePeer(dest) // blocks until the peer is gone; not from Run
	}
}

// sharedProtocols names, sorted, the registered protocols the peer runs.
func (n *node) sharedProtocols(p *p2p.Peer) []string {
	var out []string
	for _, pr := range n.protos.list {
		if p.RunningCap(pr.name, []uint{pr.version}) {
			out = append(out, pr.name)
		}
	}
	return out
}

// event queues a peer event for the host, behind the frames its peer has
// waiting; the caller holds n.mu, which keeps a peer's events in order with
// each other. An event never waits; one that finds the inbox's event bound
// reached is dropped and counted.
func (n *node) event(ev *commonv1.PeerEvent) {
	if !n.up.Event(string(ev.GetPeer()), &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: ev}}) {
		n.ctr.droppedEvents.Add(1)
		n.log.Warn("peer event dropped: too many events wait for the host", "peer", enode.ID(ev.GetPeer()).TerminalString(), "state", ev.GetState())
	}
}
