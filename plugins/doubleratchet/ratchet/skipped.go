package ratchet

import (
	"math"
	"slices"
	"time"
)

// skKey is one stored skipped message key.
type skKey struct {
	n    uint32       // message number in its chain
	mk   [keyLen]byte // the message key
	recv uint64       // session receive count when stored (the storing message's number)
	t    int64        // Unix seconds when stored
}

// skChain holds the skipped keys of one receiving chain, by header key.
// keys is sorted by n; keys are only ever appended with larger n.
type skChain struct {
	hk   [keyLen]byte
	keys []skKey
}

// index returns the position of message number n in c.keys.
func (c *skChain) index(n uint32) (int, bool) {
	return slices.BinarySearchFunc(c.keys, n, func(k skKey, n uint32) int {
		switch {
		case k.n < n:
			return -1
		case k.n > n:
			return 1
		}
		return 0
	})
}

// skipped is MKSKIPPED, indexed by header key first. chains is ordered
// oldest first; keys are added only to the chain of the current HKr, which
// is always the last one, so the global order (chain order, then position)
// is the order in which keys were stored.
type skipped struct {
	chains  []*skChain
	count   int   // total keys in all chains
	minTime int64 // lower bound of the stored keys' t; meaningful if count > 0
}

// find returns the chain stored under hk, or nil.
func (s *skipped) find(hk *[keyLen]byte) *skChain {
	for _, c := range s.chains {
		if c.hk == *hk {
			return c
		}
	}
	return nil
}

// clone returns a deep copy.
func (s *skipped) clone() skipped {
	out := skipped{count: s.count, minTime: s.minTime}
	if len(s.chains) > 0 {
		out.chains = make([]*skChain, len(s.chains))
		for i, c := range s.chains {
			out.chains[i] = &skChain{hk: c.hk, keys: slices.Clone(c.keys)}
		}
	}
	return out
}

// add appends keys (increasing n, all larger than any stored under hk) to
// the chain of hk, creating it as the newest chain if needed.
func (s *skipped) add(hk *[keyLen]byte, keys []skKey) {
	if len(keys) == 0 {
		return
	}
	var c *skChain
	if l := len(s.chains); l > 0 && s.chains[l-1].hk == *hk {
		c = s.chains[l-1]
	} else {
		c = &skChain{hk: *hk}
		s.chains = append(s.chains, c)
	}
	if s.count == 0 {
		s.minTime = keys[0].t
	}
	for i := range keys {
		s.minTime = min(s.minTime, keys[i].t)
	}
	c.keys = append(c.keys, keys...)
	s.count += len(keys)
}

// dropChain deletes chain i, wiping its keys.
func (s *skipped) dropChain(i int) {
	c := s.chains[i]
	s.count -= len(c.keys)
	wipeKeys(c.keys)
	c.keys = nil
	wipe(c.hk[:])
	copy(s.chains[i:], s.chains[i+1:])
	s.chains[len(s.chains)-1] = nil
	s.chains = s.chains[:len(s.chains)-1]
}

// remove deletes key j of chain i, wiping it, and the chain if it empties.
func (s *skipped) remove(i, j int) {
	c := s.chains[i]
	if len(c.keys) == 1 {
		s.dropChain(i)
		return
	}
	copy(c.keys[j:], c.keys[j+1:])
	wipeKeys(c.keys[len(c.keys)-1:])
	c.keys = c.keys[:len(c.keys)-1]
	s.count--
}

// popOldest deletes the oldest stored key.
func (s *skipped) popOldest() {
	c := s.chains[0]
	if len(c.keys) == 1 {
		s.dropChain(0)
		return
	}
	wipeKeys(c.keys[:1])
	c.keys = c.keys[1:]
	s.count--
}

// enforce applies MaxSkippedChains and MaxSkippedKeys, deleting the oldest
// chains and then the oldest keys.
func (s *skipped) enforce(lim *Limits) {
	for len(s.chains) > lim.MaxSkippedChains {
		s.dropChain(0)
	}
	for s.count > lim.MaxSkippedKeys {
		s.popOldest()
	}
}

// ttlCutoff returns the storage time before which a key is expired at
// nowSec: a key is expired when nowSec - t > ttl, i.e. t < nowSec - ttl.
func ttlCutoff(nowSec int64, lim *Limits) int64 {
	ttl := int64(lim.SkippedKeyTTL / time.Second)
	if nowSec < math.MinInt64+ttl {
		return math.MinInt64
	}
	return nowSec - ttl
}

// expired reports whether k is expired at nowSec with recv messages
// received so far.
func expired(k *skKey, cutoff int64, recv uint64, lim *Limits) bool {
	return k.t < cutoff || recv-k.recv >= uint64(lim.MaxKeepMessages)
}

// expire deletes every key older than the TTL at nowSec, or stored
// MaxKeepMessages or more messages before recv.
func (s *skipped) expire(nowSec int64, recv uint64, lim *Limits) {
	// recv stamps never decrease in storage order: drop from the front.
	for s.count > 0 && recv-s.chains[0].keys[0].recv >= uint64(lim.MaxKeepMessages) {
		s.popOldest()
	}
	cutoff := ttlCutoff(nowSec, lim)
	if s.count == 0 || s.minTime >= cutoff {
		return
	}
	// Some key may be older than the TTL (times need not be monotonic if
	// the caller's clock moved back): filter all, recompute minTime.
	mt := int64(math.MaxInt64)
	for i := 0; i < len(s.chains); {
		c := s.chains[i]
		kept := c.keys[:0]
		for _, k := range c.keys {
			if k.t < cutoff {
				continue
			}
			kept = append(kept, k)
			mt = min(mt, k.t)
		}
		wipeKeys(c.keys[len(kept):])
		s.count -= len(c.keys) - len(kept)
		c.keys = kept
		if len(kept) == 0 {
			wipe(c.hk[:])
			s.chains = slices.Delete(s.chains, i, i+1)
			continue
		}
		i++
	}
	s.minTime = mt
}

// wipe overwrites every key and drops the chains.
func (s *skipped) wipe() {
	for _, c := range s.chains {
		wipeKeys(c.keys)
		c.keys = nil
		wipe(c.hk[:])
	}
	s.chains = nil
	s.count = 0
	s.minTime = 0
}

// wipeKeys overwrites the message keys in ks.
func wipeKeys(ks []skKey) {
	for i := range ks {
		ks[i] = skKey{}
	}
}
