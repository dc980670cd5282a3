package loopix

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Bounds of a client's shared mailboxes: the channels it follows, and the
// pulls of one channel in flight (sent, and not all answered or expired). A pull that is never answered (the mailbox does not
// exist yet: its provider drops the pull) must not hold the next ones
// back: the bound is only there to bound the SURB keys kept.
const (
	maxChannels        = 64
	maxPullsInFlight   = 16
	maxOwnPostsTracked = 4096
)

// ErrTooManyChannels reports a subscription past the client's bound.
var ErrTooManyChannels = errors.New("loopix: too many shared mailboxes followed")

// channel is a shared mailbox the client follows.
type channel struct {
	ch    *Channel
	pos   uint64          // every entry up to pos is taken
	above map[uint64]bool // entries taken above a gap
	// asked is the last entry the pulls in flight asked for (each asks
	// for the SharedPullSURBs entries above its position): the next pull
	// asks above it, so that pulls sent before the answers to the last
	// ones came back read further instead of again (0: from pos).
	asked    uint64
	queued   bool // a pull waits for a λP slot
	inFlight int  // pulls sent and not settled
	gone     bool // unsubscribed
	// at is the provider the position is of: when the PKI document
	// moves the mailbox to another provider, the position starts again.
	at sphinx.NodeID
}

// pullBatch is the SURBs of one pull: when every one of them came back
// with an entry, the mailbox holds more, and the client pulls again at
// once.
type pullBatch struct {
	ch   *channel
	at   sphinx.NodeID
	from uint64 // the position the pull asked above
	left int
	real int
}

// done settles one SURB of the batch (answered with an entry or not).
func (b *pullBatch) done(c *Client, real bool) {
	b.left--
	if real {
		b.real++
	}
	if b.left > 0 {
		return
	}
	b.ch.inFlight--
	if b.real < SharedPullSURBs(c.cfg.Geometry) {
		// The mailbox held no more above what this pull asked for (or an
		// answer was lost): the next pull asks from the position again,
		// which also fetches an entry whose answer was lost.
		b.ch.asked = 0
		return
	}
	if !b.ch.gone {
		c.queuePull(b.ch)
	}
}

// Subscribe follows the shared mailbox ch: a pull of it takes a λP slot
// every PullInterval (and at once when an answer was full). Following a
// channel again is harmless.
func (c *Client) Subscribe(ch *Channel) error {
	if _, ok := c.channels[ch.Mailbox]; ok {
		return nil
	}
	if len(c.channels) >= maxChannels {
		c.c.TooManyChannels.Inc()
		return ErrTooManyChannels
	}
	cp := *ch
	s := &channel{ch: &cp, above: map[uint64]bool{}}
	c.channels[ch.Mailbox] = s
	c.c.SharedSubscribed.Store(uint64(len(c.channels)))
	c.queuePull(s)
	return nil
}

// Unsubscribe stops following the shared mailbox id: no more pulls, and
// answers still in flight are dropped.
func (c *Client) Unsubscribe(id MailboxID) {
	s, ok := c.channels[id]
	if !ok {
		return
	}
	s.gone = true
	clear(s.ch.Key[:])
	delete(c.channels, id)
	c.c.SharedSubscribed.Store(uint64(len(c.channels)))
	live := c.pulls[:0]
	for _, p := range c.pulls {
		if p != s {
			live = append(live, p)
		}
	}
	clear(c.pulls[len(live):])
	c.pulls = live
}

// Subscribed reports whether the client follows the shared mailbox id.
func (c *Client) Subscribed(id MailboxID) bool { _, ok := c.channels[id]; return ok }

// SharedPosition returns the position of the client in the shared
// mailbox id (every entry up to it taken), 0 if it does not follow it.
func (c *Client) SharedPosition(id MailboxID) uint64 {
	if s, ok := c.channels[id]; ok {
		return s.pos
	}
	return 0
}

// SendShared queues m for the shared mailbox id, which the client must
// follow; its fragments take the next λP slots and are acknowledged by
// the shared mailbox's provider once stored (and sent again if not).
func (c *Client) SendShared(now time.Time, id MailboxID, m *Message) error {
	s, ok := c.channels[id]
	if !ok {
		c.c.NoRoute.Inc()
		return fmt.Errorf("loopix: not following that shared mailbox")
	}
	b, err := MarshalMessage(m)
	if err != nil {
		return err
	}
	if len(b) > c.cfg.MaxMessage {
		c.c.Oversize.Inc()
		return fmt.Errorf("loopix: message of %d bytes over the bound of %d", len(b), c.cfg.MaxMessage)
	}
	var mid [MessageIDLength]byte
	if _, err := c.cfg.Rand.Read(mid[:]); err != nil {
		return fmt.Errorf("loopix: message id: %w", err)
	}
	frags, err := Split(mid, b, SharedInnerLength(c.cfg.Geometry))
	if err != nil {
		return err
	}
	if len(c.queue)+len(c.unacked)+len(frags) > c.cfg.MaxQueue {
		c.c.SendQueueFull.Inc()
		return ErrSendQueueFull
	}
	for i, f := range frags {
		c.queue = append(c.queue, &outFragment{ch: s.ch, inner: f, key: fragKey{id: mid, index: i}})
	}
	if len(c.ownPosts) < maxOwnPostsTracked {
		c.ownPosts[mid] = now
	}
	c.c.Queued.Inc()
	return nil
}

// queueSharedPulls queues a pull of every followed shared mailbox (at the
// client's pull schedule).
func (c *Client) queueSharedPulls() {
	for _, s := range c.channels {
		c.queuePull(s)
	}
}

func (c *Client) queuePull(s *channel) {
	if s.queued || s.inFlight >= maxPullsInFlight {
		return
	}
	s.queued = true
	c.pulls = append(c.pulls, s)
}

// sharedPullSlot fills a λP slot with a queued shared pull, if one waits.
func (c *Client) sharedPullSlot(now time.Time) bool {
	for len(c.pulls) > 0 {
		s := c.pulls[0]
		c.pulls[0] = nil
		c.pulls = c.pulls[1:]
		s.queued = false
		if s.gone {
			continue
		}
		if c.sendPull(now, s) {
			c.c.SharedPullsSent.Inc()
		}
		return true
	}
	return false
}

// sendPull sends a pull of a shared mailbox with SharedPullSURBs SURBs
// back to this client's mailbox, one for every answer.
func (c *Client) sendPull(now time.Time, s *channel) bool {
	g := c.cfg.Geometry
	dst, err := s.ch.ProviderOf(c.dir)
	if err != nil {
		c.c.NoRoute.Inc()
		return false
	}
	if s.at != dst.ID {
		// The first pull, or the mailbox moved (its provider left the
		// document): read the new provider's mailbox from its oldest
		// entry.
		s.at, s.pos, s.asked = dst.ID, 0, 0
		clear(s.above)
	}
	n := SharedPullSURBs(g)
	ids := make([]sphinx.SURBID, n)
	keys := make([][]byte, n)
	surbs := make([][]byte, n)
	fail := func() bool {
		for _, k := range keys {
			clear(k)
		}
		c.c.NoRoute.Inc()
		return false
	}
	for i := range n {
		if ids[i], surbs[i], keys[i], err = c.newSURB(now, dst); err != nil {
			return fail()
		}
	}
	from := s.pos
	if s.pos > 0 {
		// A reader with a position pipelines; a fresh one asks from the
		// start until the provider's first answer places it (Gone).
		from = max(s.pos, s.asked)
	}
	user, err := EncodeSharedPull(g, from, surbs[1:])
	if err != nil {
		return fail()
	}
	payload, err := g.EncodeForwardPayload(surbs[0], user)
	if err != nil || !c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{ID: s.ch.Mailbox}}, payload) {
		return fail()
	}
	b := &pullBatch{ch: s, at: dst.ID, from: from, left: n}
	s.inFlight++
	s.asked = from + uint64(n)
	// Answers come back within a round trip, which a loaded network
	// stretches; the SURB keys are kept as long as a fragment's (an
	// answer that comes later is pulled again). The in-flight bound,
	// not this, keeps a client from piling up pulls nobody answers.
	expires := now.Add(time.Duration(c.cfg.MaxRetransmissions+1) * c.cfg.AckTimeout)
	for i := range n {
		c.surbs[ids[i]] = &surbState{keys: keys[i], expires: expires, pull: b}
	}
	return true
}

// sendPost seals a post's fragment under the shared mailbox's key and
// sends it to the mailbox's provider, with a SURB back to this client
// for the provider's acknowledgement; it returns the SURB's id and keys.
func (c *Client) sendPost(now time.Time, ch *Channel, inner []byte) (sphinx.SURBID, []byte, bool) {
	g := c.cfg.Geometry
	dst, err := ch.ProviderOf(c.dir)
	if err != nil {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	sealed, err := sealShared(c.cfg.Rand, ch, inner)
	if err != nil {
		c.c.RandomnessFailures.Inc()
		return sphinx.SURBID{}, nil, false
	}
	user, err := EncodeSharedPost(g, sealed)
	if err != nil {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	id, surb, keys, err := c.newSURB(now, dst)
	if err != nil {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	payload, err := g.EncodeForwardPayload(surb, user)
	if err != nil || !c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{ID: ch.Mailbox}}, payload) {
		clear(keys)
		return sphinx.SURBID{}, nil, false
	}
	c.c.SharedPostsSent.Inc()
	return id, keys, true
}

// sharedReply takes one answer to a pull: a dummy, or an entry of the
// shared mailbox, which moves the client's position and may complete a
// message.
func (c *Client) sharedReply(now time.Time, b *pullBatch, plain []byte) {
	r, err := DecodeSharedReply(c.cfg.Geometry, plain)
	b.done(c, err == nil && r.Real)
	s := b.ch
	if s.gone || b.at != s.at {
		return // unsubscribed, or an answer of the provider before
	}
	if err != nil {
		c.c.BadShared.Inc()
		return
	}
	if !r.Real {
		c.c.SharedDummiesIn.Inc()
		return
	}
	if r.Gone > s.pos && b.from <= s.pos {
		// Entries at or below Gone are gone (retention) or were never
		// there (a fresh reader): resume above them. (The provider says
		// so of the entries above the pull's position only: a pull that
		// asked above entries still on their way, or lost, says nothing
		// of those.)
		if s.pos != 0 {
			c.c.SharedGaps.Inc()
		}
		s.pos = r.Gone
		for seq := range s.above {
			if seq <= s.pos {
				delete(s.above, seq)
			}
		}
		s.advance()
	}
	if r.Seq <= s.pos || s.above[r.Seq] || r.Seq-s.pos > maxAbove {
		c.c.DuplicateEntry.Inc()
		return
	}
	s.above[r.Seq] = true
	s.advance()
	c.c.SharedEntriesIn.Inc()
	inner, err := OpenShared(s.ch, r.Entry)
	if err != nil {
		c.c.Undecryptable.Inc()
		return
	}
	f, err := DecodeFragment(inner)
	if err != nil || f.Kind != KindFragment {
		c.c.BadFragment.Inc()
		return
	}
	if _, own := c.ownPosts[f.ID]; own {
		return // this client's own post, read back
	}
	msg, err := c.sreasm.Add(now, f)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	if msg == nil {
		return
	}
	m, err := UnmarshalMessage(msg)
	if err != nil || len(m.ReplySURBs) > 0 {
		c.c.BadFragment.Inc()
		return
	}
	m.Shared = s.ch.Address()
	c.delivered = append(c.delivered, m)
	c.c.SharedDelivered.Inc()
	c.c.Delivered.Inc()
}

// advance moves the position over the entries taken contiguously.
func (s *channel) advance() {
	for s.above[s.pos+1] {
		delete(s.above, s.pos+1)
		s.pos++
	}
}

// SharedPosition is a reader's position in a shared mailbox: at which
// provider, and up to which sequence number it has every entry.
type SharedPosition struct {
	Provider sphinx.NodeID
	Pos      uint64
}

// SharedPositions returns the client's position in every shared mailbox
// it follows and has read from, for its caller to store.
func (c *Client) SharedPositions() map[MailboxID]SharedPosition {
	out := make(map[MailboxID]SharedPosition, len(c.channels))
	for id, s := range c.channels {
		if s.pos != 0 {
			out[id] = SharedPosition{Provider: s.at, Pos: s.pos}
		}
	}
	return out
}

// ResumeShared sets the position of a followed shared mailbox from a
// stored one (SharedPositions), unless the client has read it already.
// The mailbox is read from there if its provider is still p.Provider,
// else from the new provider's oldest entry.
func (c *Client) ResumeShared(id MailboxID, p SharedPosition) {
	s, ok := c.channels[id]
	if !ok || s.pos != 0 || p.Pos == 0 {
		return
	}
	s.at, s.pos = p.Provider, p.Pos
}
