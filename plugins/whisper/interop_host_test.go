package whisper_test

import (
	"context"
	"sync"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/devp2p"
	"github.com/strata-msg/strata/plugins/whisper"
)

// interopHost is our devp2p layer below our whisper layer, in process,
// routed by the host's own routing core (sdktest.Stack): devp2p's UP frames
// and events go to whisper, whisper's DOWN frames to devp2p, whisper's UP
// frames to the test, with the host's batching and flow control.
type interopHost struct {
	p2p *devp2p.Layer
	shh *whisper.Layer

	p2pStart, shhStart *commonv1.StartResponse

	stack *sdktest.Stack
	app   chan *commonv1.Frame

	mu      sync.Mutex
	sniffed []*commonv1.Frame     // shh UP frames handed to whisper, in order
	events  []*commonv1.PeerEvent // devp2p peer events handed to whisper

	// sniff keeps a copy of every shh frame and peer event handed to
	// whisper, and whisper's UP frames in app; without it (benchmarks)
	// nothing is kept and UP frames are dropped.
	sniff bool
}

// newInteropHost starts our devp2p (on 127.0.0.1, no discovery) and
// whisper layers, routed to each other.
func newInteropHost(t testing.TB, shhConfig map[string]any) *interopHost {
	return newHost(t, map[string]any{"listen": "127.0.0.1:0", "discovery": "off", "sticky_port": false}, shhConfig, true)
}

// newHost starts the two layers with these configs; sniff says whether the
// host keeps what it routes for the test to inspect.
func newHost(t testing.TB, p2pConfig, shhConfig map[string]any, sniff bool) *interopHost {
	t.Helper()
	h := &interopHost{sniff: sniff, p2p: devp2p.New(), shh: whisper.New(), app: make(chan *commonv1.Frame, 4096)}
	p2p := sdktest.Open(sdktest.InProcess, commonv1.LayerKind_LAYER_KIND_P2P, func() sdk.Layer { return h.p2p }, "")
	shh := sdktest.Open(sdktest.InProcess, commonv1.LayerKind_LAYER_KIND_PRIVACY, func() sdk.Layer { return h.shh }, "")
	cfg := sdktest.StackConfig{Layers: []sdktest.StackLayer{
		{Name: "p2p", Open: p2p, Config: p2pConfig},
		{Name: "privacy", Open: shh, Config: shhConfig},
	}}
	if sniff {
		cfg.App = func(fs []*commonv1.Frame) {
			for _, f := range fs {
				h.app <- f
			}
		}
		cfg.Input = h.observe
	}
	h.stack = sdktest.NewStack(t, cfg)
	h.p2pStart, h.shhStart = h.stack.Started(0), h.stack.Started(1)
	return h
}

// observe keeps the shh UP frames and the peer events handed to whisper.
func (h *interopHost) observe(layer string, f *commonv1.Frame, ev *commonv1.Event) {
	if layer != "privacy" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case f != nil && f.GetDirection() == commonv1.Direction_DIRECTION_UP && f.GetProtocol() == "shh":
		h.sniffed = append(h.sniffed, f)
	case ev.GetPeer() != nil:
		h.events = append(h.events, ev.GetPeer())
	}
}

// down hands DOWN frames to the whisper layer, as the layer above would.
func (h *interopHost) down(ctx context.Context, fs ...*commonv1.Frame) error {
	return h.stack.Send(ctx, fs...)
}

// raw hands DOWN frames straight to devp2p, bypassing whisper.
func (h *interopHost) raw(ctx context.Context, fs ...*commonv1.Frame) error {
	return h.stack.Router().Send(ctx, 0, fs)
}

// sniffedSince returns the shh UP frames handed to whisper from index i on.
func (h *interopHost) sniffedSince(i int) []*commonv1.Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i > len(h.sniffed) {
		return nil
	}
	return append([]*commonv1.Frame(nil), h.sniffed[i:]...)
}

func (h *interopHost) sniffCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sniffed)
}

func (h *interopHost) peerEvents() []*commonv1.PeerEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*commonv1.PeerEvent(nil), h.events...)
}

func (h *interopHost) counters() map[string]uint64 {
	return h.shh.Health(context.Background()).GetCounters()
}

// p2pCounters are the devp2p layer's counters.
func (h *interopHost) p2pCounters() map[string]uint64 {
	return h.p2p.Health(context.Background()).GetCounters()
}

// enode is the URL of our devp2p node, for test peers to dial.
func (h *interopHost) enode(t testing.TB) string {
	t.Helper()
	n, err := h.p2p.NodeInfo(context.Background(), &p2pv1.NodeInfoRequest{})
	if err != nil {
		t.Fatalf("devp2p NodeInfo: %v", err)
	}
	return n.GetDisplayId()
}
