// Package conformance is the test suite every Strata layer plugin runs
// against itself, ours or a third party's, in both modes, in one call of its
// own tests:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, sdktest.Plugin{Kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
//			New: func() sdk.Layer { return rot13.New() }, Main: "./cmd/strata-plugin-rot13", Name: "rot13"},
//			func(t *testing.T, open sdktest.Opener) { conformance.Privacy(t, open, conformance.Options{}) })
//	}
//
// Layer checks what every kind must do (self-description, strict config,
// lifecycle, surviving garbage input, a direction on every frame); P2P,
// Privacy, Secure and Sync check their kind's contract as written in
// core/api/*/v1, every field of every frame the contract promises: peer,
// conversation, trace id, hints, message id, direction and protocol. A
// suite fails at the first frame that breaks the contract, printing it
// (sdktest.FormatFrame), rather than waiting for a frame that will not come.
//
// The suites are themselves tested by breaking layers on purpose: for each
// promised field, a layer that breaks it fails its suite (core/sdk's
// mutation tests).
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TB is what a suite needs of its test: testing.TB and subtests. A
// *testing.T is one (T = *testing.T); so is a fake test that records
// failure, which is how the suites are tested.
type TB[T any] interface {
	testing.TB
	Run(name string, f func(T)) bool
}

// Options adapt the suites to a layer.
type Options struct {
	// Config returns the config section for instance i of the layer under
	// test; nil means the layer's defaults. Suites call it with 0 and 1 for
	// their two instances (e.g. to give each its own port), and with 2 where
	// they need a third.
	Config func(i int) map[string]any
	// Timeout bounds each wait for a frame or event; default 15 s.
	Timeout time.Duration
}

func (o Options) config(i int) map[string]any {
	if o.Config == nil {
		return map[string]any{}
	}
	return o.Config(i)
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 15 * time.Second
	}
	return o.Timeout
}

// instance is one running copy of the layer under test, with everything it
// emits collected.
type instance struct {
	t       testing.TB
	conn    sdk.Conn
	link    sdk.Link
	info    *commonv1.PluginInfo
	conf    *commonv1.ConfigureResponse
	started *commonv1.StartResponse
	frames  chan *commonv1.Frame
	events  chan *commonv1.Event
}

// setup opens, configures and starts one instance.
func setup(t testing.TB, open sdktest.Opener, section map[string]any, req *commonv1.StartRequest) *instance {
	t.Helper()
	return setupAs(t, open, section, req, nil, "")
}

// setupAs is setup for a node whose identity key is identity (passed in
// ConfigureRequest.node_identity, as the host does), with its state in
// dataDir ("" for a fresh temporary directory; pass the same directory
// again to test what survives a restart).
func setupAs(t testing.TB, open sdktest.Opener, section map[string]any, req *commonv1.StartRequest, identity []byte, dataDir string) *instance {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	ctx := context.Background()
	in := &instance{t: t, conn: open(t), frames: make(chan *commonv1.Frame, 1<<16), events: make(chan *commonv1.Event, 1024)}
	info, err := in.conn.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	in.info = info
	checked, err := sdk.ApplySchema(info.GetConfig(), section)
	if err != nil {
		t.Fatalf("config section %v does not fit the plugin's own schema: %v", section, err)
	}
	js, err := json.Marshal(checked)
	if err != nil {
		t.Fatal(err)
	}
	if in.conf, err = in.conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(js), DataDir: dataDir, NodeName: t.Name(), NodeIdentity: identity}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	in.link, err = in.conn.Open(ctx, func(b *commonv1.Batch) {
		for _, f := range b.GetFrames() {
			in.frames <- f
		}
		for _, e := range b.GetEvents() {
			select {
			case in.events <- e:
			default: // a test that ignores events must not stall the layer
			}
		}
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if in.started, err = in.conn.Start(ctx, req); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.conn.Stop(sctx)
		in.link.Close()
	})
	return in
}

// send hands frames to the instance.
func (in *instance) send(frames ...*commonv1.Frame) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.link.Emit(ctx, frames...); err != nil {
		in.t.Fatalf("send to layer: %v", err)
	}
}

// expect waits for a frame that matches, skipping others (a layer may emit
// cover traffic or control frames of its own). check, when not nil, is
// asked about every frame first, skipped or not: a frame it finds wrong
// (a non-empty answer) fails the test at once, printed.
func (in *instance) expect(timeout time.Duration, what string, match func(*commonv1.Frame) bool, check func(*commonv1.Frame) string) *commonv1.Frame {
	in.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-in.frames:
			if check != nil {
				if problem := check(f); problem != "" {
					in.t.Fatalf("while waiting for %s: %s\n\tframe: %s", what, problem, sdktest.FormatFrame(f))
				}
			}
			if match(f) {
				return f
			}
		case <-deadline:
			in.t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return nil
		}
	}
}

// declared reports whether the layer declared the overlay protocol name in
// its ConfigureResponse.
func (in *instance) declared(name string) bool {
	for _, p := range in.conf.GetProtocols() {
		if p.GetName() == name {
			return true
		}
	}
	return false
}

// validDirection is the check every frame of every kind must pass: a
// plugin sets a direction on every frame it emits (common.v1 Frame).
func validDirection(f *commonv1.Frame) string {
	switch f.GetDirection() {
	case commonv1.Direction_DIRECTION_UP, commonv1.Direction_DIRECTION_DOWN:
		return ""
	}
	return fmt.Sprintf("a frame with direction %v: a layer sets UP or DOWN on every frame it emits", f.GetDirection())
}

// sameHints reports whether two hints are equal, nil being the zero hints.
func sameHints(a, b *commonv1.Hints) bool {
	return a.GetEphemeral() == b.GetEphemeral() && a.GetPriority() == b.GetPriority() && a.GetTtlSeconds() == b.GetTtlSeconds()
}

// expectPeer waits for a peer event in the given state.
func (in *instance) expectPeer(timeout time.Duration, state commonv1.PeerState, peer []byte) {
	in.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-in.events:
			if p := e.GetPeer(); p != nil && p.GetState() == state && (peer == nil || bytes.Equal(p.GetPeer(), peer)) {
				return
			}
		case <-deadline:
			in.t.Fatalf("timed out after %v waiting for peer event %v", timeout, state)
		}
	}
}

func (in *instance) healthy() {
	in.t.Helper()
	h, err := in.conn.Health(context.Background())
	if err != nil {
		in.t.Fatalf("Health: %v", err)
	}
	if !h.GetServing() {
		in.t.Fatalf("Health: not serving after start (%s)", h.GetDetail())
	}
}

func up(peer []byte, protocol string, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: peer, Protocol: protocol, Payload: payload}
}

func downTo(peer []byte, protocol string, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Protocol: protocol, Payload: payload}
}
