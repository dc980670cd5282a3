// Package layer is Strata's "mls" secure layer: conversations are MLS
// groups (RFC 9420, the library in plugins/mls), with the commit ordering
// that a network without a delivery service needs. docs/plugins/mls.md is
// the user's page; this comment is the implementer's summary.
//
// Keys. Each node has its own MLS signature key pair, kept in its
// database. Its contact-card section (card.go) is that public key, a few
// one-time KeyPackages and one last-resort KeyPackage; each leaf's basic
// credential is the node's 32-byte identity key. The host signs the card,
// which binds the signature key to the identity. A member's leaf is
// accepted only if it matches that member's card when the layer has one
// (Config.AcceptLeaf of package group); a member without a card is
// accepted on the committer's word.
//
// Groups. The group id is the conversation id. SetConversation gives the
// members the host wants; the member with the lowest identity among those
// that stay commits the change (creating the group first if need be), the
// k-th in that order takes over after k × takeover_timeout (commit.go).
// A conversation of two has its group created only when a member has a
// frame for it: the lower member creates it then, the higher asks the
// lower for it (lazy.go).
// Commits go to the group (a DOWN frame with an empty peer); a Commit's
// one Welcome, naming the new members, goes to the group or to each new
// member, whichever is fewer frames on the worse kind of privacy layer
// (commit.go: toGroup).
//
// Ordering (fork.go). There is no delivery service, so two members may
// commit in the same epoch. Among valid Commits for one epoch the one whose
// MLSMessage has the lowest SHA-256 wins: a member keeps the state from
// before each Commit it applied for settle_window and rolls back to apply
// a lower one; a losing branch stays readable for branch_retention.
// Members announce (epoch, branch, tag) in status messages, to the group
// in small groups and to the epoch's committer in large ones; the
// committer sends its Commit and Welcome again, once per back-off round
// and naming the members still missing, until every member has shown the
// new epoch.
//
// Leaf refresh (update.go). For post-compromise security each member
// commits an empty Commit with an UpdatePath once update_interval has
// passed since its leaf last changed, when the group is quiet and it is
// its turn in a rotation derived from the epoch, so that one member
// commits per epoch; stale_leaves counts the members whose leaf has not
// changed for twice the interval.
//
// Durability. Every change of a batch (group states, KeyPackages, the
// outbox of Commits being retransmitted) is committed in one SQLite
// transaction (WAL, synchronous=FULL, secure_delete) before any frame of
// the batch is handed on, and the write-ahead log is truncated afterwards
// so that superseded epoch secrets do not survive on disk. Secret columns
// are sealed with core/sdk/atrest when the host gives an at-rest key.
//
// Bad input is dropped with a typed error (errors.go) and counted under
// dropped_<reason>; it never changes a group.
package layer

import (
	"context"
	"crypto/sha256"
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
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Name is the implementation name a config uses.
const Name = "mls"

// Version is the implementation version.
const Version = "1.3.0"

// Limits.
const (
	// identitySize is the length of a node identity (Ed25519 public key).
	identitySize = 32
	// maxMembers bounds a conversation's membership (the host's
	// ConversationLearned event is sized for 1,024).
	maxMembers = 1024
	// seenSize is how many delivered application messages are remembered
	// (by hash) to refuse replays that a rollback would let through.
	seenSize = 4096
)

// Layer is the mls secure layer. Use New.
type Layer struct {
	// mu guards everything below it; it is held for the whole of
	// HandleBatch, of every control call and of every timer tick.
	mu       sync.Mutex
	env      sdk.Env
	cfg      Config
	cs       *suite.Suite
	db       *sql.DB
	key      *atrest.Key
	self     []byte
	ident    group.Identity
	kps      []*ownKeyPackage
	retired  []*ownKeyPackage // used one-time KeyPackages, kept for the settling window
	card     []byte
	contacts map[string]*Card
	used     map[string]bool // refs of contacts' one-time KeyPackages put in a Commit
	convs    map[string]*conv
	orphans  []heldUp             // UP frames for groups this node does not have (yet)
	offered  map[string]time.Time // group+committer → last KeyPackage offer, to rate-limit them
	seen     seenSet

	// What the operation in progress changes and sends, written and
	// handed on by flush.
	out      []*commonv1.Frame
	events   []*commonv1.Event
	dirty    map[string]*conv
	kpsDirty bool
	deadKPs  [][]byte
	usedNew  [][]byte
	// newContacts are contact rows to write: identity, section.
	newContacts [][2][]byte

	now      func() time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
	storeErr atomic.Pointer[string]
	c        *counters
	// stale is the stale_leaves level: members whose leaf has not changed
	// for twice update_interval, over every group (update.go).
	stale   atomic.Uint64
	staleAt time.Time // when stale was last counted
}

var _ sdk.Secure = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer {
	l := &Layer{now: time.Now, c: newCounters()}
	l.c.all.Level("stale_leaves", l.stale.Load)
	return l
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SECURE,
		Name:        Name,
		Version:     Version,
		Description: "Messaging Layer Security (RFC 9420): every conversation an MLS group, KeyPackages in the contact card, serverless commit ordering (lowest Commit hash wins within a settling window)",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapE2E, sdk.CapForwardSecrecy, sdk.CapPostCompromiseSecurity, sdk.CapLearnsConversations},
		Requires:    []string{sdk.CapDirect},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it opens the database, creating the
// signature key and the KeyPackages on first use, and loads contacts and
// groups.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	self := req.GetNodeIdentity()
	if len(self) != 0 && len(self) != identitySize {
		return nil, fmt.Errorf("mls: node identity is %d bytes, want %d", len(self), identitySize)
	}
	if req.GetDataDir() == "" {
		return nil, errors.New("mls: no data directory")
	}
	cs, err := suite.New(suite.ID(cfg.CipherSuite))
	if err != nil {
		return nil, &sdk.ConfigError{Key: "cipher_suite", Problem: err.Error(), Fix: "use 1 or 3"}
	}
	key, err := atrest.NewKey(req.GetAtRestKey())
	clear(req.GetAtRestKey())
	if err != nil {
		return nil, fmt.Errorf("mls: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	db, err := openStore(ctx, filepath.Join(req.GetDataDir(), dbFile))
	if err != nil {
		key.Wipe()
		return nil, fmt.Errorf("mls: %w", err)
	}
	l.db, l.cfg, l.cs, l.env, l.key = db, cfg, cs, env, key
	l.self = append([]byte(nil), self...)
	l.contacts = map[string]*Card{}
	l.used = map[string]bool{}
	l.convs = map[string]*conv{}
	l.dirty = map[string]*conv{}
	l.seen = newSeenSet(seenSize)
	l.offered = map[string]time.Time{}
	if err := l.load(ctx); err != nil {
		l.zero()
		db.Close()
		l.db = nil
		if errors.Is(err, atrest.ErrLocked) {
			return nil, fmt.Errorf("mls: %w (the layer's keys were sealed under a passphrase: configure node.passphrase_file or node.key_file again)", err)
		}
		return nil, fmt.Errorf("mls: %w", err)
	}
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. The local address is the node identity; the
// contact section is the card.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil, status.Error(codes.FailedPrecondition, "mls: not configured")
	}
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go l.tickLoop(l.stop)
	return &commonv1.StartResponse{
		LocalAddress:   l.self,
		ContactSection: append([]byte(nil), l.card...),
		DisplayAddress: "mls:" + hex.EncodeToString(l.ident.SignaturePub[:min(8, len(l.ident.SignaturePub))]),
	}, nil
}

// Health implements sdk.Layer: the counters of counters.go and
// dropped_<reason> for every reason of errors.go.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	serving, detail := true, ""
	if e := l.storeErr.Load(); e != nil {
		serving, detail = false, *e
	}
	return &commonv1.HealthResponse{Serving: serving, Detail: detail, Counters: l.c.all.Snapshot()}
}

// Stop implements sdk.Layer: it stops the timers, checkpoints and closes
// the database and zeroes the keys it holds. A second Stop does nothing.
func (l *Layer) Stop(ctx context.Context) error {
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
	l.db = nil
	if db == nil {
		return nil
	}
	cerr := checkpoint(ctx, db)
	if err := db.Close(); err != nil {
		return fmt.Errorf("mls: close database: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("mls: %w", cerr)
	}
	return nil
}

// zero overwrites the key material in memory; l.mu is held.
func (l *Layer) zero() {
	l.key.Wipe()
	l.key = nil
	clear(l.ident.SignaturePriv)
	for _, kp := range append(l.kps, l.retired...) {
		kp.bundle.Destroy()
	}
	l.kps, l.retired = nil, nil
	for _, c := range l.convs {
		c.destroy()
	}
	l.convs = nil
}

// ready reports whether control calls and batches may run; l.mu is held.
func (l *Layer) ready() error {
	if l.db == nil {
		return status.Error(codes.FailedPrecondition, "mls: not configured, or stopped")
	}
	if e := l.storeErr.Load(); e != nil {
		return status.Error(codes.Unavailable, "mls: "+*e)
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

// HandleBatch implements sdk.Layer: DOWN frames are sealed, UP frames
// opened; everything the batch changed is committed before any frame it
// produced leaves.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready() != nil {
		for range b.GetFrames() {
			l.c.drop(ErrStore)
		}
		return
	}
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			if err := l.handleDown(f); err != nil {
				l.c.drop(err)
			}
		case commonv1.Direction_DIRECTION_UP:
			if err := l.handleUp(f, l.now()); err != nil {
				l.c.drop(err)
			}
		default:
			l.c.drops["wrong_direction"].Inc()
		}
	}
	l.flush(ctx)
}

// tickLoop runs the timers: retransmissions, takeovers, the end of
// settling windows and of held frames.
func (l *Layer) tickLoop(stop <-chan struct{}) {
	defer l.wg.Done()
	every := min(l.cfg.RetransmitInitial, l.cfg.SettleWindow, l.cfg.TakeoverTimeout) / 4
	every = min(max(every, time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			l.mu.Lock()
			if l.ready() == nil {
				l.tick(l.now())
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				l.flush(ctx)
				cancel()
			}
			l.mu.Unlock()
		}
	}
}

// emit queues a frame for the end of the operation; l.mu is held.
func (l *Layer) emit(f *commonv1.Frame) { l.out = append(l.out, f) }

// markDirty has flush write c; l.mu is held.
func (l *Layer) markDirty(c *conv) { l.dirty[string(c.id)] = c }

// flush commits every change of the operation in one transaction, then
// hands on its frames and events; l.mu is held. A storage failure drops
// the frames (their state is not durable) and stops the layer serving.
//
// The lock stays held across the commit. A version that released it
// (the changes encoded under the lock, committed outside it, operations
// queued meanwhile sharing the next commit) let control calls answer
// during a commit, but in the run of 50 stacks in one process by hand
// (docs/plugins/mls.md, what is not built) it made the sync layer's
// control calls miss the host's deadline twice out of two, where holding
// the lock passed.
func (l *Layer) flush(ctx context.Context) {
	// The groups in memory have moved already: what they did is committed
	// even when the caller has given up.
	ctx = context.WithoutCancel(ctx)
	w, err := l.collect()
	if err == nil && w.changes() {
		if err = writeAll(ctx, l.db, w); err == nil {
			l.c.DBCommits.Inc()
		}
	}
	if err != nil {
		l.failStore(err)
		for range w.out {
			l.c.drop(ErrStore)
		}
		return
	}
	if len(w.out) > 0 {
		if err := l.env.Out.Emit(l.env.Run, w.out...); err != nil {
			l.env.Logger.Debug("frames not handed on", "error", err)
		}
	}
	for _, ev := range w.events {
		if err := l.env.Out.EmitEvent(l.env.Run, ev); err != nil {
			l.env.Logger.Debug("event not handed on", "error", err)
		}
	}
	if w.changes() {
		// Superseded secrets were written over: the write-ahead log must
		// not keep them.
		if err := checkpoint(ctx, l.db); err != nil {
			l.env.Logger.Warn("could not truncate the write-ahead log: superseded keys stay in it until the next checkpoint", "error", err)
		}
	}
}

// commitHash is the hash that orders competing Commits: SHA-256 of the
// Commit's MLSMessage encoding.
func commitHash(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}

// seenSet remembers the hashes of the last n delivered application
// messages.
type seenSet struct {
	n     int
	set   map[[32]byte]struct{}
	order [][32]byte
}

func newSeenSet(n int) seenSet { return seenSet{n: n, set: map[[32]byte]struct{}{}} }

func (s *seenSet) has(h [32]byte) bool { _, ok := s.set[h]; return ok }

func (s *seenSet) add(h [32]byte) {
	if s.has(h) {
		return
	}
	s.set[h] = struct{}{}
	s.order = append(s.order, h)
	if len(s.order) > s.n {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
}

// groupConfig is the group.Config of every group of this layer.
func (l *Layer) groupConfig() group.Config {
	return group.Config{
		Now:                l.now,
		PadTo:              l.cfg.Padding,
		PastEpochs:         pastEpochs(l.cfg.PastEpochs),
		Retention:          retention(l.cfg.SkippedKeys),
		KeyPackageLifetime: l.cfg.KeyPackageLifetime,
		AcceptLeaf:         l.acceptLeaf,
	}
}

// acceptLeaf is the Authentication Service: a leaf's credential must be a
// 32-byte identity, and when the layer has that member's card (or it is
// this node), the leaf's signature key must be the card's.
func (l *Layer) acceptLeaf(leaf *wire.LeafNode) error {
	id := leaf.Credential.Identity
	if leaf.Credential.Type != wire.CredentialBasic || len(id) != identitySize {
		return errors.New("credential is not a basic credential with a 32-byte identity")
	}
	if string(id) == string(l.self) {
		return checkLeafIdentity(leaf, l.self, l.ident.SignaturePub)
	}
	if card, ok := l.contacts[string(id)]; ok {
		return checkLeafIdentity(leaf, id, card.SignatureKey)
	}
	return nil // no card: on the committer's word (RFC 9420 leaves it to the AS)
}

// pastEpochs turns past_epochs into group.Config.PastEpochs, where 0 means
// the default and a negative number none.
func pastEpochs(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// retention is the secret trees' retention for skipped_keys n: the
// library's forward limit, and n skipped keys per ratchet. For 0 it asks
// for none with -1, since the library reads a zero MaxSkipped as its
// default.
func retention(n int) schedule.Retention {
	if n == 0 {
		n = -1
	}
	return schedule.Retention{MaxForward: schedule.DefaultRetention.MaxForward, MaxSkipped: n}
}
