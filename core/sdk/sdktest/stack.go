package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
)

// stopTimeout bounds the Stop of one layer of a Stack.
const stopTimeout = 5 * time.Second

// StackLayer is one layer of a Stack.
type StackLayer struct {
	// Name is the layer's name in boundary names ("p2p", "privacy", ...).
	Name string
	// Open opens the layer (Open(InProcess, ...) for a stack without
	// processes).
	Open Opener
	// Config is the layer's config section; nil means its defaults.
	Config map[string]any
	// DataDir is the layer's data directory; "" gives it a fresh one.
	DataDir string
	// Identity is passed as ConfigureRequest.node_identity.
	Identity []byte
}

// StackConfig describes a Stack.
type StackConfig struct {
	// Layers are the stack's layers, bottom up.
	Layers []StackLayer
	// App receives the UP frames that leave the top layer; nil drops
	// them.
	App func(frames []*commonv1.Frame)
	// Stages run on every boundary, as the host's do (a test may add
	// address translation or fault injection of its own).
	Stages []pipeline.Stage
	// Tap sees every frame handed across a boundary.
	Tap func(boundary string, f *commonv1.Frame)
	// Input sees every frame and event handed to a layer, in the order the
	// layer receives them (exactly one of f and ev is set).
	Input func(layer string, f *commonv1.Frame, ev *commonv1.Event)
}

// Stack is layers wired together by the host's routing core
// (core/pipeline), with no host around them: no contacts, no address
// translation (unless a test adds a stage for it), no restarts. It is how
// a plugin author runs a layer between real neighbours in a test: frames
// cross every boundary as they do in a node, in the same batches, with the
// same flow control. Layers are configured top down and started bottom
// up; each gets the layer below's local address, and the bottom layer the
// overlay protocols the layers above declared.
type Stack struct {
	router  *pipeline.Router
	conns   []sdk.Conn
	links   []sdk.Link
	started []*commonv1.StartResponse
	cancel  context.CancelFunc
}

// NewStack starts a stack; it is stopped, top down, when the test ends.
func NewStack(t testing.TB, cfg StackConfig) *Stack {
	t.Helper()
	names := make([]string, len(cfg.Layers))
	for i, l := range cfg.Layers {
		names[i] = l.Name
	}
	var app pipeline.App
	if cfg.App != nil {
		app = pipeline.AppFunc(func(_ context.Context, frames []*commonv1.Frame) error {
			cfg.App(frames)
			return nil
		})
	}
	r, err := pipeline.New(pipeline.Config{Layers: names, Stages: cfg.Stages, App: app, Tap: cfg.Tap})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{router: r, cancel: cancel, conns: make([]sdk.Conn, len(names)), links: make([]sdk.Link, len(names)), started: make([]*commonv1.StartResponse, len(names))}
	t.Cleanup(s.stop)
	protocols := make([][]*commonv1.Protocol, len(names))
	for i := len(cfg.Layers) - 1; i >= 0; i-- {
		l := cfg.Layers[i]
		conn := l.Open(t)
		s.conns[i] = conn
		section := l.Config
		if section == nil {
			section = map[string]any{}
		}
		js, err := json.Marshal(section)
		if err != nil {
			t.Fatalf("layer %s: config: %v", l.Name, err)
		}
		dir := l.DataDir
		if dir == "" {
			dir = t.TempDir()
		}
		resp, err := conn.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(js), DataDir: dir, NodeName: "stack", NodeIdentity: l.Identity})
		if err != nil {
			t.Fatalf("layer %s: configure: %v", l.Name, err)
		}
		protocols[i] = resp.GetProtocols()
		link, err := conn.Open(ctx, r.Deliverer(ctx, i))
		if err != nil {
			t.Fatalf("layer %s: open: %v", l.Name, err)
		}
		s.links[i] = link
	}
	for i, l := range cfg.Layers {
		req := &commonv1.StartRequest{}
		if i > 0 {
			req.BelowAddress = s.started[i-1].GetLocalAddress()
		} else {
			for _, ps := range protocols[1:] {
				req.Protocols = append(req.Protocols, ps...)
			}
		}
		resp, err := s.conns[i].Start(ctx, req)
		if err != nil {
			t.Fatalf("layer %s: start: %v", l.Name, err)
		}
		s.started[i] = resp
		var in pipeline.Inlet = s.links[i]
		if cfg.Input != nil {
			in = &observedInlet{name: l.Name, in: in, see: cfg.Input}
		}
		r.Door(i).Open(ctx, in)
	}
	return s
}

// Send hands frames from above down into the top layer, as the
// application's messages enter a node.
func (s *Stack) Send(ctx context.Context, frames ...*commonv1.Frame) error {
	return s.router.Send(ctx, len(s.conns)-1, frames)
}

// Started returns layer i's StartResponse.
func (s *Stack) Started(i int) *commonv1.StartResponse { return s.started[i] }

// Conn returns layer i's connection, for its typed control client.
func (s *Stack) Conn(i int) sdk.Conn { return s.conns[i] }

// Router returns the stack's routing core, for its boundary counters.
func (s *Stack) Router() *pipeline.Router { return s.router }

// stop stops the layers top down, while the layers below can still take
// what a stopping layer flushes.
func (s *Stack) stop() {
	for i := len(s.conns) - 1; i >= 0; i-- {
		if s.conns[i] == nil {
			continue
		}
		s.router.Door(i).Shut()
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		_ = s.conns[i].Stop(ctx)
		cancel()
		if s.links[i] != nil {
			s.links[i].Close()
		}
		s.conns[i].Close()
	}
	s.cancel()
}

// observedInlet shows a test everything handed to a layer, in order.
type observedInlet struct {
	name string
	in   pipeline.Inlet
	see  func(layer string, f *commonv1.Frame, ev *commonv1.Event)
	mu   sync.Mutex
}

func (o *observedInlet) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	o.mu.Lock()
	for _, f := range frames {
		o.see(o.name, f, nil)
	}
	o.mu.Unlock()
	if err := o.in.Emit(ctx, frames...); err != nil {
		return fmt.Errorf("layer %s: %w", o.name, err)
	}
	return nil
}

func (o *observedInlet) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	o.mu.Lock()
	o.see(o.name, nil, ev)
	o.mu.Unlock()
	return o.in.EmitEvent(ctx, ev)
}
