package sdk

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// Environment variables the host sets for a plugin process.
const (
	// EnvLogLevel carries the host's log level (trace, debug, info, warn,
	// error) so that a plugin does not format lines the host would drop.
	EnvLogLevel = "STRATA_LOG_LEVEL"
	// EnvBatchFrames carries the host's BatchOptions.MaxFrames, so that a
	// plugin batches its output as the host batches its input.
	EnvBatchFrames = "STRATA_BATCH_MAX_FRAMES"
	// EnvBatchBytes carries the host's BatchOptions.MaxBytes. The host
	// refuses a batch larger than these two allow (see FrameLimits).
	EnvBatchBytes = "STRATA_BATCH_MAX_BYTES"
)

// maxMessageBytes raises gRPC's 4 MiB default limits where the sender is
// trusted: what a plugin accepts from its host, what the host sends, and
// in-process layers. What the host accepts from a plugin process is bounded
// by the plugin's limits instead (limits.go).
const maxMessageBytes = math.MaxInt32

// parentPoll is how often a plugin checks that its host is still alive.
const parentPoll = 200 * time.Millisecond

// Serve runs impl as a plugin process and returns only when the plugin must
// exit. It is the whole main function of a plugin binary. Serve exits the
// process itself when the host dies (even by kill -9) or on SIGTERM, after
// stopping the layer.
func Serve(impl Layer) {
	info := impl.Describe()
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       info.GetName(),
		Level:      hclog.LevelFromString(os.Getenv(EnvLogLevel)),
		JSONFormat: true, // go-plugin parses JSON lines into the host's log
		Output:     os.Stderr,
	})
	if logger.GetLevel() == hclog.NoLevel {
		logger.SetLevel(hclog.Info)
	}
	var batch BatchOptions
	if n, err := strconv.Atoi(os.Getenv(EnvBatchFrames)); err == nil && n > 0 {
		batch.MaxFrames = n
	}
	if n, err := strconv.Atoi(os.Getenv(EnvBatchBytes)); err == nil && n > 0 {
		batch.MaxBytes = n
	}
	StartCPUProfile(info.GetName(), logger)
	rt := newRuntime(impl, logger, batch)
	stop := func(reason string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.shutdown(ctx, reason); err != nil {
			logger.Error("stop failed", "error", err)
		}
	}

	go watchParent(os.Getppid(), func() {
		stop("host process is gone")
		os.Exit(0)
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		stop("SIGTERM")
		os.Exit(0)
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {KindName(info.GetKind()): &grpcPlugin{rt: rt}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, boundaryServerOptions()...)...)
		},
		Logger: logger,
	})
	stop("host shut the plugin down")
}

// watchParent calls gone once the process's parent changes: the host died
// and the plugin was re-parented. go-plugin leaves plugins running when the
// host is killed with -9; this is the SDK's answer.
func watchParent(ppid int, gone func()) {
	t := time.NewTicker(parentPoll)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			gone()
			return
		}
	}
}

// grpcPlugin adapts a layer to go-plugin's GRPCPlugin. On the plugin side it
// registers the Layer and Control services; on the host side it hands back
// the connection, from which the host builds typed clients.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	rt *runtime // nil on the host side
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.rt == nil {
		return fmt.Errorf("sdk: no layer to serve")
	}
	commonv1.RegisterLayerServer(s, &layerServer{rt: p.rt})
	return registerControl(s, p.rt.control)
}

// GRPCClient implements plugin.GRPCPlugin. ctx is cancelled by go-plugin
// when the plugin process exits.
func (p *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &dispensed{exited: ctx, cc: cc}, nil
}

// dispensed is what the host receives from go-plugin's Dispense.
type dispensed struct {
	exited context.Context
	cc     *grpc.ClientConn
}
