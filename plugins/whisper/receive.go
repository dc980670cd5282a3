// What comes in from overlay peers: Status handshakes, rate limits, the
// envelope checks of EIP-627, the pool, and opening envelopes for this node.

package whisper

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

type entry struct {
	env  *wire.Envelope
	raw  []byte   // env.Encode()
	hash [32]byte // env.Hash() = Keccak256(raw)
	pow  float64
	// known is the slots of the connected peers that have the envelope,
	// from us or from them (peer.slot).
	known knownSet
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
	// slot is the peer's bit in the pool entries' known sets.
	slot int
	// statusSent is when our last Status went to the peer, answered when
	// we last answered a repeated Status of its (zero: never).
	statusSent time.Time
	answered   time.Time
	packets    bucket
	bytes      bucket
	// out is the peer's share of l.outBuckets: the envelope bytes it may
	// still be sent (peer_out_rate, peer_out_burst).
	out *bucket
}

// addPeer registers an overlay peer and returns our Status for it.
func (l *Layer) addPeer(id []byte, now time.Time) []*commonv1.Frame {
	p := &peer{
		id:      append([]byte(nil), id...),
		slot:    l.slots.take(),
		packets: newBucket(l.cfg.ratePackets(), math.Max(l.cfg.ratePackets(), 1)),
		bytes:   newBucket(l.cfg.rateBytes(), math.Max(l.cfg.rateBytes(), float64(l.cfg.maxSize())+1)),
		out:     l.outBucket(id, now),
	}
	p.packets.last, p.bytes.last, p.statusSent = now, now, now
	l.peers[string(id)] = p
	return []*commonv1.Frame{down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.Light))}
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
	if len(body) > int(l.cfg.maxSize()) {
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
			out = append(out, down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.Light)))
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
		if st.Light && l.cfg.Light {
			l.penalise(p, "handshake", errors.New("light node to light node"))
			return out
		}
		p.pow, p.bloom, p.light = 0, nil, st.Light
		if st.PoWSet {
			p.pow, p.bloom = st.PoW, st.Bloom
		}
		if p.gotStatus {
			// A second Status on one connection (geth logs it and reads
			// on). From a layer like this one it means the peer's layer
			// restarted with the connection up and lost the handshake:
			// its new requirements are taken, and it is answered with our
			// Status, then at most once per statusRefresh, so that two
			// peers cannot trade Statuses forever. Nothing else: its
			// known set stays and it is not handed the pool again. That
			// is once per connection, or every Status would buy the
			// whole pool (a flood of 100 Statuses, 1.4 KB, drew 8.3 MB of
			// 20 pooled 4 KB envelopes: TestStatusFlood). What the
			// restarted layer lost, the layers above send again.
			l.count("status_refreshed")
			if p.answered.IsZero() || now.Sub(p.answered) >= statusRefresh {
				p.answered, p.statusSent = now, now
				out = append(out, down(p.id, wire.StatusCode, encodeStatus(l.minPoW, l.bloom, l.cfg.Light)))
			}
			return out
		}
		p.gotStatus = true
		// As geth's broadcast loop does, a peer gets the pool once it
		// has told us what it wants: once per connection, since
		// gotStatus is never cleared on one (a reconnect is a new peer).
		out = append(out, l.forwardTo(p, l.poolEntries(), now)...)
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
		out = append(out, l.forward(fresh, p, now)...)
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
	if old, dup := l.pool[ent.hash]; dup {
		old.known.set(p.slot)
		l.count("dropped_duplicate")
		return nil, nil, nil
	}
	pow, err := e.ValidatePoW(now, l.cfg.maxSize(), l.effectiveMinPoW(now))
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
	l.pooled(ent)
	ent.known.set(p.slot)
	l.c.received.Add(1)
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
