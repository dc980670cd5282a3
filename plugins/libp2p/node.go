package libp2pplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// drainTimeout bounds how long Stop waits for queued frames to be written.
const drainTimeout = 2 * time.Second

// peerEventBuffer is the event-bus buffer of the peer-event subscription.
// The bus blocks its emitters when a subscriber falls behind, so it is
// generous.
const peerEventBuffer = 1024

// node is a started layer: the libp2p host and everything that runs on
// it. Start creates one and Stop closes it.
type node struct {
	cfg    *Config
	ctr    *counters
	out    sdk.Emitter
	log    hclog.Logger
	h      host.Host
	self   peer.ID
	protos protocolTable

	ctx    context.Context // ends when close begins
	cancel context.CancelFunc
	tasks  group // every goroutine of the node except the stream writers
	outq   outbound
	in     *p2pkit.Inbox // inbound frames and peer events, to the host in turns
	stall  time.Duration // see stallTimeout

	dialer *dialer
	bcast  *broadcaster // nil when gossipsub is off
	dht    *dht.IpfsDHT // nil when the DHT is off
	mdns   mdns.Service // nil when mDNS is off
}

// startNode builds and starts a node: the host, the peer-event watcher,
// one stream handler per protocol, the DHT, GossipSub and mDNS as
// configured, and the bootstrap dialers. startCtx's values, not its
// deadline, carry over to the node's own context.
func startNode(startCtx context.Context, cfg *Config, key crypto.PrivKey, protos protocolTable, out sdk.Emitter, log hclog.Logger, ctr *counters) (_ *node, err error) {
	h, err := newHost(cfg, key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(startCtx))
	n := &node{
		cfg:    cfg,
		ctr:    ctr,
		out:    out,
		log:    log,
		h:      h,
		self:   h.ID(),
		protos: protos,
		ctx:    ctx,
		cancel: cancel,
		stall:  stallTimeout,
	}
	n.outq.init()
	n.in = n.newInbox()
	n.tasks.Go(func() { _ = n.in.Run(n.ctx) })
	n.dialer = newDialer(n)
	defer func() {
		if err != nil {
			if cerr := n.close(context.Background()); cerr != nil {
				log.Warn("closing a node that failed to start", "error", cerr)
			}
		}
	}()

	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerIdentificationFailed),
	}, eventbus.BufSize(peerEventBuffer), eventbus.Name("strata-libp2p"))
	if err != nil {
		return nil, fmt.Errorf("subscribe to peer events: %w", err)
	}
	n.tasks.Go(func() { n.watchPeers(sub) })

	for name, id := range protos.byName {
		h.SetStreamHandler(id, n.streamHandler(name))
	}

	var disc *drouting.RoutingDiscovery
	if cfg.DHT != dhtOff {
		if disc, err = n.startDHT(); err != nil {
			return nil, err
		}
	}
	if cfg.GossipSub {
		if n.bcast, err = newBroadcaster(n, disc); err != nil {
			return nil, err
		}
	}
	if cfg.MDNS {
		n.startMDNS()
	}
	for _, ai := range cfg.bootstrap {
		if ai.ID != n.self {
			n.dialer.keep(ai)
		}
	}
	return n, nil
}

// close stops the node: it writes what is queued (for at most
// drainTimeout), ends every goroutine, leaves the DHT and the local
// network, and closes the host. It waits for the node's goroutines until
// ctx ends.
func (n *node) close(ctx context.Context) error {
	dctx, dcancel := context.WithTimeout(ctx, drainTimeout)
	n.outq.drain(dctx)
	dcancel()

	n.cancel()
	var errs []error
	if n.mdns != nil {
		if err := n.mdns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close mDNS: %w", err))
		}
	}
	if n.dht != nil {
		if err := n.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close DHT: %w", err))
		}
	}
	if err := n.h.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close host: %w", err))
	}
	if err := n.outq.tasks.close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stream writers: %w", err))
	}
	if err := n.tasks.close(ctx); err != nil {
		errs = append(errs, err)
	}
	n.ctr.droppedNotRunning.Add(uint64(n.in.Frames())) // read, never handed up
	return errors.Join(errs...)
}

// addrs returns the node's listen addresses as the host reports them.
func (n *node) addrs() []ma.Multiaddr { return n.h.Addrs() }

// localNode describes the node for NodeInfo.
func (n *node) localNode() (*p2pv1.LocalNode, error) {
	addrs := n.addrs()
	contact, err := encodeContact(n.self, addrs)
	if err != nil {
		return nil, err
	}
	return &p2pv1.LocalNode{
		Id:              []byte(n.self),
		DisplayId:       n.self.String(),
		ListenAddresses: fullAddrs(n.self, addrs),
		ContactSection:  contact,
	}, nil
}
