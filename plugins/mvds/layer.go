package mvds

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
	"github.com/strata-msg/strata/core/sdk"
)

// Name is the plugin's name, the one a config names.
const Name = "mvds"

// Version is the plugin's version.
const Version = "2.0.0"

// Layer is the mvds sync layer. New makes one; the SDK drives it, in
// order (sdk.Lifecycle): Configure sets the fields below, Start starts
// the epoch loop and the redelivery, and Stop, which the SDK calls after
// ending env.Run and the calls in flight, waits for both and closes the
// store.
type Layer struct {
	env      sdk.Env
	cfg      Config
	identity []byte
	// node is set by Configure and cleared by Stop; the control calls,
	// which the SDK does not order, read it too.
	node atomic.Pointer[node]
	// loopDone and redeliverDone are closed when the epoch loop and the
	// redelivery that Start began end.
	loopDone      chan struct{}
	redeliverDone chan struct{}
	// flushDone is closed when the flush loop that Start began (eager)
	// ends; wake asks it for a flush (buffered: requests made while a
	// flush runs coalesce into the next).
	flushDone chan struct{}
	wake      chan struct{}

	// deliverMu orders the emission of UP frames as they were decided. Start
	// takes it and hands it to the redelivery, so that what earlier runs
	// delivered goes up again before anything new.
	deliverMu sync.Mutex

	c *counters
}

var _ sdk.Sync = (*Layer)(nil)

// New returns an unconfigured mvds layer.
func New() *Layer { return &Layer{c: newCounters(), wake: make(chan struct{}, 1)} }

// Describe implements sdk.Layer. The layer provides "sync" and "causal"
// and needs a secure layer below ("e2e"): it relies on it to authenticate
// the member each frame comes from and to keep payloads confidential.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_SYNC,
		Name:        Name,
		Version:     Version,
		Description: "Vac MVDS (2/MVDS) data sync: acks, offers, requests and retransmission by epochs, with causal delivery by parents",
		Config:      sdk.ConfigFields[Config](),
		Provides:    []string{sdk.CapSync, sdk.CapCausal},
		Requires:    []string{sdk.CapE2E},
		MaxPayload:  MaxPayload,
	}
}

// Configure implements sdk.Layer: it checks the config and the identity,
// opens the store in req.DataDir and rebuilds the node's state from it.
func (l *Layer) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	cfg, err := sdk.LoadConfig[Config](req.GetConfigJson())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetNodeIdentity()); n != 0 && n != IdentitySize {
		return nil, fmt.Errorf("mvds: node identity is %d bytes, want %d", n, IdentitySize)
	}
	if req.GetDataDir() == "" {
		return nil, errors.New("mvds: no data directory")
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

// Start implements sdk.Layer: it starts the epoch loop, delivers what the
// store holds ready (a crash can leave messages whose parents are all
// delivered) and, from a goroutine of its own once Start has returned,
// delivers again every delivery of earlier runs that the host has not
// acknowledged, in the order they first went up, then the ready ones.
// Until that is done nothing new goes up (HandleBatch waits), so causal
// order holds across the restart; an Emit that blocks delays HandleBatch,
// never Start.
func (l *Layer) Start(ctx context.Context, _ *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	// Nobody holds deliverMu before Start: the SDK holds HandleBatch until
	// Start has returned.
	l.deliverMu.Lock()
	nd := l.node.Load()
	upto, ds, err := nd.start(ctx)
	if err != nil {
		l.deliverMu.Unlock()
		return nil, err
	}
	l.loopDone = make(chan struct{})
	l.redeliverDone = make(chan struct{})
	returned := make(chan struct{})
	defer close(returned)
	go l.epochLoop(l.loopDone)
	if l.cfg.Eager {
		l.flushDone = make(chan struct{})
		go l.flushLoop(nd, l.flushDone)
	}
	go l.redeliverAll(nd, upto, ds, returned, l.redeliverDone)
	return &commonv1.StartResponse{LocalAddress: l.identity, DisplayAddress: hex.EncodeToString(l.identity)}, nil
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
	ctx := l.env.Run
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
// one transaction, and the messages they make deliverable go up while it
// commits. The application's messages enter through Send, never as
// frames (sync.v1): a DOWN frame from above is dropped and counted, as is a
// frame without a direction.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	nd := l.node.Load()
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	var in []inbound
	for _, f := range b.GetFrames() {
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_UP:
			in = append(in, inbound{group: f.GetConversation(), from: f.GetPeer(), payload: f.GetPayload(), trace: f.GetTraceId()})
		case commonv1.Direction_DIRECTION_DOWN:
			l.c.drop(dropDownFrame)
		default:
			l.c.drop(dropWrongDirection)
		}
	}
	// At most receiveChunk payloads per transaction, so that a control
	// call (a Send, an Ack) waits for one chunk under the node's lock,
	// not for a backlog the host hands over at once.
	for len(in) > 0 {
		chunk := in[:min(len(in), receiveChunk)]
		in = in[len(chunk):]
		// The deliveries go up before the receive's commit: see
		// node.receive for why that loses nothing and doubles nothing.
		_, err := nd.receive(ctx, chunk, func(ds []delivery) {
			if err := l.emit(ctx, l.upFrames(ds)); err == nil {
				l.c.delivered.Add(uint64(len(ds)))
			}
		})
		if err != nil {
			l.env.Logger.Debug("receive", "frames", len(chunk), "error", err)
			for range in {
				l.c.drop(dropNotRunning)
			}
			break
		}
		l.kick() // requests, answers and relays it made
	}
}

// receiveChunk is the most payloads one receive transaction takes.
const receiveChunk = 64

// Health implements sdk.Layer. Besides the counters (counters.go) it
// reports three levels: pending (messages waiting for a parent, all
// groups), groups, and unacknowledged_deliveries (messages delivered up
// that the host has not acknowledged). The SDK adds the phase.
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
		h.Detail = "storage failed: " + nh.failed.Error()
	}
	return h
}

// Stop implements sdk.Layer: the SDK has ended env.Run, so the epoch loop
// and the redelivery are ending; it waits for them, persists the epoch and
// closes the store.
func (l *Layer) Stop(ctx context.Context) error {
	if l.loopDone != nil {
		<-l.loopDone
	}
	if l.redeliverDone != nil {
		<-l.redeliverDone
	}
	if l.flushDone != nil {
		<-l.flushDone
	}
	return l.node.Swap(nil).close(ctx)
}

// epochLoop runs an epoch every cfg.Epoch until Stop and emits its
// payloads (with eager on, retransmissions, acks, and what a flush could
// not fit).
func (l *Layer) epochLoop(done chan struct{}) {
	defer close(done)
	t := time.NewTicker(l.cfg.Epoch)
	defer t.Stop()
	run := l.env.Run
	for {
		select {
		case <-run.Done():
			return
		case <-t.C:
		}
		out, err := l.node.Load().tick(run)
		if err != nil {
			if run.Err() == nil {
				l.env.Logger.Debug("epoch", "error", err)
			}
			continue
		}
		_ = l.emit(run, downFrames(out)) // lost payloads: the records come due again
	}
}

// kick asks the flush loop for a flush, if eager; a flush in progress
// leaves the request for the next, which takes everything gathered.
func (l *Layer) kick() {
	if !l.cfg.Eager {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// flushLoop runs nd's eager flushes (flush.go) when kicked, until Stop,
// and emits their payloads: at once when it is idle, and under load one
// flush for all the kicks that came while the previous one ran.
func (l *Layer) flushLoop(nd *node, done chan struct{}) {
	defer close(done)
	run := l.env.Run
	for {
		select {
		case <-run.Done():
			return
		case <-l.wake:
		}
		for more := true; more && run.Err() == nil; {
			var out []outbound
			var err error
			out, more, err = nd.flush(run)
			if err != nil {
				if run.Err() == nil {
					l.env.Logger.Debug("flush", "error", err)
				}
				break
			}
			_ = l.emit(run, downFrames(out)) // lost payloads: the records come due again
		}
	}
}

// downFrames turns an epoch's payloads into DOWN frames.
func downFrames(out []outbound) []*commonv1.Frame {
	frames := make([]*commonv1.Frame, 0, len(out))
	for _, o := range out {
		f := &commonv1.Frame{
			Direction:    commonv1.Direction_DIRECTION_DOWN,
			TraceId:      o.trace,
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

// emit hands frames to the host and says whether they were handed over.
// Once Stop has begun the SDK refuses them. An UP frame lost here (a stop,
// a broken stream) stays an unacknowledged delivery: the next Start
// delivers it again.
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
