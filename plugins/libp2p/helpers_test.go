package libp2pplugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/libp2p/go-libp2p/core/peer"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// waitFor bounds every wait in the tests.
const waitFor = 10 * time.Second

// gate is a host that takes nothing until it is opened and then keeps
// what it takes in a Recorder; not a plain Recorder, because a Recorder
// never makes the layer wait, and the flow-control test needs a host that
// does.
type gate struct {
	*sdktest.Recorder
	opened chan struct{}
	once   sync.Once
}

func newGate() *gate { return &gate{Recorder: &sdktest.Recorder{}, opened: make(chan struct{})} }

// Emit waits until the gate is open, then keeps the frames.
func (g *gate) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	select {
	case <-g.opened:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Recorder.Emit(ctx, frames...)
}

// open lets every frame through, from now on; it may be called again.
func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// stepHost is a host that, once stepping, takes one call (an Emit or an
// EmitEvent) per step the test gives, and keeps what it takes in a
// Recorder: the slowest host, under the test's control, with one intake
// for frames and events as the SDK's queue has.
type stepHost struct {
	*sdktest.Recorder
	stepping atomic.Bool
	waiting  atomic.Int32 // calls waiting for a step
	steps    chan struct{}
	took     chan struct{} // a token per call taken on a step, once recorded
	freed    chan struct{} // closed by free
	once     sync.Once
}

func newStepHost() *stepHost {
	return &stepHost{Recorder: &sdktest.Recorder{}, steps: make(chan struct{}), took: make(chan struct{}, 1<<16), freed: make(chan struct{})}
}

// wait waits for a step while stepping, and reports whether it took one.
func (h *stepHost) wait(ctx context.Context) (bool, error) {
	if !h.stepping.Load() {
		return false, nil
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	select {
	case <-h.steps:
		return true, nil
	case <-h.freed:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (h *stepHost) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	stepped, err := h.wait(ctx)
	if err != nil {
		return err
	}
	err = h.Recorder.Emit(ctx, frames...)
	if stepped {
		h.took <- struct{}{}
	}
	return err
}

func (h *stepHost) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	stepped, err := h.wait(ctx)
	if err != nil {
		return err
	}
	err = h.Recorder.EmitEvent(ctx, ev)
	if stepped {
		h.took <- struct{}{}
	}
	return err
}

// step lets one call through and waits until it is recorded.
func (h *stepHost) step(t testing.TB) {
	t.Helper()
	select {
	case h.steps <- struct{}{}:
	case <-time.After(waitFor):
		t.Fatal("the host was given a step, and no call came to take it")
	}
	<-h.took
}

// turn lets one call through and waits until the next call waits for a
// step: the layer is then blocked on the host, and what reaches its queues
// stays there until the next step. Only for a layer that always has more
// to hand over (a flood).
func (h *stepHost) turn(t testing.TB) {
	t.Helper()
	h.step(t)
	deadline := time.Now().Add(waitFor)
	for h.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the layer does not call the host again")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// free lets every call through from now on.
func (h *stepHost) free() { h.once.Do(func() { close(h.freed) }) }

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	level := hclog.Warn
	if testing.Verbose() {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: "libp2p", Output: testWriter{t}, Level: level})
}

// testNode is a started layer and what it emits.
type testNode struct {
	l     *Layer
	lc    *sdk.Lifecycle    // l as the SDK runs it: lifecycle calls and batches go through it
	rec   *sdktest.Recorder // what the layer emitted, kept for the test
	dir   string
	start *commonv1.StartResponse
}

// chat is the protocol most tests use.
var chat = &commonv1.Protocol{Name: "chat", Version: 1}

// tcpOnly listens on loopback TCP only.
const tcpOnly = `{"listen":["/ip4/127.0.0.1/tcp/0"]}`

// startNodeT configures and starts a layer on dir (a new temporary
// directory when empty) and stops it when the test ends.
func startNodeT(t testing.TB, dir, configJSON string, protos ...*commonv1.Protocol) *testNode {
	t.Helper()
	return startNodeWith(t, New(), &sdktest.Recorder{}, dir, configJSON, protos...)
}

// startNodeWith is startNodeT with a layer of the test's and its host: an
// *sdktest.Recorder, or a *gate in front of one (opened before the node
// stops, so that Stop does not wait on it).
func startNodeWith(t testing.TB, l *Layer, out sdk.Emitter, dir, configJSON string, protos ...*commonv1.Protocol) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	tn := &testNode{l: l, lc: sdk.NewLifecycle(l), dir: dir}
	var g interface{ open() }
	switch out := out.(type) {
	case *sdktest.Recorder:
		tn.rec = out
	case *gate:
		tn.rec, g = out.Recorder, out
	case *stepHost:
		tn.rec, g = out.Recorder, freer{out}
	default:
		t.Fatalf("startNodeWith: host %T is not a Recorder, a gate or a stepHost", out)
	}
	ctx := context.Background()
	if _, err := tn.lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: configJSON, DataDir: dir, NodeName: t.Name()}, sdk.Env{Logger: testLogger(t), Out: out}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	resp, err := tn.lc.Start(ctx, &commonv1.StartRequest{Protocols: protos})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tn.start = resp
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := tn.lc.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	if g != nil {
		t.Cleanup(g.open) // cleanups run last first: before Stop
	}
	return tn
}

// freer opens a stepHost as a gate is opened.
type freer struct{ h *stepHost }

func (f freer) open() { f.h.free() }

// id is the node's peer id.
func (tn *testNode) id() peer.ID { return peer.ID(tn.start.GetLocalAddress()) }

// counter returns one of the node's counters.
func (tn *testNode) counter(name string) uint64 {
	return tn.l.Health(context.Background()).GetCounters()[name]
}

// connect connects a to b with b's contact section.
func connect(t testing.TB, a, b *testNode, persistent bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := a.l.Connect(ctx, &p2pv1.ConnectRequest{ContactSection: b.start.GetContactSection(), Persistent: persistent})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if got := peer.ID(resp.GetPeer().GetId()); got != b.id() {
		t.Fatalf("Connect returned peer %s, want %s", got, b.id())
	}
}

// waitPeerEvent waits for the next peer event of tn and checks it.
func waitPeerEvent(t testing.TB, tn *testNode, from peer.ID, state commonv1.PeerState) *commonv1.PeerEvent {
	t.Helper()
	ev := tn.rec.TryNextEvent(waitFor, func(ev *commonv1.Event) bool { return ev.GetPeer() != nil })
	if ev == nil {
		t.Fatalf("no %v event for %s", state, from)
	}
	p := ev.GetPeer()
	if peer.ID(p.GetPeer()) != from || p.GetState() != state {
		t.Fatalf("peer event = %s %v, want %s %v", peer.ID(p.GetPeer()), p.GetState(), from, state)
	}
	return p
}

// waitFrame waits for the next frame tn emits.
func waitFrame(t testing.TB, tn *testNode) *commonv1.Frame {
	t.Helper()
	return tn.rec.Next(t, waitFor, "a frame", nil)
}

// noFrame checks that tn emits no frame for d.
func noFrame(t testing.TB, tn *testNode, d time.Duration) {
	t.Helper()
	if f := tn.rec.TryNext(d, nil); f != nil {
		t.Fatalf("unexpected frame on %q from %s: %d bytes", f.GetProtocol(), peer.ID(f.GetPeer()), len(f.GetPayload()))
	}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// down is a DOWN frame.
func down(to peer.ID, protocol string, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte(to), Protocol: protocol, Payload: payload}
}

// numbered is a test payload that carries its sequence number and a
// body whose length and content depend on it.
func numbered(tag byte, i int) []byte {
	p := binary.BigEndian.AppendUint32([]byte{tag}, uint32(i))
	return append(p, bytes.Repeat([]byte{byte(i)}, i%397)...)
}
