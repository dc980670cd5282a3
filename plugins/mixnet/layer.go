// Package mixnet is the `mixnet` privacy layer: a Loopix mixnet of
// Katzenpost-compatible Sphinx packets over either overlay. One binary and
// config run any of its roles as a `strata run` node: a client, a mix of
// one layer of the stratified topology, or a provider (its clients' entry
// and exit, with durable per-client mailboxes). The network's relays and
// keys come from a signed PKI document (package pki); the roles
// themselves are the state machines of package loopix, which this package
// drives with the real clock and connects to the host: link frames go to
// the overlay on protocol "mixnet" version 1, addressed to the next hop's
// overlay peer id, and messages for a client go up with the sender's
// address. See docs/plugins/mixnet.md.
package mixnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/mailbox"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
)

// Name is the implementation name a config uses.
const Name = "mixnet"

// Version is the implementation version.
const Version = "0.1.0"

// ProtocolName is the overlay protocol the layer runs on (version 1).
const ProtocolName = "mixnet"

// Protocol is the overlay protocol the layer declares.
var Protocol = &commonv1.Protocol{Name: ProtocolName, Version: 1}

// MaxPayload is the largest payload accepted from above with the default
// max_message_size, less room for the sender's address and a conversation
// id.
const MaxPayload = 262144 - 2048

// Layer is the mixnet privacy layer.
type Layer struct {
	// Embedded so that the layer keeps compiling, answering
	// Unimplemented, if the privacy control API gains methods; it also
	// answers BindAddress and CheckBinding, which the mixnet leaves out.
	privacyv1.UnimplementedControlServer

	now  func() time.Time
	rand io.Reader

	// Set by Configure, read-only after.
	cfg     Config
	env     sdk.Env
	dataDir string
	sealKey *atrest.Key
	epochs  *pki.Epochs
	verify  pki.VerifyOptions
	node    engine
	client  *loopix.Client
	prov    *loopix.Provider
	mix     *loopix.Mix
	chain   *pki.KeyChain
	secrets *clientSecrets
	pos     *positions // a client's shared positions, owned by the loop
	addr    []byte
	closers []io.Closer
	c       layerCounters
	set     *sdk.Counters

	inputs chan *commonv1.Batch
	ctrl   chan func(now time.Time) // control calls run by the loop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Owned by the loop goroutine.
	docEpoch   uint64    // the epoch of the document in use
	docRetry   time.Time // when a reload that failed is tried again
	chainEpoch uint64
	inbound    []loopix.Inbound // frames from below not yet handed to the engine
}

// layerCounters are the layer's own counters, besides the engine's.
type layerCounters struct {
	PKIReloads     sdk.Counter `counter:"pki_reloads"`
	PKIErrors      sdk.Counter `counter:"pki_errors"`
	KeyChainErrors sdk.Counter `counter:"keychain_errors"`
	FramesUp       sdk.Counter `counter:"frames_up"`
	FramesDown     sdk.Counter `counter:"frames_down"`
	BadAddress     sdk.Drop    `drop:"bad_address"`
	NotClient      sdk.Drop    `drop:"not_client"`
	WrongProtocol  sdk.Drop    `drop:"wrong_protocol"`
	WrongDirection sdk.Drop    `drop:"wrong_direction"`
	SendRefused    sdk.Drop    `drop:"send_refused"`
	EmitFailed     sdk.Drop    `drop:"emit_failed"`
	PositionErrors sdk.Counter `counter:"shared_position_errors"`
}

// engine is what the three roles of package loopix have in common.
type engine interface {
	HandleBatch(ctx context.Context, now time.Time, in []loopix.Inbound)
	Tick(ctx context.Context, now time.Time)
	Next() time.Time
	Ready() loopix.Ready
	SetDirectory(*loopix.Directory) error
	Counters() *loopix.Counters
}

type clientEngine struct{ *loopix.Client }

func (c clientEngine) Tick(_ context.Context, now time.Time) { c.Client.Tick(now) }

func (c clientEngine) HandleBatch(ctx context.Context, now time.Time, in []loopix.Inbound) {
	for _, f := range in {
		c.Client.Handle(ctx, now, f.From, f.Frame)
	}
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer on the real clock and crypto/rand.
func New() *Layer {
	return &Layer{now: time.Now, rand: rand.Reader, ctrl: make(chan func(time.Time))}
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        Name,
		Version:     Version,
		Description: "Loopix mixnet: Sphinx packets through a provider, stratified mix layers with Poisson delays and the recipient's provider mailbox; cover traffic hides when a client sends",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapDirect, sdk.CapShared, sdk.CapRelayed},
		Requires:    []string{sdk.CapUnicast, sdk.CapNamedProtocols},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it reads and verifies the PKI document,
// loads or creates the node's keys and opens its stores, and builds the
// role's state machine.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	sealKey, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, err
	}
	l.cfg, l.env, l.dataDir, l.sealKey = cfg, env, req.GetDataDir(), sealKey
	if l.dataDir == "" {
		return nil, errors.New("mixnet: a data directory is required")
	}
	if err := l.build(ctx); err != nil {
		l.closeAll()
		return nil, err
	}
	l.set = sdk.NewCounters(&l.c)
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{Protocol}}, nil
}

func (l *Layer) build(ctx context.Context) error {
	cfg := l.cfg
	geo, err := cfg.geometry()
	if err != nil {
		return &sdk.ConfigError{Key: "user_payload", Problem: err.Error()}
	}
	if l.epochs, err = cfg.epochs(); err != nil {
		return &sdk.ConfigError{Key: "epoch_period", Problem: err.Error()}
	}
	auths, err := cfg.authorities()
	if err != nil {
		return err
	}
	l.verify = pki.VerifyOptions{Authorities: auths, Threshold: int(cfg.AuthorityThreshold), NetworkID: cfg.NetworkID, Layers: int(cfg.Layers), GeometryID: loopix.GeometryID(geo)}
	now := l.now()
	dir, docEpoch, err := l.loadDirectory(now)
	if err != nil {
		return &sdk.ConfigError{Key: "pki_document", Problem: err.Error(), Fix: "point it at the network's current signed document"}
	}
	l.docEpoch = docEpoch
	rates := cfg.rates(&dir.Document.Params)
	if err := rates.Check(); err != nil {
		return &sdk.ConfigError{Key: "lambda_p", Problem: err.Error(), Fix: "λP and μ must be positive"}
	}
	common := loopix.Common{Geometry: geo, Epochs: l.epochs, Rand: l.rand, Rates: rates}

	if cfg.Role == RoleClient {
		p, ok := dir.ByName(cfg.Provider)
		if !ok || p.Layer >= 0 {
			return &sdk.ConfigError{Key: "provider", Problem: fmt.Sprintf("the PKI document lists no provider %q", cfg.Provider), Fix: "use a provider's name from the document"}
		}
		if l.secrets, err = loadClientSecrets(l.dataDir, l.sealKey, l.rand); err != nil {
			return err
		}
		c, err := loopix.NewClient(loopix.ClientConfig{
			Common: common, Provider: p.ID, Token: l.secrets.token, Keys: l.secrets.keys,
			PullInterval: cfg.PullInterval, MaxQueue: int(cfg.MaxSendQueue), MaxMessage: int(cfg.MaxMessageSize),
			MaxPending: int(cfg.MaxPending), ReassemblyTimeout: cfg.ReassemblyTimeout,
			AckTimeout: cfg.AckTimeout, MaxRetransmissions: int(cfg.MaxRetransmissions),
		}, dir, now)
		if err != nil {
			return err
		}
		if l.pos, err = loadPositions(l.dataDir, l.sealKey); err != nil {
			return err
		}
		l.client, l.node, l.addr = c, clientEngine{c}, c.Address().Marshal()
		return nil
	}

	self, ok := dir.ByName(cfg.Name)
	if !ok || (self.Layer < 0) != (cfg.Role == RoleProvider) {
		return &sdk.ConfigError{Key: "name", Problem: fmt.Sprintf("the PKI document lists no %s %q", cfg.Role, cfg.Name), Fix: "use this node's name from the document"}
	}
	if l.chain, err = loadKeyChain(l.dataDir, cfg.KeysPath, l.sealKey); err != nil {
		return &sdk.ConfigError{Key: "keys_path", Problem: err.Error()}
	}
	l.chainEpoch = l.chain.Epoch()
	// The chain must give the keys the document publishes for this node.
	if kp, err := l.chain.Key(docEpoch); err != nil || func() bool { k, ok := self.Descriptor.SphinxKey(docEpoch); return !ok || k != kp.Public }() {
		return &sdk.ConfigError{Key: "keys_path", Problem: fmt.Sprintf("the key chain does not give %q's Sphinx key for epoch %d", cfg.Name, docEpoch), Fix: "use the keys file generated with this node's descriptor"}
	}
	durability := replay.SyncFull
	sync := "FULL"
	if cfg.Durability == "normal" {
		durability, sync = replay.SyncWrite, "NORMAL"
	}
	rs, err := replay.Open(ctx, filepath.Join(l.dataDir, ReplayDir), l.epochs.At(now), replay.Options{ExpectedTags: uint64(cfg.ReplayExpected), Durability: durability, DiscardCorrupt: true})
	if err != nil {
		return fmt.Errorf("mixnet: replay store: %w", err)
	}
	l.closers = append(l.closers, rs)
	rc := loopix.RelayConfig{Common: common, Self: self.ID, Keys: l.chain, Replay: rs, MaxQueue: int(cfg.MaxQueue), MaxDelay: cfg.MaxDelay, MaxLateness: cfg.MaxLateness}
	if cfg.Role == RoleMix {
		m, err := loopix.NewMix(ctx, rc, dir, now)
		if err != nil {
			return err
		}
		l.mix, l.node = m, m
		return nil
	}
	boxes, err := mailbox.Open(ctx, filepath.Join(l.dataDir, MailboxFile), mailbox.Options{
		MaxMailboxes: int(cfg.MaxClients), MaxEntries: int(cfg.MailboxMaxEntries), MaxBytes: cfg.MailboxMaxBytes, Synchronous: sync,
		MaxShared: int(cfg.SharedMaxMailboxes), SharedMaxEntries: int(cfg.SharedMaxEntries),
		SharedMaxEntryBytes: geo.UserForwardPayloadLength, SharedRetention: cfg.SharedRetention,
	})
	if err != nil {
		return err
	}
	l.closers = append(l.closers, boxes)
	var shared loopix.SharedMailboxes
	if cfg.SharedMaxMailboxes > 0 {
		shared = boxes
	}
	p, err := loopix.NewProvider(ctx, loopix.ProviderConfig{
		RelayConfig: rc, Mailboxes: boxes, PullBatch: int(cfg.PullBatch),
		ClientRate: cfg.clientRate(rates), ClientBurst: float64(cfg.ClientBurst), MaxClients: int(cfg.MaxClients),
		Shared: shared, SharedPullRate: cfg.SharedPullRate, SharedPullBurst: float64(cfg.SharedPullBurst),
	}, dir, now)
	if err != nil {
		return err
	}
	l.prov, l.node = p, p
	return nil
}

// peerOf gives a descriptor's overlay peer id as the overlay below puts it
// in frames: a libp2p peer id's bytes, or a devp2p node id.
func (l *Layer) peerOf(d *pki.Descriptor) (loopix.PeerID, error) {
	if l.cfg.Overlay == "devp2p" {
		if d.Enode == "" {
			return "", errors.New("no enode URL")
		}
		n, err := enode.ParseV4(d.Enode)
		if err != nil {
			return "", fmt.Errorf("enode URL: %w", err)
		}
		id := n.ID()
		return loopix.PeerID(id[:]), nil
	}
	if d.Libp2pPeerID == "" {
		return "", errors.New("no libp2p peer id")
	}
	id, err := peer.Decode(d.Libp2pPeerID)
	if err != nil {
		return "", fmt.Errorf("libp2p peer id: %w", err)
	}
	return loopix.PeerID(id), nil
}

// loadDirectory reads and verifies the PKI document, which must be for the
// epoch of now or a neighbouring one.
func (l *Layer) loadDirectory(now time.Time) (*loopix.Directory, uint64, error) {
	b, err := os.ReadFile(l.cfg.PKIDocument)
	if err != nil {
		return nil, 0, err
	}
	sd, err := pki.ParseSignedDocument(b)
	if err != nil {
		return nil, 0, err
	}
	epoch, current := sd.Document.Epoch, l.epochs.At(now)
	if epoch+1 < current || epoch > current+1 {
		return nil, 0, fmt.Errorf("the document is for epoch %d and this is epoch %d", epoch, current)
	}
	opts := l.verify
	opts.Epoch = epoch
	doc, err := pki.Verify(b, opts)
	if err != nil {
		return nil, 0, err
	}
	dir, err := loopix.NewDirectory(doc, l.peerOf)
	if err != nil {
		return nil, 0, err
	}
	return dir, epoch, nil
}

// Start implements sdk.Layer: the loop that drives the role begins.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.inputs = make(chan *commonv1.Batch, 64)
	l.wg.Add(1)
	go l.loop(ctx)
	resp := &commonv1.StartResponse{DisplayAddress: l.display()}
	if l.addr != nil {
		resp.LocalAddress, resp.ContactSection = l.addr, l.addr
	}
	return resp, nil
}

func (l *Layer) display() string {
	if l.client != nil {
		return l.client.Address().String()
	}
	return fmt.Sprintf("mixnet %s %s", l.cfg.Role, l.cfg.Name)
}

// HandleBatch implements sdk.Layer: the batch goes to the loop, which
// owns the state machine (a full queue slows the host: back-pressure).
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	select {
	// The frames are the layer's, the batch's slices are not: copy them.
	case l.inputs <- &commonv1.Batch{Frames: slices.Clone(b.GetFrames()), Events: slices.Clone(b.GetEvents())}:
	case <-ctx.Done():
	}
}

// loop drives the role: inputs, ticks at the state machine's deadlines,
// and what it has to send, until ctx ends.
func (l *Layer) loop(ctx context.Context) {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(max(l.node.Next().Sub(l.now()), 0))
		var trace uint64
		var hints *commonv1.Hints
		select {
		case <-ctx.Done():
			return
		case b := <-l.inputs:
			trace, hints = l.handle(ctx, b)
			if l.mix != nil || l.prov != nil {
				// Group commit: the batches that queued while the last
				// ones were handled (their replay tags and mailbox
				// entries fsynced) join this one, so that the relay
				// checks all their tags in one commit, and a provider
				// stores all their mailbox entries in one more, before
				// it forwards or answers on any of them.
				l.drain(ctx)
			}
			l.handOver(ctx)
		case fn := <-l.ctrl:
			fn(l.now())
		case <-timer.C:
			now := l.now()
			l.epochChange(now)
			l.node.Tick(ctx, now)
			l.saveChain()
		}
		l.flush(ctx, trace, hints)
		if l.pos != nil {
			if err := l.pos.save(l.client, l.now(), l.sealKey); err != nil {
				l.c.PositionErrors.Inc()
				l.logf("mixnet: shared positions not saved: %v", err)
			}
		}
	}
}

// groupFrames is how many frames from below drain collects before it
// stops taking in queued batches (the last one taken may bring more, up
// to a host batch): enough that one fsync is a small share of the unwraps
// it covers (0.2–1 ms against 64 × 85 µs), few enough that the packets of
// a group wait milliseconds, not tens of them, for the group's last
// unwrap.
const groupFrames = 64

// drain handles the batches waiting in the input queue, without waiting
// for more, until groupFrames frames from below are collected (or as many
// batches as the queue holds are handled).
func (l *Layer) drain(ctx context.Context) {
	for range cap(l.inputs) {
		if len(l.inbound) >= groupFrames {
			return
		}
		select {
		case b := <-l.inputs:
			l.handle(ctx, b)
		default:
			return
		}
	}
}

// handOver gives the frames from below collected so far to the state
// machine, in one HandleBatch.
func (l *Layer) handOver(ctx context.Context) {
	if len(l.inbound) == 0 {
		return
	}
	l.node.HandleBatch(ctx, l.now(), l.inbound)
	clear(l.inbound)
	l.inbound = l.inbound[:0]
}

// handle feeds one batch to the state machine: frames from below are
// collected for handOver, which the loop calls after it (and, before a
// frame from above or an event, handle does, to keep their order). It
// returns the trace id and hints of the last frame from below, which the
// messages that frame completed carry up.
func (l *Layer) handle(ctx context.Context, b *commonv1.Batch) (uint64, *commonv1.Hints) {
	var trace uint64
	var hints *commonv1.Hints
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			l.handOver(ctx)
			l.send(f)
		case commonv1.Direction_DIRECTION_UP:
			if f.GetProtocol() != ProtocolName {
				l.c.WrongProtocol.Inc()
				continue
			}
			l.inbound = append(l.inbound, loopix.Inbound{From: loopix.PeerID(f.GetPeer()), Frame: f.GetPayload()})
			trace, hints = f.GetTraceId(), f.GetHints()
		default:
			l.c.WrongDirection.Inc()
		}
	}
	if len(b.GetEvents()) > 0 {
		l.handOver(ctx)
	}
	now := l.now()
	for _, ev := range b.GetEvents() {
		p := ev.GetPeer()
		switch {
		case p == nil:
		case l.prov != nil && p.GetState() == commonv1.PeerState_PEER_STATE_DISCONNECTED:
			l.prov.Disconnected(loopix.PeerID(p.GetPeer()))
		case l.client != nil && p.GetState() == commonv1.PeerState_PEER_STATE_CONNECTED:
			l.client.Connected(loopix.PeerID(p.GetPeer()), now)
		}
	}
	return trace, hints
}

// send queues a message from above for a client's address.
func (l *Layer) send(f *commonv1.Frame) {
	if l.client == nil {
		l.c.NotClient.Inc()
		return
	}
	m := &loopix.Message{From: l.addr, Conversation: f.GetConversation(), Payload: f.GetPayload()}
	if l.cfg.Anonymous {
		m.From = nil
	}
	var err error
	if id, serr := loopix.ParseSharedAddress(f.GetPeer()); serr == nil {
		// A public chat's post, or a group frame to its shared address.
		err = l.client.SendShared(l.now(), id, m)
	} else if tag, rerr := loopix.ParseReplyAddress(f.GetPeer()); rerr == nil {
		// A reply to a sender known only by the SURBs it sent.
		err = l.client.Reply(l.now(), tag, m)
	} else {
		to, aerr := loopix.ParseAddress(f.GetPeer())
		if aerr != nil {
			l.c.BadAddress.Inc()
			return
		}
		err = l.client.SendWithSURBs(l.now(), to, m, int(l.cfg.ReplySURBs))
	}
	if err != nil {
		l.c.SendRefused.Inc()
		l.logf("mixnet: message refused: %v", err)
	}
}

// flush emits what the state machine has ready.
func (l *Layer) flush(ctx context.Context, trace uint64, hints *commonv1.Hints) {
	r := l.node.Ready()
	if len(r.Out) == 0 && len(r.Delivered) == 0 {
		return
	}
	frames := make([]*commonv1.Frame, 0, len(r.Out)+len(r.Delivered))
	for _, o := range r.Out {
		frames = append(frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte(o.To), Protocol: ProtocolName, Payload: o.Frame})
	}
	for _, m := range r.Delivered {
		// The sender's address, or, from an anonymous sender, the reply
		// address of its SURBs.
		peer := m.From
		if len(peer) == 0 {
			peer = m.ReplyTo
		}
		conv := m.Conversation
		if m.Shared != nil && len(conv) == 0 {
			// A public chat's post: its conversation is the shared address.
			conv = m.Shared
		}
		frames = append(frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, TraceId: trace, Hints: hints, Peer: peer, Conversation: conv, Payload: m.Payload})
	}
	if err := l.env.Out.Emit(ctx, frames...); err != nil {
		l.c.EmitFailed.Add(uint64(len(frames)))
		return
	}
	l.c.FramesDown.Add(uint64(len(r.Out)))
	l.c.FramesUp.Add(uint64(len(r.Delivered)))
}

// epochChange reloads the PKI document when the epoch turns.
func (l *Layer) epochChange(now time.Time) {
	e := l.epochs.At(now)
	if e <= l.docEpoch || now.Before(l.docRetry) {
		return
	}
	// Until the new document is there (it is written around the
	// boundary), try again every tenth of an epoch, at most every minute.
	l.docRetry = now.Add(min(l.epochs.Period()/10, time.Minute))
	dir, docEpoch, err := l.loadDirectory(now)
	if err != nil || docEpoch <= l.docEpoch {
		// Keep the document in use: its descriptors carry keys for the
		// next epochs too.
		l.c.PKIErrors.Inc()
		if err != nil {
			l.logf("mixnet: PKI document not reloaded: %v", err)
		}
		return
	}
	if err := l.node.SetDirectory(dir); err != nil {
		l.c.PKIErrors.Inc()
		l.logf("mixnet: PKI document of epoch %d not usable: %v", docEpoch, err)
		return
	}
	l.docEpoch = docEpoch
	l.c.PKIReloads.Inc()
	l.logf("mixnet: PKI document of epoch %d in use", docEpoch)
}

// saveChain keeps the relay's key chain after the state machine advanced
// it, so that a restart cannot derive the erased epochs' keys.
func (l *Layer) saveChain() {
	if l.chain == nil || l.chain.Epoch() == l.chainEpoch {
		return
	}
	if err := saveKeyChain(l.dataDir, l.chain, l.sealKey); err != nil {
		l.c.KeyChainErrors.Inc()
		l.logf("mixnet: %v", err)
		return
	}
	l.chainEpoch = l.chain.Epoch()
}

// Health implements sdk.Layer: the engine's counters and the layer's.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	c := map[string]uint64{}
	if l.node != nil {
		for k, v := range sdk.NewCounters(l.node.Counters()).Snapshot() {
			c[k] = v
		}
	}
	if l.set != nil {
		for k, v := range l.set.Snapshot() {
			c[k] = v
		}
	}
	return &commonv1.HealthResponse{Serving: true, Counters: c}
}

// Stop implements sdk.Layer.
func (l *Layer) Stop(context.Context) error {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	l.saveChain()
	return l.closeAll()
}

func (l *Layer) closeAll() error {
	var errs []error
	for _, c := range l.closers {
		errs = append(errs, c.Close())
	}
	l.closers = nil
	if l.secrets != nil {
		l.secrets.wipe()
	}
	return errors.Join(errs...)
}

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	if l.client == nil {
		return nil, status.Error(codes.FailedPrecondition, "mixnet: only a client has an address")
	}
	return &privacyv1.OwnAddressResponse{Address: l.addr, DisplayAddress: l.display()}, nil
}

// Subscribe implements privacyv1.ControlServer: the client follows the
// shared mailbox derived from the name and key (loopix.DeriveChannel) at
// the provider the PKI document's rendezvous hash gives, and answers its
// shared address. Only a client has shared addresses.
func (l *Layer) Subscribe(ctx context.Context, req *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	if l.client == nil {
		return nil, status.Error(codes.FailedPrecondition, "mixnet: only a client has shared addresses")
	}
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "mixnet: a shared address needs a name")
	}
	ch, err := loopix.DeriveChannel(req.GetName(), req.GetKey())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer clear(ch.Key[:])
	if err := l.do(ctx, func(time.Time) error {
		if err := l.client.Subscribe(ch); err != nil {
			return err
		}
		l.pos.resume(l.client, ch.Mailbox)
		return nil
	}); err != nil {
		return nil, err
	}
	return &privacyv1.SubscribeResponse{Address: ch.Address()}, nil
}

// Unsubscribe implements privacyv1.ControlServer: the client stops
// pulling the shared mailbox.
func (l *Layer) Unsubscribe(ctx context.Context, req *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	if l.client == nil {
		return nil, status.Error(codes.FailedPrecondition, "mixnet: only a client has shared addresses")
	}
	id, err := loopix.ParseSharedAddress(req.GetAddress())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := l.do(ctx, func(time.Time) error { l.client.Unsubscribe(id); l.pos.forget(id); return nil }); err != nil {
		return nil, err
	}
	return &privacyv1.UnsubscribeResponse{}, nil
}

// do runs fn on the loop, which owns the state machine, and returns its
// error.
func (l *Layer) do(ctx context.Context, fn func(now time.Time) error) error {
	done := make(chan error, 1)
	select {
	case l.ctrl <- func(now time.Time) { done <- fn(now) }:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	select {
	case err := <-done:
		if err != nil {
			return status.Error(codes.ResourceExhausted, err.Error())
		}
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (l *Layer) logf(format string, args ...any) {
	if l.env.Logger != nil {
		l.env.Logger.Debug(fmt.Sprintf(format, args...))
	}
}
