package doubleratchet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

// node is one layer instance under test.
type node struct {
	t   testing.TB
	l   *Layer
	out *sdktest.Recorder
	id  []byte
	dir string
	cfg map[string]any
	key []byte // the at-rest key it is configured with; nil: none
	// onEmit, if set, sees the frames of every Emit before they are kept.
	onEmit func([]*commonv1.Frame)
}

// hookedOut is the node's emitter: its recorder, behind the node's onEmit.
type hookedOut struct{ n *node }

func (h hookedOut) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	if h.n.onEmit != nil {
		h.n.onEmit(frames)
	}
	return h.n.out.Emit(ctx, frames...)
}

func (h hookedOut) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	return h.n.out.EmitEvent(ctx, ev)
}

func identity(b byte) []byte { return bytes.Repeat([]byte{b}, identitySize) }

func startNode(t testing.TB, dir string, id []byte, cfg map[string]any) *node {
	t.Helper()
	return startNodeKey(t, dir, id, cfg, nil)
}

// startNodeKey starts a node whose ConfigureRequest carries an at-rest key,
// as the host sends it when the user configured a passphrase.
func startNodeKey(t testing.TB, dir string, id []byte, cfg map[string]any, key []byte) *node {
	t.Helper()
	n := &node{t: t, l: New(), out: &sdktest.Recorder{}, id: id, dir: dir, cfg: cfg, key: key}
	if err := n.configure(); err != nil {
		t.Fatal(err)
	}
	n.start()
	return n
}

// request is the node's ConfigureRequest, with a copy of its key.
func (n *node) request() *commonv1.ConfigureRequest {
	raw, _ := json.Marshal(n.cfg)
	return &commonv1.ConfigureRequest{ConfigJson: string(raw), DataDir: n.dir, NodeIdentity: n.id, AtRestKey: bytes.Clone(n.key)}
}

func (n *node) env() sdk.Env { return sdk.Env{Logger: hclog.NewNullLogger(), Out: hookedOut{n}} }

// configure runs Configure on the node's layer.
func (n *node) configure() error {
	_, err := n.l.Configure(context.Background(), n.request(), n.env())
	return err
}

// start starts the configured layer, and stops it when the test ends.
func (n *node) start() {
	n.t.Helper()
	if _, err := n.l.Start(context.Background(), &commonv1.StartRequest{}); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { n.l.Stop(context.Background()) })
}

// section is the node's current card section.
func (n *node) section() []byte {
	n.t.Helper()
	b, err := n.l.Bundle(context.Background(), &securev1.BundleRequest{})
	if err != nil {
		n.t.Fatal(err)
	}
	return b.GetContactSection()
}

func addContactRequest(c *node, section []byte) *securev1.AddContactRequest {
	return &securev1.AddContactRequest{Identity: c.id, ContactSection: section}
}

// restart stops the node and starts a new layer on its directory, with the
// same key.
func (n *node) restart() *node {
	n.t.Helper()
	if err := n.l.Stop(context.Background()); err != nil {
		n.t.Fatal(err)
	}
	return startNodeKey(n.t, n.dir, n.id, n.cfg, n.key)
}

// restart simulates a crash: the instance is abandoned without Stop (its
// database is left as a kill -9 leaves it) and a new one opens the same
// directory.
func (n *node) crash() *node {
	n.t.Helper()
	n.l.started.Store(false) // the old instance takes nothing more
	return startNodeKey(n.t, n.dir, n.id, n.cfg, n.key)
}

func (n *node) add(c *node) {
	n.t.Helper()
	b, err := c.l.Bundle(context.Background(), &securev1.BundleRequest{})
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.l.AddContact(context.Background(), &securev1.AddContactRequest{Identity: c.id, ContactSection: b.GetContactSection()}); err != nil {
		n.t.Fatal(err)
	}
}

// handle runs frames through the layer and returns what it emitted.
func (n *node) handle(frames ...*commonv1.Frame) []*commonv1.Frame {
	n.l.HandleBatch(context.Background(), &commonv1.Batch{Frames: frames})
	return n.out.Take()
}

func (n *node) counter(name string) uint64 {
	v, ok := n.l.Health(context.Background()).GetCounters()[name]
	if !ok {
		n.t.Fatalf("no counter %q", name)
	}
	return v
}

func (n *node) drops() uint64 {
	var sum uint64
	for k, v := range n.l.Health(context.Background()).GetCounters() {
		if len(k) > 8 && k[:8] == "dropped_" {
			sum += v
		}
	}
	return sum
}

// states returns every session state of the node, marshalled.
func (n *node) states() map[int64]string {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	out := map[int64]string{}
	for _, c := range n.l.contacts {
		for _, s := range c.sessions {
			raw, err := s.state.MarshalBinary()
			if err != nil {
				n.t.Fatal(err)
			}
			out[s.id] = string(raw)
		}
	}
	return out
}

func down(peer, conv, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Conversation: conv, Payload: payload}
}

// arrive turns a DOWN frame that from emitted into the UP frame its peer
// gets, as the host and a perfect privacy layer deliver it.
func arrive(from *node, f *commonv1.Frame) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: from.id, Conversation: f.GetConversation(), Payload: f.GetPayload(), TraceId: f.GetTraceId()}
}

// exchange relays every frame in frames from one node to the other until
// nothing more is emitted, and returns the UP frames delivered at each.
func exchange(a, b *node, fromA []*commonv1.Frame) (atA, atB []*commonv1.Frame) {
	pending := map[*node][]*commonv1.Frame{a: fromA}
	for len(pending[a])+len(pending[b]) > 0 {
		for _, pair := range [][2]*node{{a, b}, {b, a}} {
			src, dst := pair[0], pair[1]
			var in []*commonv1.Frame
			for _, f := range pending[src] {
				if f.GetDirection() == commonv1.Direction_DIRECTION_DOWN {
					in = append(in, arrive(src, f))
				}
			}
			pending[src] = nil
			if len(in) == 0 {
				continue
			}
			for _, f := range dst.handle(in...) {
				if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
					if dst == a {
						atA = append(atA, f)
					} else {
						atB = append(atB, f)
					}
				} else {
					pending[dst] = append(pending[dst], f)
				}
			}
		}
	}
	return atA, atB
}

// pair starts two nodes that know each other, with the bundle requests
// answered, so that the first session uses one-time prekeys.
func pair(t testing.TB, cfg map[string]any) (a, b *node) {
	return pairKeys(t, cfg, nil, nil)
}

// pairKeys is pair with at-rest keys for a and b.
func pairKeys(t testing.TB, cfg map[string]any, keyA, keyB []byte) (a, b *node) {
	a = startNodeKey(t, t.TempDir(), identity(0xA1), cfg, keyA)
	b = startNodeKey(t, t.TempDir(), identity(0xB2), cfg, keyB)
	a.add(b)
	b.add(a)
	exchange(a, b, a.out.Take())
	exchange(b, a, b.out.Take())
	return a, b
}

// send seals one message at from for to and returns the DOWN frame.
func send(t testing.TB, from, to *node, conv, msg []byte) *commonv1.Frame {
	t.Helper()
	out := from.handle(down(to.id, conv, msg))
	if len(out) != 1 || out[0].GetDirection() != commonv1.Direction_DIRECTION_DOWN {
		t.Fatalf("seal emitted %d frames, want one DOWN frame", len(out))
	}
	// (Only for plaintexts long enough not to turn up in random bytes.)
	if len(msg) >= 8 && bytes.Contains(out[0].GetPayload(), msg) {
		t.Fatal("the sealed frame contains the plaintext")
	}
	if len(out[0].GetConversation()) != 0 {
		t.Fatal("the sealed frame carries the conversation in clear")
	}
	return out[0]
}

// deliver hands a sealed frame to its recipient and returns the opened
// plaintexts.
func deliver(from, to *node, f *commonv1.Frame) [][]byte {
	var got [][]byte
	for _, o := range to.handle(arrive(from, f)) {
		if o.GetDirection() == commonv1.Direction_DIRECTION_UP {
			got = append(got, o.GetPayload())
		}
	}
	return got
}

func mustOpen(t testing.TB, from, to *node, f *commonv1.Frame, want []byte) {
	t.Helper()
	got := deliver(from, to, f)
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("opened %q, want %q", got, want)
	}
}

var conv = []byte("conversation")

// openErr runs the open path on a frame from a contact and returns its
// error, committing nothing.
func (n *node) openErr(from *node, f *commonv1.Frame) error {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	b, err := newBatch(context.Background(), n.l.db)
	if err != nil {
		n.t.Fatal(err)
	}
	defer b.abort()
	env, err := decodeEnvelope(f.GetPayload())
	if err != nil {
		return err
	}
	_, err = n.l.open(context.Background(), b, n.l.contacts[string(from.id)], nil, env)
	return err
}

func envelopeOf(t testing.TB, f *commonv1.Frame) *wirepb.Envelope {
	t.Helper()
	env := &wirepb.Envelope{}
	if err := proto.Unmarshal(f.GetPayload(), env); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestSessionUsesInBandOneTimePreKeysOnce(t *testing.T) {
	for _, pq := range []bool{true, false} {
		t.Run(fmt.Sprintf("post_quantum=%v", pq), func(t *testing.T) {
			a, b := pair(t, map[string]any{"post_quantum": pq, "one_time_prekeys": 4, "one_time_kem_prekeys": 2})
			if a.counter(cBundlesReceived) != 1 || b.counter(cBundlesReceived) != 1 {
				t.Fatalf("bundles received %d/%d, want 1/1", a.counter(cBundlesReceived), b.counter(cBundlesReceived))
			}
			saved := a.l.contacts[string(b.id)].fresh
			f := send(t, a, b, conv, []byte("first message, with prekeys"))
			pk := envelopeOf(t, f).GetPrekey()
			if pk == nil || pk.GetOneTimePrekeyId() == 0 {
				t.Fatal("first message is not a PreKeyMessage with a one-time prekey")
			}
			if pq && (pk.GetKemPrekeyId() == 0 || len(pk.GetKemCiphertext()) != 1568) {
				t.Fatal("post_quantum on both sides, but the session is not PQXDH")
			}
			if !pq && pk.GetKemPrekeyId() != 0 {
				t.Fatal("post_quantum off, but the session is PQXDH")
			}
			mustOpen(t, a, b, f, []byte("first message, with prekeys"))
			if k, _, err := oneTimePreKey(context.Background(), b.l.db, b.l.key, pk.GetOneTimePrekeyId()); err != nil || k != nil {
				t.Fatalf("one-time prekey %d still stored after use (%v)", pk.GetOneTimePrekeyId(), err)
			}
			if pq {
				if k, err := kemPreKey(context.Background(), b.l.db, b.l.key, pk.GetKemPrekeyId()); err != nil || k != nil {
					t.Fatalf("one-time KEM prekey %d still stored after use (%v)", pk.GetKemPrekeyId(), err)
				}
			}
			// a forgets its session and starts again from the same answer:
			// a new base key naming the spent one-time prekey is refused.
			a.l.contacts[string(b.id)].sessions = nil
			a.l.contacts[string(b.id)].fresh = saved
			again := send(t, a, b, conv, []byte("second start, same prekeys"))
			before, states := b.counter("dropped_unknown_prekey"), b.states()
			if got := deliver(a, b, again); len(got) != 0 {
				t.Fatal("a second session on a spent one-time prekey opened")
			}
			if b.counter("dropped_unknown_prekey") != before+1 {
				t.Fatal("the spent one-time prekey was not counted")
			}
			if !equalStates(states, b.states()) {
				t.Fatal("a refused initial message changed b's sessions")
			}
			if err := b.openErr(a, again); !errors.Is(err, ErrUnknownPreKey) {
				t.Fatalf("open = %v, want ErrUnknownPreKey", err)
			}
		})
	}
}

func equalStates(x, y map[int64]string) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

// flip returns a copy of a frame with one payload byte changed.
func flip(f *commonv1.Frame, i int) *commonv1.Frame {
	g := proto.CloneOf(f)
	g.Payload[(i+len(g.Payload))%len(g.Payload)] ^= 0x40
	return g
}

func withPayload(f *commonv1.Frame, p []byte) *commonv1.Frame {
	g := proto.CloneOf(f)
	g.Payload = p
	return g
}

func marshalEnvelope(t testing.TB, env *wirepb.Envelope) []byte {
	t.Helper()
	raw, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestRejects delivers each kind of bad input to b, first in a session's
// initial message and then in an established session, and checks that it
// is refused with its typed error, counted under its reason, opens
// nothing and leaves every session state exactly as it was.
func TestRejects(t *testing.T) {
	cfg := map[string]any{"max_skip": 5, "one_time_prekeys": 4, "one_time_kem_prekeys": 2}
	for _, established := range []bool{false, true} {
		t.Run(fmt.Sprintf("established=%v", established), func(t *testing.T) {
			a, b := pair(t, cfg)
			if established {
				mustOpen(t, a, b, send(t, a, b, conv, []byte("hello b")), []byte("hello b"))
				mustOpen(t, b, a, send(t, b, a, conv, []byte("hello a")), []byte("hello a"))
			}
			genuine := send(t, a, b, conv, []byte("the genuine message"))
			ahead := make([]*commonv1.Frame, 7)
			for i := range ahead {
				ahead[i] = send(t, a, b, conv, []byte(fmt.Sprintf("ahead %d", i)))
			}
			badBundle := a.l.publicBundle(nil, nil).Proto()
			badBundle.SignedPrekey.Signature[0] ^= 1
			rm := &wirepb.RatchetMessage{Header: randomBytes(81), Ciphertext: randomBytes(40)}
			for _, tt := range []struct {
				name   string
				frame  *commonv1.Frame
				reason string
				err    error
			}{
				{"ciphertext flipped at the end", flip(genuine, -1), "bad_ciphertext", ratchet.ErrAuth},
				{"truncated", withPayload(genuine, genuine.GetPayload()[:len(genuine.GetPayload())-1]), "", nil},
				{"empty", withPayload(genuine, nil), "malformed", ErrMalformed},
				{"garbage", withPayload(genuine, randomBytes(200)), "", nil},
				{"unknown session", withPayload(genuine, marshalEnvelope(t, &wirepb.Envelope{Version: 1, Body: &wirepb.Envelope_Message{Message: rm}})), "unknown_session", ErrUnknownSession},
				{"wrong version", withPayload(genuine, marshalEnvelope(t, &wirepb.Envelope{Version: 2, Body: &wirepb.Envelope_Message{Message: rm}})), "version", ErrVersion},
				{"bundle with a bad signature", withPayload(genuine, marshalEnvelope(t, &wirepb.Envelope{Version: 1, Body: &wirepb.Envelope_Bundle{Bundle: badBundle}})), "bad_bundle", ErrBadBundle},
				{"more than max_skip ahead", ahead[6], "too_far_ahead", ratchet.ErrTooFarAhead},
				{"oversize", withPayload(genuine, make([]byte, maxEnvelope+1)), "oversize", ErrOversize},
			} {
				var before uint64
				if tt.reason != "" {
					before = b.counter("dropped_" + tt.reason)
				}
				drops, states := b.drops(), b.states()
				if got := deliver(a, b, tt.frame); len(got) != 0 {
					t.Errorf("%s: opened %q", tt.name, got)
				}
				if b.drops() != drops+1 {
					t.Errorf("%s: drops went from %d to %d, want one more", tt.name, drops, b.drops())
				}
				if tt.reason != "" && b.counter("dropped_"+tt.reason) != before+1 {
					t.Errorf("%s: not counted as dropped_%s", tt.name, tt.reason)
				}
				if !equalStates(states, b.states()) {
					t.Errorf("%s: the session state changed", tt.name)
				}
				if tt.err != nil {
					if err := b.openErr(a, tt.frame); !errors.Is(err, tt.err) {
						t.Errorf("%s: open = %v, want %v", tt.name, err, tt.err)
					}
				}
			}
			// After all that, the genuine message opens, once.
			mustOpen(t, a, b, genuine, []byte("the genuine message"))
			before := b.counter("dropped_replay")
			if got := deliver(a, b, genuine); len(got) != 0 {
				t.Fatal("a replayed message opened again")
			}
			if b.counter("dropped_replay") != before+1 {
				t.Fatal("the replay was not counted")
			}
			if err := b.openErr(a, genuine); !errors.Is(err, ErrReplay) && !errors.Is(err, ratchet.ErrDuplicate) {
				t.Fatalf("replay: open = %v, want ErrReplay or ratchet.ErrDuplicate", err)
			}
			// Within max_skip the later ones still open, in any order.
			for i := 5; i >= 0; i-- {
				mustOpen(t, a, b, ahead[i], []byte(fmt.Sprintf("ahead %d", i)))
			}
		})
	}
}

func TestUnknownContactAndNoIdentity(t *testing.T) {
	a, b := pair(t, nil)
	f := send(t, a, b, conv, []byte("to b"))
	stranger := &node{id: identity(0xCC)}
	before := b.counter("dropped_unknown_contact")
	if got := deliver(stranger, b, f); len(got) != 0 {
		t.Fatal("a frame from a stranger opened")
	}
	if b.counter("dropped_unknown_contact") != before+1 {
		t.Fatal("not counted")
	}
	if out := a.handle(down(identity(0xCC), conv, []byte("x"))); len(out) != 0 {
		t.Fatal("sealed for a non-contact")
	}
	// A layer without a node identity seals and opens nothing.
	anon := startNode(t, t.TempDir(), nil, nil)
	if out := anon.handle(down(b.id, conv, []byte("x")), arrive(b, f)); len(out) != 0 {
		t.Fatal("a layer without identity emitted frames")
	}
	if anon.counter("dropped_no_identity") != 2 {
		t.Fatal("no_identity drops not counted")
	}
}

func TestAddContactRefusesBadSections(t *testing.T) {
	a, b := pair(t, nil)
	section, err := b.l.Bundle(context.Background(), &securev1.BundleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	good := section.GetContactSection()
	bad := append([]byte(nil), good...)
	bad[len(bad)-10] ^= 1
	for name, sec := range map[string][]byte{"tampered": bad, "truncated": good[:len(good)-1], "empty": nil} {
		if _, err := a.l.AddContact(context.Background(), &securev1.AddContactRequest{Identity: b.id, ContactSection: sec}); err == nil {
			t.Errorf("%s section accepted", name)
		}
	}
	// The pinned bundle is untouched: messages still flow.
	mustOpen(t, a, b, send(t, a, b, conv, []byte("still fine")), []byte("still fine"))
}

// TestDowngradeRefused: a bundle stripped of its ML-KEM prekey no longer
// verifies (the bundle signature covers it), so the initiator refuses it;
// and an X3DH initial message from a contact whose card has an ML-KEM
// prekey, to a node that publishes one, is refused by the responder.
func TestDowngradeRefused(t *testing.T) {
	a, b := pair(t, nil)
	c := a.l.contacts[string(b.id)]
	c.fresh = nil
	pinned := c.pinned
	stripped := *c.pinned
	stripped.KEMPreKey = nil
	c.pinned = &stripped // as if an attacker had removed b's ML-KEM prekey
	if out := a.handle(down(b.id, conv, []byte("x3dh only"))); len(out) != 0 {
		t.Fatal("sealed with a bundle stripped of its ML-KEM prekey")
	}
	if a.counter("dropped_bad_bundle") != 1 {
		t.Fatal("the stripped bundle was not counted as dropped_bad_bundle")
	}
	// An initiator that runs X3DH anyway (as one with post_quantum off
	// does) is refused by b, which pinned a's card with its ML-KEM prekey.
	c.pinned = pinned
	a.l.cfg.PostQuantum = false
	f := send(t, a, b, conv, []byte("x3dh only"))
	if envelopeOf(t, f).GetPrekey().GetKemPrekeyId() != 0 {
		t.Fatal("the test meant to send an X3DH initial message")
	}
	if got := deliver(a, b, f); len(got) != 0 {
		t.Fatal("an X3DH session opened although both sides publish ML-KEM prekeys")
	}
	if err := b.openErr(a, f); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("open = %v, want ErrDowngrade", err)
	}
	if b.counter("dropped_downgrade") != 1 {
		t.Fatal("not counted")
	}
}

func TestConversationIsSealed(t *testing.T) {
	a, b := pair(t, nil)
	f := send(t, a, b, []byte("secret-conversation-id"), []byte("hi"))
	if bytes.Contains(f.GetPayload(), []byte("secret-conversation-id")) {
		t.Fatal("the conversation id is visible on the wire")
	}
	out := b.handle(arrive(a, f))
	if len(out) != 1 || string(out[0].GetConversation()) != "secret-conversation-id" || !bytes.Equal(out[0].GetPeer(), a.id) {
		t.Fatalf("delivered %v", out)
	}
	// Moved to another conversation: refused, and the key is not spent.
	g := send(t, a, b, []byte("one"), []byte("in one"))
	moved := arrive(a, g)
	moved.Conversation = []byte("two")
	states := b.states()
	if out := b.handle(moved); len(out) != 0 {
		t.Fatal("a message opened in another conversation")
	}
	if !equalStates(states, b.states()) || b.counter("dropped_conversation_mismatch") != 1 {
		t.Fatal("the mismatch changed state or was not counted")
	}
	mustOpen(t, a, b, g, []byte("in one"))
}

func TestGroupFanOutAndMembership(t *testing.T) {
	a := startNode(t, t.TempDir(), identity(0xA1), nil)
	b := startNode(t, t.TempDir(), identity(0xB2), nil)
	c := startNode(t, t.TempDir(), identity(0xC3), nil)
	for _, x := range []*node{a, b, c} {
		for _, y := range []*node{a, b, c} {
			if x != y {
				x.add(y)
			}
		}
		x.out.Take()
	}
	group := []byte("group")
	set := func(n *node, members ...*node) {
		var ids [][]byte
		for _, m := range members {
			ids = append(ids, m.id)
		}
		if _, err := n.l.SetConversation(context.Background(), &securev1.ConversationRequest{Id: group, Members: ids}); err != nil {
			t.Fatal(err)
		}
	}
	set(a, a, b, c)
	set(b, a, b, c)
	set(c, a, c) // c does not count b as a member
	out := a.handle(down(nil, group, []byte("to all")))
	if len(out) != 2 {
		t.Fatalf("fan-out made %d frames, want 2", len(out))
	}
	for _, f := range out {
		switch {
		case bytes.Equal(f.GetPeer(), b.id):
			mustOpen(t, a, b, f, []byte("to all"))
		case bytes.Equal(f.GetPeer(), c.id):
			mustOpen(t, a, c, f, []byte("to all"))
		default:
			t.Fatalf("fan-out to %x", f.GetPeer())
		}
	}
	// b's group message reaches c, which does not count b as a member.
	for _, f := range b.handle(down(nil, group, []byte("from b"))) {
		if bytes.Equal(f.GetPeer(), c.id) {
			if got := deliver(b, c, f); len(got) != 0 {
				t.Fatal("c delivered a group message from a non-member")
			}
			if c.counter("dropped_not_member") != 1 {
				t.Fatal("not counted")
			}
		}
	}
	if out := a.handle(down(nil, []byte("never set"), []byte("x"))); len(out) != 0 || a.counter("dropped_unknown_conversation") != 1 {
		t.Fatal("a send to an unknown conversation was not dropped and counted")
	}
}

// TestLongConversation runs a conversation both ways through the layer in
// bursts of random length, with reordering inside each burst and some
// losses, so that DH ratchet steps interleave with skipped keys; every
// message that is delivered opens exactly once. 10,000 messages each way,
// 1,000 with -short.
func TestLongConversation(t *testing.T) {
	each := 10_000
	if testing.Short() {
		each = 1_000
	}
	a, b := pair(t, nil)
	rng := mrand.New(mrand.NewPCG(1, 2))
	sent := map[*node]int{}
	opened := map[string]int{}
	for sent[a] < each || sent[b] < each {
		for _, dir := range [][2]*node{{a, b}, {b, a}} {
			from, to := dir[0], dir[1]
			k := min(1+rng.IntN(20), each-sent[from])
			if k <= 0 {
				continue
			}
			var frames []*commonv1.Frame
			var want [][]byte
			for range k {
				msg := []byte(fmt.Sprintf("%x message %d", from.id[0], sent[from]))
				sent[from]++
				frames = append(frames, down(to.id, conv, msg))
				want = append(want, msg)
			}
			sealed := from.handle(frames...)
			if len(sealed) != k {
				t.Fatalf("sealed %d of %d", len(sealed), k)
			}
			rng.Shuffle(len(sealed), func(i, j int) { sealed[i], sealed[j] = sealed[j], sealed[i] })
			var in []*commonv1.Frame
			for _, f := range sealed {
				if rng.IntN(50) == 0 {
					continue // lost
				}
				in = append(in, arrive(from, f))
			}
			for _, f := range to.handle(in...) {
				opened[string(f.GetPayload())]++
			}
			_ = want
		}
	}
	for msg, n := range opened {
		if n != 1 {
			t.Fatalf("%q opened %d times", msg, n)
		}
	}
	lost := 2*each - len(opened)
	if lost > 2*each/25 {
		t.Fatalf("%d of %d messages did not open; about 2%% were dropped", lost, 2*each)
	}
	if a.drops()+b.drops() != 0 {
		t.Fatalf("drops: %d at a, %d at b", a.drops(), b.drops())
	}
}

// TestCrashMidConversation kills both nodes mid-conversation (abandoned
// without Stop, as kill -9 leaves them) and restarts them on the same
// directories: messages sealed before the crash open after it, messages
// opened before it do not open again, and the conversation goes on.
func TestCrashMidConversation(t *testing.T) {
	a, b := pair(t, nil)
	mustOpen(t, a, b, send(t, a, b, conv, []byte("one")), []byte("one"))
	mustOpen(t, b, a, send(t, b, a, conv, []byte("two")), []byte("two"))
	opened := send(t, a, b, conv, []byte("three"))
	mustOpen(t, a, b, opened, []byte("three"))
	inFlight := []*commonv1.Frame{send(t, a, b, conv, []byte("four")), send(t, a, b, conv, []byte("five"))}
	reply := send(t, b, a, conv, []byte("six"))

	a, b = a.crash(), b.crash()
	a.add(b)
	b.add(a)
	a.out.Take()
	b.out.Take()
	mustOpen(t, a, b, inFlight[1], []byte("five"))
	mustOpen(t, b, a, reply, []byte("six"))
	mustOpen(t, a, b, inFlight[0], []byte("four"))
	if got := deliver(a, b, opened); len(got) != 0 {
		t.Fatal("a message opened before the crash opened again after it")
	}
	for i := range 20 {
		msg := []byte(fmt.Sprintf("after %d", i))
		if i%2 == 0 {
			mustOpen(t, a, b, send(t, a, b, conv, msg), msg)
		} else {
			mustOpen(t, b, a, send(t, b, a, conv, msg), msg)
		}
	}
}

// TestOpenedBeforeCommit: a batch that only opens hands its plaintexts up
// before it commits. What a crash at that moment leaves on disk (the
// database files copied from inside the hand-over) is the state before the
// message: a layer started from it opens the message again, and the
// conversation goes on both ways from there, across a DH ratchet step.
func TestOpenedBeforeCommit(t *testing.T) {
	a, b := pair(t, nil)
	mustOpen(t, a, b, send(t, a, b, conv, []byte("one")), []byte("one"))
	mustOpen(t, b, a, send(t, b, a, conv, []byte("two")), []byte("two"))
	three := send(t, a, b, conv, []byte("three")) // a new ratchet key: b steps
	imageDir := t.TempDir()
	b.onEmit = func(frames []*commonv1.Frame) {
		for _, f := range frames {
			if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
				sdktest.CrashImage(t, b.dir, imageDir)
			}
		}
	}
	mustOpen(t, a, b, three, []byte("three"))
	b.onEmit = nil
	if got := deliver(a, b, three); len(got) != 0 {
		t.Fatal("the message opened twice on the layer that committed it")
	}

	image := startNode(t, imageDir, b.id, b.cfg)
	image.add(a)
	image.out.Take()
	mustOpen(t, a, image, three, []byte("three"))
	mustOpen(t, a, image, send(t, a, image, conv, []byte("four")), []byte("four"))
	mustOpen(t, image, a, send(t, image, a, conv, []byte("five")), []byte("five"))
	mustOpen(t, a, image, send(t, a, image, conv, []byte("six")), []byte("six"))
}

// TestSignedPreKeyRotation rotates the signed prekey: the card changes,
// an initial message under the old prekey still opens within the
// retention, and is refused after it.
func TestSignedPreKeyRotation(t *testing.T) {
	cfg := map[string]any{"signed_prekey_rotation": "1h", "signed_prekey_retention": "2h", "one_time_prekeys": 0, "one_time_kem_prekeys": 0}
	a, b := pair(t, cfg)
	clock := time.Now()
	b.l.mu.Lock()
	b.l.now = func() time.Time { return clock }
	oldCard := b.l.card
	b.l.mu.Unlock()
	maintain := func() {
		b.l.mu.Lock()
		defer b.l.mu.Unlock()
		if err := b.l.maintain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f := send(t, a, b, conv, []byte("under the old prekey"))
	b.out.TakeEvents()
	b.l.maintainNow()
	if evs := b.out.TakeEvents(); len(evs) != 0 {
		t.Fatalf("maintenance without a rotation sent %d events", len(evs))
	}
	clock = clock.Add(61 * time.Minute)
	b.l.maintainNow()
	if bytes.Equal(oldCard, b.l.card) {
		t.Fatal("the card did not change when the signed prekey rotated")
	}
	if evs := b.out.TakeEvents(); len(evs) != 1 || evs[0].GetSectionChanged() == nil {
		t.Fatalf("the rotation sent events %v, want one SectionChanged", evs)
	}
	mustOpen(t, a, b, f, []byte("under the old prekey"))

	// c still has b's old card; its initial message arrives after the
	// retention has passed.
	c := startNode(t, t.TempDir(), identity(0xC3), cfg)
	if _, err := c.l.AddContact(context.Background(), &securev1.AddContactRequest{Identity: b.id, ContactSection: oldCard}); err != nil {
		t.Fatal(err)
	}
	c.out.Take()
	b.add(c)
	b.out.Take()
	late := send(t, c, b, conv, []byte("too late"))
	clock = clock.Add(3 * time.Hour)
	maintain()
	if got := deliver(c, b, late); len(got) != 0 {
		t.Fatal("an initial message under a retired prekey opened")
	}
	if b.counter("dropped_unknown_prekey") != 1 {
		t.Fatal("not counted as dropped_unknown_prekey")
	}
}

// TestBundleRequestBeforeContact: a's request reaches b before b knows a,
// and is dropped there; once b adds a and asks in turn, a asks again, so
// both still end up with one-time prekeys from the other.
func TestBundleRequestBeforeContact(t *testing.T) {
	a := startNode(t, t.TempDir(), identity(0xA1), nil)
	b := startNode(t, t.TempDir(), identity(0xB2), nil)
	a.add(b)
	for _, f := range a.out.Take() {
		if out := b.handle(arrive(a, f)); len(out) != 0 {
			t.Fatal("b answered a stranger")
		}
	}
	if b.counter("dropped_unknown_contact") != 1 {
		t.Fatal("the stranger's request was not counted")
	}
	b.add(a)
	exchange(b, a, b.out.Take())
	if a.counter(cBundlesReceived) != 1 || b.counter(cBundlesReceived) != 1 {
		t.Fatalf("bundles received: a %d, b %d; want 1 each", a.counter(cBundlesReceived), b.counter(cBundlesReceived))
	}
	pk := envelopeOf(t, send(t, a, b, conv, []byte("a plaintext of some length"))).GetPrekey()
	if pk.GetOneTimePrekeyId() == 0 {
		t.Fatal("a's session did not use b's one-time prekey")
	}
}
