package libp2pplugin

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-msg/strata/core/sdk"
)

// defaultMaxFrame is max_frame's default, the MaxPayload of Describe.
const defaultMaxFrame = 1 << 20

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

// Config is the layer's config section; its tags are the schema.
type Config struct {
	Listen         []string `json:"listen" default:"/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1" desc:"Multiaddrs to listen on: /ip4|ip6/<ip>/tcp/<port> or /ip4|ip6/<ip>/udp/<port>/quic-v1; empty listens nowhere (dial-only node)."`
	Bootstrap      []string `json:"bootstrap" desc:"Full multiaddrs ending in /p2p/<peer id> of peers kept connected: dialed at start, redialed with backoff, never trimmed."`
	Security       []string `json:"security" default:"noise,tls" desc:"Security protocols for TCP connections, most preferred first: a non-empty subset of noise, tls (QUIC always uses its built-in TLS)."`
	MDNS           bool     `json:"mdns" desc:"Find and connect to peers on the local network with mDNS."`
	DHT            string   `json:"dht" default:"off" enum:"off,client,server" desc:"Kademlia DHT (protocol prefix /strata) with rendezvous discovery: off, client or server."`
	ConnLow        int      `json:"conn_low" default:"32" min:"0" max:"100000" desc:"Connection manager low watermark: trimming stops at this many connections."`
	ConnHigh       int      `json:"conn_high" default:"64" min:"1" max:"100000" desc:"Connection manager high watermark: above this many connections the manager trims to conn_low."`
	MaxFrame       int      `json:"max_frame" default:"1048576" min:"1" max:"16777216" desc:"Largest frame payload in bytes, sent or received; larger frames are refused and counted."`
	Queue          int      `json:"queue" default:"1024" min:"1" max:"1048576" desc:"Outbound queue length per peer and protocol; a frame that finds it full waits for room, which slows its sender."`
	PeerOutBytes   int      `json:"peer_out_bytes" default:"4194304" min:"65536" max:"1073741824" desc:"Most payload bytes queued for one peer, over all its protocols; a frame that does not fit waits for room, and a peer that makes none for 20 s is disconnected. A larger frame is sent alone."`
	PeerInRate     int      `json:"peer_in_rate" default:"16777216" min:"0" max:"1099511627776" desc:"Bytes per second read from one peer, over all its streams and broadcasts; past it the peer's streams are not read (broadcasts are dropped) until its bucket refills. 0: no limit."`
	PeerInBurst    int      `json:"peer_in_burst" default:"4194304" min:"65536" max:"1073741824" desc:"Bytes one peer may send at once before peer_in_rate applies (its token bucket's size)."`
	ResourceLimits string   `json:"resource_limits" default:"default" enum:"default,infinite" desc:"libp2p resource manager limits: default (libp2p's defaults scaled to the machine) or infinite (benchmarks only)."`
	GossipSub      bool     `json:"gossipsub" default:"true" desc:"Run GossipSub for broadcast frames and the Subscribe call."`
	StickyPorts    bool     `json:"sticky_ports" default:"true" desc:"A listen address with port 0 gets a port from the system on first start and the same port at later starts (when it is free), so that the node's contact card stays valid across restarts."`

	// The parsed forms of the keys above, set by Validate.
	listen    []ma.Multiaddr
	bootstrap []peer.AddrInfo
	security  []string
}

// Validate checks and parses the addresses; sdk.LoadConfig calls it.
func (c *Config) Validate() error {
	var err error
	if c.listen, err = parseListen(c.Listen); err != nil {
		return err
	}
	if c.bootstrap, err = parseBootstrap(c.Bootstrap); err != nil {
		return err
	}
	if c.security, err = parseSecurity(c.Security); err != nil {
		return err
	}
	if c.ConnLow > c.ConnHigh {
		return &sdk.ConfigError{Key: "conn_low", Problem: fmt.Sprintf("is %d, above conn_high (%d)", c.ConnLow, c.ConnHigh), Fix: "make conn_low at most conn_high"}
	}
	return nil
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
