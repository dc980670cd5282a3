package loopix

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Errors a Mailboxes implementation returns (wrapped) for a refused
// operation; the provider counts each as its own drop.
var (
	// ErrNoMailbox: the mailbox is not registered.
	ErrNoMailbox = errors.New("loopix: no such mailbox")
	// ErrMailboxFull: the mailbox holds its bound of entries or bytes.
	ErrMailboxFull = errors.New("loopix: mailbox full")
	// ErrTooManyMailboxes: the provider holds its bound of mailboxes.
	ErrTooManyMailboxes = errors.New("loopix: too many mailboxes")
)

// Mailboxes is a provider's durable store of per-client mailboxes.
// PutBatch appends the entries in order, all in one commit, and returns
// only once the ones it stored are durable, with one error per put (nil:
// stored; ErrNoMailbox, ErrMailboxFull: refused, the bounds counting the
// batch's earlier entries); Take deletes every entry up to ack (the
// client has them) before it returns up to limit entries after ack, in
// sequence order.
type Mailboxes interface {
	Register(ctx context.Context, id MailboxID) error
	PutBatch(ctx context.Context, puts []MailboxPut) []error
	Take(ctx context.Context, id MailboxID, ack uint64, limit int) ([]Entry, error)
}

// MailboxPut is one entry for Mailboxes.PutBatch.
type MailboxPut struct {
	ID    MailboxID
	Entry []byte
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	RelayConfig
	// Mailboxes is the mailbox store.
	Mailboxes Mailboxes
	// PullBatch is the number of mailbox frames every pull is answered
	// with, real entries first, dummies after.
	PullBatch int
	// ClientRate and ClientBurst bound the packets per second a client may
	// inject (a token bucket): a client over its rate has its packets
	// dropped and counted.
	ClientRate, ClientBurst float64
	// MaxClients bounds the clients (overlay peers) the provider tracks.
	MaxClients int
	// Shared is the shared mailbox store (public chats); nil: packets for
	// shared mailboxes are dropped as for an unknown recipient.
	Shared SharedMailboxes
	// SharedPullRate and SharedPullBurst bound the pulls per second one
	// shared mailbox is answered (a token bucket per mailbox: its readers
	// are anonymous, so the bound cannot be per reader); more are dropped
	// and counted (dropped_shared_pull_rate).
	SharedPullRate, SharedPullBurst float64
}

// maxSharedBuckets bounds the pull buckets of shared mailboxes a provider
// keeps in memory; past it they all start again full.
const maxSharedBuckets = 4096

// Provider is a client's entry and exit: it registers its clients (a pull
// registers the mailbox), injects their packets into the first mix layer,
// stores the packets addressed to its clients' mailboxes, discards drop
// cover, answers pulls with PullBatch constant-size frames, and is a
// Sphinx hop like a mix for loops that pass it.
type Provider struct {
	r       *relay
	cfg     ProviderConfig
	c       Counters
	clients map[PeerID]*client
	buckets map[MailboxID]*client // shared mailboxes' pull buckets
	puts    []MailboxPut          // the batch's mailbox entries, for store
}

type client struct {
	mailbox MailboxID
	tokens  float64
	last    time.Time
}

// NewProvider returns a provider at now.
func NewProvider(ctx context.Context, cfg ProviderConfig, dir *Directory, now time.Time) (*Provider, error) {
	p := &Provider{cfg: cfg, clients: map[PeerID]*client{}, buckets: map[MailboxID]*client{}}
	r, err := newRelay(cfg.RelayConfig, dir, &p.c)
	if err != nil {
		return nil, err
	}
	if r.self.Layer >= 0 {
		return nil, errors.New("loopix: a provider must be a provider of the directory")
	}
	if cfg.Mailboxes == nil || cfg.PullBatch <= 0 || cfg.ClientRate <= 0 || cfg.ClientBurst < 1 || cfg.MaxClients <= 0 {
		return nil, errors.New("loopix: a provider needs mailboxes, a pull batch, a client rate and burst and a client bound")
	}
	if cfg.Shared != nil && (cfg.SharedPullRate <= 0 || cfg.SharedPullBurst < 1) {
		return nil, errors.New("loopix: a provider with shared mailboxes needs a shared pull rate and burst")
	}
	p.r = r
	if err := r.rotate(ctx, now); err != nil {
		return nil, err
	}
	return p, nil
}

// Counters returns the provider's counters.
func (p *Provider) Counters() *Counters { return &p.c }

// SetDirectory replaces the directory.
func (p *Provider) SetDirectory(d *Directory) error { return p.r.setDirectory(d) }

// HandleBatch takes link frames that arrived together (and owns them).
// Pulls are answered in their place, from what the mailboxes hold. The
// packets are unwrapped first; then the replay tags of all of them are
// checked in one call of the replay filter, which makes the new ones
// durable with one commit (group commit); then the new packets are
// forwarded (queued for their next hop) or delivered, and the mailbox
// entries the batch produced are stored in one mailbox transaction (one
// commit). Nothing leaves before HandleBatch returns (Ready), so no
// packet is forwarded or answered on before its tag is durable, no entry
// is handed to a pull before it is durable, and of two copies of a
// packet, in one batch or not, at most one is processed.
func (p *Provider) HandleBatch(ctx context.Context, now time.Time, in []Inbound) {
	r := p.r
	batch := r.batch[:0]
	for _, fr := range in {
		f, err := DecodeFrame(r.cfg.Geometry, fr.Frame)
		if err != nil {
			p.c.Malformed.Inc()
			continue
		}
		switch f.Type {
		case FramePull:
			p.pull(ctx, now, fr.From, f.Pull)
		case FramePacket:
			p.c.PacketsIn.Inc()
			_, relay := r.dir.ByPeer(fr.From)
			cl := p.clients[fr.From]
			switch {
			case relay:
			case cl != nil:
				if !cl.take(now, p.cfg.ClientRate, p.cfg.ClientBurst) {
					p.c.RateLimited.Inc()
					continue
				}
			default:
				p.c.UnknownPeer.Inc()
				continue
			}
			if err := r.rotate(ctx, now); err != nil {
				p.c.ReplayError.Inc()
				continue
			}
			res, ep, ok := r.open(f.Packet)
			if !ok {
				continue
			}
			batch = append(batch, opened{res: res, pkt: f.Packet, epoch: ep, fromRelay: relay})
		default:
			p.c.UnexpectedFrame.Inc()
		}
	}
	for _, o := range r.fresh(ctx, batch) {
		switch {
		case !o.res.IsTerminal():
			r.forward(now, o.res, o.pkt)
		case !o.fromRelay:
			p.c.BadCommands.Inc() // a client's packet ends here: no route through the mixes
		default:
			p.deliver(ctx, now, o.res)
		}
	}
	clear(batch) // the packets are the queue's or the mailboxes' now, or dropped
	r.batch = batch[:0]
	p.store(ctx)
}

// Handle takes a link frame from overlay peer from (and owns it): it is
// HandleBatch of one frame.
func (p *Provider) Handle(ctx context.Context, now time.Time, from PeerID, frame []byte) {
	p.HandleBatch(ctx, now, []Inbound{{From: from, Frame: frame}})
}

// store appends the mailbox entries deliver collected in one PutBatch (one
// commit) and counts the outcome of each.
func (p *Provider) store(ctx context.Context) {
	if len(p.puts) == 0 {
		return
	}
	errs := p.cfg.Mailboxes.PutBatch(ctx, p.puts)
	p.c.MailboxBatches.Inc()
	for i := range p.puts {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = errors.New("loopix: the mailbox store did not answer every put")
		}
		switch {
		case err == nil:
			p.c.Stored.Inc()
		case errors.Is(err, ErrNoMailbox):
			p.c.UnknownRecipient.Inc()
		case errors.Is(err, ErrMailboxFull):
			p.c.MailboxFull.Inc()
		default:
			p.c.MailboxError.Inc()
		}
	}
	clear(p.puts)
	p.puts = p.puts[:0]
}

// deliver handles a packet that ends here: drop cover, an own loop, or a
// packet for a client's mailbox (a forward packet, or an acknowledgement
// coming back on one of the client's SURBs), whose entry it adds to the
// batch's for store.
func (p *Provider) deliver(ctx context.Context, now time.Time, res *sphinx.Result) {
	rc, ok := res.Commands.Recipient()
	if !ok {
		p.c.BadCommands.Inc()
		return
	}
	reply, isReply := res.Commands.SURBReply()
	switch {
	case rc.ID == (sphinx.RecipientID{}) && !isReply:
		p.c.CoverDiscarded.Inc()
		return
	case p.r.isOwnLoop(res):
		p.c.LoopsReturned.Inc()
		return
	}
	if !isReply && p.cfg.Shared != nil {
		if surb, user, err := p.r.cfg.Geometry.DecodeForwardPayload(res.Payload); err == nil && IsShared(user) {
			p.shared(ctx, now, rc.ID, surb, user)
			return
		}
	}
	s := Stored{Kind: StoredForward, Body: res.Payload}
	if isReply {
		s = Stored{Kind: StoredSURBReply, SURBID: reply.ID, Body: res.Payload}
	}
	entry, err := EncodeStored(p.r.cfg.Geometry, s)
	if err != nil {
		p.c.BadCommands.Inc()
		return
	}
	// Stored with the batch's other entries, in one commit (store).
	p.puts = append(p.puts, MailboxPut{ID: rc.ID, Entry: entry})
}

// pull registers the client's mailbox and answers with PullBatch frames.
func (p *Provider) pull(ctx context.Context, now time.Time, from PeerID, req Pull) {
	p.c.Pulls.Inc()
	if _, relay := p.r.dir.ByPeer(from); relay {
		p.c.UnexpectedFrame.Inc()
		return
	}
	id := MailboxIDOf(req.Token)
	cl := p.clients[from]
	// A pull costs a database transaction and PullBatch frames: it takes
	// a token of the client's bucket like a packet.
	if cl != nil && !cl.take(now, p.cfg.ClientRate, p.cfg.ClientBurst) {
		p.c.RateLimited.Inc()
		return
	}
	if cl == nil || cl.mailbox != id {
		if cl == nil && len(p.clients) >= p.cfg.MaxClients {
			p.c.TooManyClients.Inc()
			return
		}
		if err := p.cfg.Mailboxes.Register(ctx, id); err != nil {
			if errors.Is(err, ErrTooManyMailboxes) {
				p.c.TooManyClients.Inc()
			} else {
				p.c.MailboxError.Inc()
			}
			return
		}
		cl = &client{mailbox: id, tokens: p.cfg.ClientBurst, last: now}
		p.clients[from] = cl
	}
	entries, err := p.cfg.Mailboxes.Take(ctx, id, req.Ack, p.cfg.PullBatch)
	if err != nil {
		p.c.MailboxError.Inc()
		return
	}
	g := p.r.cfg.Geometry
	for i := range p.cfg.PullBatch {
		e := Entry{}
		if i < len(entries) {
			e = entries[i]
			e.Real = true
		}
		b, err := EncodeEntry(g, e)
		if err != nil {
			p.c.MailboxError.Inc()
			b, _ = EncodeEntry(g, Entry{})
			e.Real = false
		}
		if e.Real {
			p.c.EntriesOut.Inc()
		} else {
			p.c.DummiesOut.Inc()
		}
		p.r.out = append(p.r.out, Output{To: from, Frame: b})
	}
}

// Disconnected forgets a client's overlay peer (its mailbox stays).
func (p *Provider) Disconnected(peer PeerID) { delete(p.clients, peer) }

// Tick advances the provider to now.
func (p *Provider) Tick(ctx context.Context, now time.Time) { p.r.tick(ctx, now) }

// Next returns when the provider next needs a Tick.
func (p *Provider) Next() time.Time { return p.r.next() }

// Ready returns and clears the provider's output.
func (p *Provider) Ready() Ready { return p.r.ready() }

func (c *client) take(now time.Time, rate, burst float64) bool {
	if d := now.Sub(c.last).Seconds(); d > 0 {
		c.tokens = math.Min(burst, c.tokens+d*rate)
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// shared takes a post or a pull of a shared mailbox. A post is stored and
// acknowledged on its SURB; a pull is answered on its SURBs, the entries
// above the reader's position first and dummies after, one reply per SURB.
func (p *Provider) shared(ctx context.Context, now time.Time, id MailboxID, surb, user []byte) {
	g := p.r.cfg.Geometry
	req, err := DecodeSharedRequest(g, user)
	if err != nil {
		p.c.BadShared.Inc()
		return
	}
	if req.Post {
		evicted, err := p.cfg.Shared.PutShared(ctx, id, req.Entry, now)
		switch {
		case err == nil:
		case errors.Is(err, ErrTooManyMailboxes):
			p.c.TooManyShared.Inc()
			return
		default:
			p.c.MailboxError.Inc()
			return
		}
		p.c.SharedStored.Inc()
		p.c.SharedEvicted.Add(uint64(evicted))
		if surb != nil {
			p.sendOnSURB(ctx, now, surb, make([]byte, g.ForwardPayloadLength))
		}
		return
	}
	if surb == nil {
		p.c.BadShared.Inc()
		return
	}
	p.c.SharedPulls.Inc()
	b := p.buckets[id]
	if b == nil {
		if len(p.buckets) >= maxSharedBuckets {
			clear(p.buckets)
		}
		b = &client{tokens: p.cfg.SharedPullBurst, last: now}
		p.buckets[id] = b
	}
	if !b.take(now, p.cfg.SharedPullRate, p.cfg.SharedPullBurst) {
		p.c.SharedPullRateLimited.Inc()
		return
	}
	surbs := append([][]byte{surb}, req.SURBs...)
	entries, gone, err := p.cfg.Shared.ReadShared(ctx, id, req.Position, len(surbs), now)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoMailbox):
		// Nobody posted there (yet): answered as an empty mailbox is,
		// with dummies, so that the reader's pull settles (an
		// unanswered one holds its SURB keys, and its place among the
		// reader's pulls in flight, until they expire) and nothing tells
		// an unknown mailbox from an empty one.
		p.c.UnknownShared.Inc()
		entries = nil
	default:
		p.c.MailboxError.Inc()
		return
	}
	for i, s := range surbs {
		r := SharedReply{}
		if i < len(entries) {
			r = SharedReply{Real: true, Seq: entries[i].Seq, Gone: gone, Entry: entries[i].Payload}
		}
		payload, err := EncodeSharedReply(g, r)
		if err != nil {
			p.c.MailboxError.Inc()
			payload, _ = EncodeSharedReply(g, SharedReply{})
			r.Real = false
		}
		if p.sendOnSURB(ctx, now, s, payload) {
			if r.Real {
				p.c.SharedEntriesOut.Inc()
			} else {
				p.c.SharedDummiesOut.Inc()
			}
		}
	}
}

// sendOnSURB sends payload on a SURB that starts at this provider: it
// makes the reply packet, takes its own hop (unwrap and replay check) and
// queues it for the next hop after the delay the SURB's maker chose.
func (p *Provider) sendOnSURB(ctx context.Context, now time.Time, surb, payload []byte) bool {
	pkt, first, err := p.r.cfg.Geometry.NewPacketFromSURB(surb, payload)
	if err != nil || first != p.r.self.ID {
		p.c.BadSURB.Inc()
		return false
	}
	res, ok := p.r.unwrap(ctx, pkt)
	if !ok {
		return false
	}
	if res.IsTerminal() {
		p.c.BadSURB.Inc()
		return false
	}
	p.r.forward(now, res, pkt)
	return true
}
