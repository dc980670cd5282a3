package loopix

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	Common
	// Provider is the node id of the client's provider.
	Provider sphinx.NodeID
	// Token is the client's mailbox token (secret).
	Token [TokenLength]byte
	// Keys is the client's sealing key pair (its address's key).
	Keys *KeyPair
	// PullInterval is the time between two pulls of the mailbox.
	PullInterval time.Duration
	// MaxQueue bounds the fragments waiting for a λP slot or for their
	// acknowledgement, and the acknowledgements waiting to be sent.
	MaxQueue int
	// MaxMessage bounds a message's encoding, sent or reassembled.
	MaxMessage int
	// MaxPending bounds the messages being reassembled.
	MaxPending int
	// ReassemblyTimeout is how long a partial message is kept.
	ReassemblyTimeout time.Duration
	// AckTimeout is how long a sent fragment waits for its SURB
	// acknowledgement before it is sent again.
	AckTimeout time.Duration
	// MaxRetransmissions is how many times a fragment is sent again
	// before the client gives up on it (counted in dropped_unacked).
	MaxRetransmissions int
}

// ErrSendQueueFull reports a message refused because the send queue holds
// MaxQueue fragments.
var ErrSendQueueFull = errors.New("loopix: send queue full")

// ErrNoReplySURBs reports a reply refused because the client holds fewer
// live SURBs for that reply address than the reply has fragments.
var ErrNoReplySURBs = errors.New("loopix: not enough reply SURBs")

// Bounds of the reply SURBs a client holds: those it made and waits for
// replies on, the reply addresses it holds SURBs for, and the SURBs of one
// reply address.
const (
	maxReplySURBsOut    = 4096
	maxReplyAddresses   = 256
	maxSURBsPerReplyTag = 64
)

// maxAbove bounds how far past its ack a client takes mailbox entries (and
// so the entries it remembers above a gap).
const maxAbove = 1 << 12

// Client is a Loopix client: it sends on the λP, λL and λD Poisson streams
// through its provider, and pulls its mailbox there every PullInterval.
//
// Every packet it sends to a mailbox (a fragment or a loop) carries a SURB
// back to its own mailbox, so that the recipient's provider cannot tell
// them apart by the SURB. A recipient acknowledges every fragment on its
// SURB, in its own λP slots; a fragment not acknowledged within AckTimeout
// is sent again, up to MaxRetransmissions times.
type Client struct {
	cfg      ClientConfig
	dir      *Directory
	provider *Node
	g        rng
	c        Counters
	addr     Address
	inner    int

	queue    []*outFragment
	unacked  map[fragKey]*outFragment
	surbs    map[sphinx.SURBID]*surbState
	replyOut int // reply SURBs among surbs
	replies  map[[ReplyTagLength]byte]*replyPool
	acks     [][]byte // SURB replies waiting for a λP slot
	nextP    time.Time
	nextL    time.Time
	nextD    time.Time
	nextPull time.Time
	ack      uint64
	above    map[uint64]bool // entries taken after a gap above ack
	// lowest is the lowest entry above ack+1 seen since the last pull,
	// and gapAt the one seen in the pull cycle before (resync).
	lowest, gapAt uint64
	loops         map[[MessageIDLength]byte]time.Time
	reasm         Reassembler
	out           []Output
	delivered     []*Message

	// Shared mailboxes (client_shared.go).
	channels map[MailboxID]*channel
	pulls    []*channel // shared pulls waiting for a λP slot
	sreasm   Reassembler
	ownPosts map[[MessageIDLength]byte]time.Time
}

type fragKey struct {
	id    [MessageIDLength]byte
	index int
}

// outFragment is a fragment this client sends, until it is acknowledged;
// or a reply fragment, sent once on its SURB.
type outFragment struct {
	to       *Address
	ch       *Channel // a post to a shared mailbox
	surb     []byte   // a reply fragment's SURB
	inner    []byte
	key      fragKey
	tries    int
	deadline time.Time
	acked    bool
}

// surbState is what the client keeps for a SURB it sent: an
// acknowledgement's, or a reply SURB's, which records whom it was sent to.
type surbState struct {
	key     fragKey
	keys    []byte
	expires time.Time
	reply   bool
	to      []byte     // a reply SURB's recipient, an encoded Address
	pull    *pullBatch // a shared pull's SURB
}

// replyPool is the reply SURBs a client holds for one reply address.
type replyPool struct {
	surbs []heldSURB
}

type heldSURB struct {
	surb    []byte
	expires time.Time
}

// NewClient returns a client at now; its first pull (which registers its
// mailbox) goes out at the first Tick.
func NewClient(cfg ClientConfig, dir *Directory, now time.Time) (*Client, error) {
	if err := cfg.check(dir); err != nil {
		return nil, err
	}
	if cfg.Keys == nil || cfg.PullInterval <= 0 || cfg.MaxQueue <= 0 || cfg.MaxMessage <= 0 || cfg.MaxPending <= 0 || cfg.ReassemblyTimeout <= 0 || cfg.AckTimeout <= 0 || cfg.MaxRetransmissions < 0 {
		return nil, errors.New("loopix: a client needs keys, a pull interval, an ack timeout and its bounds")
	}
	if !cfg.Geometry.WithSURB {
		return nil, errors.New("loopix: a client needs a geometry with room for a SURB")
	}
	c := &Client{
		cfg: cfg, g: rng{r: cfg.Rand}, loops: map[[MessageIDLength]byte]time.Time{}, above: map[uint64]bool{},
		unacked: map[fragKey]*outFragment{}, surbs: map[sphinx.SURBID]*surbState{}, replies: map[[ReplyTagLength]byte]*replyPool{},
	}
	if err := c.SetDirectory(dir); err != nil {
		return nil, err
	}
	c.addr = Address{Provider: cfg.Provider, Mailbox: MailboxIDOf(cfg.Token), Key: cfg.Keys.Public}
	c.inner = cfg.Geometry.UserForwardPayloadLength - SealOverhead
	c.reasm = Reassembler{FragmentData: FragmentDataLength(c.inner), MaxPending: cfg.MaxPending, MaxMessage: cfg.MaxMessage, Timeout: cfg.ReassemblyTimeout}
	c.channels, c.ownPosts = map[MailboxID]*channel{}, map[[MessageIDLength]byte]time.Time{}
	c.sreasm = Reassembler{FragmentData: FragmentDataLength(SharedInnerLength(cfg.Geometry)), MaxPending: cfg.MaxPending, MaxMessage: cfg.MaxMessage, Timeout: cfg.ReassemblyTimeout}
	c.nextPull = now
	c.nextP = c.after(now, cfg.Rates.LambdaP)
	c.nextL = c.after(now, cfg.Rates.LambdaL)
	c.nextD = c.after(now, cfg.Rates.LambdaD)
	return c, nil
}

// SetDirectory replaces the directory; it must list the client's provider.
func (c *Client) SetDirectory(d *Directory) error {
	p, ok := d.ByID(c.cfg.Provider)
	if !ok || p.Layer >= 0 {
		return fmt.Errorf("loopix: the directory lists no provider with the client's provider id")
	}
	c.dir, c.provider = d, p
	return nil
}

// Address returns the client's privacy address.
func (c *Client) Address() *Address { a := c.addr; return &a }

// Counters returns the client's counters.
func (c *Client) Counters() *Counters { return &c.c }

// Send queues m for to; its fragments take the next λP slots. The whole
// message is refused if its fragments do not fit the queue.
func (c *Client) Send(to *Address, m *Message) error {
	return c.send(to, m)
}

// SendWithSURBs is Send with n reply SURBs (at most MaxReplySURBs) made at
// now and carried in the message, through which the recipient can reply
// (Reply) without learning where they lead. Their reply tag is the same
// for every message of m's conversation to to, so the recipient pools
// them under one reply address. A reply SURB is kept for two epochs.
func (c *Client) SendWithSURBs(now time.Time, to *Address, m *Message, n int) error {
	if n <= 0 {
		return c.send(to, m)
	}
	if n > MaxReplySURBs {
		return fmt.Errorf("loopix: %d reply SURBs, over %d", n, MaxReplySURBs)
	}
	if c.replyOut+n > maxReplySURBsOut {
		c.c.SendQueueFull.Inc()
		return ErrSendQueueFull
	}
	dst, ok := c.dir.ByID(to.Provider)
	if !ok || dst.Layer >= 0 {
		c.c.NoRoute.Inc()
		return fmt.Errorf("loopix: the directory lists no provider of the recipient's address")
	}
	withSURBs := *m
	withSURBs.ReplyTag = c.replyTag(to, m.Conversation)
	ids := make([]sphinx.SURBID, 0, n)
	states := make([]*surbState, 0, n)
	for range n {
		id, surb, keys, err := c.newSURB(now, dst)
		if err != nil {
			for _, st := range states {
				clear(st.keys)
			}
			c.c.NoRoute.Inc()
			return fmt.Errorf("loopix: reply SURB: %w", err)
		}
		withSURBs.ReplySURBs = append(withSURBs.ReplySURBs, surb)
		ids = append(ids, id)
		states = append(states, &surbState{keys: keys, expires: now.Add(2 * c.cfg.Epochs.Period()), reply: true, to: to.Marshal()})
	}
	if err := c.send(to, &withSURBs); err != nil {
		for _, st := range states {
			clear(st.keys)
		}
		return err
	}
	for i, id := range ids {
		c.surbs[id] = states[i]
	}
	c.replyOut += n
	return nil
}

// replyTag names the reply SURBs of messages of conversation to to: a
// keyed hash under the client's secret token, so that tags given to
// different recipients, or in different conversations, cannot be linked.
func (c *Client) replyTag(to *Address, conversation []byte) [ReplyTagLength]byte {
	h := sha256.New()
	h.Write([]byte("strata mixnet reply tag v1"))
	h.Write(c.cfg.Token[:])
	h.Write(to.Marshal())
	h.Write(conversation)
	var tag [ReplyTagLength]byte
	copy(tag[:], h.Sum(nil))
	return tag
}

// Reply queues m for the sender who gave the reply address of tag, one
// fragment on each of the SURBs held for it (which are then used up). The
// fragments take λP slots like any other; they are not acknowledged (the
// client cannot make a SURB that starts at the sender's provider, which
// it does not know), so the sync layer above must send again what is
// lost. A reply with more fragments than there are live SURBs is refused
// whole (ErrNoReplySURBs).
func (c *Client) Reply(now time.Time, tag [ReplyTagLength]byte, m *Message) error {
	pool := c.replies[tag]
	if pool != nil {
		c.expireSURBs(tag, pool, now)
	}
	b, err := MarshalMessage(m)
	if err != nil {
		return err
	}
	if len(b) > c.cfg.MaxMessage {
		c.c.Oversize.Inc()
		return fmt.Errorf("loopix: message of %d bytes over the bound of %d", len(b), c.cfg.MaxMessage)
	}
	var id [MessageIDLength]byte
	if _, err := c.cfg.Rand.Read(id[:]); err != nil {
		return fmt.Errorf("loopix: message id: %w", err)
	}
	frags, err := Split(id, b, c.inner)
	if err != nil {
		return err
	}
	if pool == nil || len(frags) > len(pool.surbs) {
		c.c.NoReplySURBs.Inc()
		return ErrNoReplySURBs
	}
	if len(c.queue)+len(c.unacked)+len(frags) > c.cfg.MaxQueue {
		c.c.SendQueueFull.Inc()
		return ErrSendQueueFull
	}
	for i, f := range frags {
		c.queue = append(c.queue, &outFragment{surb: pool.surbs[i].surb, inner: f, key: fragKey{id: id, index: i}})
	}
	pool.surbs = pool.surbs[len(frags):]
	if len(pool.surbs) == 0 {
		delete(c.replies, tag)
	}
	c.c.Queued.Inc()
	return nil
}

// ReplySURBs returns how many live reply SURBs the client holds for tag.
func (c *Client) ReplySURBs(tag [ReplyTagLength]byte) int {
	if p := c.replies[tag]; p != nil {
		return len(p.surbs)
	}
	return 0
}

// expireSURBs drops the pool's SURBs past their life.
func (c *Client) expireSURBs(tag [ReplyTagLength]byte, p *replyPool, now time.Time) {
	live := p.surbs[:0]
	for _, s := range p.surbs {
		if now.After(s.expires) {
			c.c.ReplySURBsExpired.Inc()
			continue
		}
		live = append(live, s)
	}
	p.surbs = live
	if len(p.surbs) == 0 {
		delete(c.replies, tag)
	}
}

// keepReplySURBs pools the reply SURBs a delivered message brought and
// gives the message its reply address. SURBs live about one epoch (the
// keys they were made with): they are kept for one epoch period.
func (c *Client) keepReplySURBs(now time.Time, m *Message) {
	if len(m.ReplySURBs) == 0 {
		return
	}
	if len(m.ReplySURBs[0]) != c.cfg.Geometry.SURBLength {
		c.c.BadSURB.Inc()
		m.ReplySURBs = nil
		return
	}
	p := c.replies[m.ReplyTag]
	if p == nil {
		if len(c.replies) >= maxReplyAddresses {
			// The reply address whose newest SURB is oldest goes.
			var oldest [ReplyTagLength]byte
			var at time.Time
			for tag, q := range c.replies {
				if e := q.surbs[len(q.surbs)-1].expires; at.IsZero() || e.Before(at) {
					oldest, at = tag, e
				}
			}
			c.c.ReplySURBsExpired.Add(uint64(len(c.replies[oldest].surbs)))
			delete(c.replies, oldest)
		}
		p = &replyPool{}
		c.replies[m.ReplyTag] = p
	}
	for _, s := range m.ReplySURBs {
		p.surbs = append(p.surbs, heldSURB{surb: bytes.Clone(s), expires: now.Add(c.cfg.Epochs.Period())})
	}
	if over := len(p.surbs) - maxSURBsPerReplyTag; over > 0 {
		c.c.ReplySURBsExpired.Add(uint64(over))
		p.surbs = p.surbs[over:]
	}
	c.c.ReplySURBsIn.Add(uint64(len(m.ReplySURBs)))
	m.ReplyTo = ReplyAddress(m.ReplyTag)
	m.ReplySURBs = nil
}

func (c *Client) send(to *Address, m *Message) error {
	b, err := MarshalMessage(m)
	if err != nil {
		return err
	}
	if len(b) > c.cfg.MaxMessage {
		c.c.Oversize.Inc()
		return fmt.Errorf("loopix: message of %d bytes over the bound of %d", len(b), c.cfg.MaxMessage)
	}
	var id [MessageIDLength]byte
	if _, err := c.cfg.Rand.Read(id[:]); err != nil {
		return fmt.Errorf("loopix: message id: %w", err)
	}
	frags, err := Split(id, b, c.inner)
	if err != nil {
		return err
	}
	if len(c.queue)+len(c.unacked)+len(frags) > c.cfg.MaxQueue {
		c.c.SendQueueFull.Inc()
		return ErrSendQueueFull
	}
	dest := *to
	for i, f := range frags {
		c.queue = append(c.queue, &outFragment{to: &dest, inner: f, key: fragKey{id: id, index: i}})
	}
	c.c.Queued.Inc()
	return nil
}

// Queued returns the number of fragments waiting for a λP slot.
func (c *Client) Queued() int { return len(c.queue) }

// Unacked returns the number of fragments sent and not acknowledged yet.
func (c *Client) Unacked() int { return len(c.unacked) }

func (c *Client) after(t time.Time, rate float64) time.Time {
	if rate <= 0 {
		return time.Time{}
	}
	d, err := c.g.exp(rate)
	if err != nil {
		c.c.RandomnessFailures.Inc()
		d = time.Duration(float64(time.Second) / rate)
	}
	return t.Add(d)
}

// Connected tells the client that the overlay connected to peer at now.
// When peer is its provider, the next pull goes at the next Tick: a pull
// made before the link was up (the first one, at start) was lost, and a
// provider takes a client's packets only once a pull has registered it.
func (c *Client) Connected(peer PeerID, now time.Time) {
	if peer == c.provider.Peer && c.nextPull.After(now) {
		c.nextPull = now
	}
}

// Tick advances the client to now: every stream event due by now sends
// its packet, fragments whose acknowledgement is overdue are queued again,
// and a due pull goes out.
func (c *Client) Tick(now time.Time) {
	for !c.nextPull.After(now) {
		c.resync()
		c.out = append(c.out, Output{To: c.provider.Peer, Frame: EncodePull(Pull{Token: c.cfg.Token, Ack: c.ack})})
		c.queueSharedPulls()
		c.nextPull = c.nextPull.Add(c.cfg.PullInterval)
		if c.nextPull.Before(now) { // asleep for long: one pull now
			c.nextPull = now.Add(c.cfg.PullInterval)
		}
	}
	c.retransmit(now)
	for !c.nextP.After(now) {
		c.payloadSlot(c.nextP)
		c.nextP = c.after(c.nextP, c.cfg.Rates.LambdaP)
	}
	for !c.nextL.IsZero() && !c.nextL.After(now) {
		c.sendLoop(c.nextL)
		c.nextL = c.after(c.nextL, c.cfg.Rates.LambdaL)
	}
	for !c.nextD.IsZero() && !c.nextD.After(now) {
		if c.sendDrop(c.nextD) {
			c.c.DropCoverSent.Inc()
		}
		c.nextD = c.after(c.nextD, c.cfg.Rates.LambdaD)
	}
	c.reasm.Expire(now)
	c.sreasm.Expire(now)
	for id, t := range c.ownPosts {
		if now.Sub(t) > c.cfg.ReassemblyTimeout {
			delete(c.ownPosts, id)
		}
	}
	for id, t := range c.loops {
		if now.Sub(t) > c.cfg.ReassemblyTimeout {
			delete(c.loops, id)
		}
	}
	for id, s := range c.surbs {
		if now.After(s.expires) {
			clear(s.keys)
			delete(c.surbs, id)
			if s.pull != nil {
				s.pull.done(c, false)
			}
			if s.reply {
				c.replyOut--
			}
		}
	}
	for tag, p := range c.replies {
		c.expireSURBs(tag, p, now)
	}
	c.c.ReassemblyGivenUp.Store(c.reasm.Evicted + c.reasm.Expired + c.sreasm.Evicted + c.sreasm.Expired)
}

// payloadSlot fills one λP event: an acknowledgement if one waits, else
// the next fragment, else drop cover.
func (c *Client) payloadSlot(now time.Time) {
	if len(c.acks) > 0 {
		frame := c.acks[0]
		c.acks[0] = nil
		c.acks = c.acks[1:]
		c.out = append(c.out, Output{To: c.provider.Peer, Frame: frame})
		c.c.PacketsOut.Inc()
		c.c.AcksSent.Inc()
		return
	}
	if c.sharedPullSlot(now) {
		return
	}
	for len(c.queue) > 0 {
		f := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if f.acked {
			continue // acknowledged while it waited to be sent again
		}
		if f.surb != nil {
			if c.sendReply(f) {
				c.c.RealSent.Inc()
				c.c.RepliesSent.Inc()
			}
			return
		}
		if c.sendFragment(now, f) {
			c.c.RealSent.Inc()
			if f.tries > 1 {
				c.c.Retransmitted.Inc()
			}
		}
		return
	}
	if c.sendDrop(now) {
		c.c.DropCoverSent.Inc()
	}
}

// retransmit queues again (first) the fragments whose acknowledgement is
// overdue, or gives up on those sent MaxRetransmissions+1 times.
func (c *Client) retransmit(now time.Time) {
	var again []*outFragment
	for k, f := range c.unacked {
		if f.deadline.After(now) {
			continue
		}
		delete(c.unacked, k)
		if f.tries > c.cfg.MaxRetransmissions {
			c.c.Unacked.Inc()
			continue
		}
		again = append(again, f)
	}
	if len(again) > 0 {
		c.queue = append(again, c.queue...)
	}
}

// Next returns when the client next needs a Tick.
func (c *Client) Next() time.Time {
	t := c.nextPull
	for _, x := range []time.Time{c.nextP, c.nextL, c.nextD} {
		if !x.IsZero() && x.Before(t) {
			t = x
		}
	}
	for _, f := range c.unacked {
		if f.deadline.Before(t) {
			t = f.deadline
		}
	}
	return t
}

// Ready returns and clears the client's output.
func (c *Client) Ready() Ready {
	r := Ready{Out: c.out, Delivered: c.delivered}
	c.out, c.delivered = nil, nil
	return r
}

// route returns the hops from the client's provider through one mix of
// every layer to the provider dst.
func (c *Client) route(dst *Node) ([]*Node, error) {
	mixes, err := c.dir.randomMixes(&c.g)
	if err != nil {
		return nil, err
	}
	hops := append([]*Node{c.provider}, mixes...)
	return append(hops, dst), nil
}

// newSURB makes a SURB from the provider first (the recipient's) through
// one mix of every layer back to this client's mailbox.
func (c *Client) newSURB(now time.Time, first *Node) (id sphinx.SURBID, surb, keys []byte, err error) {
	if _, err := c.cfg.Rand.Read(id[:]); err != nil {
		return id, nil, nil, err
	}
	mixes, err := c.dir.randomMixes(&c.g)
	if err != nil {
		return id, nil, nil, err
	}
	hops := append(append([]*Node{first}, mixes...), c.provider)
	path, _, err := buildPath(&c.g, c.cfg.Epochs, c.cfg.Rates.Mu, now, hops, sphinx.Commands{sphinx.Recipient{ID: c.addr.Mailbox}, sphinx.SURBReply{ID: id}})
	if err != nil {
		return id, nil, nil, err
	}
	surb, keys, err = c.cfg.Geometry.NewSURB(c.cfg.Rand, path)
	return id, surb, keys, err
}

// sendPacket builds and queues a packet to the terminal hop dst with the
// given terminal commands and forward payload.
func (c *Client) sendPacket(now time.Time, dst *Node, terminal sphinx.Commands, payload []byte) bool {
	hops, err := c.route(dst)
	if err != nil {
		c.c.RandomnessFailures.Inc()
		return false
	}
	path, _, err := buildPath(&c.g, c.cfg.Epochs, c.cfg.Rates.Mu, now, hops, terminal)
	if err != nil {
		c.c.NoRoute.Inc()
		return false
	}
	pkt, err := c.cfg.Geometry.NewPacket(c.cfg.Rand, path, payload)
	if err != nil {
		c.c.NoRoute.Inc()
		return false
	}
	c.out = append(c.out, Output{To: c.provider.Peer, Frame: EncodePacket(pkt)})
	c.c.PacketsOut.Inc()
	return true
}

// sendSealed seals an inner payload to a client address and sends it with
// a SURB back to this client; it returns the SURB's id and keys.
func (c *Client) sendSealed(now time.Time, to *Address, inner []byte) (sphinx.SURBID, []byte, bool) {
	dst, ok := c.dir.ByID(to.Provider)
	if !ok || dst.Layer >= 0 {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	user, err := Seal(c.cfg.Rand, to.Key, inner)
	if err != nil {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	id, surb, keys, err := c.newSURB(now, dst)
	if err != nil {
		c.c.NoRoute.Inc()
		return sphinx.SURBID{}, nil, false
	}
	payload, err := c.cfg.Geometry.EncodeForwardPayload(surb, user)
	if err != nil || !c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{ID: to.Mailbox}}, payload) {
		clear(keys)
		return sphinx.SURBID{}, nil, false
	}
	return id, keys, true
}

// sendFragment sends a fragment and waits for its acknowledgement.
func (c *Client) sendFragment(now time.Time, f *outFragment) bool {
	var id sphinx.SURBID
	var keys []byte
	var ok bool
	if f.ch != nil {
		id, keys, ok = c.sendPost(now, f.ch, f.inner)
	} else {
		id, keys, ok = c.sendSealed(now, f.to, f.inner)
	}
	if !ok {
		return false
	}
	f.tries++
	f.deadline = now.Add(c.cfg.AckTimeout)
	c.unacked[f.key] = f
	// A late acknowledgement of an earlier copy still counts: keep each
	// copy's SURB until the acknowledgement of the last one is overdue.
	c.surbs[id] = &surbState{key: f.key, keys: keys, expires: now.Add(time.Duration(c.cfg.MaxRetransmissions+1) * c.cfg.AckTimeout)}
	return true
}

// sendReply sends a reply fragment on its SURB, which must start at this
// client's provider (the sender made it so).
func (c *Client) sendReply(f *outFragment) bool {
	user := make([]byte, c.cfg.Geometry.UserForwardPayloadLength)
	copy(user, f.inner)
	payload, err := c.cfg.Geometry.EncodeForwardPayload(nil, user)
	if err != nil {
		return false
	}
	pkt, first, err := c.cfg.Geometry.NewPacketFromSURB(f.surb, payload)
	if err != nil || first != c.provider.ID {
		c.c.BadSURB.Inc()
		return false
	}
	c.out = append(c.out, Output{To: c.provider.Peer, Frame: EncodePacket(pkt)})
	c.c.PacketsOut.Inc()
	return true
}

// sendLoop sends a loop to the client's own mailbox (with a SURB, like a
// fragment, whose keys are not kept: a loop is not acknowledged).
func (c *Client) sendLoop(now time.Time) {
	var id [MessageIDLength]byte
	if _, err := c.cfg.Rand.Read(id[:]); err != nil {
		c.c.RandomnessFailures.Inc()
		return
	}
	inner, err := EncodeFragment(Fragment{Kind: KindLoop, ID: id, Count: 1}, c.inner)
	if err != nil {
		return
	}
	if _, keys, ok := c.sendSealed(now, &c.addr, inner); ok {
		clear(keys)
		c.c.LoopsSent.Inc()
		if len(c.loops) < 4096 {
			c.loops[id] = now
		}
	}
}

// sendDrop sends drop cover: a packet that a random provider discards.
func (c *Client) sendDrop(now time.Time) bool {
	dst, err := c.dir.randomProvider(&c.g)
	if err != nil {
		c.c.RandomnessFailures.Inc()
		return false
	}
	user := make([]byte, c.cfg.Geometry.UserForwardPayloadLength)
	if _, err := c.cfg.Rand.Read(user); err != nil {
		c.c.RandomnessFailures.Inc()
		return false
	}
	payload, err := c.cfg.Geometry.EncodeForwardPayload(nil, user)
	if err != nil {
		return false
	}
	return c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{}}, payload)
}

// Handle takes a link frame from overlay peer from: mailbox frames from
// the client's provider.
func (c *Client) Handle(_ context.Context, now time.Time, from PeerID, frame []byte) {
	if from != c.provider.Peer {
		c.c.UnknownPeer.Inc()
		return
	}
	f, err := DecodeFrame(c.cfg.Geometry, frame)
	if err != nil {
		c.c.Malformed.Inc()
		return
	}
	if f.Type != FrameMailbox {
		c.c.UnexpectedFrame.Inc()
		return
	}
	if !f.Entry.Real {
		return
	}
	seq := f.Entry.Seq
	if seq > c.ack+1 && (c.lowest == 0 || seq < c.lowest) {
		c.lowest = seq
	}
	if seq <= c.ack || c.above[seq] {
		c.c.DuplicateEntry.Inc()
		return
	}
	// A pull's entries are numbered on from the ack; they may arrive out
	// of order, or some not at all: the ack moves over what is contiguous,
	// and the provider sends the rest again at the next pull.
	if seq-c.ack > maxAbove {
		c.c.DuplicateEntry.Inc() // far beyond the ack: see resync
		return
	}
	c.above[seq] = true
	for c.above[c.ack+1] {
		delete(c.above, c.ack+1)
		c.ack++
	}
	c.c.EntriesIn.Inc()
	s, err := DecodeStored(c.cfg.Geometry, f.Entry.Payload)
	if err != nil {
		c.c.Malformed.Inc()
		return
	}
	if s.Kind == StoredSURBReply {
		c.acked(now, s)
		return
	}
	c.open(now, s.Body)
}

// resync runs before each pull. A provider answers a pull from the oldest
// entry it still holds, and holds every entry above the acks it was sent,
// without a gap. So when a whole pull cycle brought entries above ack+1
// but never ack+1 itself, and the lowest of them is the same as in the
// cycle before, the entries between are gone: the provider deleted them
// on the acks of an earlier run of this client, whose ack position a
// restart lost (it is not stored). The client then resumes from there,
// instead of acking the old position and being sent the same entries
// again for ever. An entry lost on the link is sent again at the next
// pull, which fills the gap before a second cycle has passed. Entries
// dropped as too far ahead come again once the ack has moved.
func (c *Client) resync() {
	low := c.lowest
	c.lowest = 0
	if low == 0 || low <= c.ack+1 {
		c.gapAt = 0
		return
	}
	if low != c.gapAt {
		c.gapAt = low
		return
	}
	c.gapAt = 0
	c.c.MailboxResyncs.Inc()
	c.ack = low - 1
	for seq := range c.above {
		if seq <= c.ack {
			delete(c.above, seq)
		}
	}
	for c.above[c.ack+1] {
		delete(c.above, c.ack+1)
		c.ack++
	}
}

// acked takes what came back on one of the client's SURBs: an
// acknowledgement, or a reply fragment on a reply SURB.
func (c *Client) acked(now time.Time, s Stored) {
	st, ok := c.surbs[s.SURBID]
	if !ok {
		c.c.UnknownSURB.Inc()
		return
	}
	plain, err := c.cfg.Geometry.DecryptSURBPayload(s.Body, st.keys)
	if err != nil {
		c.c.Undecryptable.Inc()
		return
	}
	delete(c.surbs, s.SURBID)
	if st.pull != nil {
		c.sharedReply(now, st.pull, plain)
		return
	}
	if st.reply {
		c.replyOut--
		c.replied(now, st, plain)
		return
	}
	c.c.AcksReceived.Inc()
	if f, ok := c.unacked[st.key]; ok {
		f.acked = true
		delete(c.unacked, st.key)
	}
	for _, f := range c.queue { // a copy queued to be sent again
		if f.key == st.key {
			f.acked = true
		}
	}
}

// replied takes a reply fragment that came on a reply SURB. The message
// is delivered as from the address the SURB was sent to: only that
// recipient had the SURB (whatever sender address the reply names).
func (c *Client) replied(now time.Time, st *surbState, plain []byte) {
	_, user, err := c.cfg.Geometry.DecodeForwardPayload(plain)
	if err != nil || len(user) < c.inner {
		c.c.Malformed.Inc()
		return
	}
	f, err := DecodeFragment(user[:c.inner])
	if err != nil || f.Kind != KindFragment {
		c.c.BadFragment.Inc()
		return
	}
	c.c.RepliesIn.Inc()
	msg, err := c.reasm.Add(now, f)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	if msg == nil {
		return
	}
	m, err := UnmarshalMessage(msg)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	m.From = st.to
	c.keepReplySURBs(now, m)
	c.delivered = append(c.delivered, m)
	c.c.Delivered.Inc()
}

// open takes a forward payload apart: SURB, sealed payload, fragment,
// message; a fragment is acknowledged on its SURB.
func (c *Client) open(now time.Time, payload []byte) {
	surb, user, err := c.cfg.Geometry.DecodeForwardPayload(payload)
	if err != nil {
		c.c.Malformed.Inc()
		return
	}
	inner, err := Open(c.cfg.Keys, user)
	if err != nil {
		c.c.Undecryptable.Inc()
		return
	}
	f, err := DecodeFragment(inner)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	if f.Kind == KindLoop {
		if _, ok := c.loops[f.ID]; ok {
			delete(c.loops, f.ID)
			c.c.LoopsReturned.Inc()
		} else {
			c.c.BadFragment.Inc()
		}
		return
	}
	msg, err := c.reasm.Add(now, f)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	// Acknowledged even when it was a copy already taken: the earlier
	// acknowledgement may have been lost.
	c.acknowledge(surb)
	if msg == nil {
		return
	}
	m, err := UnmarshalMessage(msg)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	c.keepReplySURBs(now, m)
	c.delivered = append(c.delivered, m)
	c.c.Delivered.Inc()
}

// acknowledge queues the reply on a fragment's SURB for the next λP slot.
// The SURB must start at this client's provider: the reply goes out
// through it like every other packet.
func (c *Client) acknowledge(surb []byte) {
	if surb == nil {
		return
	}
	pkt, first, err := c.cfg.Geometry.NewPacketFromSURB(surb, make([]byte, c.cfg.Geometry.ForwardPayloadLength))
	if err != nil || first != c.provider.ID {
		c.c.BadSURB.Inc()
		return
	}
	if len(c.acks) >= c.cfg.MaxQueue {
		c.c.SendQueueFull.Inc()
		return
	}
	c.acks = append(c.acks, EncodePacket(pkt))
}
