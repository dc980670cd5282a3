package libp2pplugin

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// userAgent is what the node announces through identify.
const userAgent = "strata-libp2p/" + version

// connGracePeriod is how long a new connection is spared from trimming.
const connGracePeriod = time.Minute

// newHost builds the libp2p host for cfg: TCP and QUIC, the configured
// security protocols in order of preference, yamux, the connection and
// resource managers, and no relay, NAT port mapping or metrics.
func newHost(cfg *Config, key crypto.PrivKey) (host.Host, error) {
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	rm, err := newResourceManager(cfg.ResourceLimits)
	if err != nil {
		cm.Close()
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(userAgent),
	}
	if len(cfg.listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrs(cfg.listen...))
	}
	for _, s := range cfg.security {
		switch s {
		case securityNoise:
			opts = append(opts, libp2p.Security(noise.ID, noise.New))
		case securityTLS:
			opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New))
		}
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes the managers on some failure paths and not on
		// others; closing them twice is harmless.
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

// newResourceManager returns libp2p's resource manager with the named
// limits: "default" is libp2p's default limits, with the limits of its
// bundled services, scaled to the machine; "infinite" has no limits.
func newResourceManager(profile string) (network.ResourceManager, error) {
	if profile == limitsInfinite {
		return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}
