// Package whisper is the `whisper` privacy layer: Whisper v6 (EIP-627, the
// shh/6 devp2p capability as go-ethereum v1.9.20 speaks it) on top of a p2p
// overlay. Messages travel as PoW-stamped, encrypted envelopes that every
// node floods to its peers, so the overlay does not see who talks to whom.
//
// Frames go to the overlay on protocol "shh" version 6 with 128 message
// codes; a frame's payload is one byte of message code followed by the
// message's RLP payload, so over devp2p it is the real shh/6 capability.
// See docs/plugins/whisper.md.
package whisper

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Name is the implementation name a config uses.
const Name = "whisper"

// Version is the implementation version.
const Version = "0.1.0"

// KeyFile is the node's whisper key, under the layer's data directory.
const KeyFile = "whisper.key"

// Protocol is the overlay protocol the layer runs on.
var Protocol = &commonv1.Protocol{Name: wire.ProtocolName, Version: uint32(wire.ProtocolVersion), MessageCodes: wire.NumberOfMessageCodes}

// MaxPayload is the largest payload accepted from above with the default
// max_message_size (envelope, ECIES, padding, signature and inner-envelope
// overheads are below 1 KiB).
const MaxPayload = int(wire.DefaultMaxMessageSize) - payloadOverhead

const payloadOverhead = 1024

// tolerance is how long the previous PoW requirement and bloom still apply
// to received envelopes after a change (geth's DefaultSyncAllowance).
const tolerance = wire.DefaultSyncAllowance * time.Second

// statusRefresh is the least time between two Statuses this layer sends a
// peer beyond the first: to answer a repeated Status, or to ask again for
// the Status of a peer whose packets it drops for want of one.
const statusRefresh = 2 * time.Second

// Layer is the whisper privacy layer.
type Layer struct {
	// mu guards the layer's state. Everything the layer decides to emit
	// is queued on out under mu, in the order it was decided, so that a
	// peer's Status always goes out before anything else to it, even when
	// the poster goroutine forwards a new envelope meanwhile.
	mu       sync.Mutex
	out      outbox
	cfg      Config
	env      sdk.Env
	key      *ecdsa.PrivateKey
	ownAddr  []byte
	ownTopic wire.TopicType

	peers map[string]*peer
	pool  map[[32]byte]*entry
	// expiries indexes the pool by envelope expiry (unix seconds): what
	// expire drops, without scanning the pool.
	expiries map[uint32][][32]byte
	// maxExpiry is the latest expiry of any envelope pooled so far.
	maxExpiry uint32
	// slots are the peers' bits in the entries' known sets.
	slots slots
	subs  map[string]*subscription
	// outBuckets are the outbound byte buckets by peer id, of connected
	// peers and of disconnected ones until theirs have refilled.
	outBuckets map[string]*bucket

	minPoW, prevMinPoW float64
	powChanged         time.Time
	bloom, prevBloom   []byte // nil unless light
	bloomChanged       time.Time
	lastExpire         time.Time

	c *counters

	now   func() time.Time
	posts chan *post
	// cancel ends the poster and the sender, which Start began.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer {
	l := &Layer{
		now:   time.Now,
		peers: map[string]*peer{},
		pool:  map[[32]byte]*entry{},

		expiries: map[uint32][][32]byte{},
		subs:     map[string]*subscription{},
		posts:    make(chan *post, 1024),

		outBuckets: map[string]*bucket{},
		c:          newCounters(),
	}
	l.out.init()
	return l
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "Whisper v6 (shh/6): PoW-stamped encrypted envelopes flooded through every node",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapWhisper, sdk.CapDirect, sdk.CapShared, sdk.CapRelayed},
		Requires:    []string{sdk.CapUnicast, sdk.CapNamedProtocols, sdk.CapPeerEvents},
		MaxPayload:  uint32(MaxPayload),
	}
}

// Configure implements sdk.Layer. It loads or creates the node's whisper
// key in <data_dir>/whisper.key.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	sealKey, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, err
	}
	key, err := loadKey(req.GetDataDir(), sealKey)
	sealKey.Wipe()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg, l.env, l.key = cfg, env, key
	l.ownAddr = encodeContact(&key.PublicKey)
	l.ownTopic = PartitionedTopic(&key.PublicKey)
	l.minPoW, l.prevMinPoW = cfg.MinPoW, cfg.MinPoW
	if cfg.Light {
		l.bloom = l.topicsBloom()
	}
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol}}, nil
}

// Start implements sdk.Layer.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Not env.Run: the sender drains the outbox during Stop.
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(2)
	go l.poster(ctx)
	go l.sender(ctx)
	return &commonv1.StartResponse{
		LocalAddress:   l.ownAddr,
		ContactSection: l.ownAddr,
		DisplayAddress: l.display(),
	}, nil
}

func (l *Layer) display() string {
	return fmt.Sprintf("shh:%x", crypto.FromECDSAPub(&l.key.PublicKey))
}

// Stop implements sdk.Layer. It emits what the outbox holds (for at most
// stopDrain) and queues nothing after.
func (l *Layer) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil { // started
		dctx, dcancel := context.WithTimeout(ctx, stopDrain)
		if err := l.out.waitIdle(dctx); err != nil {
			l.logf("whisper: stopping with %d frames not emitted: %v", l.out.len(), err)
		}
		dcancel()
	}
	if cancel != nil {
		cancel()
	}
	l.wg.Wait()
	return nil
}

// Health implements sdk.Layer. Besides the counters it reports the
// levels peers, pool_size and outbox_frames; the SDK adds the phase.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	c := l.c.set.Snapshot()
	l.mu.Lock()
	l.expire(l.now())
	c["peers"] = uint64(len(l.peers))
	c["pool_size"] = uint64(len(l.pool))
	l.mu.Unlock()
	c["outbox_frames"] = uint64(l.out.len())
	return &commonv1.HealthResponse{Serving: true, Counters: c}
}

func (l *Layer) count(name string) { l.c.add(name, 1) }

func (l *Layer) logf(format string, args ...any) {
	if l.env.Logger != nil {
		l.env.Logger.Debug(fmt.Sprintf(format, args...))
	}
}

func down(peerID []byte, code byte, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		Peer:      peerID,
		Protocol:  wire.ProtocolName,
		Payload:   packet(code, payload),
	}
}

// HandleBatch implements sdk.Layer.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	var out []*commonv1.Frame
	var posts []*post
	l.mu.Lock()
	now := l.now()
	l.expire(now)
	// A batch is read as its frames, then its events: that is the order
	// they were emitted in (see commonv1.Batch), so a peer's DISCONNECTED
	// follows its last frame and a reconnect's CONNECTED precedes the
	// new session's Status.
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			if p := l.prepare(f); p != nil {
				posts = append(posts, p)
			}
		case commonv1.Direction_DIRECTION_UP:
			for _, o := range l.receive(f, now) {
				if o.GetDirection() == commonv1.Direction_DIRECTION_UP {
					// A message opened from f carries f's trace id and
					// hints (common.v1 Frame), so that the host can follow it.
					o.TraceId, o.Hints = f.GetTraceId(), f.GetHints()
				}
				out = append(out, o)
			}
		default:
			l.count("dropped_wrong_direction")
		}
	}
	for _, ev := range b.GetEvents() {
		p := ev.GetPeer()
		if p == nil || len(p.GetPeer()) == 0 {
			continue
		}
		switch p.GetState() {
		case commonv1.PeerState_PEER_STATE_CONNECTED:
			if _, ok := l.peers[string(p.GetPeer())]; !ok {
				out = append(out, l.addPeer(p.GetPeer(), now)...)
			}
		case commonv1.PeerState_PEER_STATE_DISCONNECTED:
			l.dropPeer(string(p.GetPeer()))
		}
	}
	// Queued, not emitted: reading never waits on the host taking what
	// this layer sends (see outbox).
	l.enqueue(out)
	l.mu.Unlock()
	for _, p := range posts {
		select {
		case l.posts <- p:
		case <-ctx.Done(): // also when Stop begins
			return
		}
	}
}
