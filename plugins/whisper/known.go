// Which peers know which pooled envelopes: a bit per peer slot on each
// pool entry, instead of a set of hashes per peer.

package whisper

// knownSet is the set of peer slots that know an envelope: slots 0–63 in
// lo, the rest (a node with more than 64 peers, or many recent
// disconnects) in hi, grown on demand.
type knownSet struct {
	lo uint64
	hi []uint64
}

func (k *knownSet) has(slot int) bool {
	if slot < 64 {
		return k.lo&(1<<slot) != 0
	}
	w := slot/64 - 1
	return w < len(k.hi) && k.hi[w]&(1<<(slot%64)) != 0
}

func (k *knownSet) set(slot int) {
	if slot < 64 {
		k.lo |= 1 << slot
		return
	}
	w := slot/64 - 1
	for len(k.hi) <= w {
		k.hi = append(k.hi, 0)
	}
	k.hi[w] |= 1 << (slot % 64)
}

func (k *knownSet) clear(slot int) {
	if slot < 64 {
		k.lo &^= 1 << slot
		return
	}
	if w := slot/64 - 1; w < len(k.hi) {
		k.hi[w] &^= 1 << (slot % 64)
	}
}

// maxDirtySlots is how many slots of gone peers may wait for their pool
// entries to expire before they are cleared by a scan of the pool.
const maxDirtySlots = 64

// slots hands out peer slots. A peer's slot is its bit in every pool
// entry's knownSet. When the peer goes, its bit may still be set in
// entries pooled while it was connected, so its slot is dirty: it is
// taken again only once every such entry has expired (cleanAt), or after
// a scan of the pool has cleared the bit (when more than maxDirtySlots
// wait). A peer that comes back gets a clean slot, and so the pool again,
// as geth's per-connection known set gives it.
type slots struct {
	next  int   // slots ever used
	free  []int // clean slots
	dirty []dirtySlot
}

type dirtySlot struct {
	slot int
	// cleanAt is the latest expiry (unix seconds) of the entries pooled
	// when the peer went: once it has passed, none of them is left.
	cleanAt uint32
}

// take returns the lowest clean slot, so that slots stay below 64, in
// knownSet's first word, while a node has fewer peers.
func (s *slots) take() int {
	if n := len(s.free); n > 0 {
		low := 0
		for i, slot := range s.free {
			if slot < s.free[low] {
				low = i
			}
		}
		slot := s.free[low]
		s.free[low] = s.free[n-1]
		s.free = s.free[:n-1]
		return slot
	}
	s.next++
	return s.next - 1
}

// release marks slot dirty until cleanAt.
func (s *slots) release(slot int, cleanAt uint32) {
	s.dirty = append(s.dirty, dirtySlot{slot: slot, cleanAt: cleanAt})
}

// expired frees the dirty slots whose entries have all expired at now
// (unix seconds): expire drops an entry once its expiry is below now.
func (s *slots) expired(now uint32) {
	kept := s.dirty[:0]
	for _, d := range s.dirty {
		if d.cleanAt < now {
			s.free = append(s.free, d.slot)
		} else {
			kept = append(kept, d)
		}
	}
	s.dirty = kept
}

// sweep clears every dirty slot's bit from the pool's entries and frees
// the slots.
func (s *slots) sweep(pool map[[32]byte]*entry) {
	// One mask for the slots in the first word, so that the pass costs
	// one operation per entry whatever the number of dirty slots there.
	var lo uint64
	var hi []int
	for _, d := range s.dirty {
		if d.slot < 64 {
			lo |= 1 << d.slot
		} else {
			hi = append(hi, d.slot)
		}
	}
	for _, ent := range pool {
		ent.known.lo &^= lo
		for _, slot := range hi {
			ent.known.clear(slot)
		}
	}
	for _, d := range s.dirty {
		s.free = append(s.free, d.slot)
	}
	s.dirty = s.dirty[:0]
}
