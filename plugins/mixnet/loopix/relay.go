package loopix

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// RelayConfig configures a Mix or the relay half of a Provider.
type RelayConfig struct {
	Common
	// Self is the relay's own Sphinx node id; the directory must list it.
	Self sphinx.NodeID
	// Keys is the relay's Sphinx key chain, at or before the current
	// epoch. The relay advances it (erasing older seeds) as epochs pass,
	// keeping the previous epoch's key for packets in flight.
	Keys *pki.KeyChain
	// Replay is the replay tag store.
	Replay ReplayFilter
	// MaxQueue bounds the packets held for their delay.
	MaxQueue int
	// MaxDelay is the longest per-hop delay accepted; packets asking for
	// more are dropped (a sender can otherwise park packets for days).
	MaxDelay time.Duration
	// MaxLateness, if positive, drops a packet whose send comes more than
	// this after its due time (the relay could not keep up: Katzenpost
	// drops packets that overstayed their delay).
	MaxLateness time.Duration
}

// relay is what mixes and providers share: epoch keys, unwrapping, the
// replay check, the delay queue and the relay's own loops.
type relay struct {
	cfg  RelayConfig
	dir  *Directory
	self *Node
	g    rng
	c    *Counters

	epoch     uint64
	started   bool
	keys      map[uint64]*sphinx.PrivateKey
	queue     delayQueue
	seq       uint64
	nextLoop  time.Time
	nextEpoch time.Time
	out       []Output
	// Scratch for fresh and Mix.HandleBatch, reused between calls.
	batch    []opened
	checks   []replay.Check
	verdicts []replay.Verdict
	// loopID is the Recipient id of the relay's own loops: its node id.
	loopID sphinx.RecipientID
}

func newRelay(cfg RelayConfig, dir *Directory, c *Counters) (*relay, error) {
	if err := cfg.check(dir); err != nil {
		return nil, err
	}
	if cfg.Keys == nil || cfg.Replay == nil || cfg.MaxQueue <= 0 || cfg.MaxDelay <= 0 {
		return nil, errors.New("loopix: a relay needs keys, a replay filter, a queue bound and a delay bound")
	}
	r := &relay{cfg: cfg, c: c, g: rng{r: cfg.Rand}, keys: map[uint64]*sphinx.PrivateKey{}}
	r.loopID = sphinx.RecipientID(cfg.Self)
	if err := r.setDirectory(dir); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *relay) setDirectory(dir *Directory) error {
	self, ok := dir.ByID(r.cfg.Self)
	if !ok {
		return fmt.Errorf("loopix: the directory does not list this relay")
	}
	r.dir, r.self = dir, self
	return nil
}

// rotate moves the relay to the epoch of now: the key chain advances to
// the previous epoch (erasing what came before), keys older than that are
// zeroed, and the replay store rotates with them.
func (r *relay) rotate(ctx context.Context, now time.Time) error {
	e := r.cfg.Epochs.At(now)
	if r.started && e == r.epoch {
		return nil
	}
	if r.started && e < r.epoch {
		return nil // the clock went back: keep the later epoch's keys
	}
	keep := e
	if e > 0 {
		keep = e - 1
	}
	if r.cfg.Keys.Epoch() < keep {
		if err := r.cfg.Keys.Advance(keep); err != nil {
			return fmt.Errorf("loopix: advance keys: %w", err)
		}
	}
	for ep, k := range r.keys {
		if ep < keep {
			k.Zero()
			delete(r.keys, ep)
		}
	}
	for ep := keep; ep <= e+1; ep++ {
		if _, ok := r.keys[ep]; ok || ep < r.cfg.Keys.Epoch() {
			continue
		}
		kp, err := r.cfg.Keys.Key(ep)
		if err != nil {
			return fmt.Errorf("loopix: key for epoch %d: %w", ep, err)
		}
		k, err := sphinx.NewPrivateKey(kp.Private[:])
		clear(kp.Private[:])
		if err != nil {
			return fmt.Errorf("loopix: key for epoch %d: %w", ep, err)
		}
		r.keys[ep] = k
	}
	if err := r.cfg.Replay.Rotate(ctx, e); err != nil {
		return fmt.Errorf("loopix: rotate replay store: %w", err)
	}
	if r.started {
		r.c.EpochRotations.Inc()
	}
	r.epoch, r.started = e, true
	r.nextEpoch = r.cfg.Epochs.Start(e + 1)
	return nil
}

// open unwraps pkt (in place) with the key of the current epoch, then the
// previous and the next, and returns the result and that key's epoch. It
// counts and returns false for a packet to drop. The replay tag is not
// checked yet: see fresh.
func (r *relay) open(pkt []byte) (*sphinx.Result, uint64, bool) {
	order := []uint64{r.epoch, r.epoch - 1, r.epoch + 1}
	for _, ep := range order {
		k, ok := r.keys[ep]
		if !ok {
			continue
		}
		res, err := r.cfg.Geometry.Unwrap(k, pkt)
		if errors.Is(err, sphinx.ErrInvalidMAC) {
			continue // another epoch's key, maybe
		}
		if errors.Is(err, sphinx.ErrInvalidCommands) || errors.Is(err, sphinx.ErrPayloadTag) {
			r.c.BadCommands.Inc()
			return nil, 0, false
		}
		if err != nil {
			r.c.Malformed.Inc()
			return nil, 0, false
		}
		return res, ep, true
	}
	r.c.Undecryptable.Inc()
	return nil, 0, false
}

// opened is a packet unwrapped by open whose replay tag is not checked
// yet.
type opened struct {
	res       *sphinx.Result
	pkt       []byte
	epoch     uint64
	fromRelay bool // a provider's: the packet came from a relay, not a client
}

// fresh checks the replay tags of the packets in batch in one call of the
// replay filter, which makes the new ones durable (one commit for all)
// before it returns, and returns the packets whose tags were new, in
// order; the rest are counted and dropped. Nothing derived from a packet
// may be queued or sent before fresh has returned it. A packet twice in
// the batch is returned once.
func (r *relay) fresh(ctx context.Context, batch []opened) []opened {
	if len(batch) == 0 {
		return batch
	}
	r.checks = r.checks[:0]
	for _, o := range batch {
		r.checks = append(r.checks, replay.Check{Epoch: o.epoch, Tag: [sphinx.ReplayTagLength]byte(o.res.ReplayTag)})
	}
	r.verdicts = r.cfg.Replay.SeenBatch(ctx, r.checks, r.verdicts[:0])
	r.c.ReplayBatches.Inc()
	if len(r.verdicts) != len(batch) {
		// A filter that does not answer every tag: trust none.
		r.c.ReplayError.Add(uint64(len(batch)))
		return batch[:0]
	}
	out := batch[:0]
	for i, o := range batch {
		switch v := r.verdicts[i]; {
		case v.Err != nil:
			r.c.ReplayError.Inc()
		case v.Seen:
			r.c.Replayed.Inc()
		default:
			out = append(out, o)
		}
	}
	return out
}

// unwrap opens one packet and checks its replay tag: open and fresh for a
// batch of one.
func (r *relay) unwrap(ctx context.Context, pkt []byte) (*sphinx.Result, bool) {
	res, ep, ok := r.open(pkt)
	if !ok {
		return nil, false
	}
	if len(r.fresh(ctx, []opened{{res: res, pkt: pkt, epoch: ep}})) == 0 {
		return nil, false
	}
	return res, true
}

// forward queues an unwrapped non-terminal packet for its next hop after
// the delay its sender wrote. Only NodeDelay + NextNodeHop are accepted.
func (r *relay) forward(now time.Time, res *sphinx.Result, pkt []byte) {
	next, _ := res.Commands.NextNodeHop()
	delay, hasDelay := res.Commands.NodeDelay()
	_, hasRecipient := res.Commands.Recipient()
	_, hasSURB := res.Commands.SURBReply()
	if !hasDelay || hasRecipient || hasSURB {
		r.c.BadCommands.Inc()
		return
	}
	n, ok := r.dir.ByID(next.ID)
	if !ok {
		r.c.UnknownNextHop.Inc()
		return
	}
	if delay.Duration() > r.cfg.MaxDelay {
		r.c.DelayTooLong.Inc()
		return
	}
	r.schedule(now, now.Add(delay.Duration()), n.Peer, EncodePacket(pkt))
}

func (r *relay) schedule(now, due time.Time, to PeerID, frame []byte) {
	if r.queue.Len() >= r.cfg.MaxQueue {
		r.c.QueueFull.Inc()
		return
	}
	r.seq++
	heap.Push(&r.queue, &queued{due: due, queued: now, seq: r.seq, to: to, frame: frame})
	r.c.QueueLength.Store(uint64(r.queue.Len()))
}

// tick sends what is due and the relay's own loops.
func (r *relay) tick(ctx context.Context, now time.Time) {
	if err := r.rotate(ctx, now); err != nil {
		r.c.ReplayError.Inc()
	}
	for r.queue.Len() > 0 && !r.queue[0].due.After(now) {
		q := heap.Pop(&r.queue).(*queued)
		if r.cfg.MaxLateness > 0 && now.Sub(q.due) > r.cfg.MaxLateness {
			r.c.Late.Inc()
			continue
		}
		r.out = append(r.out, Output{To: q.to, Frame: q.frame})
		r.c.PacketsOut.Inc()
		r.c.Forwarded.Inc()
		r.c.QueueDelayMs.Add(uint64(now.Sub(q.queued).Milliseconds()))
	}
	r.c.QueueLength.Store(uint64(r.queue.Len()))
	if r.cfg.Rates.LambdaM <= 0 {
		return
	}
	if r.nextLoop.IsZero() {
		r.nextLoop = r.after(now, r.cfg.Rates.LambdaM)
	}
	for !r.nextLoop.After(now) {
		r.sendLoop(now)
		r.nextLoop = r.after(r.nextLoop, r.cfg.Rates.LambdaM)
	}
}

// after returns t plus an Exp(rate) sample; on a randomness failure, a
// mean interval.
func (r *relay) after(t time.Time, rate float64) time.Time {
	d, err := r.g.exp(rate)
	if err != nil {
		r.c.RandomnessFailures.Inc()
		d = time.Duration(float64(time.Second) / rate)
	}
	return t.Add(max(d, time.Millisecond))
}

// loopHops is the path of the relay's own loop: through the layers after
// its own, a provider (for a mix), the layers before its own, and back to
// itself, one node of every mix layer in all.
func (r *relay) loopHops() ([]*Node, error) {
	mixes, err := r.dir.randomMixes(&r.g)
	if err != nil {
		return nil, err
	}
	if r.self.Layer < 0 {
		return append(mixes, r.self), nil
	}
	p, err := r.dir.randomProvider(&r.g)
	if err != nil {
		return nil, err
	}
	hops := append([]*Node{}, mixes[r.self.Layer+1:]...)
	hops = append(hops, p)
	hops = append(hops, mixes[:r.self.Layer]...)
	return append(hops, r.self), nil
}

func (r *relay) sendLoop(now time.Time) {
	hops, err := r.loopHops()
	if err != nil {
		r.c.RandomnessFailures.Inc()
		return
	}
	path, _, err := buildPath(&r.g, r.cfg.Epochs, r.cfg.Rates.Mu, now, hops, sphinx.Commands{sphinx.Recipient{ID: r.loopID}})
	if err != nil {
		r.c.NoRoute.Inc()
		return
	}
	payload := make([]byte, r.cfg.Geometry.ForwardPayloadLength)
	if _, err := r.cfg.Rand.Read(payload); err != nil {
		r.c.RandomnessFailures.Inc()
		return
	}
	pkt, err := r.cfg.Geometry.NewPacket(r.cfg.Rand, path, payload)
	if err != nil {
		r.c.NoRoute.Inc()
		return
	}
	r.out = append(r.out, Output{To: hops[0].Peer, Frame: EncodePacket(pkt)})
	r.c.PacketsOut.Inc()
	r.c.LoopsSent.Inc()
}

// isOwnLoop reports whether a terminal packet is one of the relay's loops.
func (r *relay) isOwnLoop(res *sphinx.Result) bool {
	rc, ok := res.Commands.Recipient()
	_, surb := res.Commands.SURBReply()
	return ok && !surb && rc.ID == r.loopID
}

func (r *relay) next() time.Time {
	t := r.nextEpoch
	if r.queue.Len() > 0 && r.queue[0].due.Before(t) {
		t = r.queue[0].due
	}
	if r.cfg.Rates.LambdaM > 0 && !r.nextLoop.IsZero() && r.nextLoop.Before(t) {
		t = r.nextLoop
	}
	return t
}

func (r *relay) ready() Ready {
	out := r.out
	r.out = nil
	return Ready{Out: out}
}

// queued is a packet held for its delay.
type queued struct {
	due, queued time.Time
	seq         uint64
	to          PeerID
	frame       []byte
}

// delayQueue is a min-heap by due time (then arrival order).
type delayQueue []*queued

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if q[i].due.Equal(q[j].due) {
		return q[i].seq < q[j].seq
	}
	return q[i].due.Before(q[j].due)
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(*queued)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}

// Mix is a mix node of one layer of the stratified topology: it unwraps
// every packet with its epoch key, drops replays, holds the packet for the
// delay its sender chose and forwards it; it sends its own loops at λM.
type Mix struct {
	r *relay
	c Counters
}

// NewMix returns a mix at now.
func NewMix(ctx context.Context, cfg RelayConfig, dir *Directory, now time.Time) (*Mix, error) {
	m := &Mix{}
	r, err := newRelay(cfg, dir, &m.c)
	if err != nil {
		return nil, err
	}
	if r.self.Layer < 0 {
		return nil, errors.New("loopix: a mix must be in a mix layer of the directory")
	}
	m.r = r
	if err := r.rotate(ctx, now); err != nil {
		return nil, err
	}
	return m, nil
}

// Counters returns the mix's counters.
func (m *Mix) Counters() *Counters { return &m.c }

// SetDirectory replaces the directory (a new epoch's document).
func (m *Mix) SetDirectory(d *Directory) error { return m.r.setDirectory(d) }

// Inbound is a link frame from an overlay peer.
type Inbound struct {
	From  PeerID
	Frame []byte
}

// Handle takes a link frame from overlay peer from (and owns it): it is
// HandleBatch of one frame.
func (m *Mix) Handle(ctx context.Context, now time.Time, from PeerID, frame []byte) {
	m.HandleBatch(ctx, now, []Inbound{{From: from, Frame: frame}})
}

// HandleBatch takes link frames that arrived together (and owns them).
// Mixes take packets from relays of the directory only. Every packet is
// unwrapped first; then the replay tags of all of them are checked in one
// call of the replay filter, which makes the new ones durable with one
// commit (one fsync at durability full: group commit); only then are the
// new packets queued for their next hop. So no packet is forwarded before
// its tag is durable, and of two copies of a packet, in one batch or not,
// at most one is forwarded.
func (m *Mix) HandleBatch(ctx context.Context, now time.Time, in []Inbound) {
	r := m.r
	batch := r.batch[:0]
	for _, fr := range in {
		if _, ok := r.dir.ByPeer(fr.From); !ok {
			m.c.UnknownPeer.Inc()
			continue
		}
		f, err := DecodeFrame(r.cfg.Geometry, fr.Frame)
		if err != nil {
			m.c.Malformed.Inc()
			continue
		}
		if f.Type != FramePacket {
			m.c.UnexpectedFrame.Inc()
			continue
		}
		m.c.PacketsIn.Inc()
		if err := r.rotate(ctx, now); err != nil {
			m.c.ReplayError.Inc()
			continue
		}
		res, ep, ok := r.open(f.Packet)
		if !ok {
			continue
		}
		batch = append(batch, opened{res: res, pkt: f.Packet, epoch: ep})
	}
	for _, o := range r.fresh(ctx, batch) {
		if o.res.IsTerminal() {
			if r.isOwnLoop(o.res) {
				m.c.LoopsReturned.Inc()
				continue
			}
			m.c.BadCommands.Inc()
			continue
		}
		r.forward(now, o.res, o.pkt)
	}
	clear(batch) // the packets are the queue's now, or dropped
	r.batch = batch[:0]
}

// Tick advances the mix to now: due packets go out, loops are sent,
// epochs rotate.
func (m *Mix) Tick(ctx context.Context, now time.Time) { m.r.tick(ctx, now) }

// Next returns when the mix next needs a Tick.
func (m *Mix) Next() time.Time { return m.r.next() }

// Ready returns and clears the mix's output.
func (m *Mix) Ready() Ready { return m.r.ready() }
