package libp2pplugin

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

// Bounds on broadcast topics.
const (
	maxTopicName = 256
	maxTopics    = 1024
)

// pubsubOverhead is what GossipSub adds around a payload in one message
// (sender, sequence number, signature, topic, protobuf tags); the
// message-size limit is max_frame plus this.
const pubsubOverhead = 64 << 10

// errTooManyTopics is returned when a node would join more than maxTopics.
var errTooManyTopics = fmt.Errorf("more than %d topics joined", maxTopics)

// broadcaster carries broadcast frames over GossipSub: a DOWN frame
// without a peer is published on the topic named by its protocol, and the
// messages of subscribed topics go up as UP frames from their publisher.
type broadcaster struct {
	n  *node
	ps *pubsub.PubSub

	mu     sync.Mutex
	topics map[string]*topic // joined topics, kept until the node closes
}

// topic is a joined GossipSub topic.
type topic struct {
	handle *pubsub.Topic
	sub    *pubsub.Subscription // nil when not subscribed
}

// newBroadcaster starts GossipSub on the node's host, with flood
// publishing of the node's own messages. It ends with the node's context.
// disc, when not nil, lets GossipSub find topic peers.
func newBroadcaster(n *node, disc *drouting.RoutingDiscovery) (*broadcaster, error) {
	opts := []pubsub.Option{
		pubsub.WithMaxMessageSize(n.cfg.MaxFrame + pubsubOverhead),
		// Send this node's own messages to every peer known to be on the
		// topic, not only to its mesh, which takes a heartbeat to form.
		pubsub.WithFloodPublish(true),
	}
	if disc != nil {
		opts = append(opts, pubsub.WithDiscovery(disc))
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	return &broadcaster{n: n, ps: ps, topics: make(map[string]*topic)}, nil
}

// checkTopic checks a topic name.
func checkTopic(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case len(name) > maxTopicName:
		return fmt.Errorf("topic name is longer than %d bytes", maxTopicName)
	case !utf8.ValidString(name):
		return errors.New("topic name is not valid UTF-8")
	}
	return nil
}

// join returns the joined topic called name, joining it if need be. The
// caller holds b.mu.
func (b *broadcaster) join(name string) (*topic, error) {
	if t, ok := b.topics[name]; ok {
		return t, nil
	}
	if len(b.topics) >= maxTopics {
		return nil, errTooManyTopics
	}
	h, err := b.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("join topic %q: %w", name, err)
	}
	t := &topic{handle: h}
	b.topics[name] = t
	return t, nil
}

// publish publishes payload on the topic called name, joining it first if
// need be. Failures are counted and logged at debug.
func (b *broadcaster) publish(name string, payload []byte) {
	ctr := b.n.ctr
	err := checkTopic(name)
	var t *topic
	if err == nil {
		b.mu.Lock()
		t, err = b.join(name)
		b.mu.Unlock()
	}
	if err == nil {
		err = t.handle.Publish(b.n.ctx, payload)
	}
	if err != nil {
		ctr.droppedBroadcast.Add(1)
		b.n.log.Debug("broadcast dropped", "topic", name, "error", err)
		return
	}
	ctr.framesSent.Add(1)
	ctr.bytesSent.Add(uint64(len(payload)))
	ctr.broadcastSent.Add(1)
}

// subscribe subscribes to the topic called name and starts delivering its
// messages up. Subscribing twice is harmless.
func (b *broadcaster) subscribe(name string) error {
	if err := checkTopic(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.join(name)
	if err != nil {
		return err
	}
	if t.sub != nil {
		return nil
	}
	sub, err := t.handle.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe to topic %q: %w", name, err)
	}
	if !b.n.tasks.Go(func() { b.deliver(name, sub) }) {
		sub.Cancel()
		return errors.New("node is stopping")
	}
	t.sub = sub
	return nil
}

// unsubscribe ends the subscription to the topic called name, if any. The
// topic stays joined for publishing.
func (b *broadcaster) unsubscribe(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[name]; ok && t.sub != nil {
		t.sub.Cancel()
		t.sub = nil
	}
}

// deliver sends the messages of sub up, from their publisher, skipping
// this node's own, until the subscription or the node ends.
func (b *broadcaster) deliver(name string, sub *pubsub.Subscription) {
	n := b.n
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		from := msg.GetFrom()
		if from == n.self {
			continue
		}
		if len(msg.Data) > n.cfg.MaxFrame {
			n.ctr.droppedBadFrame.Add(1)
			continue
		}
		n.ctr.framesReceived.Add(1)
		n.ctr.bytesReceived.Add(uint64(len(msg.Data)))
		n.ctr.broadcastReceived.Add(1)
		// The message counts against the peer it came from (its
		// publisher may be anyone), and is dropped rather than waited
		// for: one subscription carries every peer's messages, so a
		// wait for one would hold up the others, and GossipSub drops a
		// slow subscriber's messages itself.
		err = n.in.TryPut(string(msg.ReceivedFrom), &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_UP,
			Peer:      []byte(from),
			Protocol:  name,
			Payload:   msg.Data,
		})
		switch {
		case errors.Is(err, p2pkit.ErrRateLimited):
			n.ctr.droppedRateLimit.Add(1)
		case errors.Is(err, p2pkit.ErrPeerFull):
			n.ctr.droppedInboxFull.Add(1)
		}
	}
}
