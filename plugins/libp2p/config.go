package libp2pplugin

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Defaults and bounds of the numeric config keys. The schema in Describe and
// the checks in parseConfig both use them.
const (
	defaultConnLow  = 32
	defaultConnHigh = 64
	maxConns        = 100_000

	defaultMaxFrame = 1 << 20
	maxMaxFrame     = 16 << 20

	defaultQueue = 1024
	maxQueue     = 1 << 20
)

// Security protocol names accepted by the "security" key.
const (
	securityNoise = "noise"
	securityTLS   = "tls"
)

// DHT modes accepted by the "dht" key.
const (
	dhtOff    = "off"
	dhtClient = "client"
	dhtServer = "server"
)

// Resource-limit profiles accepted by the "resource_limits" key.
const (
	limitsDefault  = "default"
	limitsInfinite = "infinite"
)

func defaultListen() []string {
	return []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
}

func defaultSecurity() []string { return []string{securityNoise, securityTLS} }

// configSchema is the plugin's config section as declared in Describe.
func configSchema() []*commonv1.ConfigField {
	return []*commonv1.ConfigField{
		sdk.StringList("listen", "Multiaddrs to listen on: /ip4|ip6/<ip>/tcp/<port> or /ip4|ip6/<ip>/udp/<port>/quic-v1; empty listens nowhere (dial-only node).", defaultListen()),
		sdk.StringList("bootstrap", "Full multiaddrs ending in /p2p/<peer id> of peers kept connected: dialed at start, redialed with backoff, never trimmed.", nil),
		sdk.StringList("security", "Security protocols for TCP connections, most preferred first: a non-empty subset of noise, tls (QUIC always uses its built-in TLS).", defaultSecurity()),
		sdk.Bool("mdns", "Find and connect to peers on the local network with mDNS.", false),
		sdk.OneOf(sdk.String("dht", "Kademlia DHT (protocol prefix /strata) with rendezvous discovery: off, client or server.", dhtOff), dhtOff, dhtClient, dhtServer),
		sdk.Int("conn_low", "Connection manager low watermark: trimming stops at this many connections.", defaultConnLow, 0, maxConns),
		sdk.Int("conn_high", "Connection manager high watermark: above this many connections the manager trims to conn_low.", defaultConnHigh, 1, maxConns),
		sdk.Int("max_frame", "Largest frame payload in bytes, sent or received; larger frames are refused and counted.", defaultMaxFrame, 1, maxMaxFrame),
		sdk.Int("queue", "Outbound queue length per peer and protocol; frames that find it full are dropped and counted.", defaultQueue, 1, maxQueue),
		sdk.OneOf(sdk.String("resource_limits", "libp2p resource manager limits: default (libp2p's defaults scaled to the machine) or infinite (benchmarks only).", limitsDefault), limitsDefault, limitsInfinite),
		sdk.Bool("gossipsub", "Run GossipSub for broadcast frames and the Subscribe call.", true),
		sdk.Bool("sticky_ports", "A listen address with port 0 gets a port from the system on first start and the same port at later starts (when it is free), so that the node's contact card stays valid across restarts.", true),
	}
}

// configSection is the JSON form of the config section.
type configSection struct {
	Listen         []string `json:"listen"`
	Bootstrap      []string `json:"bootstrap"`
	Security       []string `json:"security"`
	MDNS           bool     `json:"mdns"`
	DHT            string   `json:"dht"`
	ConnLow        int      `json:"conn_low"`
	ConnHigh       int      `json:"conn_high"`
	MaxFrame       int      `json:"max_frame"`
	Queue          int      `json:"queue"`
	ResourceLimits string   `json:"resource_limits"`
	GossipSub      bool     `json:"gossipsub"`
	StickyPorts    bool     `json:"sticky_ports"`
}

// defaultSection returns the section every key of which has its default.
func defaultSection() configSection {
	return configSection{
		Listen:         defaultListen(),
		Bootstrap:      []string{},
		Security:       defaultSecurity(),
		DHT:            dhtOff,
		ConnLow:        defaultConnLow,
		ConnHigh:       defaultConnHigh,
		MaxFrame:       defaultMaxFrame,
		Queue:          defaultQueue,
		ResourceLimits: limitsDefault,
		GossipSub:      true,
		StickyPorts:    true,
	}
}

// config is a validated config section with its addresses parsed.
type config struct {
	listen         []ma.Multiaddr
	bootstrap      []peer.AddrInfo
	security       []string
	mdns           bool
	dht            string
	connLow        int
	connHigh       int
	maxFrame       int
	queue          int
	resourceLimits string
	gossipSub      bool
	stickyPorts    bool
}

// parseConfig decodes and checks a config section. Absent keys take their
// defaults, so the section need not have been through the host's schema
// check. Every problem is a *sdk.ConfigError naming the key.
func parseConfig(configJSON string) (*config, error) {
	s := defaultSection()
	if err := sdk.DecodeConfig(configJSON, &s); err != nil {
		return nil, err
	}
	// An explicit null means "the default", as it does in sdk.ApplySchema.
	if s.Listen == nil {
		s.Listen = defaultListen()
	}
	if s.Security == nil {
		s.Security = defaultSecurity()
	}
	c := &config{
		mdns:        s.MDNS,
		gossipSub:   s.GossipSub,
		stickyPorts: s.StickyPorts,
	}
	var err error
	if c.listen, err = parseListen(s.Listen); err != nil {
		return nil, err
	}
	if c.bootstrap, err = parseBootstrap(s.Bootstrap); err != nil {
		return nil, err
	}
	if c.security, err = parseSecurity(s.Security); err != nil {
		return nil, err
	}
	if c.dht, err = oneOf("dht", s.DHT, dhtOff, dhtClient, dhtServer); err != nil {
		return nil, err
	}
	if c.resourceLimits, err = oneOf("resource_limits", s.ResourceLimits, limitsDefault, limitsInfinite); err != nil {
		return nil, err
	}
	ints := []struct {
		key    string
		v      int
		lo, hi int
		dst    *int
	}{
		{"conn_low", s.ConnLow, 0, maxConns, &c.connLow},
		{"conn_high", s.ConnHigh, 1, maxConns, &c.connHigh},
		{"max_frame", s.MaxFrame, 1, maxMaxFrame, &c.maxFrame},
		{"queue", s.Queue, 1, maxQueue, &c.queue},
	}
	for _, f := range ints {
		if f.v < f.lo || f.v > f.hi {
			return nil, &sdk.ConfigError{Key: f.key, Problem: fmt.Sprintf("is %d, out of range", f.v), Fix: fmt.Sprintf("use a value from %d to %d", f.lo, f.hi)}
		}
		*f.dst = f.v
	}
	if c.connLow > c.connHigh {
		return nil, &sdk.ConfigError{Key: "conn_low", Problem: fmt.Sprintf("is %d, above conn_high (%d)", c.connLow, c.connHigh), Fix: "make conn_low at most conn_high"}
	}
	return c, nil
}

// parseListen checks that every listen address is one the TCP or QUIC
// transport can listen on.
func parseListen(list []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(list))
	for _, s := range list {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, &sdk.ConfigError{Key: "listen", Problem: fmt.Sprintf("%q is not a multiaddr: %v", s, err), Fix: "use a form such as /ip4/127.0.0.1/tcp/0"}
		}
		if !isListenAddr(a) {
			return nil, &sdk.ConfigError{Key: "listen", Problem: fmt.Sprintf("%q is not a TCP or QUIC listen address", s), Fix: "use /ip4|ip6/<ip>/tcp/<port> or /ip4|ip6/<ip>/udp/<port>/quic-v1"}
		}
		out = append(out, a)
	}
	return out, nil
}

// isListenAddr reports whether a is /ip4|ip6/<ip>/tcp/<port> or
// /ip4|ip6/<ip>/udp/<port>/quic-v1.
func isListenAddr(a ma.Multiaddr) bool {
	codes := make([]int, 0, len(a))
	for _, c := range a {
		codes = append(codes, c.Protocol().Code)
	}
	if len(codes) < 2 || (codes[0] != ma.P_IP4 && codes[0] != ma.P_IP6) {
		return false
	}
	switch {
	case len(codes) == 2:
		return codes[1] == ma.P_TCP
	case len(codes) == 3:
		return codes[1] == ma.P_UDP && codes[2] == ma.P_QUIC_V1
	}
	return false
}

// parseBootstrap parses full multiaddrs, merging those of the same peer and
// keeping the order in which peers first appear.
func parseBootstrap(list []string) ([]peer.AddrInfo, error) {
	var infos []peer.AddrInfo
	index := make(map[peer.ID]int, len(list))
	for _, s := range list {
		ai, err := parseAddress(s)
		if err != nil {
			return nil, &sdk.ConfigError{Key: "bootstrap", Problem: fmt.Sprintf("%q: %v", s, err), Fix: "use a full multiaddr such as /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW..."}
		}
		if i, ok := index[ai.ID]; ok {
			infos[i].Addrs = append(infos[i].Addrs, ai.Addrs...)
			continue
		}
		index[ai.ID] = len(infos)
		infos = append(infos, ai)
	}
	return infos, nil
}

// parseSecurity checks the security list: known names, no repeats, at
// least one.
func parseSecurity(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, &sdk.ConfigError{Key: "security", Problem: "is empty", Fix: "list noise, tls or both"}
	}
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		name := strings.ToLower(strings.TrimSpace(s))
		if name != securityNoise && name != securityTLS {
			return nil, &sdk.ConfigError{Key: "security", Problem: fmt.Sprintf("%q is not a known security protocol", s), Fix: "use noise, tls or both"}
		}
		if seen[name] {
			return nil, &sdk.ConfigError{Key: "security", Problem: fmt.Sprintf("%q is listed twice", s), Fix: "list each protocol once"}
		}
		seen[name] = true
		out = append(out, name)
	}
	return out, nil
}

// oneOf checks that v is one of allowed.
func oneOf(key, v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("is %q", v), Fix: "use one of: " + strings.Join(allowed, ", ")}
}
