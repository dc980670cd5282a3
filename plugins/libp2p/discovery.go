package libp2pplugin

import (
	"context"
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// Names the node discovers its peers under.
const (
	dhtPrefix   = "/strata"          // DHT protocol prefix: /strata/kad/1.0.0
	rendezvous  = "strata/libp2p"    // DHT rendezvous namespace
	mdnsService = "_strata-p2p._udp" // mDNS service name
)

// Timing of DHT discovery.
const (
	discoverFirst   = time.Second      // after start, before the first round
	discoverEvery   = time.Minute      // between rounds
	discoverTimeout = 30 * time.Second // one advertise or lookup
)

// startMDNS starts mDNS discovery. mDNS is best effort, so a failure to
// start (no multicast interface, say) is logged and the node runs without.
func (n *node) startMDNS() {
	svc := mdns.NewMdnsService(n.h, mdnsService, mdnsNotifee{n})
	if err := svc.Start(); err != nil {
		n.log.Warn("mDNS discovery unavailable", "error", err)
		return
	}
	n.mdns = svc
}

// mdnsNotifee connects to the peers mDNS finds.
type mdnsNotifee struct{ n *node }

// HandlePeerFound implements mdns.Notifee.
func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	m.n.connectFound(ai, "mdns")
}

// connectFound connects, in the background, to a peer that discovery
// found, unless it is this node or already connected.
func (n *node) connectFound(ai peer.AddrInfo, source string) {
	if ai.ID == n.self || len(ai.Addrs) == 0 || n.h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.tasks.Go(func() {
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		defer cancel()
		if err := n.h.Connect(ctx, ai); err != nil {
			n.log.Debug("cannot connect to discovered peer", "source", source, "peer", ai.ID, "error", err)
		}
	})
}

// startDHT starts the Kademlia DHT in the configured mode, seeded with the
// bootstrap peers, and a loop that advertises this node under the
// rendezvous namespace and connects to the others found there.
func (n *node) startDHT() (*drouting.RoutingDiscovery, error) {
	mode := dht.ModeClient
	if n.cfg.DHT == dhtServer {
		mode = dht.ModeServer
	}
	opts := []dht.Option{dht.Mode(mode), dht.ProtocolPrefix(dhtPrefix)}
	var seeds []peer.AddrInfo
	for _, ai := range n.cfg.bootstrap {
		if ai.ID != n.self {
			seeds = append(seeds, ai)
		}
	}
	if len(seeds) > 0 {
		opts = append(opts, dht.BootstrapPeers(seeds...))
	}
	d, err := dht.New(n.ctx, n.h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	n.dht = d
	if err := d.Bootstrap(n.ctx); err != nil {
		return nil, fmt.Errorf("bootstrap DHT: %w", err)
	}
	rd := drouting.NewRoutingDiscovery(d)
	n.tasks.Go(func() { n.discover(rd) })
	return rd, nil
}

// discover runs DHT discovery rounds until the node closes: advertise
// when the last advertisement is due for renewal, then look up the
// rendezvous namespace and connect to what it finds.
func (n *node) discover(rd *drouting.RoutingDiscovery) {
	var renew time.Time
	wait := discoverFirst
	for sleep(n.ctx, wait) {
		wait = discoverEvery
		if time.Now().After(renew) {
			ctx, cancel := context.WithTimeout(n.ctx, discoverTimeout)
			ttl, err := rd.Advertise(ctx, rendezvous)
			cancel()
			if err != nil {
				n.log.Debug("DHT advertise failed", "error", err)
			} else {
				renew = time.Now().Add(7 * ttl / 8)
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, discoverTimeout)
		found, err := rd.FindPeers(ctx, rendezvous, discovery.Limit(n.cfg.ConnHigh))
		if err != nil {
			cancel()
			n.log.Debug("DHT lookup failed", "error", err)
			continue
		}
		for ai := range found {
			n.connectFound(ai, "dht")
		}
		cancel()
	}
}
