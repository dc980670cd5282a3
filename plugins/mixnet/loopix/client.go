package loopix

import (
	"context"
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
	// MaxQueue bounds the fragments waiting for a λP slot.
	MaxQueue int
	// MaxMessage bounds a message's encoding, sent or reassembled.
	MaxMessage int
	// MaxPending bounds the messages being reassembled.
	MaxPending int
	// ReassemblyTimeout is how long a partial message is kept.
	ReassemblyTimeout time.Duration
}

// maxAbove bounds how far past its ack a client takes mailbox entries (and
// so the entries it remembers above a gap).
const maxAbove = 1 << 12

// ErrSendQueueFull reports a message refused because the send queue holds
// MaxQueue fragments.
var ErrSendQueueFull = errors.New("loopix: send queue full")

// Client is a Loopix client: it sends on the λP, λL and λD Poisson streams
// through its provider, and pulls its mailbox there every PullInterval.
type Client struct {
	cfg      ClientConfig
	dir      *Directory
	provider *Node
	g        rng
	c        Counters
	addr     Address
	inner    int

	queue     []queuedFragment
	nextP     time.Time
	nextL     time.Time
	nextD     time.Time
	nextPull  time.Time
	ack       uint64
	above     map[uint64]bool // entries taken after a gap above ack
	loops     map[[MessageIDLength]byte]time.Time
	reasm     Reassembler
	out       []Output
	delivered []*Message
}

type queuedFragment struct {
	to    *Address
	inner []byte
}

// NewClient returns a client at now; its first pull (which registers its
// mailbox) goes out at the first Tick.
func NewClient(cfg ClientConfig, dir *Directory, now time.Time) (*Client, error) {
	if err := cfg.check(dir); err != nil {
		return nil, err
	}
	if cfg.Keys == nil || cfg.PullInterval <= 0 || cfg.MaxQueue <= 0 || cfg.MaxMessage <= 0 || cfg.MaxPending <= 0 || cfg.ReassemblyTimeout <= 0 {
		return nil, errors.New("loopix: a client needs keys, a pull interval and its bounds")
	}
	c := &Client{cfg: cfg, g: rng{r: cfg.Rand}, loops: map[[MessageIDLength]byte]time.Time{}, above: map[uint64]bool{}}
	if err := c.SetDirectory(dir); err != nil {
		return nil, err
	}
	c.addr = Address{Provider: cfg.Provider, Mailbox: MailboxIDOf(cfg.Token), Key: cfg.Keys.Public}
	c.inner = cfg.Geometry.UserForwardPayloadLength - SealOverhead
	c.reasm = Reassembler{FragmentData: FragmentDataLength(c.inner), MaxPending: cfg.MaxPending, MaxMessage: cfg.MaxMessage, Timeout: cfg.ReassemblyTimeout}
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

// MaxPayload returns the largest message payload Send accepts with a
// sender address and conversation of the given sizes.
func (c *Client) MaxPayload(from, conversation int) int {
	return c.cfg.MaxMessage - (1 + 1 + from + 2 + conversation)
}

// Send queues m for to; its fragments take the next λP slots. The whole
// message is refused if its fragments do not fit the queue.
func (c *Client) Send(to *Address, m *Message) error {
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
	if len(c.queue)+len(frags) > c.cfg.MaxQueue {
		c.c.SendQueueFull.Inc()
		return ErrSendQueueFull
	}
	dest := *to
	for _, f := range frags {
		c.queue = append(c.queue, queuedFragment{to: &dest, inner: f})
	}
	c.c.Queued.Inc()
	return nil
}

// Queued returns the number of fragments waiting for a λP slot.
func (c *Client) Queued() int { return len(c.queue) }

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

// Tick advances the client to now: every stream event due by now sends
// its packet, and a due pull goes out.
func (c *Client) Tick(now time.Time) {
	for !c.nextPull.After(now) {
		c.out = append(c.out, Output{To: c.provider.Peer, Frame: EncodePull(Pull{Token: c.cfg.Token, Ack: c.ack})})
		c.nextPull = c.nextPull.Add(c.cfg.PullInterval)
		if c.nextPull.Before(now) { // asleep for long: one pull now
			c.nextPull = now.Add(c.cfg.PullInterval)
		}
	}
	for !c.nextP.After(now) {
		if len(c.queue) > 0 {
			q := c.queue[0]
			c.queue[0] = queuedFragment{}
			c.queue = c.queue[1:]
			if c.sendTo(c.nextP, q.to, q.inner) {
				c.c.RealSent.Inc()
			}
		} else if c.sendDrop(c.nextP) {
			c.c.DropCoverSent.Inc()
		}
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
	for id, t := range c.loops {
		if now.Sub(t) > c.cfg.ReassemblyTimeout {
			delete(c.loops, id)
		}
	}
	c.c.ReassemblyGivenUp.Store(c.reasm.Evicted + c.reasm.Expired)
}

// Next returns when the client next needs a Tick.
func (c *Client) Next() time.Time {
	t := c.nextPull
	for _, x := range []time.Time{c.nextP, c.nextL, c.nextD} {
		if !x.IsZero() && x.Before(t) {
			t = x
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

// sendPacket builds and queues a packet to the terminal hop dst with the
// given terminal commands and forward payload user part.
func (c *Client) sendPacket(now time.Time, dst *Node, terminal sphinx.Commands, user []byte) bool {
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
	payload := user
	if c.cfg.Geometry.WithSURB {
		if payload, err = c.cfg.Geometry.EncodeForwardPayload(nil, user); err != nil {
			c.c.NoRoute.Inc()
			return false
		}
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

// sendTo seals an inner payload to a client address and sends it.
func (c *Client) sendTo(now time.Time, to *Address, inner []byte) bool {
	dst, ok := c.dir.ByID(to.Provider)
	if !ok || dst.Layer >= 0 {
		c.c.NoRoute.Inc()
		return false
	}
	user, err := Seal(c.cfg.Rand, to.Key, inner)
	if err != nil {
		c.c.NoRoute.Inc()
		return false
	}
	return c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{ID: to.Mailbox}}, user)
}

// sendLoop sends a loop to the client's own mailbox.
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
	if c.sendTo(now, &c.addr, inner) {
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
	return c.sendPacket(now, dst, sphinx.Commands{sphinx.Recipient{}}, user)
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
	if seq <= c.ack || c.above[seq] {
		c.c.DuplicateEntry.Inc()
		return
	}
	// A pull's entries are numbered on from the ack; they may arrive out
	// of order, or some not at all: the ack moves over what is contiguous,
	// and the provider sends the rest again at the next pull.
	if seq-c.ack > maxAbove {
		c.c.DuplicateEntry.Inc() // far beyond anything a pull returns
		return
	}
	c.above[seq] = true
	for c.above[c.ack+1] {
		delete(c.above, c.ack+1)
		c.ack++
	}
	c.c.EntriesIn.Inc()
	c.open(now, f.Entry.Payload)
}

// open takes one mailbox entry apart: forward payload, sealed payload,
// fragment, message.
func (c *Client) open(now time.Time, payload []byte) {
	user := payload
	if c.cfg.Geometry.WithSURB {
		var err error
		if _, user, err = c.cfg.Geometry.DecodeForwardPayload(payload); err != nil {
			c.c.Malformed.Inc()
			return
		}
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
	if msg == nil {
		return
	}
	m, err := UnmarshalMessage(msg)
	if err != nil {
		c.c.BadFragment.Inc()
		return
	}
	c.delivered = append(c.delivered, m)
	c.c.Delivered.Inc()
}
