package whisper_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/devp2p"
	"github.com/strata-msg/strata/plugins/whisper"
)

// interopHost is a minimal in-process host for two layers, devp2p below
// whisper, routed as host/node does: devp2p's UP frames and events go to
// whisper.HandleBatch, whisper's DOWN frames to devp2p.HandleBatch, and
// whisper's UP frames to the test. Each layer gets its batches from one
// goroutine of its own, one batch at a time, so no HandleBatch is ever
// entered from inside another on the same goroutine.
type interopHost struct {
	p2p *devp2p.Layer
	shh *whisper.Layer

	p2pStart, shhStart *commonv1.StartResponse

	toShh chan *commonv1.Batch
	toP2P chan *commonv1.Batch
	app   chan *commonv1.Frame

	mu      sync.Mutex
	sniffed []*commonv1.Frame     // shh UP frames whisper has handled, in order
	events  []*commonv1.PeerEvent // devp2p peer events whisper has handled

	// sniff keeps a copy of every shh frame and peer event whisper
	// handled, and whisper's UP frames in app; without it (benchmarks)
	// nothing is kept and UP frames are dropped.
	sniff bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// hostEmitter is the sdk.Emitter of one layer: it queues its output on the
// host's channels (and never calls a layer itself).
type hostEmitter struct {
	h     *interopHost
	frame func(ctx context.Context, f []*commonv1.Frame) error
	event func(ctx context.Context, ev *commonv1.Event) error
}

func (e hostEmitter) Emit(ctx context.Context, fs ...*commonv1.Frame) error {
	return e.frame(ctx, fs)
}

func (e hostEmitter) EmitEvent(ctx context.Context, ev *commonv1.Event) error {
	if e.event == nil {
		return nil
	}
	return e.event(ctx, ev)
}

func (h *interopHost) send(ctx context.Context, ch chan *commonv1.Batch, b *commonv1.Batch) error {
	select {
	case ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.ctx.Done():
		return errors.New("host stopped")
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	h := &interopHost{
		sniff:  sniff,
		p2p:    devp2p.New(),
		shh:    whisper.New(),
		toShh:  make(chan *commonv1.Batch, 4096),
		toP2P:  make(chan *commonv1.Batch, 4096),
		app:    make(chan *commonv1.Frame, 4096),
		ctx:    ctx,
		cancel: cancel,
	}
	p2pOut := hostEmitter{h: h,
		frame: func(ctx context.Context, fs []*commonv1.Frame) error {
			return h.send(ctx, h.toShh, &commonv1.Batch{Frames: fs})
		},
		event: func(ctx context.Context, ev *commonv1.Event) error {
			return h.send(ctx, h.toShh, &commonv1.Batch{Events: []*commonv1.Event{ev}})
		},
	}
	shhOut := hostEmitter{h: h,
		frame: func(ctx context.Context, fs []*commonv1.Frame) error {
			var downs []*commonv1.Frame
			for _, f := range fs {
				if f.GetDirection() == commonv1.Direction_DIRECTION_DOWN {
					downs = append(downs, f)
					continue
				}
				if !h.sniff {
					continue
				}
				select {
				case h.app <- f:
				case <-ctx.Done():
					return ctx.Err()
				case <-h.ctx.Done():
					return errors.New("host stopped")
				}
			}
			if len(downs) == 0 {
				return nil
			}
			return h.send(ctx, h.toP2P, &commonv1.Batch{Frames: downs})
		},
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	p2pCfg, _ := json.Marshal(p2pConfig)
	if _, err := h.p2p.Configure(cctx, &commonv1.ConfigureRequest{ConfigJson: string(p2pCfg), DataDir: t.TempDir(), NodeName: "interop"}, sdk.Env{Out: p2pOut}); err != nil {
		t.Fatalf("devp2p Configure: %v", err)
	}
	shhCfg, _ := json.Marshal(shhConfig)
	cres, err := h.shh.Configure(cctx, &commonv1.ConfigureRequest{ConfigJson: string(shhCfg), DataDir: t.TempDir(), NodeName: "interop"}, sdk.Env{Out: shhOut})
	if err != nil {
		t.Fatalf("whisper Configure: %v", err)
	}
	if h.p2pStart, err = h.p2p.Start(cctx, &commonv1.StartRequest{Protocols: cres.GetProtocols()}); err != nil {
		t.Fatalf("devp2p Start: %v", err)
	}
	if h.shhStart, err = h.shh.Start(cctx, &commonv1.StartRequest{BelowAddress: h.p2pStart.GetLocalAddress()}); err != nil {
		t.Fatalf("whisper Start: %v", err)
	}
	h.wg.Add(2)
	go func() { // devp2p → whisper
		defer h.wg.Done()
		for {
			select {
			case <-h.ctx.Done():
				return
			case b := <-h.toShh:
				h.shh.HandleBatch(h.ctx, b)
				if !h.sniff {
					continue
				}
				h.mu.Lock()
				for _, f := range b.GetFrames() {
					if f.GetDirection() == commonv1.Direction_DIRECTION_UP && f.GetProtocol() == "shh" {
						h.sniffed = append(h.sniffed, f)
					}
				}
				for _, ev := range b.GetEvents() {
					if p := ev.GetPeer(); p != nil {
						h.events = append(h.events, p)
					}
				}
				h.mu.Unlock()
			}
		}
	}()
	go func() { // whisper (or the test) → devp2p
		defer h.wg.Done()
		for {
			select {
			case <-h.ctx.Done():
				return
			case b := <-h.toP2P:
				h.p2p.HandleBatch(h.ctx, b)
			}
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *interopHost) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.cancel()
	_ = h.shh.Stop(ctx)
	_ = h.p2p.Stop(ctx)
	h.wg.Wait()
}

// down hands DOWN frames to the whisper layer, as the layer above would,
// through the same queue as devp2p's input (one batch at a time).
func (h *interopHost) down(ctx context.Context, fs ...*commonv1.Frame) error {
	return h.send(ctx, h.toShh, &commonv1.Batch{Frames: fs})
}

// raw hands DOWN frames straight to devp2p, bypassing whisper.
func (h *interopHost) raw(ctx context.Context, fs ...*commonv1.Frame) error {
	return h.send(ctx, h.toP2P, &commonv1.Batch{Frames: fs})
}

// sniffedSince returns the shh UP frames whisper has handled from index i on.
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
