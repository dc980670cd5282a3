package sdk

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
)

// runtime is the plugin side of one layer: the implementation, its output
// queue and its logger. Both the gRPC server and the in-process Conn drive a
// layer through it, so the two modes behave alike.
type runtime struct {
	// impl is the layer wrapped in its Lifecycle: every call from either
	// mode goes through it. control is the layer itself, whose control
	// service is registered.
	impl    Layer
	control Layer
	logger  hclog.Logger
	out     *queue
	stop    sync.Once
	stopEr  error
}

func newRuntime(impl Layer, logger hclog.Logger, opts BatchOptions) *runtime {
	return &runtime{impl: NewLifecycle(impl), control: impl, logger: logger, out: newQueue(opts)}
}

func (r *runtime) configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error) {
	resp, err := r.impl.Configure(ctx, req, Env{Logger: r.logger, Out: r.out})
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &commonv1.ConfigureResponse{}
	}
	return resp, nil
}

func (r *runtime) start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	resp, err := r.impl.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &commonv1.StartResponse{}
	}
	return resp, nil
}

func (r *runtime) health(ctx context.Context) *commonv1.HealthResponse {
	h := r.impl.Health(ctx)
	if h == nil {
		h = &commonv1.HealthResponse{}
	}
	return h
}

// shutdown stops the layer once and closes its output; reason is logged
// by the call that does the stopping.
func (r *runtime) shutdown(ctx context.Context, reason string) error {
	r.stop.Do(func() {
		r.logger.Info("stopping", "reason", reason)
		r.stopEr = r.impl.Stop(ctx)
		r.out.close()
	})
	return r.stopEr
}

// registerControl registers the kind-specific control service of impl.
func registerControl(s grpc.ServiceRegistrar, impl Layer) error {
	info := impl.Describe()
	kind := info.GetKind()
	var ok bool
	switch kind {
	case commonv1.LayerKind_LAYER_KIND_P2P:
		var c p2pv1.ControlServer
		if c, ok = impl.(p2pv1.ControlServer); ok {
			p2pv1.RegisterControlServer(s, c)
		}
	case commonv1.LayerKind_LAYER_KIND_PRIVACY:
		var c privacyv1.ControlServer
		if c, ok = impl.(privacyv1.ControlServer); ok {
			privacyv1.RegisterControlServer(s, c)
		}
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		var c securev1.ControlServer
		if c, ok = impl.(securev1.ControlServer); ok {
			securev1.RegisterControlServer(s, c)
		}
	case commonv1.LayerKind_LAYER_KIND_SYNC:
		var c SyncControl
		if c, ok = impl.(SyncControl); ok {
			syncv1.RegisterControlServer(s, syncControl{c})
		}
	default:
		return fmt.Errorf("sdk: plugin %q describes an unknown layer kind %v", info.GetName(), kind)
	}
	if !ok {
		return fmt.Errorf("sdk: plugin %q says it is a %s layer but does not implement that layer's control API", info.GetName(), KindName(kind))
	}
	return nil
}

// syncControl serves strata.sync.v1.Control for a sync layer, whether or
// not it implements the optional SendBatch.
type syncControl struct{ SyncControl }

// SendBatch calls the layer's SendBatch, or answers Unimplemented for a
// layer without one.
func (c syncControl) SendBatch(ctx context.Context, req *syncv1.SendBatchRequest) (*syncv1.SendBatchResponse, error) {
	if b, ok := c.SyncControl.(SyncBatcher); ok {
		return b.SendBatch(ctx, req)
	}
	return nil, status.Error(codes.Unimplemented, "this sync layer has no SendBatch: call Send for each message")
}

// layerServer serves strata.common.v1.Layer for one plugin.
type layerServer struct {
	rt *runtime

	mu     sync.Mutex
	active context.CancelFunc // cancels the current Frames stream
}

var _ commonv1.LayerServer = (*layerServer)(nil)

func (s *layerServer) Describe(context.Context, *commonv1.DescribeRequest) (*commonv1.PluginInfo, error) {
	return s.rt.impl.Describe(), nil
}

func (s *layerServer) Configure(ctx context.Context, req *commonv1.ConfigureRequest) (*commonv1.ConfigureResponse, error) {
	resp, err := s.rt.configure(ctx, req)
	return resp, toStatus(err)
}

func (s *layerServer) Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	resp, err := s.rt.start(ctx, req)
	return resp, toStatus(err)
}

// Health answers the layer's health, with this process's heap
// allocations (HeapAllocsCounter, HeapAllocBytesCounter) among its
// counters.
func (s *layerServer) Health(ctx context.Context, _ *commonv1.HealthRequest) (*commonv1.HealthResponse, error) {
	h := s.rt.health(ctx)
	if h.Counters == nil {
		h.Counters = map[string]uint64{}
	}
	h.Counters[HeapAllocsCounter], h.Counters[HeapAllocBytesCounter] = HeapAllocs()
	return h, nil
}

func (s *layerServer) Stop(ctx context.Context, _ *commonv1.StopRequest) (*commonv1.StopResponse, error) {
	return &commonv1.StopResponse{}, toStatus(s.rt.shutdown(ctx, "the host asked"))
}

// Frames serves the data stream. A new stream replaces an older one, so a
// host that lost its side of a stream can open another.
func (s *layerServer) Frames(stream grpc.BidiStreamingServer[commonv1.Batch, commonv1.Batch]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	s.mu.Lock()
	if s.active != nil {
		s.active()
	}
	s.active = cancel
	s.mu.Unlock()

	pumped := make(chan error, 1)
	go func() { pumped <- s.rt.out.pump(ctx, stream.Send) }()

	recvErr := make(chan error, 1)
	go func() {
		for {
			b, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			s.rt.impl.HandleBatch(ctx, b)
		}
	}()

	var err error
	pumpDone := false
	select {
	case err = <-recvErr:
	case err = <-pumped:
		pumpDone = true
	}
	cancel()
	if !pumpDone {
		<-pumped // Send must not be called once the handler returns
	}
	if err == ErrClosed || err == context.Canceled {
		return nil
	}
	return err
}
