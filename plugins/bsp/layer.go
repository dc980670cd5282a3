package bsp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the plugin's name, the one a config names.
const Name = "bsp"

// Version is the plugin's version.
const Version = "0.1.0"

// Layer is the bsp sync layer. New makes one; the SDK drives it in order
// (sdk.Lifecycle): Configure opens the store and rebuilds the state,
// Start starts the flusher and the redelivery, Stop waits for both and
// closes the store.
type Layer struct {
	env      sdk.Env
	cfg      Config
	identity []byte
	// node is set by Configure and cleared by Stop; the control calls,
	// which the SDK does not order, read it too.
	node atomic.Pointer[node]
	// wake asks the flusher for a flush (buffered: wakes coalesce).
	wake          chan struct{}
	loopDone      chan struct{}
	redeliverDone chan struct{}
	// deliverMu orders the UP frames as they were decided. Start hands it
	// to the redelivery, so that what earlier runs delivered and the host
	// did not acknowledge goes up again before anything new.
	deliverMu sync.Mutex

	c *counters
}

var (
	_ sdk.Sync        = (*Layer)(nil)
	_ sdk.SyncBatcher = (*Layer)(nil)
)

// New returns an unconfigured bsp layer.
func New() *Layer { return &Layer{c: newCounters(), wake: make(chan struct{}, 1)} }

// Describe implements sdk.Layer. The layer provides "sync" and "causal"
// and needs a secure layer below ("e2e") to authenticate the member each
// frame comes from and to keep payloads confidential: BSP assumes BTP
// below it (§2.2), which does both.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SYNC,
		Name:        Name,
		Version:     Version,
		Description: "Briar's Bramble Synchronisation Protocol (BSP v0) records and ids, with latency-timed retransmission, causal delivery by dependencies, gap repair from any member, compaction and a bounded history",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapSync, sdk.CapCausal, syncv1.CapValidity},
		Requires:    []string{sdk.CapE2E},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it checks the config and the identity,
// opens the store in req.DataDir and rebuilds the state from it.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetNodeIdentity()); n != 0 && n != IdentitySize {
		return nil, fmt.Errorf("bsp: node identity is %d bytes, want %d", n, IdentitySize)
	}
	if req.GetDataDir() == "" {
		return nil, errors.New("bsp: no data directory")
	}
	nd, err := openNode(ctx, req.GetDataDir(), req.GetNodeIdentity(), cfg, l.c, env.Logger, time.Now)
	if err != nil {
		return nil, err
	}
	l.env, l.cfg = env, cfg
	l.node.Store(nd)
	l.identity = bytes.Clone(req.GetNodeIdentity())
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer: it starts the flusher and, from a goroutine
// of its own once Start has returned, delivers again every delivery of
// earlier runs that the host has not acknowledged, in the order they
// first went up. Until that is done nothing new goes up.
func (l *Layer) Start(ctx context.Context, _ *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.deliverMu.Lock()
	nd := l.node.Load()
	ds := nd.unackedDeliveries()
	l.loopDone = make(chan struct{})
	l.redeliverDone = make(chan struct{})
	returned := make(chan struct{})
	defer close(returned)
	go l.flushLoop(nd, l.loopDone)
	go l.redeliver(ds, returned, l.redeliverDone)
	l.kick()
	return &commonv1.StartResponse{LocalAddress: l.identity, DisplayAddress: hex.EncodeToString(l.identity)}, nil
}

// redeliverPage bounds the UP frames of one Emit of the redelivery.
const redeliverPage = 256

// redeliver waits for Start to return, emits ds again in pages and
// releases deliverMu, which Start handed to it.
func (l *Layer) redeliver(ds []delivery, returned <-chan struct{}, done chan struct{}) {
	defer close(done)
	defer l.deliverMu.Unlock()
	ctx := l.env.Run
	select {
	case <-returned:
	case <-ctx.Done():
		return
	}
	for len(ds) > 0 {
		k := min(len(ds), redeliverPage)
		if err := l.emit(ctx, upFrames(ds[:k])); err != nil {
			return
		}
		l.c.redelivered.Add(uint64(k))
		ds = ds[k:]
	}
}

// HandleBatch implements sdk.Layer. UP frames are record streams from
// members (frame.peer authenticated by the layer below); they are handled
// together and committed, and what they make deliverable goes up while
// the commit runs. Messages enter through Send: a DOWN frame is dropped and
// counted, as is a frame without a direction.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	nd := l.node.Load()
	var in []inbound
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_UP:
			in = append(in, inbound{group: f.GetConversation(), from: f.GetPeer(), payload: f.GetPayload(), trace: f.GetTraceId()})
		case commonv1.Direction_DIRECTION_DOWN:
			l.c.downFrame.Inc()
		default:
			l.c.wrongDir.Inc()
		}
	}
	if len(in) == 0 {
		return
	}
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	// The deliveries go up while the receive commits: see node.receive
	// for why that loses nothing and doubles nothing.
	_, err := nd.receive(ctx, in, func(ds []delivery) {
		if err := l.emit(ctx, upFrames(ds)); err == nil {
			l.c.delivered.Add(uint64(len(ds)))
		}
	})
	if err != nil {
		l.env.Logger.Debug("receive", "frames", len(in), "error", err)
		return
	}
	l.kick()
}

// Health implements sdk.Layer: the counters and three levels: pending
// (messages waiting for a dependency), groups, unacknowledged_deliveries.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	h := &commonv1.HealthResponse{Serving: true, Counters: l.c.set.Snapshot()}
	nd := l.node.Load()
	if nd == nil {
		return h
	}
	nh := nd.health()
	h.Counters["pending"] = uint64(nh.pending)
	h.Counters["groups"] = uint64(nh.groups)
	h.Counters["unacknowledged_deliveries"] = uint64(nh.unacked)
	if nh.failed != nil {
		h.Serving = false
		h.Detail = nh.failed.Error()
	}
	return h
}

// Stop implements sdk.Layer: env.Run has ended; it waits for the flusher
// and the redelivery and closes the store.
func (l *Layer) Stop(ctx context.Context) error {
	if l.loopDone != nil {
		<-l.loopDone
	}
	if l.redeliverDone != nil {
		<-l.redeliverDone
	}
	if nd := l.node.Swap(nil); nd != nil {
		return nd.close()
	}
	return nil
}

// kick asks for a flush; a flush in progress takes the wake for the next.
func (l *Layer) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// flushLoop flushes when woken (a send, input that owes acks or requests)
// and when the next record comes due. A flush runs at once when the link
// is idle; what comes in meanwhile goes in the next one (coalescing).
func (l *Layer) flushLoop(nd *node, done chan struct{}) {
	defer close(done)
	run := l.env.Run
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-run.Done():
			return
		case <-l.wake:
		case <-timer.C:
		}
		if l.cfg.Coalesce > 0 {
			select {
			case <-run.Done():
				return
			case <-time.After(l.cfg.Coalesce):
			}
		}
		for {
			now := nd.nowMS()
			out, ups, more, next := nd.flush(now)
			if err := nd.sync(run); err != nil {
				if run.Err() == nil {
					l.env.Logger.Debug("flush", "error", err)
				}
				break
			}
			_ = l.emit(run, downFrames(out)) // lost frames: the records come due again
			if len(ups) > 0 {
				l.deliverMu.Lock()
				if err := l.emit(run, upFrames(ups)); err == nil {
					l.c.delivered.Add(uint64(len(ups)))
				}
				l.deliverMu.Unlock()
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			if next > 0 {
				timer.Reset(time.Duration(max(next-nd.nowMS(), 1)) * time.Millisecond)
			}
			if !more || run.Err() != nil {
				break
			}
		}
	}
}

// downFrames turns a flush's output into DOWN frames.
func downFrames(out []outbound) []*commonv1.Frame {
	frames := make([]*commonv1.Frame, 0, len(out))
	for _, o := range out {
		frames = append(frames, &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			TraceId:      o.trace,
			Conversation: bytes.Clone(o.group),
			Peer:         bytes.Clone(o.peer),
			Payload:      o.payload,
		})
	}
	return frames
}

// upFrames turns deliveries into UP frames: conversation = the group,
// peer = the author, message_id = the id.
func upFrames(ds []delivery) []*commonv1.Frame {
	frames := make([]*commonv1.Frame, 0, len(ds))
	for _, d := range ds {
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_UP,
			TraceId:      d.trace,
			Conversation: bytes.Clone(d.group),
			Peer:         d.author,
			Payload:      d.payload,
			MessageId:    bytes.Clone(d.id[:]),
		}
		if d.ephemeral {
			f.Hints = &commonv1.Hints{Ephemeral: true}
		}
		frames = append(frames, f)
	}
	return frames
}

// emit hands frames to the host. An UP frame lost here stays an
// unacknowledged delivery, which the next Start delivers again.
func (l *Layer) emit(ctx context.Context, frames []*commonv1.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	if err := l.env.Out.Emit(ctx, frames...); err != nil {
		l.env.Logger.Debug("emit", "frames", len(frames), "error", err)
		return err
	}
	return nil
}
