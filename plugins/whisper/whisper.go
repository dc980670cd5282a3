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
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
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

type entry struct {
	env  *wire.Envelope
	raw  []byte   // env.Encode()
	hash [32]byte // env.Hash() = Keccak256(raw)
	pow  float64
}

// newEntry makes the pool entry of env, encoded as raw, with PoW pow.
func newEntry(env *wire.Envelope, raw []byte, pow float64) *entry {
	return &entry{env: env, raw: raw, hash: crypto.Keccak256Hash(raw), pow: pow}
}

type peer struct {
	id        []byte
	gotStatus bool
	pow       float64 // advertised requirement (0 until known)
	bloom     []byte  // advertised bloom; nil = full node
	light     bool
	banned    bool
	known     map[[32]byte]struct{}
	// statusSent is when our last Status went to the peer, answered when
	// we last answered a repeated Status of its (zero: never).
	statusSent time.Time
	answered   time.Time
	packets    bucket
	bytes      bucket
}

type subscription struct {
	topic wire.TopicType
	key   []byte
}

type post struct {
	addr         *address
	conversation []byte
	payload      []byte
	trace        uint64
	hints        *commonv1.Hints
}

// Layer is the whisper privacy layer.
type Layer struct {
	// mu guards the layer's state. Everything the layer decides to emit
	// is queued on out under mu, in the order it was decided, so that a
	// peer's Status always goes out before anything else to it, even when
	// the poster goroutine forwards a new envelope meanwhile.
	mu         sync.Mutex
	out        outbox
	cfg        settings
	env        sdk.Env
	key        *ecdsa.PrivateKey
	ownAddr    []byte
	ownTopic   wire.TopicType
	configured bool
	started    bool
	stopped    bool

	peers map[string]*peer
	pool  map[[32]byte]*entry
	subs  map[string]*subscription

	minPoW, prevMinPoW float64
	powChanged         time.Time
	bloom, prevBloom   []byte // nil unless light
	bloomChanged       time.Time
	lastExpire         time.Time

	counters map[string]uint64

	now    func() time.Time
	posts  chan *post
	done   <-chan struct{} // closed by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ sdk.Privacy = (*Layer)(nil)

// counter names always reported by Health.
var counterNames = []string{
	"envelopes_received", "envelopes_forwarded", "envelopes_posted", "envelopes_opened",
	"not_for_us", "peers_penalised",
	"dropped_malformed", "dropped_low_pow", "dropped_expired", "dropped_future", "dropped_too_large",
	"dropped_duplicate", "dropped_rate_limited", "dropped_undecryptable", "dropped_bloom",
	"dropped_zero_ttl", "dropped_handshake", "dropped_banned_peer", "dropped_wrong_protocol",
	"dropped_bad_address", "dropped_bad_inner", "dropped_pow_timeout", "dropped_wrong_direction",
	"dropped_not_started", "ignored_code", "status_refreshed", "dropped_before_status",
	"dropped_emit_failed",
}

// New returns an unconfigured layer.
func New() *Layer {
	return &Layer{now: time.Now}
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "Whisper v6 (shh/6): PoW-stamped encrypted envelopes flooded through every node",
		Config:      configFields(),
		Provides:    []string{sdk.CapWhisper, sdk.CapDirect, sdk.CapShared, sdk.CapRelayed},
		Requires:    []string{sdk.CapUnicast, sdk.CapNamedProtocols, sdk.CapPeerEvents},
		MaxPayload:  uint32(MaxPayload),
	}
}

// Configure implements sdk.Layer. It loads or creates the node's whisper
// key in <data_dir>/whisper.key.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := parseConfig(req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	key, err := loadKey(req.GetDataDir())
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg, l.env, l.key = cfg, env, key
	l.ownAddr = encodeContact(&key.PublicKey)
	l.ownTopic = PartitionedTopic(&key.PublicKey)
	l.minPoW, l.prevMinPoW = cfg.minPoW, cfg.minPoW
	l.peers = map[string]*peer{}
	l.pool = map[[32]byte]*entry{}
	l.subs = map[string]*subscription{}
	l.counters = map[string]uint64{}
	if l.now == nil {
		l.now = time.Now
	}
	if cfg.light {
		l.bloom = l.topicsBloom()
	}
	l.configured = true
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol}}, nil
}

func loadKey(dir string) (*ecdsa.PrivateKey, error) {
	if dir == "" {
		return crypto.GenerateKey()
	}
	path := filepath.Join(dir, KeyFile)
	key, err := crypto.LoadECDSA(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("whisper: key %s: %w", path, err)
	}
	if key, err = crypto.GenerateKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := crypto.SaveECDSA(path, key); err != nil {
		return nil, fmt.Errorf("whisper: saving key: %w", err)
	}
	return key, nil
}

// Start implements sdk.Layer.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.configured {
		return nil, fmt.Errorf("whisper: not configured")
	}
	if !l.started {
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel, l.done = cancel, ctx.Done()
		l.posts = make(chan *post, 1024)
		l.out.init()
		l.started = true
		l.wg.Add(2)
		go l.poster(ctx)
		go l.sender(ctx)
	}
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
	l.stopped = true
	cancel, started := l.cancel, l.started
	l.mu.Unlock()
	if started {
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

// Health implements sdk.Layer.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(map[string]uint64, len(counterNames)+2)
	for _, n := range counterNames {
		c[n] = 0
	}
	for k, v := range l.counters {
		c[k] = v
	}
	if l.configured {
		l.expire(l.now())
	}
	c["peers"] = uint64(len(l.peers))
	c["pool_size"] = uint64(len(l.pool))
	if l.started {
		c["outbox_frames"] = uint64(l.out.len())
	}
	serving := l.started && !l.stopped
	detail := ""
	if !serving {
		detail = "not started"
	}
	return &commonv1.HealthResponse{Serving: serving, Detail: detail, Counters: c}
}

func (l *Layer) count(name string) { l.counters[name]++ }

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
	if !l.started || l.stopped {
		if l.counters != nil {
			l.counters["dropped_not_started"] += uint64(len(b.GetFrames()))
		}
		l.mu.Unlock()
		return
	}
	now := l.now()
	done := l.done
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
			delete(l.peers, string(p.GetPeer()))
		}
	}
	// Queued, not emitted: reading never waits on the host taking what
	// this layer sends (see outbox).
	l.enqueue(out)
	l.mu.Unlock()
	for _, p := range posts {
		select {
		case l.posts <- p:
		case <-ctx.Done():
			return
		case <-done:
			return
		}
	}
}

// addPeer registers an overlay peer and returns our Status for it.
func (l *Layer) addPeer(id []byte, now time.Time) []*commonv1.Frame {
	p := &peer{
		id:      append([]byte(nil), id...),
		known:   map[[32]byte]struct{}{},
		packets: newBucket(l.cfg.ratePackets, math.Max(l.cfg.ratePackets, 1)),
		bytes:   newBucket(l.cfg.rateBytes, math.Max(l.cfg.rateBytes, float64(l.cfg.maxSize)+1)),
	}
	p.packets.last, p.bytes.last, p.statusSent = now, now, now
	l.peers[string(id)] = p
	return []*commonv1.Frame{down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.light))}
}

// penalise stops accepting from a peer that violated the protocol (geth
// disconnects it; the privacy contract cannot, so the peer is ignored
// until the overlay reports it disconnected).
func (l *Layer) penalise(p *peer, reason string, err error) {
	l.count("dropped_" + reason)
	if !p.banned {
		p.banned = true
		l.count("peers_penalised")
		l.logf("whisper: ignoring peer %x from now on: %s: %v", p.id, reason, err)
	}
}

// receive handles one UP frame from an overlay peer.
func (l *Layer) receive(f *commonv1.Frame, now time.Time) []*commonv1.Frame {
	if f.GetProtocol() != wire.ProtocolName || len(f.GetPeer()) == 0 {
		l.count("dropped_wrong_protocol")
		return nil
	}
	var out []*commonv1.Frame
	p, ok := l.peers[string(f.GetPeer())]
	if !ok { // a frame before its PeerEvent: the peer is connected
		out = l.addPeer(f.GetPeer(), now)
		p = l.peers[string(f.GetPeer())]
	}
	if p.banned {
		l.count("dropped_banned_peer")
		return out
	}
	payload := f.GetPayload()
	if !p.packets.take(now, 1) || !p.bytes.take(now, float64(len(payload))) {
		l.count("dropped_rate_limited")
		return out
	}
	if len(payload) == 0 {
		l.penalise(p, "malformed", errors.New("empty frame"))
		return out
	}
	code, body := payload[0], payload[1:]
	if len(body) > int(l.cfg.maxSize) {
		l.penalise(p, "too_large", fmt.Errorf("packet of %d bytes", len(body)))
		return out
	}
	if !p.gotStatus && code != wire.StatusCode {
		// geth ends the connection here. This layer cannot, and cannot
		// tell an attack from a peer that was talking to an earlier
		// instance of this layer (it restarted; the connection did not):
		// the packet is dropped, and the peer's next Status is taken. Our
		// Status goes to it again now and then, for a peer like this one
		// answers a repeated Status with its own.
		l.count("dropped_before_status")
		if now.Sub(p.statusSent) >= statusRefresh {
			p.statusSent = now
			out = append(out, down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.light)))
		}
		return out
	}
	switch code {
	case wire.StatusCode:
		st, err := decodeStatus(body)
		if err != nil {
			l.penalise(p, "handshake", err)
			return out
		}
		if st.Light && l.cfg.light {
			l.penalise(p, "handshake", errors.New("light node to light node"))
			return out
		}
		if p.gotStatus {
			// A second Status on one connection: geth ignores it. From a
			// layer like this one it means the peer's layer restarted
			// with the connection up and lost the handshake: take its
			// new requirements, answer with our Status (then at most once
			// per statusRefresh, so two peers cannot trade Statuses
			// forever), and hand it the pool again.
			l.count("status_refreshed")
			p.pow, p.bloom, p.light = 0, nil, st.Light
			if st.PoWSet {
				p.pow, p.bloom = st.PoW, st.Bloom
			}
			clear(p.known)
			if p.answered.IsZero() || now.Sub(p.answered) >= statusRefresh {
				p.answered, p.statusSent = now, now
				out = append(out, down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.light)))
			}
			return append(out, l.forwardTo(p, l.poolEntries())...)
		}
		p.gotStatus, p.light = true, st.Light
		if st.PoWSet {
			p.pow, p.bloom = st.PoW, st.Bloom
		}
		// As geth's broadcast loop does, a peer gets the pool once it
		// has told us what it wants.
		out = append(out, l.forwardTo(p, l.poolEntries())...)
	case wire.MessagesCode:
		envs, raws, err := decodeMessagesRaw(body)
		if err != nil {
			l.penalise(p, "malformed", err)
			return out
		}
		var fresh []*entry
		var bad error
		for i, e := range envs {
			ent, up, err := l.add(p, e, raws[i], now)
			if err != nil && bad == nil {
				bad = err
			}
			if ent != nil {
				fresh = append(fresh, ent)
			}
			out = append(out, up...)
		}
		if bad != nil && !p.banned {
			p.banned = true
			l.count("peers_penalised")
			l.logf("whisper: ignoring peer %x from now on: %v", p.id, bad)
		}
		out = append(out, l.forward(fresh, p)...)
	case wire.PowRequirementCode:
		v, err := decodePoWRequirement(body)
		if err != nil {
			l.penalise(p, "malformed", err)
			return out
		}
		p.pow = v
	case wire.BloomFilterExCode:
		bloom, err := decodeBloom(body)
		if err != nil {
			l.penalise(p, "malformed", err)
			return out
		}
		p.bloom = bloom
	default: // 126 (no mail server), 127 (no trusted peers), unknown codes
		l.count("ignored_code")
	}
	return out
}

// effectiveMinPoW is the requirement applied to received envelopes: the
// current one, or the previous one if lower and changed less than 10 s ago.
func (l *Layer) effectiveMinPoW(now time.Time) float64 {
	if now.Sub(l.powChanged) < tolerance {
		return math.Min(l.minPoW, l.prevMinPoW)
	}
	return l.minPoW
}

func (l *Layer) bloomAccepts(now time.Time, sample []byte) bool {
	if l.bloom == nil || wire.BloomFilterMatch(l.bloom, sample) {
		return true
	}
	return now.Sub(l.bloomChanged) < tolerance && (l.prevBloom == nil || wire.BloomFilterMatch(l.prevBloom, sample))
}

// add admits one received envelope, encoded as raw (its encoding in the
// packet, which is e.Encode()), in geth's order. It returns the pool entry
// if the envelope is new, the UP frames it opened to, and an error if the
// sender deserves a penalty.
func (l *Layer) add(p *peer, e *wire.Envelope, raw []byte, now time.Time) (*entry, []*commonv1.Frame, error) {
	ent := newEntry(e, raw, 0)
	h := ent.hash
	if _, dup := l.pool[h]; dup {
		p.known[h] = struct{}{}
		l.count("dropped_duplicate")
		return nil, nil, nil
	}
	pow, err := e.ValidatePoW(now, l.cfg.maxSize, l.effectiveMinPoW(now))
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrVeryOld):
			l.count("dropped_expired")
			return nil, nil, err
		case errors.Is(err, wire.ErrExpired):
			l.count("dropped_expired")
			return nil, nil, nil
		case errors.Is(err, wire.ErrFuture):
			l.count("dropped_future")
		case errors.Is(err, wire.ErrTooLarge):
			l.count("dropped_too_large")
		case errors.Is(err, wire.ErrLowPoW):
			l.count("dropped_low_pow")
		case errors.Is(err, wire.ErrZeroTTL):
			l.count("dropped_zero_ttl")
			return nil, nil, nil
		default:
			l.count("dropped_malformed")
		}
		return nil, nil, err
	}
	if !l.bloomAccepts(now, e.Bloom()) {
		l.count("dropped_bloom")
		return nil, nil, errors.New("whisper: envelope outside our bloom")
	}
	ent.pow = pow // PoWAt(now), as geth keeps the PoW it computed on receipt
	l.pool[h] = ent
	p.known[h] = struct{}{}
	l.count("envelopes_received")
	return ent, l.open(e), nil
}

// open tries the node's keys for the envelope's topic.
func (l *Layer) open(e *wire.Envelope) []*commonv1.Frame {
	tried := false
	if e.Topic == l.ownTopic {
		tried = true
		msg, err := wire.OpenAsymmetric(e, l.key)
		if err == nil {
			return l.deliver(msg, nil)
		}
		if !errors.Is(err, wire.ErrDecrypt) {
			l.count("dropped_undecryptable")
			return nil
		}
	}
	keys := make([]string, 0, len(l.subs))
	for k, s := range l.subs {
		if s.topic == e.Topic {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		tried = true
		msg, err := wire.OpenSymmetric(e, l.subs[k].key)
		if err == nil {
			return l.deliver(msg, []byte(k))
		}
		if !errors.Is(err, wire.ErrDecrypt) {
			l.count("dropped_undecryptable")
			return nil
		}
	}
	if tried {
		l.count("not_for_us")
	}
	return nil
}

// deliver turns an opened message into an UP frame. A message opened on a
// shared address (shared is that address) that names no conversation of
// its own comes up with the shared address as its conversation, as the
// privacy contract says: a public chat's messages are told apart by it.
func (l *Layer) deliver(msg *wire.ReceivedMessage, shared []byte) []*commonv1.Frame {
	conv, payload, err := decodeInner(msg.Flags, msg.Payload)
	if err != nil {
		l.count("dropped_bad_inner")
		return nil
	}
	if len(conv) == 0 {
		conv = shared
	}
	var from []byte
	if msg.Src != nil {
		from = encodeContact(msg.Src)
	}
	l.count("envelopes_opened")
	return []*commonv1.Frame{{
		Direction:    commonv1.Direction_DIRECTION_UP,
		Peer:         from,
		Conversation: append([]byte(nil), conv...),
		Payload:      append([]byte(nil), payload...),
		MessageId:    msg.EnvelopeHash[:],
	}}
}

// forward sends new envelopes to every peer (but the one they came from)
// whose bloom and PoW requirement they meet, in code-1 batches of at most
// max_message_size bytes.
func (l *Layer) forward(ents []*entry, from *peer) []*commonv1.Frame {
	if len(ents) == 0 {
		return nil
	}
	ids := make([]string, 0, len(l.peers))
	for id := range l.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []*commonv1.Frame
	for _, id := range ids {
		if p := l.peers[id]; p != from {
			out = append(out, l.forwardTo(p, ents)...)
		}
	}
	return out
}

// forwardTo sends p the envelopes it does not know and wants (its bloom
// and PoW requirement), in code-1 batches of at most max_message_size
// bytes.
func (l *Layer) forwardTo(p *peer, ents []*entry) []*commonv1.Frame {
	if p.banned || !p.gotStatus {
		return nil
	}
	var out []*commonv1.Frame
	var batch [][]byte
	size := 0
	flush := func() {
		if len(batch) > 0 {
			out = append(out, &commonv1.Frame{
				Direction: commonv1.Direction_DIRECTION_DOWN,
				Peer:      p.id,
				Protocol:  wire.ProtocolName,
				Payload:   messagesPacket(batch),
			})
			batch, size = nil, 0
		}
	}
	for _, ent := range ents {
		h := ent.hash
		if _, ok := p.known[h]; ok {
			continue
		}
		if ent.pow < p.pow || (p.bloom != nil && !wire.BloomFilterMatch(p.bloom, ent.env.Bloom())) {
			continue
		}
		if size+len(ent.raw)+16 > int(l.cfg.maxSize) {
			flush()
		}
		batch = append(batch, ent.raw)
		size += len(ent.raw)
		p.known[h] = struct{}{}
		l.count("envelopes_forwarded")
	}
	flush()
	return out
}

// poolEntries returns the pooled envelopes, oldest expiry first (ties by
// hash), for handing a peer the pool when its handshake completes.
func (l *Layer) poolEntries() []*entry {
	ents := make([]*entry, 0, len(l.pool))
	for _, ent := range l.pool {
		ents = append(ents, ent)
	}
	sort.Slice(ents, func(i, j int) bool {
		a, b := ents[i].env, ents[j].env
		if a.Expiry != b.Expiry {
			return a.Expiry < b.Expiry
		}
		return bytes.Compare(ents[i].hash[:], ents[j].hash[:]) < 0
	})
	return ents
}

// expire drops envelopes whose expiry has passed, at most once a second.
func (l *Layer) expire(now time.Time) {
	if now.Sub(l.lastExpire) < time.Second && !now.Before(l.lastExpire) {
		return
	}
	l.lastExpire = now
	n := uint32(now.Unix())
	for h, ent := range l.pool {
		if ent.env.Expiry < n {
			delete(l.pool, h)
			for _, p := range l.peers {
				delete(p.known, h)
			}
		}
	}
}

// prepare checks a DOWN frame and turns it into a post job.
func (l *Layer) prepare(f *commonv1.Frame) *post {
	a, err := decodeAddress(f.GetPeer())
	if err != nil {
		l.count("dropped_bad_address")
		return nil
	}
	if len(f.GetPayload()) > int(l.cfg.maxSize)-payloadOverhead || len(f.GetConversation()) > maxConversation {
		l.count("dropped_too_large")
		return nil
	}
	return &post{addr: a, conversation: f.GetConversation(), payload: f.GetPayload(), trace: f.GetTraceId(), hints: f.GetHints()}
}

// poster seals posts off the batch path (mining takes time) and posts them.
func (l *Layer) poster(ctx context.Context) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-l.posts:
			l.send(ctx, p)
		}
	}
}

// send seals (mining, outside every lock), pools and forwards one message.
func (l *Layer) send(ctx context.Context, p *post) {
	l.mu.Lock()
	cfg, key, now := l.cfg, l.key, l.now()
	l.mu.Unlock()
	env, err := seal(p, cfg, key, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enqueue(l.publish(p, env, err))
}

// publish pools a sealed envelope and returns the frames that forward it;
// the caller holds l.mu.
func (l *Layer) publish(p *post, env *wire.Envelope, err error) []*commonv1.Frame {
	if err != nil {
		if errors.Is(err, wire.ErrPoWTimeout) {
			l.count("dropped_pow_timeout")
		} else {
			l.count("dropped_too_large")
		}
		l.logf("whisper: cannot post: %v", err)
		return nil
	}
	ent := newEntry(env, env.Encode(), env.PoW())
	if _, dup := l.pool[ent.hash]; dup {
		return nil
	}
	l.pool[ent.hash] = ent
	l.count("envelopes_posted")
	out := l.forward([]*entry{ent}, nil)
	for _, f := range out {
		f.TraceId, f.Hints = p.trace, p.hints
	}
	return out
}

func seal(p *post, cfg settings, key *ecdsa.PrivateKey, now time.Time) (*wire.Envelope, error) {
	inner, flags, err := appendInner(nil, p.conversation, p.payload)
	if err != nil {
		return nil, err
	}
	params := &wire.MessageParams{TTL: cfg.ttl, Src: key, Topic: p.addr.topic, Payload: inner, Flags: flags}
	if p.addr.kind == addrKindContact {
		params.Dst = p.addr.pub
	} else {
		params.KeySym = p.addr.symKey
	}
	msg, err := wire.NewSentMessage(params)
	if err != nil {
		return nil, err
	}
	env, err := msg.Wrap(params, now)
	if err != nil {
		return nil, err
	}
	if env.Size() > int(cfg.maxSize) {
		return nil, wire.ErrTooLarge
	}
	if err := env.Seal(cfg.powTarget, cfg.powTime); err != nil {
		return nil, err
	}
	return env, nil
}

// topicsBloom is the union of the blooms of the node's topics.
func (l *Layer) topicsBloom() []byte {
	bloom := make([]byte, wire.BloomFilterSize)
	or := func(t wire.TopicType) {
		for i, b := range wire.TopicToBloom(t) {
			bloom[i] |= b
		}
	}
	or(l.ownTopic)
	for _, s := range l.subs {
		or(s.topic)
	}
	return bloom
}

// updateBloom recomputes a light node's bloom and returns code-3 packets
// for every peer if it changed.
func (l *Layer) updateBloom() []*commonv1.Frame {
	if !l.cfg.light {
		return nil
	}
	nb := l.topicsBloom()
	if string(nb) == string(l.bloom) {
		return nil
	}
	l.prevBloom, l.bloom, l.bloomChanged = l.bloom, nb, l.now()
	return l.toAll(wire.BloomFilterExCode, encodeBloom(nb))
}

func (l *Layer) toAll(code byte, payload []byte) []*commonv1.Frame {
	ids := make([]string, 0, len(l.peers))
	for id := range l.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*commonv1.Frame, 0, len(ids))
	for _, id := range ids {
		if p := l.peers[id]; !p.banned {
			out = append(out, down(p.id, code, payload))
		}
	}
	return out
}

// SetMinPoW changes the node's PoW requirement and announces it to every
// peer (code 2); the previous value is tolerated for 10 s.
func (l *Layer) SetMinPoW(ctx context.Context, v float64) error {
	if !validPoW(v) {
		return fmt.Errorf("whisper: invalid PoW requirement %v", v)
	}
	l.mu.Lock()
	if !l.configured {
		l.mu.Unlock()
		return fmt.Errorf("whisper: not configured")
	}
	l.prevMinPoW, l.minPoW, l.powChanged = l.minPoW, v, l.now()
	l.enqueue(l.toAll(wire.PowRequirementCode, encodePoWRequirement(v)))
	l.mu.Unlock()
	return nil
}

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.configured {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	return &privacyv1.OwnAddressResponse{Address: l.ownAddr, DisplayAddress: l.display()}, nil
}

// Subscribe implements privacyv1.ControlServer: a public chat (or a group
// with its own key). Topic = Keccak256(name)[:4]; key = req.key if given
// (32 bytes) else geth's password KDF of the name.
func (l *Layer) Subscribe(ctx context.Context, req *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	if req.GetName() == "" {
		return nil, grpcstatus.Error(codes.InvalidArgument, "whisper: a shared address needs a name")
	}
	key := req.GetKey()
	if len(key) > 0 {
		if len(key) != wire.AESKeyLength || allZero(key) {
			return nil, grpcstatus.Errorf(codes.InvalidArgument, "whisper: key must be %d non-zero bytes", wire.AESKeyLength)
		}
		key = append([]byte(nil), key...)
	} else {
		var err error
		if key, err = wire.SymKeyFromPassword(req.GetName()); err != nil {
			return nil, grpcstatus.Error(codes.Internal, err.Error())
		}
	}
	topic := NameTopic(req.GetName())
	addr := encodeShared(topic, key)
	l.mu.Lock()
	if !l.configured {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	l.subs[string(addr)] = &subscription{topic: topic, key: key}
	l.enqueue(l.updateBloom())
	l.mu.Unlock()
	return &privacyv1.SubscribeResponse{Address: addr}, nil
}

// Unsubscribe implements privacyv1.ControlServer.
func (l *Layer) Unsubscribe(ctx context.Context, req *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	a, err := decodeAddress(req.GetAddress())
	if err != nil || a.kind != addrKindShared {
		return nil, grpcstatus.Error(codes.InvalidArgument, "whisper: not a shared address")
	}
	l.mu.Lock()
	if !l.configured {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	if _, ok := l.subs[string(req.GetAddress())]; !ok {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.NotFound, "whisper: not subscribed")
	}
	delete(l.subs, string(req.GetAddress()))
	l.enqueue(l.updateBloom())
	l.mu.Unlock()
	return &privacyv1.UnsubscribeResponse{}, nil
}
