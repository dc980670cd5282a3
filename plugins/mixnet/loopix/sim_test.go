package loopix_test

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// The simulated network: 2 providers, 3 layers of 2 mixes, and clients,
// joined by links of a fixed latency, driven by a virtual clock. Nothing
// sleeps: the loop jumps from one due event (a link delivery or a node's
// Next) to the next.

const (
	simNetwork = "sim"
	simEpoch   = 100
	simLatency = 5 * time.Millisecond
)

// seeded returns a deterministic random stream.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// memReplay is an in-memory replay filter for the simulation (package
// replay's durable store is tested with the mix on its own).
type memReplay struct {
	seen    map[uint64]map[[32]byte]bool
	current uint64
}

func (m *memReplay) SeenBatch(_ context.Context, checks []replay.Check, dst []replay.Verdict) []replay.Verdict {
	if m.seen == nil {
		m.seen = map[uint64]map[[32]byte]bool{}
	}
	for _, c := range checks {
		if m.seen[c.Epoch] == nil {
			m.seen[c.Epoch] = map[[32]byte]bool{}
		}
		dst = append(dst, replay.Verdict{Seen: m.seen[c.Epoch][c.Tag]})
		m.seen[c.Epoch][c.Tag] = true
	}
	return dst
}

func (m *memReplay) Rotate(_ context.Context, current uint64) error {
	m.current = current
	for e := range m.seen {
		if e+1 < current {
			delete(m.seen, e)
		}
	}
	return nil
}

// engine is what the three roles have in common.
type engine interface {
	Handle(ctx context.Context, now time.Time, from loopix.PeerID, frame []byte)
	Next() time.Time
	Ready() loopix.Ready
}

type simNode struct {
	name    loopix.PeerID
	eng     engine
	tick    func(ctx context.Context, now time.Time)
	offline bool
	// delivered are the messages a client received.
	delivered []*loopix.Message
	counters  *loopix.Counters
}

// linkRecord is one frame seen on a link.
type linkRecord struct {
	at       time.Time
	from, to loopix.PeerID
	size     int
	kind     byte
}

type delivery struct {
	at       time.Time
	seq      uint64
	from, to loopix.PeerID
	frame    []byte
}

type deliveries []*delivery

func (q deliveries) Len() int { return len(q) }
func (q deliveries) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q deliveries) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveries) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *deliveries) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type sim struct {
	t          testing.TB
	ctx        context.Context
	now        time.Time
	geo        *sphinx.Geometry
	epochs     *pki.Epochs
	net        *testnet.Testnet
	dir        *loopix.Directory
	rates      loopix.Rates
	rnd        *rand.ChaCha8
	nodes      map[loopix.PeerID]*simNode
	order      []loopix.PeerID
	queue      deliveries
	seq        uint64
	links      []linkRecord
	mailbox    map[loopix.PeerID]string // provider → its mailbox database path
	boxOpts    mailbox.Options
	ackTimeout time.Duration
	// sharedPullRate and sharedPullBurst are the providers'.
	sharedPullRate, sharedPullBurst float64
	// tap, if set, sees every frame delivered.
	tap func(from, to loopix.PeerID, frame []byte)
}

type simOptions struct {
	// epoch is the length of an epoch (pki.DefaultEpochPeriod if zero);
	// the nodes publish keys for 8 epochs.
	epoch   time.Duration
	rates   loopix.Rates
	user    int
	boxOpts mailbox.Options
	seed    uint64
	// ackTimeout is the clients' (a minute if zero).
	ackTimeout time.Duration
	// sharedPullRate and sharedPullBurst are the providers' (20/s and 50
	// if zero).
	sharedPullRate, sharedPullBurst float64
}

func defaultRates() loopix.Rates {
	p := testnet.DefaultParams(nil)
	return loopix.RatesOf(&p)
}

// newSim builds the network's PKI document and its relays.
func newSim(t testing.TB, o simOptions) *sim {
	t.Helper()
	if o.user == 0 {
		o.user = 600
	}
	if o.rates == (loopix.Rates{}) {
		o.rates = defaultRates()
	}
	if o.boxOpts.MaxEntries == 0 {
		o.boxOpts = mailbox.Options{
			MaxMailboxes: 100, MaxEntries: 1000, MaxBytes: 8 << 20, Synchronous: "NORMAL",
			MaxShared: 10, SharedMaxEntries: 100, SharedMaxEntryBytes: 4096, SharedRetention: time.Hour,
		}
	}
	if o.sharedPullRate == 0 {
		o.sharedPullRate, o.sharedPullBurst = 20, 50
	}
	geo, err := sphinx.NewGeometry(o.user, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	rnd := seeded(o.seed + 1)
	_, auth, err := ed25519.GenerateKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	params := testnet.DefaultParams(loopix.GeometryID(geo))
	params.LambdaPPerSecond, params.LambdaLPerSecond, params.LambdaDPerSecond = o.rates.LambdaP, o.rates.LambdaL, o.rates.LambdaD
	params.LambdaMPerSecond, params.MuPerSecond = o.rates.LambdaM, o.rates.Mu
	tn, err := testnet.Generate(testnet.Config{
		NetworkID: simNetwork, Epoch: simEpoch, Layers: 3, MixesPerLayer: 2, Providers: 2,
		Params: params, Authorities: []ed25519.PrivateKey{auth}, Rand: rnd, KeyEpochs: pki.MaxSphinxKeys,
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pki.Verify(tn.Encoded, pki.VerifyOptions{Authorities: []ed25519.PublicKey{auth.Public().(ed25519.PublicKey)}, NetworkID: simNetwork, Epoch: simEpoch, Layers: 3, GeometryID: loopix.GeometryID(geo)})
	if err != nil {
		t.Fatal(err)
	}
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if o.epoch == 0 {
		o.epoch = pki.DefaultEpochPeriod
	}
	epochs, err := pki.NewEpochs(o.epoch, genesis, func() time.Time { panic("the engines must not read a clock") })
	if err != nil {
		t.Fatal(err)
	}
	dir, err := loopix.NewDirectory(doc, func(d *pki.Descriptor) (loopix.PeerID, error) { return loopix.PeerID(d.Name), nil })
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{
		t: t, ctx: context.Background(), now: epochs.Start(simEpoch).Add(time.Minute), geo: geo, epochs: epochs, net: tn, dir: dir,
		rates: o.rates, rnd: rnd, nodes: map[loopix.PeerID]*simNode{}, mailbox: map[loopix.PeerID]string{}, boxOpts: o.boxOpts,
		ackTimeout: o.ackTimeout, sharedPullRate: o.sharedPullRate, sharedPullBurst: o.sharedPullBurst,
	}
	if s.ackTimeout == 0 {
		s.ackTimeout = time.Minute
	}
	for _, m := range tn.Members {
		s.startRelay(m, t.TempDir())
	}
	return s
}

func (s *sim) common() loopix.Common {
	return loopix.Common{Geometry: s.geo, Epochs: s.epochs, Rand: s.rnd, Rates: s.rates}
}

func (s *sim) member(name string) testnet.Member {
	for _, m := range s.net.Members {
		if m.Name == name {
			return m
		}
	}
	s.t.Fatalf("no member %s", name)
	return testnet.Member{}
}

// startRelay starts (or restarts, with the same mailbox directory) one
// relay.
func (s *sim) startRelay(m testnet.Member, dataDir string) *simNode {
	s.t.Helper()
	keys, err := pki.NewKeyChain(m.KeySecret, simEpoch)
	if err != nil {
		s.t.Fatal(err)
	}
	rc := loopix.RelayConfig{
		Common: s.common(), Self: m.Descriptor.NodeID(), Keys: keys, Replay: &memReplay{},
		MaxQueue: 10000, MaxDelay: time.Minute,
	}
	n := &simNode{name: loopix.PeerID(m.Name)}
	if m.Provider {
		path := filepath.Join(dataDir, "mailboxes.db")
		s.mailbox[n.name] = path
		boxes, err := mailbox.Open(s.ctx, path, s.boxOpts)
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { boxes.Close() })
		pc := loopix.ProviderConfig{
			RelayConfig: rc, Mailboxes: boxes, PullBatch: 4, ClientRate: 20, ClientBurst: 20, MaxClients: 100,
		}
		if s.boxOpts.MaxShared > 0 {
			pc.Shared, pc.SharedPullRate, pc.SharedPullBurst = boxes, s.sharedPullRate, s.sharedPullBurst
		}
		p, err := loopix.NewProvider(s.ctx, pc, s.dir, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		n.eng, n.tick, n.counters = p, p.Tick, p.Counters()
	} else {
		mx, err := loopix.NewMix(s.ctx, rc, s.dir, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		n.eng, n.tick, n.counters = mx, mx.Tick, mx.Counters()
	}
	s.add(n)
	return n
}

func (s *sim) add(n *simNode) {
	if _, ok := s.nodes[n.name]; !ok {
		s.order = append(s.order, n.name)
	}
	s.nodes[n.name] = n
}

// addClient starts a client of provider (a provider's name).
func (s *sim) addClient(name, provider string) (*simNode, *loopix.Client) {
	s.t.Helper()
	return s.addClientPulling(name, provider, 2*time.Second)
}

// addClientPulling is addClient with the client's pull interval.
func (s *sim) addClientPulling(name, provider string, pull time.Duration) (*simNode, *loopix.Client) {
	s.t.Helper()
	p, ok := s.dir.ByName(provider)
	if !ok {
		s.t.Fatalf("no provider %s", provider)
	}
	var token [loopix.TokenLength]byte
	s.rnd.Read(token[:])
	keys, err := loopix.NewKeyPair(s.rnd)
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := loopix.NewClient(loopix.ClientConfig{
		Common: s.common(), Provider: p.ID, Token: token, Keys: keys,
		PullInterval: pull, MaxQueue: 256, MaxMessage: 64 << 10, MaxPending: 16, ReassemblyTimeout: 10 * time.Minute,
		AckTimeout: s.ackTimeout, MaxRetransmissions: 3,
	}, s.dir, s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	n := &simNode{name: loopix.PeerID(name), eng: c, tick: func(_ context.Context, now time.Time) { c.Tick(now) }, counters: c.Counters()}
	s.add(n)
	return n, c
}

// drain moves a node's output onto the links.
func (s *sim) drain(n *simNode) {
	r := n.eng.Ready()
	n.delivered = append(n.delivered, r.Delivered...)
	for _, o := range r.Out {
		s.links = append(s.links, linkRecord{at: s.now, from: n.name, to: o.To, size: len(o.Frame), kind: o.Frame[0]})
		s.seq++
		heap.Push(&s.queue, &delivery{at: s.now.Add(simLatency), seq: s.seq, from: n.name, to: o.To, frame: o.Frame})
	}
}

// run advances the virtual clock by d.
func (s *sim) run(d time.Duration) {
	s.runUntil(s.now.Add(d), func() bool { return false })
}

// runUntil advances the clock until done holds or end is reached, and
// reports whether done held.
func (s *sim) runUntil(end time.Time, done func() bool) bool {
	for {
		if done() {
			return true
		}
		next := end
		var who *simNode
		for _, name := range s.order {
			n := s.nodes[name]
			if n.offline {
				continue
			}
			if t := n.eng.Next(); t.Before(next) {
				next, who = t, n
			}
		}
		var d *delivery
		if s.queue.Len() > 0 && !s.queue[0].at.After(next) {
			d = heap.Pop(&s.queue).(*delivery)
			next, who = d.at, nil
		}
		if next.After(end) || (d == nil && who == nil) {
			s.now = end
			return done()
		}
		if next.After(s.now) {
			s.now = next
		}
		if d != nil {
			to, ok := s.nodes[d.to]
			if !ok || to.offline {
				continue
			}
			if s.tap != nil {
				s.tap(d.from, d.to, d.frame)
			}
			to.eng.Handle(s.ctx, s.now, d.from, d.frame)
			s.drain(to)
			continue
		}
		who.tick(s.ctx, s.now)
		s.drain(who)
	}
}

// relays returns the relay nodes of a layer (-1: providers).
func (s *sim) relays(layer int) []*simNode {
	var out []*simNode
	if layer < 0 {
		for _, p := range s.dir.Providers {
			out = append(out, s.nodes[p.Peer])
		}
		return out
	}
	for _, m := range s.dir.Layers[layer] {
		out = append(out, s.nodes[m.Peer])
	}
	return out
}

func sum(nodes []*simNode, f func(*loopix.Counters) uint64) uint64 {
	var n uint64
	for _, x := range nodes {
		n += f(x.counters)
	}
	return n
}
