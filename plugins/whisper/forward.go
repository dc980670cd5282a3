// Flooding: which pooled envelopes go to which peer, and their expiry.

package whisper

import (
	"bytes"
	"sort"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// forward sends new envelopes to every peer (but the one they came from)
// whose bloom and PoW requirement they meet, in code-1 batches of at most
// max_message_size bytes.
func (l *Layer) forward(ents []*entry, from *peer, now time.Time) []*commonv1.Frame {
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
			out = append(out, l.forwardTo(p, ents, now)...)
		}
	}
	return out
}

// forwardTo sends p the envelopes it does not know and wants (its bloom
// and PoW requirement), in code-1 batches of at most max_message_size
// bytes, as far as its outbound byte bucket allows. An envelope the bucket
// refuses is dropped for p (dropped_out_rate_limited) and not marked
// known: p still lacks it, but nothing offers it to p again.
func (l *Layer) forwardTo(p *peer, ents []*entry, now time.Time) []*commonv1.Frame {
	if p.banned || !p.gotStatus {
		return nil
	}
	var out []*commonv1.Frame
	var batch [][]byte
	size := 0
	var forwarded uint64
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
		if ent.known.has(p.slot) {
			continue
		}
		if ent.pow < p.pow || (p.bloom != nil && !wire.BloomFilterMatch(p.bloom, ent.env.Bloom())) {
			continue
		}
		if !p.out.take(now, float64(len(ent.raw))) {
			l.count("dropped_out_rate_limited")
			continue
		}
		if size+len(ent.raw)+16 > int(l.cfg.maxSize()) {
			flush()
		}
		batch = append(batch, ent.raw)
		size += len(ent.raw)
		ent.known.set(p.slot)
		forwarded++
	}
	flush()
	l.c.forwarded.Add(forwarded)
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

// outBucket returns the outbound byte bucket of peer id. It is kept by
// id across the peer's connections, for as long as it is not full again
// (see expire): a peer that reconnects, and so is handed the pool again,
// finds its bucket as it left it rather than a full one.
func (l *Layer) outBucket(id []byte, now time.Time) *bucket {
	if b, ok := l.outBuckets[string(id)]; ok {
		return b
	}
	b := newBucket(l.cfg.outRate(), l.cfg.outBurst())
	b.last = now
	if b.rate > 0 {
		l.outBuckets[string(id)] = &b
	}
	return &b
}

// expire drops envelopes whose expiry has passed, and the outbound
// buckets of disconnected peers that have refilled (a new one would be
// the same), at most once a second.
func (l *Layer) expire(now time.Time) {
	if now.Sub(l.lastExpire) < time.Second && !now.Before(l.lastExpire) {
		return
	}
	l.lastExpire = now
	for id, b := range l.outBuckets {
		if _, on := l.peers[id]; !on && b.full(now) {
			delete(l.outBuckets, id)
		}
	}
	n := uint32(now.Unix())
	// By the expiry index, not the pool: a scan of the whole pool once a
	// second cost a relay under a flood as much as hashing (13% of the
	// whisper process at a pool of 200,000).
	for exp, hs := range l.expiries {
		if exp >= n {
			continue
		}
		for _, h := range hs {
			delete(l.pool, h)
		}
		delete(l.expiries, exp)
	}
	l.slots.expired(n)
}

// dropPeer forgets a disconnected peer. Its slot stays dirty until the
// entries it may know have expired (slots).
func (l *Layer) dropPeer(id string) {
	p, ok := l.peers[id]
	if !ok {
		return
	}
	delete(l.peers, id)
	l.slots.release(p.slot, l.maxExpiry)
	if len(l.slots.dirty) > maxDirtySlots {
		l.slots.sweep(l.pool)
	}
}

// pooled puts ent in the pool and its expiry index.
func (l *Layer) pooled(ent *entry) {
	l.pool[ent.hash] = ent
	l.expiries[ent.env.Expiry] = append(l.expiries[ent.env.Expiry], ent.hash)
	l.maxExpiry = max(l.maxExpiry, ent.env.Expiry)
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
