package mvds

import "sync"

// minRecordIDs is the least size at which a group's recordIDs set is
// read again from the table.
const minRecordIDs = 4096

// recordIDs lets an ack skip the database when no member has a record of
// its message here. With group acks a member hears every member's acks of
// every message, nearly all of them of messages it holds no OFFER or
// MESSAGE record for (it did not send them, and without relay it does not
// pass them on): in a group of 200 that was every member's mvds looking up
// 199 acks of each message, under its node lock, while a Send waited.
//
// For a group it keeps a superset of the ids that have a record in the
// states table. A group that has no set yet is read from the table in the
// transaction that first needs it. Every write of a record adds its id
// first (addState, answerRequest), even if its transaction then rolls
// back, so the set is never short of the truth; nothing removes an id but
// reading the table again, which happens when the set has grown to twice
// what the last reading found (and at least minRecordIDs). The store has
// one connection, so no other transaction writes in between a reading and
// the writes after it.
type recordIDs struct {
	mu   sync.Mutex
	sets map[string]*idSet // group id -> the ids with a record, if read
}

// idSet is one group's ids, and the size at which it is read again.
type idSet struct {
	ids   map[ID]struct{}
	limit int
}

func newRecordIDs() *recordIDs { return &recordIDs{sets: make(map[string]*idSet)} }

// add notes that id may have a record in group. A group not read yet stays
// unread: its reading will find the record.
func (r *recordIDs) add(group []byte, id ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sets[string(group)]
	if s == nil {
		return
	}
	s.ids[id] = struct{}{}
	if len(s.ids) >= s.limit {
		delete(r.sets, string(group)) // read again when next needed
	}
}

// filter returns the ids of ids that may have a record in group, reading
// the group's ids with read if it has no set. On an error of read it
// returns ids whole, which the caller then looks up.
func (r *recordIDs) filter(group []byte, ids []ID, read func() ([]ID, error)) []ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sets[string(group)]
	if s == nil {
		all, err := read()
		if err != nil {
			return ids
		}
		s = &idSet{ids: make(map[ID]struct{}, len(all)), limit: max(2*len(all), minRecordIDs)}
		for _, id := range all {
			s.ids[id] = struct{}{}
		}
		r.sets[string(group)] = s
	}
	var out []ID
	for _, id := range ids {
		if _, ok := s.ids[id]; ok {
			out = append(out, id)
		}
	}
	return out
}
