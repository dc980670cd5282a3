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

// benchHost is our node under test in the benchmarks: the real devp2p and
// whisper layers, in process, routed as interopHost (interop_host_test.go)
// and host/node route them: devp2p's UP frames and events go to
// whisper.HandleBatch, whisper's DOWN frames to devp2p.HandleBatch, each
// layer fed by one goroutine of its own, one batch at a time. Unlike
// interopHost it keeps no copy of the frames it routes (no sniffing), and
// it takes a testing.TB.
type benchHost struct {
	p2p *devp2p.Layer
	shh *whisper.Layer

	toShh chan *commonv1.Batch
	toP2P chan *commonv1.Batch

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (h *benchHost) send(ctx context.Context, ch chan *commonv1.Batch, b *commonv1.Batch) error {
	select {
	case ch <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.ctx.Done():
		return errors.New("host stopped")
	}
}

func newBenchHost(tb testing.TB, p2pConfig, shhConfig map[string]any) *benchHost {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &benchHost{
		p2p:    devp2p.New(),
		shh:    whisper.New(),
		toShh:  make(chan *commonv1.Batch, 4096),
		toP2P:  make(chan *commonv1.Batch, 4096),
		ctx:    ctx,
		cancel: cancel,
	}
	p2pOut := hostEmitter{
		frame: func(ctx context.Context, fs []*commonv1.Frame) error {
			return h.send(ctx, h.toShh, &commonv1.Batch{Frames: fs})
		},
		event: func(ctx context.Context, ev *commonv1.Event) error {
			return h.send(ctx, h.toShh, &commonv1.Batch{Events: []*commonv1.Event{ev}})
		},
	}
	shhOut := hostEmitter{
		frame: func(ctx context.Context, fs []*commonv1.Frame) error {
			var downs []*commonv1.Frame
			for _, f := range fs {
				if f.GetDirection() == commonv1.Direction_DIRECTION_DOWN {
					downs = append(downs, f)
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
	if _, err := h.p2p.Configure(cctx, &commonv1.ConfigureRequest{ConfigJson: string(p2pCfg), DataDir: tb.TempDir(), NodeName: "bench"}, sdk.Env{Out: p2pOut}); err != nil {
		tb.Fatalf("devp2p Configure: %v", err)
	}
	shhCfg, _ := json.Marshal(shhConfig)
	cres, err := h.shh.Configure(cctx, &commonv1.ConfigureRequest{ConfigJson: string(shhCfg), DataDir: tb.TempDir(), NodeName: "bench"}, sdk.Env{Out: shhOut})
	if err != nil {
		tb.Fatalf("whisper Configure: %v", err)
	}
	p2pStart, err := h.p2p.Start(cctx, &commonv1.StartRequest{Protocols: cres.GetProtocols()})
	if err != nil {
		tb.Fatalf("devp2p Start: %v", err)
	}
	if _, err := h.shh.Start(cctx, &commonv1.StartRequest{BelowAddress: p2pStart.GetLocalAddress()}); err != nil {
		tb.Fatalf("whisper Start: %v", err)
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
			}
		}
	}()
	go func() { // whisper → devp2p
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
	tb.Cleanup(h.stop)
	return h
}

func (h *benchHost) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.cancel()
	_ = h.shh.Stop(ctx)
	_ = h.p2p.Stop(ctx)
	h.wg.Wait()
}

// enode is the URL of our devp2p node, for the test peers to dial.
func (h *benchHost) enode(tb testing.TB) string {
	tb.Helper()
	n, err := h.p2p.NodeInfo(context.Background(), &p2pv1.NodeInfoRequest{})
	if err != nil {
		tb.Fatalf("devp2p NodeInfo: %v", err)
	}
	return n.GetDisplayId()
}

func (h *benchHost) counters() (shh, p2p map[string]uint64) {
	return h.shh.Health(context.Background()).GetCounters(), h.p2p.Health(context.Background()).GetCounters()
}
