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

	// deliverMu orders the emission of UP frames as they were decided.
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

// Start implements sdk.Layer: it starts the epoch loop and delivers what
// the store holds ready.
func (l *Layer) Start(ctx context.Context, _ *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	l.mu.Lock()
	if l.node == nil || l.stopped {
		l.mu.Unlock()
		return nil, errors.New("mvds: Start before Configure or after Stop")
	}
	if !l.started {
		l.started = true
		l.loopDone = make(chan struct{})
		go l.epochLoop(l.loopDone)
	}
	nd := l.node
	l.mu.Unlock()

	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	ds, err := nd.deliverReady(ctx)
	if err != nil {
		return nil, err
	}
	l.emit(l.runCtx, l.upFrames(ds))
	return &commonv1.StartResponse{LocalAddress: l.identity, DisplayAddress: hex.EncodeToString(l.identity)}, nil
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
		l.emit(ctx, l.upFrames(ds))
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
// reports two levels: pending (messages waiting for a parent, all groups)
// and groups.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	l.mu.Lock()
	nd, started, stopped := l.node, l.started, l.stopped
	l.mu.Unlock()
	h := &commonv1.HealthResponse{Counters: l.c.snapshot()}
	var failed error
	if nd != nil {
		var pending, groups int
		pending, groups, failed = nd.health()
		h.Counters["pending"] = uint64(pending)
		h.Counters["groups"] = uint64(groups)
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

// Stop implements sdk.Layer: it ends the epoch loop, waits for emissions
// in flight, persists the epoch and closes the store. It may be called
// more than once.
func (l *Layer) Stop(ctx context.Context) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	done, nd := l.loopDone, l.node
	l.mu.Unlock()
	if l.runCancel != nil {
		l.runCancel()
	}
	if done != nil {
		<-done
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
		l.emit(l.runCtx, downFrames(out))
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

// emit hands frames to the host unless the layer has stopped. It gives up
// when ctx ends or the layer stops. UP frames count as delivered once
// handed over; frames lost here (a stop, a broken stream) are not sent
// again: delivery is at most once.
func (l *Layer) emit(ctx context.Context, frames []*commonv1.Frame) {
	if len(frames) == 0 {
		return
	}
	l.emitMu.RLock()
	defer l.emitMu.RUnlock()
	l.mu.Lock()
	stopped := l.stopped
	l.mu.Unlock()
	if stopped {
		return
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.runCtx, cancel)()
	if err := l.env.Out.Emit(ectx, frames...); err != nil {
		l.env.Logger.Debug("emit", "frames", len(frames), "error", err)
		return
	}
	for _, f := range frames {
		if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
			l.c.delivered.Add(1)
		}
	}
}
