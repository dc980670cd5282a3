package mvds

import (
	"math"
	"sync"
)

// sweepEvery is how many epochs may pass between two epochs that read
// every member's due records, whatever dueBounds says: a bound that some
// future write forgot to lower delays a record by at most this many
// epochs, never forever.
const sweepEvery = 64

// dueBounds lets an epoch skip the members that have nothing due without
// asking the database (BenchmarkIdleTick: an epoch of a node with 199 1:1
// conversations read 199 members' records, 1.1 ms, 20 times a second at
// epoch: 50ms). For a group and a member it keeps a bound b: no record of
// that member has a send epoch below b. No bound means unknown (read the
// records). Every write of a send epoch lowers the bound through the
// store's transaction methods (addState, answerRequest, updateState,
// resetPeer; clampStates forgets all bounds), so a bound is never above the
// truth; the epoch sets a bound only after it read the member's records,
// in its own transaction, from their minimum. The store has one
// connection, so no other transaction writes in between.
type dueBounds struct {
	mu sync.Mutex
	b  map[string]map[string]uint64 // group id -> member -> bound
}

func newDueBounds() *dueBounds { return &dueBounds{b: make(map[string]map[string]uint64)} }

// lower records that a record of peer in group may be due at epoch.
func (d *dueBounds) lower(group, peer []byte, epoch uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.b[string(group)][string(peer)]; ok && epoch < b {
		d.b[string(group)][string(peer)] = epoch
	}
}

// set records that no record of peer in group is due before epoch
// (math.MaxUint64: peer has no records).
func (d *dueBounds) set(group, peer []byte, epoch uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.b[string(group)]
	if m == nil {
		m = make(map[string]uint64)
		d.b[string(group)] = m
	}
	m[string(peer)] = epoch
}

// idle says whether no record of peer in group can be due at epoch.
func (d *dueBounds) idle(group, peer []byte, epoch uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.b[string(group)][string(peer)]
	return ok && epoch < b
}

// forget drops every bound (a write that moved many records' epochs).
func (d *dueBounds) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.b)
}

// noRecords is the bound of a member without records.
const noRecords = math.MaxUint64
