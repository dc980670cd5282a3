package node

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/host/contacts"
)

// p2pAdapter is the host's side of a p2p overlay layer: it registers the
// overlay protocols of the layers above, tells the layer above which peers
// are connected when that layer starts, and dials contacts and peers.
type p2pAdapter struct {
	n *Node
	s *slot

	// topics are the broadcast topics the layers above asked the p2p
	// layer to be subscribed to (a direct privacy layer's public chats),
	// subscribed again when the p2p layer restarts.
	mu     sync.Mutex
	topics []string
}

// subscribe subscribes the p2p layer to topics, and remembers them for
// its restarts. A p2p layer without broadcast refuses with
// ErrNoPublicChats.
func (a *p2pAdapter) subscribe(ctx context.Context, topics []string) error {
	conn := a.s.liveConn()
	if conn == nil {
		return fmt.Errorf("layers.%s: the %s layer is not running", a.s.key, a.s.layer.Plugin)
	}
	control := p2pv1.NewControlClient(conn.Control())
	for _, t := range topics {
		if _, err := control.Subscribe(ctx, &p2pv1.SubscribeRequest{Topic: t}); err != nil {
			if status.Code(err) == codes.Unimplemented {
				return fmt.Errorf("%w: the %s overlay has no broadcast topics (layers.%s)", ErrNoPublicChats, a.s.layer.Plugin, a.s.key)
			}
			return fmt.Errorf("layers.%s: subscribe to %q: %w", a.s.key, t, err)
		}
		a.mu.Lock()
		if !slices.Contains(a.topics, t) {
			a.topics = append(a.topics, t)
		}
		a.mu.Unlock()
	}
	return nil
}

// install implements installer: the topics again, after a restart.
func (a *p2pAdapter) install(ctx context.Context) {
	a.mu.Lock()
	topics := slices.Clone(a.topics)
	a.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	if err := a.subscribe(ctx, topics); err != nil {
		a.s.log.Warn("could not subscribe the overlay to the public chats' topics again", "error", err)
	}
}

// prepareStart implements startPreparer: overlay protocols are the p2p
// layer's business; it carries what every layer above declared in its
// ConfigureResponse.
func (a *p2pAdapter) prepareStart(req *commonv1.StartRequest) {
	for _, above := range a.n.slots[a.s.index+1:] {
		req.Protocols = append(req.Protocols, above.protocols()...)
	}
}

// aboveStarted implements aboveStartedHook: the layer above learns the
// peers that are connected already. Their PeerEvents went by before it
// started (the overlay connects at its own start, and again while a
// restarted layer is down), and a layer that keeps per-peer state
// (whisper's handshake) must not wait for events that will not come again.
func (a *p2pAdapter) aboveStarted(ctx context.Context, above *slot) {
	conn := a.s.liveConn()
	above.mu.RLock()
	link := above.link
	above.mu.RUnlock()
	if conn == nil || link == nil {
		return
	}
	resp, err := p2pv1.NewControlClient(conn.Control()).Peers(ctx, &p2pv1.PeersRequest{})
	if err != nil {
		above.log.Debug("could not list the overlay's peers", "error", err)
		return
	}
	for _, p := range resp.GetPeers() {
		ev := &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{
			Peer: p.GetId(), State: commonv1.PeerState_PEER_STATE_CONNECTED,
		}}}
		if err := link.EmitEvent(ctx, ev); err != nil {
			return
		}
	}
}

// dialDefer is how long the node with the greater identity waits before it
// dials a contact: two nodes that import each other's cards at once would
// otherwise dial each other at the same moment, and devp2p may then keep a
// different connection on each side and drop both.
const dialDefer = 2 * time.Second

// dial implements dialer: the overlay keeps a connection to each card's
// node; with tieBreak, the dial to a node whose identity is below ours
// waits dialDefer first (by then that node has most likely dialed us).
func (a *p2pAdapter) dial(cards []*contacts.Card, tieBreak bool) {
	n := a.n
	for _, c := range cards {
		sec, ok := c.Sections[a.s.kind]
		if !ok || sec.Plugin != a.s.layer.Plugin {
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if tieBreak && bytes.Compare(n.id.Public(), c.IdentityKey) > 0 {
				select {
				case <-time.After(dialDefer):
				case <-n.ctx.Done():
					return
				}
			}
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			defer cancel()
			a.s.mu.RLock()
			conn := a.s.conn
			a.s.mu.RUnlock()
			_, err := p2pv1.NewControlClient(conn.Control()).Connect(ctx, &p2pv1.ConnectRequest{ContactSection: sec.Data, Persistent: true})
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("could not connect to peer", "peer", c.Name, "error", err)
			}
		}()
	}
}

// check implements contractChecker (core/api/p2p/v1): an UP frame names
// the overlay peer it came from and the protocol it came on.
func (a *p2pAdapter) check(f *commonv1.Frame) string {
	if f.GetDirection() != commonv1.Direction_DIRECTION_UP {
		return ""
	}
	switch {
	case len(f.GetPeer()) == 0:
		return "an UP frame without the overlay peer it came from (Frame.peer)"
	case f.GetProtocol() == "":
		return "an UP frame without the protocol it came on (Frame.protocol)"
	}
	return ""
}

// cardSection returns the section of a card for this overlay plugin.
func (a *p2pAdapter) cardSection(c *contacts.Card) (contacts.Section, bool) {
	sec, ok := c.Sections[a.s.kind]
	return sec, ok && sec.Plugin == a.s.layer.Plugin
}
