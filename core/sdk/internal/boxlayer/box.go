// Package boxlayer is "box", a secure-kind layer that exists to prove the
// secure conformance suite (core/sdk/conformance.Secure) on a real, small
// implementation. It is a TEST FIXTURE, NOT A PROTOCOL TO USE: every message
// between two nodes is sealed under one static key, so it has no forward
// secrecy and no post-compromise security; whoever steals a node's data
// directory can read every past and future message of that node.
//
// What it does:
//
//   - Each node has a static X25519 key pair, kept in <data_dir>/box.key
//     (mode 0600). Its contact section, and what Bundle returns, is the
//     32-byte public key. The layer signs nothing: what binds that key to
//     the node identity is the host's signed contact card.
//   - The key shared with a contact is HKDF-SHA256(X25519(own private key,
//     contact's public key), salt nil, info "strata-box-v1" || the two node
//     identities in byte order).
//   - A message is sealed with XChaCha20-Poly1305 under a random 24-byte
//     nonce, with associated data sender identity || recipient identity ||
//     conversation id, so that it authenticates only in the direction and
//     conversation it was sealed for. Wire: version byte 1 || nonce ||
//     ciphertext.
//   - Replays are refused with a durable log of the nonces delivered per
//     contact (<data_dir>/seen.log), written and fsynced before the
//     plaintext goes up: a message is delivered at most once, across
//     restarts too. A crash, or a data stream that ends, between the fsync
//     and the delivery loses that one message, which the sync layer above repairs by sending it again
//     (a new seal, a new nonce); the other order could deliver it twice.
//     The log is bounded: at most 1<<20 nonces per contact are kept, after
//     which the contact's messages are dropped (dropped_replay_log_full).
//     A real protocol would rotate keys instead.
//   - Contacts are stored in <data_dir>/contacts.json, so they survive a
//     restart; AddContact with the key already known changes nothing.
//     Conversations are kept in memory only: the host sends SetConversation
//     again after every start.
//   - A DOWN frame with an empty peer is fanned out: one sealed frame for
//     each other member of the conversation that is a contact.
//
// Frames are dropped and counted when they cannot be handled; the Health
// counters are listed in Health. Key material is zeroed at Stop as far as
// Go allows (the AEAD's own key schedule lives in memory the layer does
// not own) and is never logged. The only comparison that involves a
// secret is the Poly1305 tag check, which chacha20poly1305 does in
// constant time.
//
// Without a node identity (tests that drive the layer without a host) the
// layer configures and starts, but seals and opens nothing.
package boxlayer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the implementation name a config uses.
const Name = "box"

// Version is the implementation version.
const Version = "1.0.0"

// MaxPayload is the largest plaintext accepted from above, in bytes.
const MaxPayload = 1<<20 - 1024

// MaxSeenPerContact bounds the replay log: the number of messages a node
// accepts from one contact over the life of its data directory.
const MaxSeenPerContact = 1 << 20

// identitySize is the length of a node identity (an Ed25519 public key).
const identitySize = 32

// contact is a contact's key material in memory.
type contact struct {
	identity []byte
	public   []byte
	key      []byte // the shared key; zeroed at Stop
}

// counters are the layer's Health counters. They are atomic so that Health
// never waits for a batch in progress.
type counters struct {
	sealed, opened                                       atomic.Uint64
	badCiphertext, replay, unknownContact, malformed     atomic.Uint64
	unknownConversation, oversize, noIdentity            atomic.Uint64
	wrongDirection, replayLogFull, storeError, sealError atomic.Uint64
	contacts, conversations                              atomic.Uint64
}

// Layer is the box secure layer. Use New.
type Layer struct {
	// mu guards everything below it, and is held for the whole of
	// HandleBatch so that Stop waits for a batch in progress.
	mu            sync.Mutex
	env           sdk.Env
	dir           string
	identity      []byte
	priv, pub     []byte
	contacts      map[string]*contact
	conversations map[string][][]byte
	seen          seenSet
	seenLog       *os.File
	configured    bool
	stopped       bool

	started  atomic.Bool
	storeErr atomic.Pointer[string] // first store failure; the layer stops serving
	c        counters
}

var _ sdk.Secure = (*Layer)(nil)

// New returns an unconfigured layer.
func New() *Layer { return &Layer{} }

// config is the layer's config section; box has no keys.
type config struct{}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SECURE,
		Name:        Name,
		Version:     Version,
		Description: "static-key sealed box; a conformance test fixture without forward secrecy, not for use",
		Provides:    []string{"e2e"},
		Requires:    []string{"direct"},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it loads or creates the key pair, loads
// the contacts and the replay log.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	var c config
	if err := sdk.DecodeConfig(req.GetConfigJson(), &c); err != nil {
		return nil, err
	}
	id := req.GetNodeIdentity()
	if len(id) != 0 && len(id) != identitySize {
		return nil, fmt.Errorf("box: node identity is %d bytes, want %d", len(id), identitySize)
	}
	if req.GetDataDir() == "" {
		return nil, fmt.Errorf("box: no data directory")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.configured {
		return nil, fmt.Errorf("box: configured twice")
	}
	dir := req.GetDataDir()
	priv, err := loadOrCreateKey(dir)
	if err != nil {
		return nil, err
	}
	pub, err := publicKey(priv)
	if err != nil {
		clear(priv)
		return nil, err
	}
	records, err := loadContacts(dir)
	if err != nil {
		clear(priv)
		return nil, err
	}
	contacts := make(map[string]*contact, len(records))
	if len(id) > 0 {
		for _, r := range records {
			key, err := deriveKey(priv, r.PublicKey, id, r.Identity)
			if err != nil {
				clear(priv)
				return nil, fmt.Errorf("box: stored contact %s: %w", short(r.Identity), err)
			}
			contacts[string(r.Identity)] = &contact{identity: r.Identity, public: r.PublicKey, key: key}
		}
	}
	seenLog, seen, err := openSeenLog(dir)
	if err != nil {
		clear(priv)
		for _, c := range contacts {
			clear(c.key)
		}
		return nil, err
	}
	l.env, l.dir = env, dir
	l.identity = append([]byte(nil), id...)
	l.priv, l.pub = priv, pub
	l.contacts = contacts
	l.conversations = map[string][][]byte{}
	l.seen, l.seenLog = seen, seenLog
	l.configured = true
	l.c.contacts.Store(uint64(len(contacts)))
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer. The local address is the node identity; the
// contact section is the X25519 public key.
func (l *Layer) Start(context.Context, *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.configured || l.stopped {
		return nil, fmt.Errorf("box: start before configure or after stop")
	}
	l.started.Store(true)
	return &commonv1.StartResponse{
		LocalAddress:   l.identity,
		ContactSection: append([]byte(nil), l.pub...),
		DisplayAddress: "box:" + hex.EncodeToString(l.pub[:8]),
	}, nil
}

// HandleBatch implements sdk.Layer: DOWN frames are sealed, UP frames
// opened. The nonces of every message opened in the batch are logged and
// fsynced once, before any of them goes up.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started.Load() || l.stopped {
		return
	}
	var (
		out     []*commonv1.Frame
		opened  []*commonv1.Frame
		records []byte
		pending = seenSet{}
	)
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			out = l.down(out, f)
		case commonv1.Direction_DIRECTION_UP:
			if o, rec := l.up(f, pending); o != nil {
				opened = append(opened, o)
				records = append(records, rec...)
			}
		default:
			l.c.wrongDirection.Add(1)
		}
	}
	if len(opened) > 0 {
		if err := appendSeen(l.seenLog, records); err != nil {
			l.failStore(err)
			l.c.storeError.Add(uint64(len(opened)))
			opened = nil
		} else {
			for id, nonces := range pending {
				for n := range nonces {
					l.seen.add([]byte(id), n)
				}
			}
			l.c.opened.Add(uint64(len(opened)))
		}
	}
	out = append(out, opened...)
	if len(out) > 0 {
		_ = l.env.Out.Emit(ctx, out...)
	}
}

// down seals one DOWN frame, or fans it out to the conversation's members
// when its peer is empty, and appends the sealed frames to out.
func (l *Layer) down(out []*commonv1.Frame, f *commonv1.Frame) []*commonv1.Frame {
	if len(l.identity) == 0 {
		l.c.noIdentity.Add(1)
		return out
	}
	if len(f.GetPayload()) > MaxPayload {
		l.c.oversize.Add(1)
		return out
	}
	if len(f.GetPeer()) > 0 {
		c := l.contacts[string(f.GetPeer())]
		if c == nil {
			l.c.unknownContact.Add(1)
			return out
		}
		return l.sealFor(out, c, f)
	}
	members, ok := l.conversations[string(f.GetConversation())]
	if !ok {
		l.c.unknownConversation.Add(1)
		return out
	}
	for _, m := range members {
		if bytes.Equal(m, l.identity) {
			continue
		}
		c := l.contacts[string(m)]
		if c == nil {
			l.c.unknownContact.Add(1)
			continue
		}
		out = l.sealFor(out, c, f)
	}
	return out
}

// sealFor seals f's payload for c and appends the DOWN frame to out.
func (l *Layer) sealFor(out []*commonv1.Frame, c *contact, f *commonv1.Frame) []*commonv1.Frame {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		l.c.sealError.Add(1)
		return out
	}
	wire, err := seal(c.key, nonce, f.GetPayload(), associatedData(l.identity, c.identity, f.GetConversation()))
	if err != nil {
		l.c.sealError.Add(1)
		return out
	}
	l.c.sealed.Add(1)
	return append(out, &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_DOWN,
		TraceId:      f.GetTraceId(),
		Conversation: f.GetConversation(),
		Peer:         c.identity,
		Hints:        f.GetHints(),
		Payload:      wire,
	})
}

// up opens one UP frame. It returns the frame to deliver and its replay-log
// record, or nil when the frame is dropped. pending holds the nonces opened
// earlier in the same batch.
func (l *Layer) up(f *commonv1.Frame, pending seenSet) (*commonv1.Frame, []byte) {
	if len(l.identity) == 0 {
		l.c.noIdentity.Add(1)
		return nil, nil
	}
	if l.storeErr.Load() != nil {
		l.c.storeError.Add(1)
		return nil, nil
	}
	c := l.contacts[string(f.GetPeer())]
	if c == nil {
		l.c.unknownContact.Add(1)
		return nil, nil
	}
	nonce, pt, err := open(c.key, f.GetPayload(), associatedData(c.identity, l.identity, f.GetConversation()))
	switch {
	case err == nil:
	case errors.Is(err, ErrAuth):
		l.c.badCiphertext.Add(1)
		return nil, nil
	default:
		l.c.malformed.Add(1)
		return nil, nil
	}
	if l.seen.has(c.identity, nonce) || pending.has(c.identity, nonce) {
		l.c.replay.Add(1)
		return nil, nil
	}
	if l.seen.count(c.identity)+pending.count(c.identity) >= MaxSeenPerContact {
		l.c.replayLogFull.Add(1)
		return nil, nil
	}
	pending.add(c.identity, nonce)
	rec := make([]byte, 0, seenRecordSize)
	rec = append(rec, c.identity...)
	rec = append(rec, nonce[:]...)
	return &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Conversation: f.GetConversation(),
		Peer:         c.identity,
		Hints:        f.GetHints(),
		Payload:      pt,
	}, rec
}

// failStore records the first store failure: the layer stops serving,
// since it can no longer promise that nothing is delivered twice.
func (l *Layer) failStore(err error) {
	msg := err.Error()
	if l.storeErr.CompareAndSwap(nil, &msg) && l.env.Logger != nil {
		l.env.Logger.Error("box: replay log failed; delivering nothing more", "error", msg)
	}
}

// Health implements sdk.Layer. Counters: sealed, opened, contacts and
// conversations (levels), and the drop reasons dropped_bad_ciphertext
// (does not authenticate), dropped_replay, dropped_unknown_contact (a peer
// that is not a contact, either way), dropped_malformed (not a box frame),
// dropped_unknown_conversation (group send to a conversation never set),
// dropped_oversize, dropped_no_identity, dropped_wrong_direction,
// dropped_replay_log_full, dropped_store_error and dropped_seal_error.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	serving, detail := l.started.Load(), ""
	if e := l.storeErr.Load(); e != nil {
		serving, detail = false, *e
	}
	return &commonv1.HealthResponse{Serving: serving, Detail: detail, Counters: map[string]uint64{
		"sealed":                       l.c.sealed.Load(),
		"opened":                       l.c.opened.Load(),
		"contacts":                     l.c.contacts.Load(),
		"conversations":                l.c.conversations.Load(),
		"dropped_bad_ciphertext":       l.c.badCiphertext.Load(),
		"dropped_replay":               l.c.replay.Load(),
		"dropped_unknown_contact":      l.c.unknownContact.Load(),
		"dropped_malformed":            l.c.malformed.Load(),
		"dropped_unknown_conversation": l.c.unknownConversation.Load(),
		"dropped_oversize":             l.c.oversize.Load(),
		"dropped_no_identity":          l.c.noIdentity.Load(),
		"dropped_wrong_direction":      l.c.wrongDirection.Load(),
		"dropped_replay_log_full":      l.c.replayLogFull.Load(),
		"dropped_store_error":          l.c.storeError.Load(),
		"dropped_seal_error":           l.c.sealError.Load(),
	}}
}

// Stop implements sdk.Layer: it closes the replay log and zeroes the key
// material it holds.
func (l *Layer) Stop(context.Context) error {
	l.started.Store(false)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil
	}
	l.stopped = true
	clear(l.priv)
	for _, c := range l.contacts {
		clear(c.key)
	}
	l.contacts = nil
	if l.seenLog != nil {
		if err := l.seenLog.Close(); err != nil {
			return fmt.Errorf("box: close replay log: %w", err)
		}
	}
	return nil
}

// ready reports whether control calls may run; l.mu is held.
func (l *Layer) ready() error {
	if !l.configured || l.stopped {
		return status.Error(codes.FailedPrecondition, "box: not configured, or stopped")
	}
	return nil
}

// AddContact implements securev1.ControlServer. The section is the
// contact's X25519 public key. Adding a contact with the key already known
// changes nothing; a new key replaces the old one.
func (l *Layer) AddContact(_ context.Context, req *securev1.AddContactRequest) (*securev1.AddContactResponse, error) {
	id, pub := req.GetIdentity(), req.GetContactSection()
	if len(id) != identitySize {
		return nil, status.Errorf(codes.InvalidArgument, "box: identity is %d bytes, want %d", len(id), identitySize)
	}
	if len(pub) != keySize {
		return nil, status.Errorf(codes.InvalidArgument, "box: contact section is %d bytes, want a %d-byte X25519 public key", len(pub), keySize)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	if len(l.identity) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "box: the node has no identity")
	}
	if bytes.Equal(id, l.identity) {
		return nil, status.Error(codes.InvalidArgument, "box: the node's own identity is not a contact")
	}
	if old := l.contacts[string(id)]; old != nil && subtle.ConstantTimeCompare(old.public, pub) == 1 {
		return &securev1.AddContactResponse{}, nil
	}
	key, err := deriveKey(l.priv, pub, l.identity, id)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "box: contact section: %v", err)
	}
	c := &contact{identity: append([]byte(nil), id...), public: append([]byte(nil), pub...), key: key}
	records := make([]contactRecord, 0, len(l.contacts)+1)
	for k, o := range l.contacts {
		if k != string(id) {
			records = append(records, contactRecord{Identity: o.identity, PublicKey: o.public})
		}
	}
	records = append(records, contactRecord{Identity: c.identity, PublicKey: c.public})
	if err := saveContacts(l.dir, records); err != nil {
		clear(key)
		return nil, status.Errorf(codes.Internal, "box: store contact: %v", err)
	}
	if old := l.contacts[string(id)]; old != nil {
		clear(old.key)
	}
	l.contacts[string(id)] = c
	l.c.contacts.Store(uint64(len(l.contacts)))
	return &securev1.AddContactResponse{}, nil
}

// SetConversation implements securev1.ControlServer. Members are 32-byte
// identities and include the local node; duplicates are ignored. Members
// need not be contacts yet: a group send skips (and counts) those that are
// not.
func (l *Layer) SetConversation(_ context.Context, req *securev1.ConversationRequest) (*securev1.ConversationResponse, error) {
	if len(req.GetId()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "box: conversation id is empty")
	}
	members := make([][]byte, 0, len(req.GetMembers()))
	seen := map[string]bool{}
	for i, m := range req.GetMembers() {
		if len(m) != identitySize {
			return nil, status.Errorf(codes.InvalidArgument, "box: member %d is %d bytes, want %d", i, len(m), identitySize)
		}
		if !seen[string(m)] {
			seen[string(m)] = true
			members = append(members, append([]byte(nil), m...))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	if len(l.identity) > 0 && !seen[string(l.identity)] {
		return nil, status.Error(codes.InvalidArgument, "box: members must include the local node")
	}
	l.conversations[string(req.GetId())] = members
	l.c.conversations.Store(uint64(len(l.conversations)))
	return &securev1.ConversationResponse{}, nil
}

// Bundle implements securev1.ControlServer: the public key, as in the
// contact section (box keys never rotate).
func (l *Layer) Bundle(context.Context, *securev1.BundleRequest) (*securev1.BundleResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ready(); err != nil {
		return nil, err
	}
	return &securev1.BundleResponse{ContactSection: append([]byte(nil), l.pub...)}, nil
}

// short is a printable prefix of a public identity, for errors.
func short(id []byte) string {
	return hex.EncodeToString(id[:min(len(id), 8)])
}
