package conformance

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// Timing of the privacy suite, besides Options.Timeout.
const (
	// privacyQuiet is how long both instances must have emitted nothing
	// before the suite sends its first message, so that handshakes (a
	// whisper Status) are done and the message's own frames carry its
	// trace id.
	privacyQuiet = 150 * time.Millisecond
	// privacySettleMax bounds the wait for privacyQuiet, for layers that
	// never fall quiet (cover traffic).
	privacySettleMax = 2 * time.Second
)

// Privacy runs Layer, then checks the privacy contract (core/api/privacy/v1)
// between two instances, a and b, joined by an in-memory overlay that the
// suite plays itself. a is started with below_address "overlay-node-a" and b
// with "overlay-node-b"; each is told the other is CONNECTED (a PeerEvent).
//
// The suite's overlay carries every DOWN frame a layer emits for the other
// instance's overlay id, or with an empty peer, to the other instance as an
// UP frame from the sender's overlay id, on the same protocol, with the same
// payload and hints and a trace id of its own (as a host assigns one to
// every frame it passes up). Such a DOWN frame must be on a protocol the
// layer declared in its ConfigureResponse, and must not be addressed to any
// other overlay id.
//
// Once both instances have fallen quiet (no frame for 150 ms), a message
// goes from a to b, then another from b to a: a DOWN frame with Frame.peer =
// the recipient's contact section (which OwnAddress must return too), a
// conversation, hints and a trace id. The recipient must emit one UP frame
// with
//
//   - the payload and conversation sent;
//   - Frame.peer = the sender's contact section (its privacy address); a
//     layer that does not provide "direct" may leave it empty;
//   - the trace id and hints of the UP frame from below that brought it;
//
// and the DOWN frame that carried it across must have had the trace id and
// hints of the message handed to the sender. Any other frame that goes up,
// at either instance, fails the subtest at once, printed, as does a frame
// without a direction.
func Privacy[T TB[T]](t T, open sdktest.Opener, o Options) {
	Layer(t, open, o)
	t.Run("SendToContact", func(t T) { privacySend(t, open, o) })
}

// privacyNode is one instance on the suite's overlay.
type privacyNode struct {
	*instance
	name    string
	overlay []byte
	ups     chan *commonv1.Frame // frames it emitted that are not DOWN
}

// privacyOverlay is the suite's overlay between two instances.
type privacyOverlay struct {
	t        testing.TB
	o        Options
	trace    atomic.Uint64
	last     atomic.Int64 // unix nanoseconds of the last frame either emitted
	problems chan string

	mu      sync.Mutex
	carried map[uint64]*commonv1.Frame // trace id of an injected UP frame → the DOWN frame it carries
}

func privacySend(t testing.TB, open sdktest.Opener, o Options) {
	a := &privacyNode{name: "a", overlay: []byte("overlay-node-a"), ups: make(chan *commonv1.Frame, 64)}
	b := &privacyNode{name: "b", overlay: []byte("overlay-node-b"), ups: make(chan *commonv1.Frame, 64)}
	a.instance = setup(t, open, o.config(0), &commonv1.StartRequest{BelowAddress: a.overlay})
	b.instance = setup(t, open, o.config(1), &commonv1.StartRequest{BelowAddress: b.overlay})
	for _, p := range []struct{ in, peer *privacyNode }{{a, b}, {b, a}} {
		if err := p.in.link.EmitEvent(context.Background(), &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: p.peer.overlay, State: commonv1.PeerState_PEER_STATE_CONNECTED}}}); err != nil {
			t.Fatalf("send a peer event to %s: %v", p.in.name, err)
		}
	}
	for _, x := range []*privacyNode{a, b} {
		own, err := privacyv1.NewControlClient(x.conn.Control()).OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
		if err != nil {
			t.Fatalf("%s: OwnAddress: %v", x.name, err)
		}
		if !bytes.Equal(own.GetAddress(), x.started.GetContactSection()) {
			t.Fatalf("%s: OwnAddress %s differs from the contact section %s", x.name, sdktest.FormatBytes(own.GetAddress()), sdktest.FormatBytes(x.started.GetContactSection()))
		}
	}

	net := &privacyOverlay{t: t, o: o, problems: make(chan string, 16), carried: map[uint64]*commonv1.Frame{}}
	net.trace.Store(1000) // the suite's own trace ids for what it passes up
	net.last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); wg.Wait() })
	wg.Add(2)
	go func() { defer wg.Done(); net.carry(a, b, done) }()
	go func() { defer wg.Done(); net.carry(b, a, done) }()

	net.settle()
	for i, p := range []struct{ from, to *privacyNode }{{a, b}, {b, a}} {
		msg := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			TraceId:      uint64(77 + i),
			Peer:         bytes.Clone(p.to.started.GetContactSection()),
			Conversation: []byte("conformance-conversation"),
			Hints:        &commonv1.Hints{Priority: uint32(3 + i), TtlSeconds: 45},
			Payload:      []byte(fmt.Sprintf("a message from %s to %s", p.from.name, p.to.name)),
		}
		p.from.send(msg)
		net.awaitDelivery(p.from, p.to, msg, provides(p.to.info, sdk.CapDirect))
	}
}

// settle waits until neither instance has emitted a frame for
// privacyQuiet, or privacySettleMax has passed.
func (n *privacyOverlay) settle() {
	end := time.Now().Add(privacySettleMax)
	for time.Now().Before(end) {
		idle := time.Since(time.Unix(0, n.last.Load()))
		if idle >= privacyQuiet {
			return
		}
		time.Sleep(privacyQuiet - idle)
	}
}

// problem reports a breach seen off the test goroutine.
func (n *privacyOverlay) problem(format string, args ...any) {
	select {
	case n.problems <- fmt.Sprintf(format, args...):
	default: // the first ones are enough
	}
}

// carry passes from's DOWN frames for to (or for everyone) to to as UP
// frames, and hands every other frame from emits to the test, until done.
func (n *privacyOverlay) carry(from, to *privacyNode, done <-chan struct{}) {
	for {
		var f *commonv1.Frame
		select {
		case <-done:
			return
		case f = <-from.frames:
		}
		n.last.Store(time.Now().UnixNano())
		if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
			select {
			case from.ups <- f:
			case <-done:
				return
			}
			continue
		}
		switch {
		case !from.declared(f.GetProtocol()):
			n.problem("%s emitted a DOWN frame on protocol %q, which it did not declare in its ConfigureResponse (it declared %v)\n\tframe: %s",
				from.name, f.GetProtocol(), from.conf.GetProtocols(), sdktest.FormatFrame(f))
			continue
		case len(f.GetPeer()) > 0 && !bytes.Equal(f.GetPeer(), to.overlay):
			n.problem("%s emitted a DOWN frame for overlay peer %s, which is neither %s's overlay id %s nor empty\n\tframe: %s",
				from.name, sdktest.FormatBytes(f.GetPeer()), to.name, sdktest.FormatBytes(to.overlay), sdktest.FormatFrame(f))
			continue
		}
		in := &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_UP,
			TraceId:   n.trace.Add(1),
			Peer:      bytes.Clone(from.overlay),
			Protocol:  f.GetProtocol(),
			Hints:     f.GetHints(),
			Payload:   bytes.Clone(f.GetPayload()),
		}
		n.mu.Lock()
		n.carried[in.GetTraceId()] = f
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), n.o.timeout())
		_ = to.link.Emit(ctx, in)
		cancel()
	}
}

// awaitDelivery waits for to to deliver msg, sent by from, and checks
// every field of the UP frame and of the DOWN frame that carried it. Any
// other frame that goes up at either instance fails the test at once.
func (n *privacyOverlay) awaitDelivery(from, to *privacyNode, msg *commonv1.Frame, direct bool) {
	t := n.t
	t.Helper()
	what := fmt.Sprintf("%s to deliver the message %s sent it", to.name, from.name)
	deadline := time.After(n.o.timeout())
	var f *commonv1.Frame
	select {
	case p := <-n.problems:
		t.Fatalf("while waiting for %s: %s", what, p)
	case f = <-from.ups:
		t.Fatalf("while waiting for %s: %s emitted a frame that is not DOWN, though nothing was sent to it\n\tframe: %s", what, from.name, sdktest.FormatFrame(f))
	case f = <-to.ups:
	case <-deadline:
		t.Fatalf("timed out after %v waiting for %s", n.o.timeout(), what)
	}
	if problem := validDirection(f); problem != "" {
		t.Fatalf("while waiting for %s: %s emitted %s\n\tframe: %s", what, to.name, problem, sdktest.FormatFrame(f))
	}
	var problems []string
	if !bytes.Equal(f.GetPayload(), msg.GetPayload()) {
		t.Fatalf("while waiting for %s: %s delivered a frame that is not the message sent (payload %s)\n\tframe: %s", what, to.name, sdktest.FormatBytes(msg.GetPayload()), sdktest.FormatFrame(f))
	}
	if !bytes.Equal(f.GetConversation(), msg.GetConversation()) {
		problems = append(problems, fmt.Sprintf("conversation %s, want %s as sent", sdktest.FormatBytes(f.GetConversation()), sdktest.FormatBytes(msg.GetConversation())))
	}
	switch sender := from.started.GetContactSection(); {
	case bytes.Equal(f.GetPeer(), sender):
	case direct:
		problems = append(problems, fmt.Sprintf("peer %s, want the sender's privacy address %s: a layer that provides %q names the sender of every UP frame", sdktest.FormatBytes(f.GetPeer()), sdktest.FormatBytes(sender), sdk.CapDirect))
	case len(f.GetPeer()) > 0:
		problems = append(problems, fmt.Sprintf("peer %s, want the sender's privacy address %s, or empty when the layer does not know it", sdktest.FormatBytes(f.GetPeer()), sdktest.FormatBytes(sender)))
	}
	n.mu.Lock()
	carrier, injected := n.carried[f.GetTraceId()], f.GetTraceId()
	n.mu.Unlock()
	if carrier == nil {
		problems = append(problems, fmt.Sprintf("trace id %d, which is none the suite gave the frames it passed up: a layer copies the trace id of the input frame onto the frames it makes from it", injected))
	} else {
		if !sameHints(f.GetHints(), carrier.GetHints()) {
			problems = append(problems, fmt.Sprintf("hints %s, want %s, those of the frame from below that carried it: a layer passes hints on unchanged", sdktest.FormatHints(f.GetHints()), sdktest.FormatHints(carrier.GetHints())))
		}
		if carrier.GetTraceId() != msg.GetTraceId() {
			problems = append(problems, fmt.Sprintf("it came in a DOWN frame from %s with trace id %d, want %d, the trace id of the message handed to %s\n\tcarrier: %s", from.name, carrier.GetTraceId(), msg.GetTraceId(), from.name, sdktest.FormatFrame(carrier)))
		}
		if !sameHints(carrier.GetHints(), msg.GetHints()) {
			problems = append(problems, fmt.Sprintf("it came in a DOWN frame from %s with hints %s, want %s, the hints of the message handed to %s\n\tcarrier: %s", from.name, sdktest.FormatHints(carrier.GetHints()), sdktest.FormatHints(msg.GetHints()), from.name, sdktest.FormatFrame(carrier)))
		}
	}
	if len(problems) > 0 {
		var b bytes.Buffer
		for _, p := range problems {
			b.WriteString("\n\t- " + p)
		}
		t.Fatalf("%s delivered the message from %s with%s\n\tframe: %s", to.name, from.name, b.String(), sdktest.FormatFrame(f))
	}
}
