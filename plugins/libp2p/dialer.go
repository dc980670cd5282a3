package libp2pplugin

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// protectTag is the connection-manager tag that keeps persistent peers'
// connections from being trimmed.
const protectTag = "strata-persistent"

// Redial timing of persistent peers.
const (
	dialTimeout = 15 * time.Second
	redialMin   = 500 * time.Millisecond
	redialMax   = time.Minute
)

// dialer keeps persistent peers (bootstrap peers and Connect with
// persistent set) connected: it dials each one, and redials with
// exponential backoff and jitter whenever the connection drops.
type dialer struct {
	n *node

	mu    sync.Mutex
	peers map[peer.ID]*redial
}

// redial is the loop that keeps one peer connected.
type redial struct {
	cancel context.CancelFunc
	wake   chan struct{} // signalled when the peer disconnects
}

func newDialer(n *node) *dialer {
	return &dialer{n: n, peers: make(map[peer.ID]*redial)}
}

// keep makes ai a persistent peer: its addresses are kept for good, its
// connections are protected from trimming and a loop keeps it connected.
// Keeping a peer that is already kept only adds the addresses.
func (d *dialer) keep(ai peer.AddrInfo) {
	h := d.n.h
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	h.ConnManager().Protect(ai.ID, protectTag)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.peers[ai.ID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(d.n.ctx)
	r := &redial{cancel: cancel, wake: make(chan struct{}, 1)}
	if !d.n.tasks.Go(func() { d.run(ctx, ai.ID, r) }) {
		cancel()
		return
	}
	d.peers[ai.ID] = r
}

// forget stops keeping id connected and lets its connections be trimmed.
func (d *dialer) forget(id peer.ID) {
	d.mu.Lock()
	r, ok := d.peers[id]
	delete(d.peers, id)
	d.mu.Unlock()
	if ok {
		r.cancel()
	}
	d.n.h.ConnManager().Unprotect(id, protectTag)
}

// lost tells the loop of a persistent peer that the peer disconnected.
func (d *dialer) lost(id peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.peers[id]; ok {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// run keeps id connected until ctx ends. Between dials it waits for the
// peer's disconnection, and looks again even without one, soon after a
// dial and then at doubling intervals up to redialMax:
// a connection can close before the overlay reports the peer connected
// (while identify runs, under load), and a successful Connect does not
// promise that the connection is still there when it returns.
func (d *dialer) run(ctx context.Context, id peer.ID, r *redial) {
	h := d.n.h
	delay := redialMin
	// look is the wait before the loop looks at the peer unbidden: short
	// after a dial, when a connection is likeliest to close before the
	// overlay reports the peer connected at all (then no event comes),
	// doubling up to redialMax while it stays.
	look := redialMin
	check := time.NewTimer(look)
	defer check.Stop()
	for {
		if h.Network().Connectedness(id) != network.Connected {
			// The loop keeps its own back-off: the swarm's dial back-off
			// (5 s and more after a failed dial, for every address) would
			// refuse the redials it times, as when a connection closed
			// while the next dial ran. Forcing a direct dial skips it; this
			// host has no relay, so no address is left out by it.
			dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "persistent peer"), dialTimeout)
			err := h.Connect(dctx, peer.AddrInfo{ID: id})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				wait := delay/2 + rand.N(delay/2+1)
				d.n.log.Debug("persistent peer unreachable", "peer", id, "retry_in", wait, "error", err)
				if !sleep(ctx, wait) {
					return
				}
				delay = min(2*delay, redialMax)
				continue
			}
			look = redialMin
		}
		delay = redialMin
		check.Reset(look)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-check.C:
			look = min(2*look, redialMax)
		}
	}
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
