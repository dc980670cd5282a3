package mvds

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the plugin's name, the one a config names.
const Name = "mvds"

// Version is the plugin's version.
const Version = "1.0.0"

// Layer is the mvds sync layer. New makes one; the SDK drives it.
type Layer struct {
	// mu guards the lifecycle fields below.
	mu       sync.Mutex
	env      sdk.Env
	cfg      settings
	identity []byte
	node     *node
	started  bool
	stopped  bool
	// runCtx ends at Stop; it bounds every Emit and the epoch loop.
	runCtx    context.Context
	runCancel context.CancelFunc
	loopDone  chan struct{}
	// redeliverDone is closed when the redelivery that Start began ends.
	redeliverDone chan struct{}

	// startMu serializes Start calls.
	startMu sync.Mutex
	// deliverMu orders the emission of UP frames as they were decided. The
	// first Start takes it and hands it to the redelivery, so that what
	// earlier runs delivered goes up again before anything new.
	deliverMu sync.Mutex
	// emitMu is held (read) around every Emit; Stop takes it to wait for
	// emissions in flight, after which nothing is emitted.
	emitMu sync.RWMutex

	c counters
}

var _ sdk.Sync = (*Layer)(nil)

// New returns an unconfigured mvds layer.
func New() *Layer { return &Layer{} }

// Describe implements sdk.Layer. The layer provides "sync" and "causal"
// and needs a secure layer below ("e2e"): it relies on it to authenticate
// the member each frame comes from and to keep payloads confidential.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SYNC,
		Name:        Name,
		Version:     Version,
		Description: "Vac MVDS (2/MVDS) data sync: acks, offers, requests and retransmission by epochs, with causal delivery by parents",
		Config:      schema(),
		Provides:    []string{"sync", "causal"},
		Requires:    []string{"e2e"},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it checks the config and the identity,
// opens the store in req.DataDir and rebuilds the node's state from it.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := parseConfig(req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetNodeIdentity()); n != 0 && n != IdentitySize {
		return nil, fmt.Errorf("mvds: node identity is %d bytes, want %d", n, IdentitySize)
	}
	if req.GetDataDir() == "" {
		return nil, errors.New("mvds: no data directory")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.node != nil || l.stopped {
		return nil, errors.New("mvds: configured twice")
	}
	nd, err := openNode(ctx, req.GetDataDir(), req.GetNodeIdentity(), cfg, &l.c, env.Logger, time.Now)
	if err != nil {
		return nil, err
	}
	l.env, l.cfg, l.node = env, cfg, nd
	l.identity = bytes.Clone(req.GetNodeIdentity())
	l.runCtx, l.runCancel = context.WithCancel(context.Background())
	return &commonv1.ConfigureResponse{}, nil
}

// Start implements sdk.Layer: it starts the epoch loop, delivers what the
// store holds ready (a crash can leave messages whose parents are all
// delivered) and, from a goroutine of its own once Start has returned,
// delivers again every delivery of earlier runs that the host has not
// acknowledged, in the order they first went up, then the ready ones.
// Until that is done nothing new goes up (HandleBatch waits), so causal
// order holds across the restart; an Emit that blocks delays HandleBatch,
// never Start. A second Start does nothing.
func (l *Layer) Start(ctx context.Context, _ *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	l.mu.Lock()
	nd, started, stopped := l.node, l.started, l.stopped
	resp := &commonv1.StartResponse{LocalAddress: l.identity, DisplayAddress: hex.EncodeToString(l.identity)}
	l.mu.Unlock()
	if nd == nil || stopped {
		return nil, errors.New("mvds: Start before Configure or after Stop")
	}
	if started {
		return resp, nil
	}
	// Nobody holds deliverMu before the first Start: HandleBatch takes it
	// only once the layer runs.
	l.deliverMu.Lock()
	upto, ds, err := nd.start(ctx)
	if err != nil {
		l.deliverMu.Unlock()
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		l.deliverMu.Unlock()
		return nil, errors.New("mvds: stopped during Start")
	}
	l.started = true
	l.loopDone = make(chan struct{})
	l.redeliverDone = make(chan struct{})
	returned := make(chan struct{})
	defer close(returned)
	go l.epochLoop(l.loopDone)
	go l.redeliverAll(nd, upto, ds, returned, l.redeliverDone)
	return resp, nil
}

// redeliverAll waits for Start to return, emits again, in pages of
// redeliveryPage, the unacknowledged deliveries of earlier runs (sequence
// numbers up to upto), then the deliveries ds that Start made, and
// releases deliverMu, which Start handed to it. It stops when the layer
// stops or an Emit fails (what it did not emit stays unacknowledged, for
// the next Start).
func (l *Layer) redeliverAll(nd *node, upto int64, ds []delivery, returned <-chan struct{}, done chan struct{}) {
	defer close(done)
	defer l.deliverMu.Unlock()
	ctx := l.runCtx
	select {
	case <-returned:
	case <-ctx.Done():
		return
	}
	for after := int64(0); after < upto; {
		page, last, err := nd.redeliver(ctx, after, upto, redeliveryPage)
		if err != nil {
			if ctx.Err() == nil {
				l.env.Logger.Debug("redeliver", "error", err)
			}
			return
		}
		if len(page) == 0 {
			break
		}
		if err := l.emit(ctx, l.upFrames(page)); err != nil {
			return
		}
		l.c.redelivered.Add(uint64(len(page)))
		after = last
	}
	if err := l.emit(ctx, l.upFrames(ds)); err == nil {
		l.c.delivered.Add(uint64(len(ds)))
	}
}

// HandleBatch implements sdk.Layer. UP frames are payloads from members
// (their frame.peer authenticated by the layer below); they are handled in
// one transaction, and the messages they make deliverable go up once it is
// committed. A DOWN frame from above is a Send without parents and without
// an answer: persistent unless hints.ephemeral is set. Anything else is
// dropped and counted.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	nd := l.running()
	if nd == nil {
		for range b.GetFrames() {
			l.c.drop(dropNotRunning)
		}
		return
	}
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	var in []inbound
	var down []*commonv1.Frame
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_UP:
			in = append(in, inbound{group: f.GetConversation(), from: f.GetPeer(), payload: f.GetPayload(), trace: f.GetTraceId()})
		case commonv1.Direction_DIRECTION_DOWN:
			down = append(down, f)
		default:
			l.c.drop(dropWrongDirection)
		}
	}
	if len(in) > 0 {
		ds, err := nd.receive(ctx, in)
		if err != nil {
			l.env.Logger.Debug("receive", "frames", len(in), "error", err)
		}
		if err := l.emit(ctx, l.upFrames(ds)); err == nil {
			l.c.delivered.Add(uint64(len(ds)))
		}
	}
	for _, f := range down {
		if _, err := nd.send(ctx, f.GetConversation(), f.GetPayload(), nil, f.GetHints().GetEphemeral()); err != nil {
			l.c.drop(dropBadSend)
			l.env.Logger.Debug("send from a DOWN frame", "error", err)
			continue
		}
		l.c.sentDown.Add(1)
	}
}

// Health implements sdk.Layer. Besides the counters (counters.go) it
// reports three levels: pending (messages waiting for a parent, all
// groups), groups, and unacknowledged_deliveries (messages delivered up
// that the host has not acknowledged).
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	nd, started, stopped := l.node, l.started, l.stopped
	l.mu.Unlock()
	h := &commonv1.HealthResponse{Counters: l.c.snapshot()}
	var failed error
	if nd != nil {
		nh := nd.health()
		h.Counters["pending"] = uint64(nh.pending)
		h.Counters["groups"] = uint64(nh.groups)
		h.Counters["unacknowledged_deliveries"] = uint64(nh.unacked)
		failed = nh.failed
	}
	h.Serving = nd != nil && started && !stopped && failed == nil
	switch {
	case failed != nil:
		h.Detail = "storage failed: " + failed.Error()
	case stopped:
		h.Detail = "stopped"
	case nd == nil:
		h.Detail = "not configured"
	case !started:
		h.Detail = "not started"
	}
	return h
}

// Stop implements sdk.Layer: it ends the epoch loop and the redelivery,
// waits for emissions in flight, persists the epoch and closes the store.
// It may be called more than once.
func (l *Layer) Stop(ctx context.Context) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	done, redone, nd := l.loopDone, l.redeliverDone, l.node
	l.mu.Unlock()
	if l.runCancel != nil {
		l.runCancel()
	}
	if done != nil {
		<-done
	}
	if redone != nil {
		<-redone
	}
	l.emitMu.Lock() // no Emit is in flight, and none starts: stopped is set
	defer l.emitMu.Unlock()
	if nd == nil {
		return nil
	}
	return nd.close(ctx)
}

// running returns the node if the layer handles traffic.
func (l *Layer) running() *node {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started || l.stopped {
		return nil
	}
	return l.node
}

// epochLoop runs an epoch every cfg.epoch until Stop and emits its
// payloads.
func (l *Layer) epochLoop(done chan struct{}) {
	defer close(done)
	t := time.NewTicker(l.cfg.epoch)
	defer t.Stop()
	for {
		select {
		case <-l.runCtx.Done():
			return
		case <-t.C:
		}
		out, err := l.node.tick(l.runCtx)
		if err != nil {
			if l.runCtx.Err() == nil {
				l.env.Logger.Debug("epoch", "error", err)
			}
			continue
		}
		_ = l.emit(l.runCtx, downFrames(out)) // lost payloads: the records come due again
	}
}

// downFrames turns an epoch's payloads into DOWN frames.
func downFrames(out []outbound) []*commonv1.Frame {
	frames := make([]*commonv1.Frame, 0, len(out))
	for _, o := range out {
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			Conversation: bytes.Clone(o.group),
			Peer:         bytes.Clone(o.peer),
			Payload:      o.payload,
		}
		if o.ephemeral {
			f.Hints = &commonv1.Hints{Ephemeral: true}
		}
		frames = append(frames, f)
	}
	return frames
}

// upFrames turns deliveries into UP frames: conversation = the group,
// peer = the author, message_id = the id.
func (l *Layer) upFrames(ds []delivery) []*commonv1.Frame {
	frames := make([]*commonv1.Frame, 0, len(ds))
	for _, d := range ds {
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_UP,
			TraceId:      d.trace,
			Conversation: bytes.Clone(d.group),
			Peer:         bytes.Clone(d.author),
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

// errStopped is emit's error once the layer has stopped.
var errStopped = errors.New("mvds: stopped")

// emit hands frames to the host unless the layer has stopped. It gives up
// when ctx ends or the layer stops, and says whether the frames were
// handed over. An UP frame lost here (a stop, a broken stream) stays an
// unacknowledged delivery: the next Start delivers it again.
func (l *Layer) emit(ctx context.Context, frames []*commonv1.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	l.emitMu.RLock()
	defer l.emitMu.RUnlock()
	l.mu.Lock()
	stopped := l.stopped
	l.mu.Unlock()
	if stopped {
		return errStopped
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.runCtx, cancel)()
	if err := l.env.Out.Emit(ectx, frames...); err != nil {
		l.env.Logger.Debug("emit", "frames", len(frames), "error", err)
		return err
	}
	return nil
}
