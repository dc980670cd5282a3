package mvds

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// Group commit. Every Send and SendBatch joins a queue; one caller at a
// time leads: it takes the node's lock, takes everything queued by then
// (its own request first) and commits it in one transaction, so one fsync
// makes a whole round durable. The callers of the round get their answers
// once the commit is done, and the first request queued meanwhile leads
// the next round. An idle node commits a Send at once; under load each
// round holds what arrived during the one before. A request that would be
// refused is refused alone: it writes nothing, and the others of its round
// commit.

// MaxSendBatch is the most messages one SendBatch may carry.
const MaxSendBatch = 4096

// maxRound bounds the messages one round commits, so that the lock it
// holds leaves room for receive and the epochs in between; the rest waits
// for the next round.
const maxRound = 4096

// sendMsg is one message to send: a Send, or one message of a SendBatch.
type sendMsg struct {
	group     []byte
	payload   []byte
	parents   [][]byte
	ephemeral bool
	trace     uint64
}

// commitReq is one Send or SendBatch in the commit loop.
type commitReq struct {
	ctx  context.Context
	msgs []sendMsg
	// parents are the checked parents of each message.
	parents [][]ID
	// batch makes errors name the message they are about.
	batch bool
	// ids and err are the answer, set by the round that took the request.
	ids []ID
	err error
	// lead receives false once the answer is set, or true when the caller
	// is to lead the next round.
	lead chan bool
}

// send adds one message to a group and returns its id. A persistent
// message is committed, with a record for every other member, before send
// returns; it goes out at the next epoch or, eager, at the layer's next
// flush (as a MESSAGE in batch mode, an OFFER in interactive mode). An
// ephemeral one is only queued, to go out once, the same way. Every
// parent must be a persistent message of the group that was sent or
// delivered here. Each call is a new message: the timestamp strictly
// increases, so equal content gets a new id. Concurrent calls share
// commits (group commit, above).
func (n *node) send(ctx context.Context, groupID, payload []byte, rawParents [][]byte, ephemeral bool, trace uint64) (ID, error) {
	ids, err := n.sendBatch(ctx, []sendMsg{{group: groupID, payload: payload, parents: rawParents, ephemeral: ephemeral, trace: trace}}, false)
	if err != nil {
		return ID{}, err
	}
	return ids[0], nil
}

// sendBatch sends msgs as send sends each, in order, all or none: one
// that send would refuse refuses them all (the error names its index when
// batch is set) and nothing of them is stored or queued. A message may
// name an earlier persistent message of msgs as a parent. The persistent
// ones are committed in one transaction before it returns.
func (n *node) sendBatch(ctx context.Context, msgs []sendMsg, batch bool) ([]ID, error) {
	if len(msgs) > MaxSendBatch {
		return nil, fmt.Errorf("%w: %d messages in a batch, at most %d", errInvalid, len(msgs), MaxSendBatch)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	r := &commitReq{ctx: ctx, msgs: msgs, parents: make([][]ID, len(msgs)), batch: batch, lead: make(chan bool, 1)}
	for i, m := range msgs {
		ps, err := n.check(m)
		if err != nil {
			return nil, r.wrap(i, err)
		}
		r.parents[i] = ps
	}
	n.submit(r)
	return r.ids, r.err
}

// check validates what a message carries, before any state is read.
func (n *node) check(m sendMsg) ([]ID, error) {
	if len(m.payload) > MaxPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes, at most %d", errInvalid, len(m.payload), MaxPayload)
	}
	if len(m.parents) > n.cfg.MaxParents {
		return nil, fmt.Errorf("%w: %d parents, at most %d", errInvalid, len(m.parents), n.cfg.MaxParents)
	}
	ps, err := toIDs(m.parents)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalid, err)
	}
	return ps, nil
}

// wrap names message i in an error of a batch.
func (r *commitReq) wrap(i int, err error) error {
	if !r.batch {
		return err
	}
	return fmt.Errorf("message %d: %w", i, err)
}

// submit queues r and returns once r is answered, having led a round if
// its turn came.
func (n *node) submit(r *commitReq) {
	n.cmu.Lock()
	n.queue = append(n.queue, r)
	if n.leading {
		n.cmu.Unlock()
		if !<-r.lead {
			return
		}
	} else {
		n.leading = true
		n.cmu.Unlock()
	}
	// r leads, and is the first of the queue.
	n.commitRound()
	n.cmu.Lock()
	if len(n.queue) == 0 {
		n.leading = false
		n.cmu.Unlock()
		return
	}
	next := n.queue[0]
	n.cmu.Unlock()
	next.lead <- true
}

// takeRound removes from the queue the requests of one round: the first,
// and those after it within maxRound messages.
func (n *node) takeRound() []*commitReq {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	k, size := 0, 0
	for k < len(n.queue) && (k == 0 || size+len(n.queue[k].msgs) <= maxRound) {
		size += len(n.queue[k].msgs)
		k++
	}
	round := n.queue[:k:k]
	n.queue = slices.Clone(n.queue[k:])
	return round
}

// staged is what a request of a round will change in memory once the
// round is committed.
type staged struct {
	ids    []ID
	traces []uint64
	once   []stagedOnce
	fresh  []*group
}

// stagedOnce is an ephemeral message to queue for every other member.
type stagedOnce struct {
	g   *group
	out outMessage
}

// round is the state of one round's transaction.
type round struct {
	tx *txn
	// ts is the last timestamp stamped in the round.
	ts int64
	// once counts the ephemeral messages staged per group.
	once map[*group]int
	// wrote says whether a persistent message was stored.
	wrote bool
}

// commitRound takes the queued requests (the leader's first) and commits
// them in one transaction, then answers them all but the first, whose
// caller is running it.
func (n *node) commitRound() {
	n.mu.Lock()
	defer n.mu.Unlock()
	reqs := n.takeRound() // under n.mu, so that it gathers while the lock is waited for
	defer func() {
		for _, r := range reqs[1:] {
			r.lead <- false
		}
	}()
	failAll := func(err error) {
		for _, r := range reqs {
			if r.err == nil {
				r.ids, r.err = nil, err
			}
		}
	}
	if err := n.usable(); err != nil {
		failAll(err)
		return
	}
	if len(n.self) == 0 {
		failAll(fmt.Errorf("%w: the node has no identity key", errPrecondition))
		return
	}
	// The transaction serves every caller of the round: one caller's end
	// does not cancel it.
	tx, err := n.st.begin(context.WithoutCancel(reqs[0].ctx))
	if err != nil {
		failAll(err)
		return
	}
	defer tx.rollback()
	rd := &round{tx: tx, ts: n.lastTS, once: make(map[*group]int)}
	effects := make([]*staged, len(reqs))
	for i, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		st, refused, err := n.stage(rd, r)
		if err != nil { // storage: nothing of the round is committed
			failAll(err)
			return
		}
		if refused != nil {
			r.err = refused
			continue
		}
		effects[i] = st
	}
	if rd.wrote {
		if err := tx.setMeta(metaTimestamp, rd.ts); err != nil {
			failAll(err)
			return
		}
		if err := tx.setMeta(metaEpoch, int64(n.epoch)); err != nil {
			failAll(err)
			return
		}
		if err := tx.commit(); err != nil {
			failAll(err)
			return
		}
		n.c.sendCommits.Add(1)
	}
	n.lastTS = rd.ts
	for i, st := range effects {
		if st == nil {
			continue
		}
		for j, id := range st.ids {
			n.noteTrace(id, st.traces[j])
		}
		for _, o := range st.once {
			for _, peer := range o.g.members {
				if !bytes.Equal(peer, n.self) {
					o.g.once[string(peer)] = append(o.g.once[string(peer)], o.out)
				}
			}
		}
		for _, g := range st.fresh {
			for _, peer := range g.members {
				if !bytes.Equal(peer, n.self) {
					n.markFresh(g, peer)
				}
			}
		}
		reqs[i].ids = st.ids
	}
}

// stage checks the messages of r against the node's state and, if none
// is refused, stores the persistent ones in the round's transaction. It
// returns what the request changes in memory once committed, or why it is
// refused (nothing of it written), or a storage error.
func (n *node) stage(rd *round, r *commitReq) (st *staged, refused, err error) {
	type item struct {
		g      *group
		id     ID
		ts     int64
		out    outMessage
		stored stored
	}
	items := make([]item, 0, len(r.msgs))
	// own holds the persistent messages of r, by group and id, for the
	// parents of later ones.
	own := make(map[string]bool)
	ts := rd.ts
	onceAdded := make(map[*group]int)
	now := n.now()
	for i, m := range r.msgs {
		g := n.groups[string(m.group)]
		if g == nil {
			return nil, r.wrap(i, fmt.Errorf("%w: %s", errNoGroup, short(m.group))), nil
		}
		ts = max(now.UnixMilli(), ts+1)
		out, sto, err := n.encode(g.id, ts, m.payload, r.parents[i], m.ephemeral)
		if err != nil {
			return nil, r.wrap(i, fmt.Errorf("%w: %v", errInvalid, err)), nil
		}
		id := MessageID(g.id, ts, out.m.Body)
		for _, p := range r.parents[i] {
			if own[string(g.id)+string(p[:])] {
				continue
			}
			info, found, err := rd.tx.message(g.id, p)
			if err != nil {
				return nil, nil, err
			}
			if !found || !info.done() {
				return nil, r.wrap(i, fmt.Errorf("%w: parent %s is not a persistent message of the group sent or delivered here", errPrecondition, p)), nil
			}
		}
		if m.ephemeral {
			queued := rd.once[g] + onceAdded[g]
			for _, peer := range g.members {
				if w := len(g.once[string(peer)]) + queued; !bytes.Equal(peer, n.self) && w >= queueFactor*n.cfg.MaxIDs {
					return nil, r.wrap(i, fmt.Errorf("%w: %d ephemeral messages wait for %s", errBusy, w, short(peer))), nil
				}
			}
			onceAdded[g]++
		} else {
			own[string(g.id)+string(id[:])] = true
		}
		items = append(items, item{g: g, id: id, ts: ts, out: out, stored: sto})
	}
	// Nothing is refused: store the persistent messages.
	typ := recMessage
	if n.cfg.interactive() {
		typ = recOffer
	}
	st = &staged{}
	fresh := make(map[*group]bool)
	for i, it := range items {
		st.ids = append(st.ids, it.id)
		st.traces = append(st.traces, r.msgs[i].trace)
		if !fresh[it.g] {
			fresh[it.g] = true
			st.fresh = append(st.fresh, it.g)
		}
		if r.msgs[i].ephemeral {
			st.once = append(st.once, stagedOnce{g: it.g, out: it.out})
			continue
		}
		if err := rd.tx.insertMessage(messageRow{group: it.g.id, id: it.id, timestamp: it.ts, stored: it.stored, own: true, delivered: true, sender: n.self, receivedMs: now.UnixMilli()}); err != nil {
			return nil, nil, err
		}
		for _, peer := range it.g.members {
			if bytes.Equal(peer, n.self) {
				continue
			}
			if _, err := rd.tx.addState(it.g.id, peer, it.id, typ, n.epoch+1); err != nil {
				return nil, nil, err
			}
		}
		rd.wrote = true
	}
	for g, k := range onceAdded {
		rd.once[g] += k
	}
	rd.ts = ts
	return st, nil, nil
}
