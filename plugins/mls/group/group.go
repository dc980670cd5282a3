// Package group is the MLS group state machine (RFC 9420 §8, §10–§12): a
// member's view of one group and the operations that move it from epoch to
// epoch — creating a group, KeyPackages, proposals (Add, Update, Remove,
// external PreSharedKey, GroupContextExtensions) by value and by
// reference, Commits with an UpdatePath when one is required, Welcomes for
// the members they add, joining from a Welcome, application messages, the
// epoch authenticator and the exporter.
//
// A Group does no I/O, and takes its randomness and clock from Config: an
// operation takes its input (a message, a proposal) and returns what to send
// out. An operation either succeeds and moves the state, or fails with an
// error and leaves the state as it was (staged changes are made on copies).
// Creating a Commit does not change the epoch: the caller applies its own
// Commit with Merge once it has decided the Commit stands (RFC 9420 §14;
// with no delivery service, the ordering rule is the caller's). The one
// exception is a PrivateMessage's key generation, which is consumed when the
// message is made, so that no key is ever used twice.
//
// A Group is not safe for concurrent use.
package group

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strata-msg/strata/plugins/mls/framing"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Errors of the group state machine, each wrapped with details. An error
// leaves the group as it was.
var (
	ErrInvalidKeyPackage = errors.New("mls/group: invalid KeyPackage")
	ErrInvalidLeaf       = errors.New("mls/group: invalid leaf node")
	ErrInvalidProposal   = errors.New("mls/group: invalid proposal list")
	ErrInvalidCommit     = errors.New("mls/group: invalid commit")
	ErrConfirmationTag   = errors.New("mls/group: confirmation tag does not verify")
	ErrWrongEpoch        = errors.New("mls/group: message for another epoch")
	ErrWrongGroup        = errors.New("mls/group: message for another group")
	ErrUnknownProposal   = errors.New("mls/group: commit references an unknown proposal")
	ErrMissingPSK        = errors.New("mls/group: pre-shared key not available")
	ErrUnsupported       = errors.New("mls/group: not supported")
	ErrInvalidWelcome    = errors.New("mls/group: invalid Welcome")
	ErrNotMember         = errors.New("mls/group: no longer a member of the group")
	// ErrRejectedLeaf: Config.AcceptLeaf refused a member's leaf (the
	// application's Authentication Service, RFC 9420 §5.3.1).
	ErrRejectedLeaf = errors.New("mls/group: leaf refused by the authentication service")
)

// Config holds what a group takes from outside: randomness, the clock and
// policies. The zero Config is usable.
type Config struct {
	// Random is the source of every random value; nil means crypto/rand.
	Random io.Reader
	// Now is the clock KeyPackage lifetimes are checked against; nil means
	// time.Now.
	Now func() time.Time
	// ExternalPSK returns the secret of an external pre-shared key by its
	// psk_id, or false.
	ExternalPSK func(id []byte) ([]byte, bool)
	// HandshakeFormat is the wire format of the proposals and commits this
	// member sends: WireFormatPrivateMessage (the default) or
	// WireFormatPublicMessage. Both are accepted on receipt.
	HandshakeFormat wire.WireFormat
	// PadTo pads PrivateMessage content to a multiple of this many bytes.
	PadTo int
	// Retention bounds the keys each epoch's secret tree keeps for
	// out-of-order messages; zero means schedule.DefaultRetention.
	Retention schedule.Retention
	// PastEpochs is how many epochs before the current one keep their
	// secret tree, so that application messages sent in them still
	// decrypt. Zero means 2; negative keeps none. Older epochs' keys are
	// zeroed when they fall out of the window.
	PastEpochs int
	// KeyPackageLifetime is the lifetime of the leaf a member creates a
	// group with; zero means 90 days.
	KeyPackageLifetime time.Duration
	// AcceptLeaf, if set, is the application's Authentication Service
	// (RFC 9420 §5.3.1): it is asked about every member's leaf of the
	// tree a received Commit leads to and of the tree a Welcome gives,
	// before the group changes; an error refuses the Commit or the Welcome
	// (ErrRejectedLeaf). Nil accepts every valid leaf.
	AcceptLeaf func(leaf *wire.LeafNode) error
}

// acceptTree asks Config.AcceptLeaf about every leaf of tr.
func (c *Config) acceptTree(tr *tree.Tree) error {
	if c.AcceptLeaf == nil {
		return nil
	}
	for l := range treemath.Leaf(tr.LeafCount()) {
		if leaf := tr.Leaf(l); leaf != nil {
			if err := c.AcceptLeaf(leaf); err != nil {
				return fmt.Errorf("%w: leaf %d: %w", ErrRejectedLeaf, l, err)
			}
		}
	}
	return nil
}

func (c *Config) random() io.Reader {
	if c.Random == nil {
		return rand.Reader
	}
	return c.Random
}

func (c *Config) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Config) pastEpochs() int {
	switch {
	case c.PastEpochs == 0:
		return 2
	case c.PastEpochs < 0:
		return 0
	}
	return c.PastEpochs
}

func (c *Config) handshakeFormat() wire.WireFormat {
	if c.HandshakeFormat == wire.WireFormatPublicMessage {
		return wire.WireFormatPublicMessage
	}
	return wire.WireFormatPrivateMessage
}

// epochState is what one epoch needs to protect and unprotect messages.
type epochState struct {
	ctx     wire.GroupContext
	tree    *tree.Tree
	keys    *schedule.Epoch
	secrets *schedule.SecretTree
}

func (e *epochState) destroy() {
	if e.keys != nil {
		e.keys.Destroy()
	}
	if e.secrets != nil {
		e.secrets.Destroy()
	}
}

// pastEpoch is what is kept of an earlier epoch: enough to decrypt late
// application messages, and its resumption PSK.
type pastEpoch struct {
	ctx           wire.GroupContext
	tree          *tree.Tree
	senderData    []byte
	secrets       *schedule.SecretTree
	resumptionPSK []byte
}

func (p *pastEpoch) destroy() {
	clear(p.senderData)
	clear(p.resumptionPSK)
	p.secrets.Destroy()
}

// cachedProposal is a proposal received (or sent) in this epoch, kept by
// its reference until the next commit.
type cachedProposal struct {
	ref      []byte
	proposal *wire.Proposal
	sender   treemath.Leaf
}

// Group is one member's state of one MLS group.
type Group struct {
	cs      *suite.Suite
	cfg     Config
	id      Identity
	cur     epochState
	priv    *treekem.Private
	interim []byte
	pending []cachedProposal
	updates map[string][]byte // encryption key of a pending own Update → its private key
	past    []*pastEpoch      // oldest first
	removed bool
}

// Create makes a new group with the member of bundle as its only member,
// in epoch 0 (RFC 9420 §11). groupID should be fresh random bytes (Nh of
// them; NewGroupID makes them); extensions become the GroupContext's.
func Create(cfg Config, cs *suite.Suite, groupID []byte, id Identity, extensions []wire.Extension) (*Group, error) {
	now := cfg.now()
	lifetime := cfg.KeyPackageLifetime
	if lifetime == 0 {
		lifetime = 90 * 24 * time.Hour
	}
	leaf, encPriv, err := newKeyPackageLeaf(cs, id, now, lifetime, cfg.random())
	if err != nil {
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	tr, err := tree.FromWire(wire.RatchetTree{{Type: wire.NodeTypeLeaf, Leaf: &leaf}})
	if err != nil {
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	th, err := tr.TreeHash(cs)
	if err != nil {
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	ctx := wire.GroupContext{
		Version: 1, CipherSuite: wire.CipherSuite(cs.ID()), GroupID: bytes.Clone(groupID), Epoch: 0,
		TreeHash: th, ConfirmedTranscriptHash: nil, Extensions: extensions,
	}
	epochSecret := make([]byte, cs.Nh())
	if _, err := io.ReadFull(cfg.random(), epochSecret); err != nil {
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	keys, err := schedule.EpochFromSecret(cs, epochSecret)
	clear(epochSecret)
	if err != nil {
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	g := &Group{cs: cs, cfg: cfg, id: id, priv: treekem.NewPrivate(cs, 0, encPriv), updates: map[string][]byte{}}
	clear(encPriv)
	// The confirmation tag of epoch 0 is over the empty confirmed
	// transcript hash; the interim transcript hash follows from it (§11).
	tag := schedule.ConfirmationTag(cs, keys.ConfirmationKey, nil)
	g.interim = schedule.InterimTranscriptHash(cs, nil, tag)
	secrets, err := schedule.NewSecretTree(cs, keys.EncryptionSecret, tr.LeafCount(), cfg.Retention)
	if err != nil {
		keys.Destroy()
		return nil, fmt.Errorf("mls/group: create: %w", err)
	}
	g.enterEpoch(ctx, tr, keys, secrets)
	return g, nil
}

// NewGroupID returns Nh random bytes for a new group's id.
func NewGroupID(cfg Config, cs *suite.Suite) ([]byte, error) {
	id := make([]byte, cs.Nh())
	if _, err := io.ReadFull(cfg.random(), id); err != nil {
		return nil, fmt.Errorf("mls/group: group id: %w", err)
	}
	return id, nil
}

// enterEpoch installs a new current epoch, moving the current one (if any)
// to the past epochs and dropping the oldest beyond the window.
func (g *Group) enterEpoch(ctx wire.GroupContext, tr *tree.Tree, keys *schedule.Epoch, secrets *schedule.SecretTree) {
	if old := g.cur; old.keys != nil {
		if g.cfg.pastEpochs() > 0 {
			g.past = append(g.past, &pastEpoch{
				ctx: old.ctx, tree: old.tree, secrets: old.secrets,
				senderData:    bytes.Clone(old.keys.SenderDataSecret),
				resumptionPSK: bytes.Clone(old.keys.ResumptionPSK),
			})
			old.keys.Destroy()
		} else {
			old.destroy()
		}
		for len(g.past) > g.cfg.pastEpochs() {
			g.past[0].destroy()
			g.past = g.past[1:]
		}
	}
	g.cur = epochState{ctx: ctx, tree: tr, keys: keys, secrets: secrets}
	g.pending = nil
	for k, v := range g.updates {
		clear(v)
		delete(g.updates, k)
	}
}

// GroupID returns the group's id.
func (g *Group) GroupID() []byte { return bytes.Clone(g.cur.ctx.GroupID) }

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.cur.ctx.Epoch }

// Suite returns the group's cipher suite.
func (g *Group) Suite() *suite.Suite { return g.cs }

// LeafIndex returns this member's leaf.
func (g *Group) LeafIndex() treemath.Leaf { return g.priv.Leaf() }

// Removed reports whether a Commit has removed this member; a removed
// member's group can no longer send or receive.
func (g *Group) Removed() bool { return g.removed }

// GroupContext returns a copy of the current GroupContext.
func (g *Group) GroupContext() wire.GroupContext {
	c := g.cur.ctx
	c.Extensions = append([]wire.Extension(nil), c.Extensions...)
	return c
}

// Tree returns a copy of the current ratchet tree.
func (g *Group) Tree() *tree.Tree { return g.cur.tree.Clone() }

// Members returns the leaf indices of the current members with copies of
// their leaves (the byte slices inside are shared and must not be
// modified).
func (g *Group) Members() map[treemath.Leaf]wire.LeafNode {
	m := map[treemath.Leaf]wire.LeafNode{}
	for l := range treemath.Leaf(g.cur.tree.LeafCount()) {
		if leaf := g.cur.tree.Leaf(l); leaf != nil {
			m[l] = *leaf
		}
	}
	return m
}

// EpochAuthenticator returns the current epoch's epoch_authenticator (RFC
// 9420 §8.7): members who agree on it agree on the group's state.
func (g *Group) EpochAuthenticator() []byte { return bytes.Clone(g.cur.keys.EpochAuthenticator) }

// Export is MLS-Exporter(label, context, length) of the current epoch
// (RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.cur.keys.Export(label, context, length)
}

// Destroy zeroes every secret the group holds.
func (g *Group) Destroy() {
	g.cur.destroy()
	for _, p := range g.past {
		p.destroy()
	}
	g.past = nil
	if g.priv != nil {
		g.priv.Destroy()
	}
	for k, v := range g.updates {
		clear(v)
		delete(g.updates, k)
	}
}

func (g *Group) member() wire.Sender {
	return wire.Sender{Type: wire.SenderMember, LeafIndex: uint32(g.priv.Leaf())}
}

func signerKey(tr *tree.Tree) framing.SignerKey {
	return func(s wire.Sender) ([]byte, error) {
		if s.Type != wire.SenderMember {
			return nil, fmt.Errorf("%w: sender type %d", ErrUnsupported, s.Type)
		}
		leaf := tr.Leaf(treemath.Leaf(s.LeafIndex))
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d is blank", framing.ErrNotMember, s.LeafIndex)
		}
		return leaf.SignatureKey, nil
	}
}

// protect signs content and frames it for the current epoch: application
// data always as a PrivateMessage, handshake messages in the configured
// format. For a commit, tag fills in the confirmation tag between signing
// and framing.
func (g *Group) protect(content wire.FramedContent, format wire.WireFormat, tag func(*wire.AuthenticatedContent) error) (*wire.MLSMessage, *wire.AuthenticatedContent, error) {
	ac, err := framing.Sign(g.cs, format, content, &g.cur.ctx, g.id.SignaturePriv)
	if err != nil {
		return nil, nil, err
	}
	if tag != nil {
		if err := tag(ac); err != nil {
			return nil, nil, err
		}
	}
	msg := &wire.MLSMessage{Version: 1, WireFormat: format}
	if format == wire.WireFormatPublicMessage {
		msg.PublicMessage, err = framing.ProtectPublic(g.cs, ac, &g.cur.ctx, g.cur.keys.MembershipKey)
	} else {
		msg.PrivateMessage, err = framing.ProtectPrivate(g.cs, ac,
			framing.EpochKeys{SenderDataSecret: g.cur.keys.SenderDataSecret, SecretTree: g.cur.secrets},
			framing.PrivateOptions{PadTo: g.cfg.PadTo, Random: g.cfg.random()})
	}
	if err != nil {
		return nil, nil, err
	}
	return msg, ac, nil
}

// Protect encrypts application data (and optional authenticated data, sent
// in the clear) as a PrivateMessage of the current epoch.
func (g *Group) Protect(data, authenticatedData []byte) (*wire.MLSMessage, error) {
	if g.removed {
		return nil, ErrNotMember
	}
	content := wire.FramedContent{
		GroupID: g.cur.ctx.GroupID, Epoch: g.cur.ctx.Epoch, Sender: g.member(), AuthenticatedData: authenticatedData,
		Content: wire.Content{ContentType: wire.ContentApplication, ApplicationData: data},
	}
	msg, _, err := g.protect(content, wire.WireFormatPrivateMessage, nil)
	if err != nil {
		return nil, fmt.Errorf("mls/group: protect: %w", err)
	}
	return msg, nil
}

// EventKind says what a handled message was.
type EventKind int

// The kinds of messages Handle accepts.
const (
	EventApplication EventKind = iota + 1 // application data
	EventProposal                         // a proposal, now cached for the next commit
	EventCommit                           // a commit, now applied: the group is in a new epoch
)

// Event is the outcome of a handled message.
type Event struct {
	Kind   EventKind
	Sender treemath.Leaf
	Epoch  uint64 // the epoch the message was sent in
	// ApplicationData and AuthenticatedData of an application message.
	ApplicationData   []byte
	AuthenticatedData []byte
	// SenderLeaf is the sender's leaf in the tree of the epoch the message
	// was sent in (the leaf that authenticated it), a copy.
	SenderLeaf *wire.LeafNode
	// Proposal of a proposal message.
	Proposal *wire.Proposal
	// Removed is set when the commit removed this member.
	Removed bool
}

// Handle processes a PublicMessage or PrivateMessage of this group: an
// application message of the current epoch or of one of the kept past
// epochs is decrypted; a proposal of the current epoch is checked and
// cached; a commit of the current epoch is validated and applied (the
// group moves to the next epoch). Any error leaves the group as it was
// (except that a PrivateMessage's key generation, once its sender data
// decrypts, is consumed).
func (g *Group) Handle(msg *wire.MLSMessage) (*Event, error) {
	if g.removed {
		return nil, ErrNotMember
	}
	ac, st, tr, err := g.unprotect(msg)
	if err != nil {
		return nil, err
	}
	c := &ac.Content
	sender := treemath.Leaf(c.Sender.LeafIndex)
	ev := &Event{Sender: sender, Epoch: c.Epoch}
	if leaf := tr.Leaf(sender); leaf != nil {
		cp := *leaf
		ev.SenderLeaf = &cp
	}
	switch c.ContentType {
	case wire.ContentApplication:
		ev.Kind = EventApplication
		ev.ApplicationData, ev.AuthenticatedData = c.ApplicationData, c.AuthenticatedData
		return ev, nil
	case wire.ContentProposal:
		if st != &g.cur {
			return nil, fmt.Errorf("%w: proposal of epoch %d", ErrWrongEpoch, c.Epoch)
		}
		if err := g.cacheProposal(ac); err != nil {
			return nil, err
		}
		ev.Kind, ev.Proposal = EventProposal, &c.Proposal
		return ev, nil
	case wire.ContentCommit:
		if st != &g.cur {
			return nil, fmt.Errorf("%w: commit of epoch %d", ErrWrongEpoch, c.Epoch)
		}
		if sender == g.priv.Leaf() {
			return nil, fmt.Errorf("%w: a member applies its own commit with Merge", ErrInvalidCommit)
		}
		next, err := g.processCommit(ac)
		if err != nil {
			return nil, err
		}
		ev.Kind, ev.Removed = EventCommit, next.removed
		g.install(next)
		return ev, nil
	}
	return nil, fmt.Errorf("%w: content type %d", ErrInvalidCommit, c.ContentType)
}

// unprotect opens a message with the keys of its epoch.
func (g *Group) unprotect(msg *wire.MLSMessage) (*wire.AuthenticatedContent, *epochState, *tree.Tree, error) {
	switch {
	case msg.WireFormat == wire.WireFormatPublicMessage && msg.PublicMessage != nil:
		pm := msg.PublicMessage
		if !bytes.Equal(pm.Content.GroupID, g.cur.ctx.GroupID) {
			return nil, nil, nil, ErrWrongGroup
		}
		if pm.Content.Epoch != g.cur.ctx.Epoch {
			return nil, nil, nil, fmt.Errorf("%w: PublicMessage of epoch %d in epoch %d", ErrWrongEpoch, pm.Content.Epoch, g.cur.ctx.Epoch)
		}
		ac, err := framing.UnprotectPublic(g.cs, pm, &g.cur.ctx, g.cur.keys.MembershipKey, signerKey(g.cur.tree))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mls/group: %w", err)
		}
		return ac, &g.cur, g.cur.tree, nil
	case msg.WireFormat == wire.WireFormatPrivateMessage && msg.PrivateMessage != nil:
		pm := msg.PrivateMessage
		if !bytes.Equal(pm.GroupID, g.cur.ctx.GroupID) {
			return nil, nil, nil, ErrWrongGroup
		}
		if pm.Epoch == g.cur.ctx.Epoch {
			ac, err := framing.UnprotectPrivate(g.cs, pm, &g.cur.ctx,
				framing.EpochKeys{SenderDataSecret: g.cur.keys.SenderDataSecret, SecretTree: g.cur.secrets}, signerKey(g.cur.tree))
			if err != nil {
				return nil, nil, nil, fmt.Errorf("mls/group: %w", err)
			}
			return ac, &g.cur, g.cur.tree, nil
		}
		for _, p := range g.past {
			if p.ctx.Epoch != pm.Epoch {
				continue
			}
			if pm.ContentType != wire.ContentApplication {
				return nil, nil, nil, fmt.Errorf("%w: handshake message of past epoch %d", ErrWrongEpoch, pm.Epoch)
			}
			ac, err := framing.UnprotectPrivate(g.cs, pm, &p.ctx,
				framing.EpochKeys{SenderDataSecret: p.senderData, SecretTree: p.secrets}, signerKey(p.tree))
			if err != nil {
				return nil, nil, nil, fmt.Errorf("mls/group: epoch %d: %w", pm.Epoch, err)
			}
			return ac, nil, p.tree, nil
		}
		return nil, nil, nil, fmt.Errorf("%w: PrivateMessage of epoch %d in epoch %d", ErrWrongEpoch, pm.Epoch, g.cur.ctx.Epoch)
	}
	return nil, nil, nil, fmt.Errorf("%w: wire format %d", ErrUnsupported, msg.WireFormat)
}
