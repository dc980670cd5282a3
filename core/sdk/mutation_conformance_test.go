package sdk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/conformance"
	"github.com/strata-msg/strata/core/sdk/direct"
	"github.com/strata-msg/strata/core/sdk/internal/boxlayer"
	"github.com/strata-msg/strata/core/sdk/internal/echolayer"
	"github.com/strata-msg/strata/core/sdk/internal/memp2p"
	"github.com/strata-msg/strata/core/sdk/internal/probe"
	"github.com/strata-msg/strata/core/sdk/internal/synclayer"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// mutation breaks one field of the frames a layer emits in one direction.
type mutation struct {
	name string
	dir  commonv1.Direction
	edit func(*commonv1.Frame)
}

// The mutations, each a way a layer can break a field of its contract.
var (
	clearPeer    = func(f *commonv1.Frame) { f.Peer = nil }
	forgePeer    = func(f *commonv1.Frame) { f.Peer = []byte("forged-peer-0123456789abcdef0123") }
	zeroTrace    = func(f *commonv1.Frame) { f.TraceId = 0 }
	dropHints    = func(f *commonv1.Frame) { f.Hints = nil }
	changeConv   = func(f *commonv1.Frame) { f.Conversation = append([]byte("other-"), f.GetConversation()...) }
	dropID       = func(f *commonv1.Frame) { f.MessageId = nil }
	changeID     = func(f *commonv1.Frame) { f.MessageId = append([]byte{0xee}, f.GetMessageId()...) }
	changeProto  = func(f *commonv1.Frame) { f.Protocol += "-x" }
	damage       = func(f *commonv1.Frame) { f.Payload = append(append([]byte(nil), f.GetPayload()...), '!') }
	unspecified  = func(f *commonv1.Frame) { f.Direction = commonv1.Direction_DIRECTION_UNSPECIFIED }
	flip         = func(f *commonv1.Frame) { f.Direction = 3 - f.GetDirection() } // UP (2) <-> DOWN (1)
	up, down     = commonv1.Direction_DIRECTION_UP, commonv1.Direction_DIRECTION_DOWN
	mutationOpts = conformance.Options{Timeout: 3 * time.Second}
)

// suiteCase is one suite with its honest fixture and the mutations it must
// catch.
type suiteCase struct {
	suite     string
	kind      commonv1.LayerKind
	fixture   func() sdk.Layer
	run       func(t *probe.T, open sdktest.Opener)
	mutations []mutation
}

// TestSuitesCatchMutations is the test of the suites: for each field a
// contract promises, a layer that breaks it (an honest fixture whose output
// a wrapper edits) must fail its suite, and the honest fixture must pass.
// The suites run in process against a probe, a fake test that records
// failure and stops at the first; each mutation is caught as its frame
// arrives, not by a timeout, except where the table says so (the timeout
// is then mutationOpts.Timeout, not 15 s).
func TestSuitesCatchMutations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every suite once per mutation")
	}
	cases := []suiteCase{
		{
			suite: "Layer", kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
			fixture: func() sdk.Layer { return echolayer.New() },
			run:     func(t *probe.T, open sdktest.Opener) { conformance.Layer(t, open, mutationOpts) },
			mutations: []mutation{
				{"unspecified direction", up, unspecified},
			},
		},
		{
			suite: "P2P", kind: commonv1.LayerKind_LAYER_KIND_P2P,
			fixture: func() sdk.Layer { return memp2p.New() },
			run:     func(t *probe.T, open sdktest.Opener) { conformance.P2P(t, open, mutationOpts) },
			mutations: []mutation{
				{"UP without peer", up, clearPeer},
				{"UP from a forged peer", up, forgePeer},
				{"UP on another protocol", up, changeProto},
				{"UP payload damaged", up, damage},
				{"UP sent DOWN", up, flip},
				{"UP without direction", up, unspecified},
			},
		},
		{
			suite: "Privacy", kind: commonv1.LayerKind_LAYER_KIND_PRIVACY,
			fixture: func() sdk.Layer {
				return direct.New(direct.Spec{Name: "directfix", Version: "1.0.0", Description: "the direct skeleton as is", Protocol: "directfix"})
			},
			run: func(t *probe.T, open sdktest.Opener) { conformance.Privacy(t, open, mutationOpts) },
			mutations: []mutation{
				{"UP without peer", up, clearPeer},
				{"UP from a forged peer", up, forgePeer},
				{"UP trace id zeroed", up, zeroTrace},
				{"UP hints dropped", up, dropHints},
				{"UP conversation changed", up, changeConv},
				{"UP payload damaged", up, damage},
				{"UP sent DOWN", up, flip},
				{"UP without direction", up, unspecified},
				{"DOWN trace id zeroed", down, zeroTrace},
				{"DOWN hints dropped", down, dropHints},
				{"DOWN to a forged peer", down, forgePeer},
				{"DOWN on another protocol", down, changeProto},
				{"DOWN sent UP", down, flip},
			},
		},
		{
			suite: "Secure", kind: commonv1.LayerKind_LAYER_KIND_SECURE,
			fixture: func() sdk.Layer { return boxlayer.New() },
			run:     func(t *probe.T, open sdktest.Opener) { conformance.Secure(t, open, mutationOpts) },
			mutations: []mutation{
				{"UP without peer", up, clearPeer},
				{"UP from a forged peer", up, forgePeer},
				{"UP trace id zeroed", up, zeroTrace},
				{"UP hints dropped", up, dropHints},
				{"UP conversation changed", up, changeConv},
				{"UP payload damaged", up, damage},
				{"UP sent DOWN", up, flip},
				{"UP without direction", up, unspecified},
				{"DOWN trace id zeroed", down, zeroTrace},
				{"DOWN hints dropped", down, dropHints},
				{"DOWN to a forged peer", down, forgePeer},
				{"DOWN sent UP", down, flip},
			},
		},
		{
			suite: "Sync", kind: commonv1.LayerKind_LAYER_KIND_SYNC,
			fixture: func() sdk.Layer { return synclayer.New() },
			run:     func(t *probe.T, open sdktest.Opener) { conformance.Sync(t, open, mutationOpts) },
			mutations: []mutation{
				{"UP without peer", up, clearPeer},
				{"UP from a forged peer", up, forgePeer},
				{"UP trace id zeroed", up, zeroTrace},
				{"UP conversation changed", up, changeConv},
				{"UP message id dropped", up, dropID},
				{"UP message id changed", up, changeID},
				{"UP payload damaged", up, damage},
				{"UP sent DOWN (caught by timeout)", up, flip},
				{"UP without direction", up, unspecified},
				{"DOWN conversation changed", down, changeConv},
				{"DOWN to a forged peer", down, forgePeer},
				{"DOWN trace id zeroed", down, zeroTrace},
				{"DOWN sent UP", down, flip},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.suite, func(t *testing.T) {
			t.Run("honest", func(t *testing.T) {
				res := probe.Check(t, func(p *probe.T) { c.run(p, sdktest.Open(sdktest.InProcess, c.kind, c.fixture, "")) })
				if res.Failed {
					t.Fatalf("the honest fixture fails the %s suite:\n%s", c.suite, res)
				}
			})
			for _, m := range c.mutations {
				t.Run(strings.ReplaceAll(m.name, " ", "_"), func(t *testing.T) {
					start := time.Now()
					open := sdktest.Open(sdktest.InProcess, c.kind, func() sdk.Layer { return mutate(c.fixture(), m) }, "")
					res := probe.Check(t, func(p *probe.T) { c.run(p, open) })
					if !res.Failed {
						t.Fatalf("the %s suite passed a layer whose %s", c.suite, m.name)
					}
					t.Logf("failed after %v as it should:\n%s", time.Since(start).Round(time.Millisecond), res.Failures[0])
				})
			}
		})
	}
}

// mutate wraps l so that every frame it emits in m.dir is edited by m, and
// keeps l's control API.
func mutate(l sdk.Layer, m mutation) sdk.Layer {
	base := &mutant{Layer: l, m: m}
	switch c := l.(type) {
	case p2pv1.ControlServer:
		return struct {
			*mutant
			p2pv1.ControlServer
		}{base, c}
	case privacyv1.ControlServer:
		return struct {
			*mutant
			privacyv1.ControlServer
		}{base, c}
	case securev1.ControlServer:
		return struct {
			*mutant
			securev1.ControlServer
		}{base, c}
	case sdk.SyncControl:
		return struct {
			*mutant
			sdk.SyncControl
		}{base, c}
	}
	return base
}

// mutant is a layer whose emitter edits its output.
type mutant struct {
	sdk.Layer
	m mutation
}

// Configure hands the layer an emitter that applies the mutation.
func (l *mutant) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	env.Out = &mutatingOut{out: env.Out, m: l.m}
	return l.Layer.Configure(ctx, req, env)
}

// mutatingOut edits copies of the frames in its direction on their way out.
type mutatingOut struct {
	out sdk.Emitter
	m   mutation
}

func (o *mutatingOut) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	edited := make([]*commonv1.Frame, len(frames))
	for i, f := range frames {
		if f.GetDirection() == o.m.dir {
			f = proto.CloneOf(f)
			o.m.edit(f)
		}
		edited[i] = f
	}
	return o.out.Emit(ctx, edited...)
}

func (o *mutatingOut) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	return o.out.EmitEvent(ctx, ev)
}
