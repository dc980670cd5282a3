package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/node"
)

func runCmd(env Env) *cobra.Command {
	var flags configFlags
	var traceFrames string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run one node until SIGINT or SIGTERM",
		Long: `Run one node until SIGINT or SIGTERM (Ctrl-C), then stop its plugins and
exit 0.

The node locks its data directory (node.data_dir), starts its plugins
bottom up and, once it is up, prints on standard output:

  node NAME (FINGERPRINT) running; contact card:
  strata:card:...

FINGERPRINT is the node's identity as "strata contact list" shows it. Others
import the card with "strata contact import"; "strata contact export" prints
it again later. The log goes to standard error.

The messaging API, which send, listen, conversation and contact import use,
is served on a Unix socket at <node.data_dir>/host/api.sock unless
api.listen says otherwise (unix:PATH, a loopback host:port, or off); the log
line "messaging API endpoint=..." says where. On TCP, every call must carry
the token the node writes to <node.data_dir>/host/api.token at each start
(the CLI reads it there). Prometheus metrics are served at metrics.listen
when it is set (loopback only, unless metrics.allow_remote). See
docs/configuration.md and docs/messaging-api.md.

--trace-frames FILE writes, tab-separated, one line per frame that crosses
a boundary of the node and one per message handed to the application: the
time (Unix ns), the boundary, the direction, the host's trace id, the
message id and the payload's length; never a payload. Within the node a
message keeps its trace id from boundary to boundary, so the lines time
each step it takes (docs/performance.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(env)
			if err != nil {
				return err
			}
			log := newLogger(cfg, env.Stderr)
			sdk.StartCPUProfile("host", log)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()

			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			var frames *frameLog
			var tap func(string, *commonv1.Frame)
			if traceFrames != "" {
				if frames, err = openFrameLog(traceFrames, time.Second); err != nil {
					return err
				}
				defer frames.close()
				tap = frames.tap
			}
			n, err := node.New(cfg, node.Options{
				Catalog:         env.Catalog,
				Logger:          log,
				AllowUnverified: flags.allowUnverified,
				Registerer:      reg,
				Tap:             tap,
				Deliver: func(d node.Delivery) {
					if frames != nil {
						frames.delivered(d)
					}
					log.Info("message", "from", escapeText(d.FromName), "conversation", fmt.Sprintf("%x", d.Conversation), "bytes", len(d.Payload), "trace", d.TraceID)
				},
			})
			if err != nil {
				return err
			}
			if err := n.Start(ctx); err != nil {
				return err
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				n.Close(cctx)
				log.Info("node stopped")
			}()
			if network, addr := cfg.APIEndpoint(); network != "" {
				srv, err := api.Listen(n, network, addr, api.Options{TokenFile: api.TokenPath(cfg.Node.DataDir), Logger: log})
				if err != nil {
					return fmt.Errorf("api.listen: %w", err)
				}
				defer srv.Close()
				log.Info("messaging API", "endpoint", srv.Addr())
			}
			if cfg.Metrics.Listen != "" {
				srv, addr, err := serveMetrics(cfg.Metrics.Listen, reg)
				if err != nil {
					return fmt.Errorf("metrics.listen: %w", err)
				}
				defer srv.Close()
				log.Info("metrics", "url", "http://"+addr+"/metrics")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s (%s) running; contact card:\n%s\n", n.Name(), n.Fingerprint(), n.CardText())
			select {
			case <-ctx.Done():
				return nil
			case err := <-n.Failed():
				return err
			}
		},
	}
	flags.registerRun(cmd)
	cmd.Flags().StringVar(&traceFrames, "trace-frames", "", "write a line per frame crossing a boundary, and per message delivered, to this file (time, boundary, direction, trace id, message id, bytes; no payloads), to time a message through the stack")
	return cmd
}

// serveMetrics serves reg on /metrics at addr and returns the bound address.
func serveMetrics(addr string, reg *prometheus.Registry) (*http.Server, string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }() // returns http.ErrServerClosed on Close
	return srv, lis.Addr().String(), nil
}
