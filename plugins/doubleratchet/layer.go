// Package doubleratchet is Strata's "doubleratchet" secure layer: sessions
// agreed with X3DH, or PQXDH when both sides publish an ML-KEM-1024 prekey,
// and run with the Double Ratchet with header encryption, as Signal's
// specifications define them. docs/plugins/doubleratchet.md is the user's
// page; this comment is the implementer's summary.
//
// Keys. Each node has its own long-term Ed25519 signing key and X25519
// identity key (package x3dh), kept in its database. Its contact-card
// section is a Bundle: both public keys, the current signed prekey and the
// last-resort ML-KEM prekey, each signed. The host signs the card, which
// binds the bundle to the node identity; the layer pins the bundle's keys
// per contact. One-time prekeys are not in the card (a card goes to many
// people): a contact asks for them in-band (BundleRequest) when it is
// added, and gets one of each reserved for it.
//
// Sessions. Sealing for a contact with no session runs X3DH/PQXDH against
// its freshest bundle and starts a ratchet (package ratchet); the initiator
// repeats the PreKeyMessage header on every message until the first reply.
// A contact has up to maxSessions sessions (simultaneous starts, a peer
// that lost its state); the one that last opened a message seals, and
// opening tries each. Groups are pairwise fan-out by default: a frame
// without a peer is sealed once per other member of its conversation; with
// group_messages: sender_keys it is sealed once for all of them with the
// node's sender key (group.go).
//
// Wire. wirepb.Envelope, version 1. The conversation id travels inside the
// encrypted Plaintext, so DOWN frames carry no conversation; an UP frame
// whose conversation is set and differs from the sealed one is dropped.
// The AD of every message is the X3DH AD followed by the initiator's and
// the responder's node identities.
//
// Durability. Every state change of a batch (ratchet states, used prekeys,
// initial messages seen) is committed in one SQLite transaction (WAL,
// synchronous=FULL, secure_delete) before any frame of the batch is handed
// on: a crash can neither reuse a message key nor deliver a message twice.
// It can lose a message that was opened and committed but not yet handed
// up, which the sync layer above repairs by sending it again.
//
// Secrets at rest. A commit that supersedes or deletes secrets (a ratchet
// state that moved on, a used or retired prekey, expired skipped keys) is
// followed by a checkpoint that truncates the write-ahead log, before any
// frame of the batch leaves: with secure_delete, no file of the data
// directory then holds them (forward secrecy on disk). With a passphrase
// (ConfigureRequest.at_rest_key) every secret column is sealed under the
// layer's at-rest key (core/sdk/atrest); without one, file mode 0600 is the
// only protection.
//
// Bad input is dropped with a typed error (errors.go) and counted under
// dropped_<reason>; a failed open leaves the session state untouched.
package doubleratchet

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// Name is the implementation name a config uses.
const Name = "doubleratchet"

// Version is the implementation version. 2.0.0: bundle version 2 (signature
// contexts, the signed issue time).
const Version = "2.0.0"

// WireVersion is the Envelope version this layer speaks.
const WireVersion = 1

// Limits.
const (
	// MaxPayload is the largest plaintext accepted from above: the privacy
	// layer's 1 MiB less room for the PreKeyMessage, header and padding.
	MaxPayload = 1<<20 - 16<<10
	// maxEnvelope is the largest envelope accepted from below.
	maxEnvelope = MaxPayload + 12<<10
	// maxSessions is how many sessions a contact keeps; the least recently
	// used goes first.
	maxSessions = 5
	// identitySize is the length of a node identity (Ed25519 public key).
	identitySize = 32
	// maxMembers bounds a conversation's membership.
	maxMembers = 1024
	// bundleAnswerInterval is the least time between two answers to the
	// same contact's BundleRequests.
	bundleAnswerInterval = 10 * time.Second
)

// contact is a contact's key material and sessions in memory.
type contact struct {
	identity  []byte
	pinned    *x3dh.Bundle // from the card, through AddContact
	pinnedRaw []byte
	fresh     *x3dh.Bundle // in-band, with one-time keys for this node
	freshRaw  []byte
	sessions  []*session // highest rank first
	asked     bool       // a BundleRequest went out since Start
	answered  time.Time  // last answer to its BundleRequest
}

// Layer is the doubleratchet secure layer. Use New.
type Layer struct {
	// mu guards everything below it and is held for the whole of
	// HandleBatch and of every control call.
	mu            sync.Mutex
	env           sdk.Env
	cfg           Config
	db            *sql.DB
	self          []byte // node identity
	id            *x3dh.Identity
	spk           *x3dh.PreKeyPair
	spkMade       time.Time
	kem           *x3dh.KEMPreKeyPair // last resort; nil without post_quantum
	kemMade       time.Time
	card          []byte // the card section, marshalled Bundle
	contacts      map[string]*contact
	conversations map[string][][]byte
	// chains are the sender keys by chainKey(conversation, owner);
	// pending are group messages waiting for theirs (group.go).
	chains    map[string]*senderChain
	nextChain int64
	pending   []pendingGroup
	// requestedAt and answeredAt rate-limit SenderKeyRequests, by
	// chainKey(conversation, member); memory only.
	requestedAt map[string]time.Time
	answeredAt  map[string]time.Time
	nextSession int64
	nextRank    int64
	// key seals the secret columns; nil without a passphrase.
	key *atrest.Key
	// unforgotten is set while a checkpoint that was due has not
	// finished, so that the next commit tries again.
	unforgotten bool
	// forgetSoon wakes the deferred checkpoint (checkpoint: deferred);
	// forgetQueued says one is waiting for its delay.
	forgetSoon   chan struct{}
	forgetQueued bool
	// stop ends the maintenance loop that Start began.
	stop chan struct{}
	wg   sync.WaitGroup

	now func() time.Time
	// started is set while the layer is live: a contact added before
	// Start is asked for its bundle by Start's first use, not at once.
	started  atomic.Bool
	storeErr atomic.Pointer[string]
	c        counters
}

var _ sdk.Secure = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer { return &Layer{now: time.Now, c: newCounters()} }

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SECURE,
		Name:        Name,
		Version:     Version,
		Description: "X3DH / PQXDH (ML-KEM-1024) key agreement and the Double Ratchet with header encryption; groups as pairwise fan-out or with sender keys",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapE2E, sdk.CapForwardSecrecy, sdk.CapPostCompromiseSecurity},
		Requires:    []string{sdk.CapDirect},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it opens the database, creating the
// identity and the first prekeys on first use, and loads contacts and
// sessions.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	self := req.GetNodeIdentity()
	if len(self) != 0 && len(self) != identitySize {
		return nil, fmt.Errorf("doubleratchet: node identity is %d bytes, want %d", len(self), identitySize)
	}
	if req.GetDataDir() == "" {
		return nil, fmt.Errorf("doubleratchet: no data directory")
	}
	key, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, fmt.Errorf("doubleratchet: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	db, err := openStore(ctx, filepath.Join(req.GetDataDir(), dbFile))
	if err != nil {
		key.Wipe()
		return nil, fmt.Errorf("doubleratchet: %w", err)
	}
	l.db, l.cfg, l.env, l.key = db, cfg, env, key
	l.self = append([]byte(nil), self...)
	l.contacts = map[string]*contact{}
	l.conversations = map[string][][]byte{}
	l.chains = map[string]*senderChain{}
	l.pending = nil
	l.requestedAt, l.answeredAt = map[string]time.Time{}, map[string]time.Time{}
	if err := l.load(ctx); err != nil {
		l.zero()
		db.Close()
		l.db = nil
		if errors.Is(err, atrest.ErrLocked) {
			return nil, fmt.Errorf("doubleratchet: %w (the layer's keys were sealed under a passphrase: configure node.passphrase_file or node.key_file again)", err)
		}
		return nil, fmt.Errorf("doubleratchet: %w", err)
	}
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. The local address is the node identity; the
// contact section is the bundle.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started.Store(true)
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go l.maintainLoop(l.stop)
	if l.cfg.Checkpoint == checkpointDeferred {
		l.forgetSoon = make(chan struct{}, 1)
		l.forgetQueued = false
		l.wg.Add(1)
		go l.forgetLoop(l.stop, l.forgetSoon)
	}
	return &commonv1.StartResponse{
		LocalAddress:   l.self,
		ContactSection: append([]byte(nil), l.card...),
		DisplayAddress: "doubleratchet:" + hex.EncodeToString(l.id.SigningKey()[:8]),
	}, nil
}

// Health implements sdk.Layer. Levels: contacts, sessions, conversations,
// one_time_prekeys and one_time_kem_prekeys (unreserved, in the pools);
// totals: sealed, opened, sessions_started_x3dh, sessions_started_pqxdh,
// sessions_accepted, bundle_requests_sent, bundles_sent, bundles_received;
// and dropped_<reason> for every reason in errors.go.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	serving, detail := true, ""
	if e := l.storeErr.Load(); e != nil {
		serving, detail = false, *e
	}
	return &commonv1.HealthResponse{Serving: serving, Detail: detail, Counters: l.c.snapshot()}
}

// Stop implements sdk.Layer: it stops the maintenance loop, checkpoints
// and closes the database, and zeroes the keys it holds in memory, the
// at-rest key included. A second Stop does nothing.
func (l *Layer) Stop(ctx context.Context) error {
	l.started.Store(false)
	l.mu.Lock()
	stop := l.stop
	l.stop = nil
	l.mu.Unlock()
	if stop != nil {
		close(stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.zero()
	db := l.db
	l.db = nil // the control calls see the layer stopped
	if db == nil {
		return nil
	}
	_, cerr := checkpoint(ctx, db)
	if err := db.Close(); err != nil {
		return fmt.Errorf("doubleratchet: close database: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("doubleratchet: %w", cerr)
	}
	return nil
}

// forget checkpoints the database after a commit that superseded or
// deleted secrets (see checkpoint); l.mu is held. A checkpoint that a
// reader kept from finishing is tried again after the next commit.
func (l *Layer) forget(ctx context.Context) error {
	done, err := checkpoint(ctx, l.db)
	if err != nil {
		return err
	}
	if !done && !l.unforgotten {
		l.env.Logger.Warn("a reader kept the write-ahead log from being truncated: superseded keys stay in it until the next commit")
	}
	l.unforgotten = !done
	return nil
}

// zero overwrites the key material in memory, the at-rest key included;
// l.mu is held.
func (l *Layer) zero() {
	l.key.Wipe()
	l.key = nil
	if l.id != nil {
		l.id.Zero()
	}
	if l.spk != nil {
		l.spk.Zero()
	}
	if l.kem != nil {
		l.kem.Zero()
	}
	for _, c := range l.contacts {
		for _, s := range c.sessions {
			s.state.Zero()
		}
	}
	l.contacts = nil
	for _, ch := range l.chains {
		ch.zero()
	}
	l.chains = nil
	l.pending = nil
}

// ready reports whether control calls may run; l.mu is held.
func (l *Layer) ready() error {
	if l.db == nil {
		return status.Error(codes.FailedPrecondition, "doubleratchet: not configured, or stopped")
	}
	if e := l.storeErr.Load(); e != nil {
		return status.Error(codes.Unavailable, "doubleratchet: "+*e)
	}
	return nil
}

// failStore records the first storage failure: the layer stops serving, so
// that the host restarts it from what the database holds.
func (l *Layer) failStore(err error) {
	msg := "storage failed: " + err.Error()
	if l.storeErr.CompareAndSwap(nil, &msg) {
		l.env.Logger.Error("storage failed; the layer stops serving", "error", err)
	}
}

// maintainLoop rotates prekeys, refills the pools and expires skipped keys
// on a schedule.
// deferForget asks for the deferred checkpoint (checkpoint: deferred),
// unless one is already waiting; l.mu is held.
func (l *Layer) deferForget() {
	if l.forgetQueued || l.forgetSoon == nil {
		return
	}
	l.forgetQueued = true
	select {
	case l.forgetSoon <- struct{}{}:
	default:
	}
}

// forgetLoop runs the deferred checkpoints: checkpoint_delay after it is
// asked for one, it takes the layer and checkpoints, covering every commit
// since the request. Stop checkpoints whatever is left.
func (l *Layer) forgetLoop(stop <-chan struct{}, soon <-chan struct{}) {
	defer l.wg.Done()
	for {
		select {
		case <-stop:
			return
		case <-soon:
		}
		t := time.NewTimer(l.cfg.CheckpointDelay)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		l.mu.Lock()
		l.forgetQueued = false
		if l.db != nil && l.storeErr.Load() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := l.forget(ctx); err != nil {
				l.failStore(err)
			}
			cancel()
		}
		l.mu.Unlock()
	}
}

func (l *Layer) maintainLoop(stop <-chan struct{}) {
	defer l.wg.Done()
	every := min(max(l.cfg.SignedPreKeyRotation/4, time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			l.maintainNow()
		}
	}
}

// maintainNow runs maintain, and tells the host when the card section
// changed (a prekey rotated) so that it re-signs the card at once rather
// than at its next health poll.
func (l *Layer) maintainNow() {
	l.mu.Lock()
	before := l.card
	if l.storeErr.Load() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := l.maintain(ctx); err != nil {
			l.failStore(err)
		}
		cancel()
	}
	changed := !bytes.Equal(before, l.card)
	l.mu.Unlock()
	if !changed {
		return
	}
	ev := &commonv1.Event{Kind: &commonv1.Event_SectionChanged{SectionChanged: &commonv1.SectionChanged{}}}
	if err := l.env.Out.EmitEvent(l.env.Run, ev); err != nil {
		l.env.Logger.Debug("could not tell the host the card section changed", "error", err)
	}
}
