package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// secureQuiet is how long the suite watches for something that must not
// happen (a second delivery, a forgery opening) before it moves on.
const secureQuiet = 250 * time.Millisecond

// Secure runs Layer, then checks the secure contract (core/api/secure/v1)
// between two instances, a and b, that the suite joins itself. Each
// instance is configured with o.Config(0) and o.Config(1), given a fixed
// identity key (a 32-byte Ed25519 public key) in ConfigureRequest.node_identity
// and its own data directory, and started.
//
// The suite plays the host and every layer below, as a host does:
//
//   - b adds a as a contact with a's StartResponse.contact_section, and a
//     adds b with what b's Bundle returns, so both must work;
//   - both are given the conversation with SetConversation(conv, [a, b]);
//   - every DOWN frame a emits for peer b's identity is handed to b as an UP
//     frame from peer a's identity, with the same conversation, payload
//     and hints (the host's translation and a perfect privacy layer), and the
//     other way round; a DOWN frame with an empty peer goes to every other
//     instance. Frame.protocol and message_id do not survive the trip
//     (privacy layers do not carry them), so a layer cannot rely on them.
//
// Messages are random plaintexts of at least 16 bytes, told apart by
// content. For the subtests that tamper with, replay or reorder a message,
// the suite holds back the first DOWN frame for the recipient that carries
// the trace id of the DOWN frame it sealed (common.v1: a layer copies the
// trace id of its input onto the frames it makes from it); every other
// frame a layer emits (handshakes, acknowledgements, commits) is relayed at
// once. b never sends before it has opened a message from a, so a layer
// whose responder cannot send first (a double ratchet without a handshake
// message) is accepted.
//
// A secure layer passes when:
//
//   - Bundle: it describes itself as a secure layer; StartResponse's
//     contact_section and Bundle are non-empty (every subtest uses both as
//     a contact's section); AddContact refuses an identity that is not 32
//     bytes.
//   - SealOpen: 100 messages each way, in ping-pong and crossing bursts, each
//     arrive once at the other side as an UP frame with the exact plaintext,
//     peer = the sender's identity and the conversation it was sent in, and
//     no DOWN frame's payload contains a plaintext. Halfway, the host adds
//     the contacts and the conversation again (each side now learning the
//     other from the other source: contact section or Bundle); the
//     conversation goes on unharmed, so AddContact and SetConversation with
//     what the layer already has must be harmless.
//   - GroupSend: a DOWN frame with an empty peer reaches every other member
//     of the conversation once, and after SetConversation removes a member,
//     a group send no longer reaches it.
//   - Tampered: copies of a ciphertext with one byte flipped (first, middle,
//     last), cut by one byte, or empty, delivered before the genuine one, go
//     nowhere; the genuine one still opens (a failed attempt leaves the
//     session state untouched), both for a first message and for one after a
//     reply.
//   - Replay: a ciphertext delivered more than once, before or after later
//     messages and after a reply, opens once.
//   - OutOfOrder: five messages delivered in reverse order all open; so do
//     messages of an older sending chain delivered after a newer one.
//   - UnknownSender: an UP frame from an identity never added as a contact,
//     with an empty peer, or with a peer that is not an identity, carrying
//     random bytes or another contact's genuine ciphertext, is not delivered
//     as from that peer; the genuine ciphertext from its real sender then
//     opens (once, whether or not the layer recognised it in-band before).
//   - UnknownRecipient: a DOWN frame for an identity that is not a contact,
//     or for a peer that is not an identity, is not sent.
//   - Forgery: a ciphertext reflected back to its sender, or moved to another
//     conversation of the same two nodes, does not open there: the sender,
//     the recipient and the conversation are all authenticated.
//   - Restart: the state survives a restart. b is stopped and a new instance
//     started on the same data directory and identity; the host then sends
//     AddContact and SetConversation again (the suite requires nothing to
//     survive without them, and a host does this after every start). A
//     message sealed before the restart and delivered after it opens; one
//     delivered before the restart and again after it does not open again;
//     new messages open both ways.
//
// Every frame of the suite's carries a trace id of its own, and every DOWN
// frame it hands a layer carries hints. An UP frame that delivers a message
// must carry the trace id and hints of the UP frame that brought its
// ciphertext, and that ciphertext must have left its sender in a DOWN frame
// with the trace id and hints of the message handed to it (common.v1
// Frame: a layer copies the trace id of its input onto what it makes of
// it, and passes hints on unchanged). The suite checks each delivery as it
// arrives, and each DOWN frame as it is emitted (its peer, and no
// plaintext in it): the first frame that breaks the contract fails the
// subtest at once, printed.
//
// Throughout, a frame that is dropped must be counted: after the frames the
// layer must drop, the sum of its Health counters whose names begin with
// "dropped_" has grown. Every UP frame a layer emits must be a message the
// suite sent, delivered once; no DOWN frame may be addressed to a peer other
// than the suite's instances (or empty); and each instance stays healthy.
func Secure[T TB[T]](t T, open sdktest.Opener, o Options) {
	Layer(t, open, o)

	t.Run("Bundle", func(t T) {
		n, a, b, _ := newSecurePair(t, open, o)
		ctx := context.Background()
		for _, id := range [][]byte{nil, secureRandom(31), secureRandom(33)} {
			if _, err := a.ctl.AddContact(ctx, &securev1.AddContactRequest{Identity: id, ContactSection: b.started.GetContactSection()}); err == nil {
				t.Errorf("AddContact accepted a %d-byte identity, want an error (identities are 32-byte Ed25519 keys)", len(id))
			}
		}
		n.settle()
	})

	t.Run("SealOpen", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		const each = 100
		sentA, sentB := 0, 0
		reintroduced := false
		for round := 0; sentA < each || sentB < each; round++ {
			k := 1 + round%3
			crossing := round%2 == 1
			var toB, toA []*secureMsg
			for range min(k, each-sentA) {
				toB = append(toB, n.post(a, b, conv))
				sentA++
			}
			if !crossing {
				b.awaitAll(toB...)
			}
			for range min(k, each-sentB) {
				toA = append(toA, n.post(b, a, conv))
				sentB++
			}
			if crossing {
				b.awaitAll(toB...)
			}
			a.awaitAll(toA...)
			if !reintroduced && sentA >= each/2 {
				reintroduced = true
				n.addContact(a, b, b.started.GetContactSection())
				n.addContact(b, a, n.bundle(a))
				n.converse(conv, a, b)
			}
		}
		n.settle()
	})

	t.Run("GroupSend", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		b.awaitAll(n.postGroup(a, conv, b))
		a.awaitAll(n.postGroup(b, conv, a))
		b.awaitAll(n.postGroup(a, conv, b))
		n.setConversation(a, conv, a) // a's host removes b
		n.postGroup(a, conv)          // for a alone: reaches no one
		n.settle()
	})

	t.Run("Tampered", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		for phase := range 2 {
			m := n.hold(a, b, conv)
			before := b.drops()
			for _, bad := range secureTamperings(m.sealed.GetPayload()) {
				n.inject(b, a.id, m.sealed.GetConversation(), bad)
			}
			n.deliver(b, m)
			b.awaitAll(m)
			b.awaitDrops(before, "tampered ciphertexts")
			if phase == 0 {
				a.awaitAll(n.post(b, a, conv)) // a reply, so that the next message is not a first one
			}
		}
		n.settle()
	})

	t.Run("Replay", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		m := []*secureMsg{n.hold(a, b, conv), n.hold(a, b, conv), n.hold(a, b, conv), n.hold(a, b, conv)}
		before := b.drops()
		n.deliver(b, m[0])
		n.replay(b, m[0])
		n.deliver(b, m[2])
		n.deliver(b, m[1])
		n.replay(b, m[1])
		n.replay(b, m[2])
		n.deliver(b, m[3])
		n.replay(b, m[0])
		n.replay(b, m[3])
		b.awaitAll(m...)
		b.awaitDrops(before, "replayed ciphertexts")
		a.awaitAll(n.post(b, a, conv))
		later := n.hold(a, b, conv)
		n.deliver(b, later)
		n.replay(b, later)
		n.replay(b, m[1])
		b.awaitAll(later)
		n.settle()
	})

	t.Run("OutOfOrder", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		var m []*secureMsg
		for range 5 {
			m = append(m, n.hold(a, b, conv))
		}
		for i := len(m) - 1; i >= 0; i-- {
			n.deliver(b, m[i])
		}
		b.awaitAll(m...)
		a.awaitAll(n.post(b, a, conv))
		// Two messages of one sending chain are held while a receives a
		// reply and starts another; the newer one arrives first.
		old := []*secureMsg{n.hold(a, b, conv), n.hold(a, b, conv)}
		a.awaitAll(n.post(b, a, conv))
		newer := n.hold(a, b, conv)
		n.deliver(b, newer)
		n.deliver(b, old[1])
		n.deliver(b, old[0])
		b.awaitAll(newer, old[1], old[0])
		n.settle()
	})

	t.Run("UnknownSender", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		m := n.hold(a, b, conv)
		before := b.drops()
		stranger := secureStranger()
		for _, size := range []int{0, 1, 16, 64, 300, 2000} {
			n.inject(b, stranger, conv, secureRandom(size))
		}
		n.inject(b, nil, conv, secureRandom(100))             // the host's "unknown sender"
		n.inject(b, secureRandom(7), conv, secureRandom(100)) // not an identity
		// a's ciphertext, claimed by a stranger: it may open in-band as
		// from a, once
		m.due(b)
		if err := n.relay(b, stranger, m.sealed, conv, m.sealed.GetPayload(), m.sealed.GetHints()); err != nil {
			t.Fatalf("send to b: %v", err)
		}
		n.inject(b, nil, nil, secureRandom(64)) // no conversation either
		n.deliver(b, m)
		b.awaitAll(m)
		b.awaitDrops(before, "frames from unknown senders")
		n.settle()
	})

	t.Run("UnknownRecipient", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		before := a.drops()
		stranger := secureStranger()
		traces := []uint64{
			n.down(a, stranger, conv, secureRandom(32)),
			n.down(a, secureRandom(5), conv, secureRandom(32)),
		}
		a.awaitDrops(before, "DOWN frames for peers that are not contacts")
		b.awaitAll(n.post(a, b, conv))
		n.settle()
		for _, d := range n.sentDowns() {
			if slices.Contains(traces, d.f.GetTraceId()) {
				t.Errorf("%s sent a frame for a peer that is not a contact: %s", d.from.name, secureDescribe(d.f))
			}
		}
	})

	t.Run("Forgery", func(t T) {
		n, a, b, conv := newSecurePair(t, open, o)
		other := []byte("conformance-secure-other-conversation")
		n.converse(other, a, b)
		m := n.hold(a, b, conv)
		before := a.drops()
		n.inject(a, b.id, m.sealed.GetConversation(), m.sealed.GetPayload()) // reflected to its sender
		n.inject(b, a.id, other, m.sealed.GetPayload())                      // moved to another conversation
		a.awaitDrops(before, "its own ciphertext reflected back as from its peer")
		n.deliver(b, m)
		b.awaitAll(m)
		n.settle()
	})

	t.Run("Restart", func(t T) {
		conv := []byte("conformance-secure-conversation")
		dirB := t.TempDir()
		n := newSecureNet(t, open, o)
		a := n.start("a", 0, "")
		b := n.start("b", 1, dirB)
		n.introduce(a, b)
		n.converse(conv, a, b)

		first := n.hold(a, b, conv)
		n.deliver(b, first)
		b.awaitAll(first)
		a.awaitAll(n.post(b, a, conv))
		inFlight := n.hold(a, b, conv)
		b.checkDelivered()
		n.stop(b)

		b = n.start("b", 1, dirB)
		n.addContact(b, a, a.started.GetContactSection())
		n.setConversation(b, conv, a, b)
		n.deliver(b, inFlight)
		b.awaitAll(inFlight)
		n.replay(b, first)
		b.awaitAll(n.post(a, b, conv))
		a.awaitAll(n.post(b, a, conv))
		n.settle()
	})
}

// secureNet plays the host and the layers below for secure instances.
type secureNet struct {
	t        testing.TB
	open     sdktest.Opener
	o        Options
	trace    atomic.Uint64 // trace ids the suite assigns
	problems chan string   // breaches seen off the test goroutine

	mu     sync.Mutex
	nodes  []*secureNode                   // the running instances
	ids    [][]byte                        // identities of every instance started
	held   map[uint64]chan *commonv1.Frame // trace id → where its sealed frame goes
	downs  []secureDown                    // every DOWN frame an instance emitted
	strays []secureDown                    // frames emitted with no valid direction
	sent   [][]byte                        // every plaintext handed to an instance
	// carried maps the trace id of an UP frame the suite handed an instance
	// to the DOWN frame whose ciphertext it carries, when there is one.
	carried map[uint64]*commonv1.Frame
}

// secureDown is a frame one instance emitted.
type secureDown struct {
	from *secureNode
	f    *commonv1.Frame
}

// secureNode is one instance of the layer under test with its identity and
// everything it delivered upward.
type secureNode struct {
	*instance
	net     *secureNet
	name    string
	id      []byte
	ctl     securev1.ControlClient
	want    []*secureMsg // messages it must deliver once; test goroutine only
	quit    chan struct{}
	done    chan struct{}
	halting sync.Once

	mu      sync.Mutex
	ups     []*commonv1.Frame
	changed chan struct{} // closed and replaced when ups grows
}

// secureMsg is one message the suite sent.
type secureMsg struct {
	from      *secureNode
	conv      []byte
	plaintext []byte
	trace     uint64               // trace id of the DOWN frame that sent it
	sealed    *commonv1.Frame      // the held DOWN frame (hold only)
	expected  map[*secureNode]bool // where it has been registered as due
}

func newSecureNet(t testing.TB, open sdktest.Opener, o Options) *secureNet {
	return &secureNet{t: t, open: open, o: o, held: map[uint64]chan *commonv1.Frame{}, carried: map[uint64]*commonv1.Frame{}, problems: make(chan string, 16)}
}

// secureHints are the hints of every DOWN frame the suite hands a layer.
var secureHints = &commonv1.Hints{Priority: 2, TtlSeconds: 60}

// report records a breach of the contract seen off the test goroutine; the
// next wait, or settle, fails the test with it.
func (n *secureNet) report(format string, args ...any) {
	select {
	case n.problems <- fmt.Sprintf(format, args...):
	default: // the first ones are enough
	}
}

// failOnProblem fails the test with a reported breach, if there is one.
func (n *secureNet) failOnProblem() {
	n.t.Helper()
	select {
	case p := <-n.problems:
		n.t.Fatal(p)
	default:
	}
}

// newSecurePair starts a and b, makes them contacts and gives both the
// conversation it returns.
func newSecurePair(t testing.TB, open sdktest.Opener, o Options) (*secureNet, *secureNode, *secureNode, []byte) {
	t.Helper()
	conv := []byte("conformance-secure-conversation")
	n := newSecureNet(t, open, o)
	a := n.start("a", 0, "")
	b := n.start("b", 1, "")
	n.introduce(a, b)
	n.converse(conv, a, b)
	return n, a, b, conv
}

// secureIdentity is the fixed identity key of the suite's instance name.
func secureIdentity(name string) []byte {
	seed := sha256.Sum256([]byte("strata-conformance-secure-identity-" + name))
	return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
}

// secureStranger is a valid identity key that no instance knows.
func secureStranger() []byte {
	return ed25519.NewKeyFromSeed(secureRandom(ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

// secureRandom returns n random bytes.
func secureRandom(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// securePlaintext is a fresh message body: 16 to 80 random bytes.
func securePlaintext() []byte { return secureRandom(16 + mrand.IntN(65)) }

// secureTamperings returns damaged copies of a sealed payload: one byte
// flipped at the start, the middle and the end, one byte cut off, and none.
func secureTamperings(p []byte) [][]byte {
	var out [][]byte
	if len(p) == 0 {
		return [][]byte{{0}}
	}
	for _, i := range []int{0, len(p) / 2, len(p) - 1} {
		c := bytes.Clone(p)
		c[i] ^= 0x01
		out = append(out, c)
	}
	return append(out, bytes.Clone(p[:len(p)-1]), []byte{})
}

// secureDescribe prints a frame for a failure message.
func secureDescribe(f *commonv1.Frame) string {
	short := func(b []byte) string {
		if len(b) > 12 {
			return hex.EncodeToString(b[:12]) + "…"
		}
		return hex.EncodeToString(b)
	}
	return fmt.Sprintf("%v frame, trace %d, peer %s, conversation %q, %d-byte payload %s",
		f.GetDirection(), f.GetTraceId(), short(f.GetPeer()), f.GetConversation(), len(f.GetPayload()), short(f.GetPayload()))
}

// start sets up the instance called name with configuration o.Config(i)
// and its state in dataDir ("" for a fresh one), and starts relaying its
// output.
func (n *secureNet) start(name string, i int, dataDir string) *secureNode {
	t := n.t
	t.Helper()
	id := secureIdentity(name)
	in := setupAs(t, n.open, n.o.config(i), &commonv1.StartRequest{BelowAddress: []byte("conformance-privacy-" + name)}, id, dataDir)
	if k := in.info.GetKind(); k != commonv1.LayerKind_LAYER_KIND_SECURE {
		t.Fatalf("Describe: kind %v, want %v", k, commonv1.LayerKind_LAYER_KIND_SECURE)
	}
	if len(in.started.GetContactSection()) == 0 {
		t.Fatalf("%s: StartResponse.contact_section is empty; a secure layer publishes its key material there", name)
	}
	x := &secureNode{
		instance: in, net: n, name: name, id: id,
		ctl:     securev1.NewControlClient(in.conn.Control()),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	n.mu.Lock()
	n.nodes = append(n.nodes, x)
	n.ids = append(n.ids, id)
	n.mu.Unlock()
	go x.pump()
	t.Cleanup(x.halt)
	return x
}

// stop stops x and closes it, as a node that shuts down.
func (n *secureNet) stop(x *secureNode) {
	n.t.Helper()
	n.mu.Lock()
	n.nodes = slices.DeleteFunc(n.nodes, func(y *secureNode) bool { return y == x })
	n.mu.Unlock()
	x.halt()
	ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
	defer cancel()
	if err := x.conn.Stop(ctx); err != nil {
		n.t.Errorf("%s: Stop: %v", x.name, err)
	}
	x.link.Close()
	x.conn.Close()
}

// introduce makes x and y contacts of each other, as a host does from their
// cards: y learns x from x's StartResponse, x learns y from y's Bundle.
func (n *secureNet) introduce(x, y *secureNode) {
	n.t.Helper()
	n.addContact(y, x, x.started.GetContactSection())
	n.addContact(x, y, n.bundle(y))
}

// addContact tells x that c's section is section.
func (n *secureNet) addContact(x, c *secureNode, section []byte) {
	n.t.Helper()
	if _, err := x.ctl.AddContact(context.Background(), &securev1.AddContactRequest{Identity: c.id, ContactSection: section}); err != nil {
		n.t.Fatalf("%s: AddContact(%s): %v", x.name, c.name, err)
	}
}

// bundle returns x's Bundle.
func (n *secureNet) bundle(x *secureNode) []byte {
	n.t.Helper()
	r, err := x.ctl.Bundle(context.Background(), &securev1.BundleRequest{})
	if err != nil {
		n.t.Fatalf("%s: Bundle: %v", x.name, err)
	}
	if len(r.GetContactSection()) == 0 {
		n.t.Fatalf("%s: Bundle returned an empty contact section", x.name)
	}
	return r.GetContactSection()
}

// converse gives every member the conversation with those members.
func (n *secureNet) converse(conv []byte, members ...*secureNode) {
	n.t.Helper()
	for _, x := range members {
		n.setConversation(x, conv, members...)
	}
}

// setConversation tells x that conv has the given members.
func (n *secureNet) setConversation(x *secureNode, conv []byte, members ...*secureNode) {
	n.t.Helper()
	ids := make([][]byte, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.id)
	}
	if _, err := x.ctl.SetConversation(context.Background(), &securev1.ConversationRequest{Id: conv, Members: ids}); err != nil {
		n.t.Fatalf("%s: SetConversation: %v", x.name, err)
	}
}

// down hands from a DOWN frame and returns its trace id.
func (n *secureNet) down(from *secureNode, peer, conv, payload []byte) uint64 {
	n.t.Helper()
	trace := n.trace.Add(1)
	n.sendDown(from, trace, peer, conv, payload)
	return trace
}

func (n *secureNet) sendDown(from *secureNode, trace uint64, peer, conv, payload []byte) {
	n.mu.Lock()
	n.sent = append(n.sent, bytes.Clone(payload))
	n.mu.Unlock()
	from.send(&commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_DOWN,
		TraceId:      trace,
		Conversation: bytes.Clone(conv),
		Peer:         bytes.Clone(peer),
		Hints:        proto.CloneOf(secureHints),
		Payload:      bytes.Clone(payload),
	})
}

// post sends a new message from one instance to another, relayed at once;
// to must deliver it once.
func (n *secureNet) post(from, to *secureNode, conv []byte) *secureMsg {
	n.t.Helper()
	m := &secureMsg{from: from, conv: conv, plaintext: securePlaintext()}
	m.due(to)
	// The trace id is set before the message leaves: the recipient may
	// deliver it, and the suite inspect it, before the send returns.
	m.trace = n.trace.Add(1)
	n.sendDown(from, m.trace, to.id, conv, m.plaintext)
	return m
}

// postGroup sends a new message to the whole conversation (an empty peer);
// each of recipients must deliver it once, and no other instance.
func (n *secureNet) postGroup(from *secureNode, conv []byte, recipients ...*secureNode) *secureMsg {
	n.t.Helper()
	m := &secureMsg{from: from, conv: conv, plaintext: securePlaintext()}
	for _, r := range recipients {
		m.due(r)
	}
	m.trace = n.trace.Add(1) // before it leaves, as in post
	n.sendDown(from, m.trace, nil, conv, m.plaintext)
	return m
}

// hold seals a new message from one instance to another and keeps the
// sealed frame back for the test to deliver.
func (n *secureNet) hold(from, to *secureNode, conv []byte) *secureMsg {
	n.t.Helper()
	m := &secureMsg{from: from, conv: conv, plaintext: securePlaintext()}
	trace := n.trace.Add(1)
	m.trace = trace
	ch := make(chan *commonv1.Frame, 1)
	n.mu.Lock()
	n.held[trace] = ch
	n.mu.Unlock()
	n.sendDown(from, trace, to.id, conv, m.plaintext)
	select {
	case m.sealed = <-ch:
	case p := <-n.problems:
		n.t.Fatalf("while waiting for %s to seal a message for %s: %s", from.name, to.name, p)
	case <-time.After(n.o.timeout()):
		n.t.Fatalf("%s emitted no DOWN frame with trace id %d for %s within %v (a layer copies the trace id of the frame it seals onto the frames it makes from it)",
			from.name, trace, to.name, n.o.timeout())
	}
	if !bytes.Equal(m.sealed.GetPeer(), to.id) {
		n.t.Fatalf("%s sealed a message for %s as a frame for peer %x, want %s's identity %x\n\tframe: %s", from.name, to.name, m.sealed.GetPeer(), to.name, to.id, sdktest.FormatFrame(m.sealed))
	}
	if !sameHints(m.sealed.GetHints(), secureHints) {
		n.t.Fatalf("%s sealed a message with hints %s, want %s, those of the frame it sealed: a layer passes hints on unchanged\n\tframe: %s", from.name, sdktest.FormatHints(m.sealed.GetHints()), sdktest.FormatHints(secureHints), sdktest.FormatFrame(m.sealed))
	}
	return m
}

// deliver hands m's sealed frame to to, from m's sender; to must deliver it
// once.
func (n *secureNet) deliver(to *secureNode, m *secureMsg) {
	n.t.Helper()
	m.due(to)
	n.carry(to, m.from.id, m.sealed)
}

// carry hands to sealed's ciphertext as an UP frame from peer, as the
// privacy layer and the host would, remembering which DOWN frame it carries.
func (n *secureNet) carry(to *secureNode, peer []byte, sealed *commonv1.Frame) {
	n.t.Helper()
	if err := n.relay(to, peer, sealed, sealed.GetConversation(), sealed.GetPayload(), sealed.GetHints()); err != nil {
		n.t.Fatalf("send to %s: %v", to.name, err)
	}
}

// replay hands m's sealed frame to to again; it must not deliver it again.
func (n *secureNet) replay(to *secureNode, m *secureMsg) {
	n.t.Helper()
	n.carry(to, m.from.id, m.sealed)
}

// inject hands to an UP frame as the privacy layer and the host would.
func (n *secureNet) inject(to *secureNode, peer, conv, payload []byte) {
	n.t.Helper()
	if err := n.relay(to, peer, nil, conv, payload, nil); err != nil {
		n.t.Fatalf("send to %s: %v", to.name, err)
	}
}

// relay hands to an UP frame with a trace id of its own, carrying the DOWN
// frame carrier (nil when the suite made the bytes up); every frame gets
// its own copy of the bytes, which the layer then owns.
func (n *secureNet) relay(to *secureNode, peer []byte, carrier *commonv1.Frame, conv, payload []byte, hints *commonv1.Hints) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
	defer cancel()
	f := &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      n.trace.Add(1),
		Conversation: bytes.Clone(conv),
		Peer:         bytes.Clone(peer),
		Payload:      bytes.Clone(payload),
	}
	if hints != nil {
		f.Hints = proto.CloneOf(hints)
	}
	if carrier != nil {
		n.mu.Lock()
		n.carried[f.GetTraceId()] = carrier
		n.mu.Unlock()
	}
	return to.link.Emit(ctx, f)
}

// route handles a DOWN frame from an instance: held back if the test asked
// for it, otherwise relayed to its peer, or for an empty peer to every
// other instance, as from the sender.
func (n *secureNet) route(from *secureNode, f *commonv1.Frame) {
	n.mu.Lock()
	n.downs = append(n.downs, secureDown{from, f})
	if len(f.GetPeer()) > 0 && !slices.ContainsFunc(n.ids, func(id []byte) bool { return bytes.Equal(id, f.GetPeer()) }) {
		n.report("%s sent a DOWN frame to a peer that is none of the suite's instances\n\tframe: %s", from.name, sdktest.FormatFrame(f))
	}
	for _, p := range n.sent {
		if bytes.Contains(f.GetPayload(), p) {
			n.report("%s sent a plaintext in the clear (%s)\n\tframe: %s", from.name, sdktest.FormatBytes(p), sdktest.FormatFrame(f))
			break
		}
	}
	if ch, ok := n.held[f.GetTraceId()]; ok && len(f.GetPeer()) > 0 {
		delete(n.held, f.GetTraceId())
		n.mu.Unlock()
		ch <- f
		return
	}
	var to []*secureNode
	for _, y := range n.nodes {
		if y != from && (len(f.GetPeer()) == 0 || bytes.Equal(f.GetPeer(), y.id)) {
			to = append(to, y)
		}
	}
	n.mu.Unlock()
	for _, y := range to {
		_ = n.relay(y, from.id, f, f.GetConversation(), f.GetPayload(), f.GetHints()) // best effort, as a network
	}
}

// sentDowns returns every DOWN frame the instances emitted so far.
func (n *secureNet) sentDowns() []secureDown {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.downs)
}

// settle waits secureQuiet, then checks what every subtest requires: each
// running instance delivered exactly the messages due to it, once, is
// healthy, and no instance sent a plaintext, or anything to a peer outside
// the suite's instances.
func (n *secureNet) settle() {
	t := n.t
	t.Helper()
	time.Sleep(secureQuiet)
	n.failOnProblem()
	n.mu.Lock()
	nodes, ids, sent := slices.Clone(n.nodes), slices.Clone(n.ids), slices.Clone(n.sent)
	downs, strays := slices.Clone(n.downs), slices.Clone(n.strays)
	n.mu.Unlock()
	for _, x := range nodes {
		x.checkDelivered()
		x.healthy()
	}
	for _, s := range strays {
		t.Errorf("%s emitted a frame with direction %v: %s", s.from.name, s.f.GetDirection(), secureDescribe(s.f))
	}
	for _, d := range downs {
		if len(d.f.GetPeer()) > 0 && !slices.ContainsFunc(ids, func(id []byte) bool { return bytes.Equal(id, d.f.GetPeer()) }) {
			t.Errorf("%s sent a DOWN frame to a peer that is none of the suite's instances: %s", d.from.name, secureDescribe(d.f))
		}
		for _, p := range sent {
			if bytes.Contains(d.f.GetPayload(), p) {
				t.Fatalf("%s sent a plaintext in the clear: %s contains %x", d.from.name, secureDescribe(d.f), p)
			}
		}
	}
}

// due registers m as a message x must deliver once.
func (m *secureMsg) due(x *secureNode) {
	if m.expected == nil {
		m.expected = map[*secureNode]bool{}
	}
	if !m.expected[x] {
		m.expected[x] = true
		x.mu.Lock()
		x.want = append(x.want, m)
		x.mu.Unlock()
	}
}

// inspect checks an UP frame as x emits it: it delivers a message due to
// x, with the sender, conversation, trace id and hints the contract asks
// for. A breach is reported at once.
func (x *secureNode) inspect(f *commonv1.Frame) {
	x.mu.Lock()
	i := slices.IndexFunc(x.want, func(m *secureMsg) bool { return bytes.Equal(m.plaintext, f.GetPayload()) })
	var m *secureMsg
	if i >= 0 {
		m = x.want[i]
	}
	x.mu.Unlock()
	if m == nil {
		x.net.report("%s delivered a frame that is no message due to it\n\tframe: %s", x.name, sdktest.FormatFrame(f))
		return
	}
	var problems []string
	if !bytes.Equal(f.GetPeer(), m.from.id) {
		problems = append(problems, fmt.Sprintf("peer %s, want the sender's identity %s", sdktest.FormatBytes(f.GetPeer()), sdktest.FormatBytes(m.from.id)))
	}
	if !bytes.Equal(f.GetConversation(), m.conv) {
		problems = append(problems, fmt.Sprintf("conversation %s, want %s", sdktest.FormatBytes(f.GetConversation()), sdktest.FormatBytes(m.conv)))
	}
	x.net.mu.Lock()
	carrier, known := x.net.carried[f.GetTraceId()]
	x.net.mu.Unlock()
	switch {
	case !known:
		problems = append(problems, fmt.Sprintf("trace id %d, which is none the suite gave the frames that carried a ciphertext to %s: a layer copies the trace id of its input onto what it makes of it", f.GetTraceId(), x.name))
	default:
		if !sameHints(f.GetHints(), carrier.GetHints()) {
			problems = append(problems, fmt.Sprintf("hints %s, want %s, those of the frame that brought it: a layer passes hints on unchanged", sdktest.FormatHints(f.GetHints()), sdktest.FormatHints(carrier.GetHints())))
		}
		if carrier.GetTraceId() != m.trace {
			problems = append(problems, fmt.Sprintf("its ciphertext left %s with trace id %d, want %d, the trace id of the message handed to it\n\tcarrier: %s", m.from.name, carrier.GetTraceId(), m.trace, sdktest.FormatFrame(carrier)))
		}
		if !sameHints(carrier.GetHints(), secureHints) {
			problems = append(problems, fmt.Sprintf("its ciphertext left %s with hints %s, want %s, those of the message handed to it\n\tcarrier: %s", m.from.name, sdktest.FormatHints(carrier.GetHints()), sdktest.FormatHints(secureHints), sdktest.FormatFrame(carrier)))
		}
	}
	if len(problems) > 0 {
		x.net.report("%s delivered a message from %s with\n\t- %s\n\tframe: %s", x.name, m.from.name, strings.Join(problems, "\n\t- "), sdktest.FormatFrame(f))
	}
}

// pump sorts x's output until halt: UP frames are recorded, DOWN frames
// routed.
func (x *secureNode) pump() {
	defer close(x.done)
	for {
		select {
		case <-x.quit:
			return
		case f := <-x.frames:
			switch f.GetDirection() {
			case commonv1.Direction_DIRECTION_UP:
				x.inspect(f)
				x.mu.Lock()
				x.ups = append(x.ups, f)
				close(x.changed)
				x.changed = make(chan struct{})
				x.mu.Unlock()
			case commonv1.Direction_DIRECTION_DOWN:
				x.net.route(x, f)
			default:
				x.net.mu.Lock()
				x.net.strays = append(x.net.strays, secureDown{x, f})
				x.net.mu.Unlock()
				x.net.report("%s emitted a frame with direction %v\n\tframe: %s", x.name, f.GetDirection(), sdktest.FormatFrame(f))
			}
		}
	}
}

// halt stops relaying x's output.
func (x *secureNode) halt() {
	x.halting.Do(func() { close(x.quit) })
	<-x.done
}

// awaitAll waits until x has delivered each message, and checks its sender
// and conversation.
func (x *secureNode) awaitAll(msgs ...*secureMsg) {
	x.t.Helper()
	deadline := time.NewTimer(x.net.o.timeout())
	defer deadline.Stop()
	for _, m := range msgs {
		for {
			x.mu.Lock()
			i := slices.IndexFunc(x.ups, func(f *commonv1.Frame) bool { return bytes.Equal(f.GetPayload(), m.plaintext) })
			var f *commonv1.Frame
			if i >= 0 {
				f = x.ups[i]
			}
			changed := x.changed
			x.mu.Unlock()
			if f != nil {
				x.checkFrom(f, m)
				break
			}
			select {
			case <-changed:
			case p := <-x.net.problems:
				x.t.Fatalf("while waiting for %s to open a message from %s: %s", x.name, m.from.name, p)
			case <-deadline.C:
				x.t.Fatalf("timed out after %v waiting for %s to open a message from %s (%x)", x.net.o.timeout(), x.name, m.from.name, m.plaintext)
			}
		}
	}
}

// checkFrom checks that the UP frame f carrying m names m's sender and
// conversation.
func (x *secureNode) checkFrom(f *commonv1.Frame, m *secureMsg) {
	x.t.Helper()
	if !bytes.Equal(f.GetPeer(), m.from.id) {
		x.t.Fatalf("%s delivered a message from %s with peer %x, want the sender's identity %x", x.name, m.from.name, f.GetPeer(), m.from.id)
	}
	if !bytes.Equal(f.GetConversation(), m.conv) {
		x.t.Fatalf("%s delivered a message from %s in conversation %q, want %q", x.name, m.from.name, f.GetConversation(), m.conv)
	}
}

// checkDelivered checks that everything x delivered was due to it, once.
func (x *secureNode) checkDelivered() {
	x.t.Helper()
	x.mu.Lock()
	ups := slices.Clone(x.ups)
	x.mu.Unlock()
	counts := make([]int, len(x.want))
	for _, f := range ups {
		i := slices.IndexFunc(x.want, func(m *secureMsg) bool { return bytes.Equal(m.plaintext, f.GetPayload()) })
		if i < 0 {
			x.t.Errorf("%s delivered a frame that is no message due to it: %s", x.name, secureDescribe(f))
			continue
		}
		if counts[i]++; counts[i] == 1 {
			x.checkFrom(f, x.want[i])
		}
	}
	for i, m := range x.want {
		if counts[i] != 1 {
			x.t.Errorf("%s delivered a message from %s (%x) %d times, want exactly once", x.name, m.from.name, m.plaintext, counts[i])
		}
	}
}

// drops returns the sum of x's Health counters named dropped_*.
func (x *secureNode) drops() uint64 {
	x.t.Helper()
	h, err := x.conn.Health(context.Background())
	if err != nil {
		x.t.Fatalf("%s: Health: %v", x.name, err)
	}
	var sum uint64
	for k, v := range h.GetCounters() {
		if strings.HasPrefix(k, "dropped_") {
			sum += v
		}
	}
	return sum
}

// awaitDrops waits until x's dropped_* counters exceed before.
func (x *secureNode) awaitDrops(before uint64, what string) {
	x.t.Helper()
	deadline := time.Now().Add(x.net.o.timeout())
	for x.drops() <= before {
		if time.Now().After(deadline) {
			x.t.Errorf("%s was sent %s but no Health counter named dropped_* grew within %v", x.name, what, x.net.o.timeout())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
