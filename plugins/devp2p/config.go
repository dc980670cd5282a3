package devp2p

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/p2p/nat"
	"github.com/ethereum/go-ethereum/p2p/netutil"

	"github.com/strata-msg/strata/core/sdk"
)

// maxNodesListed bounds the static and bootstrap lists.
const maxNodesListed = 1024

// defaultMaxFrame is max_frame's default, the MaxPayload of Describe.
const defaultMaxFrame = 1 << 20

// Discovery modes accepted by the "discovery" key.
const (
	discOff  = "off"
	discV4   = "v4"
	discV5   = "v5"
	discBoth = "both"
)

// Config is the layer's config section; its tags are the schema.
// max_frame's bound keeps a frame, with RLPx's message header, under the
// 24-bit RLPx frame size limit (16 MiB - 1 KiB).
type Config struct {
	Listen       string   `json:"listen" default:"127.0.0.1:0" desc:"TCP address host:port the RLPx listener binds (and discovery's UDP socket when discovery is on); port 0 lets the system choose."`
	MaxPeers     int      `json:"max_peers" default:"25" min:"1" max:"100000" desc:"Most peers connected at once; a third of them may be dialed, the rest are inbound slots."`
	Static       []string `json:"static" desc:"Enode URLs (enode://<pubkey>@<ip>:<port>) of peers kept connected: dialed at start and redialed when they drop."`
	Bootstrap    []string `json:"bootstrap" desc:"Enode URLs of discovery bootstrap nodes (used when discovery is v4, v5 or both)."`
	Discovery    string   `json:"discovery" default:"off" enum:"off,v4,v5,both" desc:"Node discovery: off (no UDP socket), v4, v5 or both."`
	NAT          string   `json:"nat" default:"none" desc:"NAT traversal, as go-ethereum's --nat: none, any, upnp, pmp[:gateway], extip:<ip>, stun[:host:port]."`
	NetRestrict  []string `json:"net_restrict" desc:"CIDR masks (such as 10.0.0.0/8) that peers must be in; empty allows any address."`
	MaxFrame     int      `json:"max_frame" default:"1048576" min:"1" max:"16776192" desc:"Largest frame payload in bytes, sent or received; larger frames are refused and counted."`
	Queue        int      `json:"queue" default:"1024" min:"1" max:"1048576" desc:"Outbound queue length per peer and protocol; a frame that finds it full waits for room, which slows its sender."`
	PeerOutBytes int      `json:"peer_out_bytes" default:"4194304" min:"65536" max:"1073741824" desc:"Most payload bytes queued for one peer, over all its protocols; a frame that does not fit waits for room, and a peer that makes none for 20 s is disconnected. A larger frame is sent alone."`
	PeerInRate   int      `json:"peer_in_rate" default:"16777216" min:"0" max:"1099511627776" desc:"Bytes per second read from one peer, over all its protocols; past it the peer is not read until its bucket refills. 0: no limit."`
	PeerInBurst  int      `json:"peer_in_burst" default:"4194304" min:"65536" max:"1073741824" desc:"Bytes one peer may send at once before peer_in_rate applies (its token bucket's size)."`
	StickyPort   bool     `json:"sticky_port" default:"true" desc:"A listen port of 0 gets a port from the system on first start and the same port at later starts (when it is free), kept in <data_dir>/listen.json, so that the node's enode URL stays valid."`

	// The parsed forms of the keys above, set by Validate.
	static, bootstrap []*enode.Node
	nat               nat.Interface
	netRestrict       *netutil.Netlist
}

// Validate checks and parses the addresses; sdk.LoadConfig calls it.
func (c *Config) Validate() error {
	var err error
	if c.Listen, err = parseListen(c.Listen); err != nil {
		return err
	}
	if c.static, err = parseNodes("static", c.Static); err != nil {
		return err
	}
	if c.bootstrap, err = parseNodes("bootstrap", c.Bootstrap); err != nil {
		return err
	}
	if c.Discovery == discOff && len(c.bootstrap) > 0 {
		return &sdk.ConfigError{Key: "bootstrap", Problem: "is set but discovery is off", Fix: "set discovery to v4, v5 or both, or list the nodes under static"}
	}
	if c.NAT = strings.TrimSpace(c.NAT); c.NAT == "" {
		c.NAT = "none"
	}
	if c.nat, err = nat.Parse(c.NAT); err != nil {
		return &sdk.ConfigError{Key: "nat", Problem: fmt.Sprintf("%q: %v", c.NAT, err), Fix: "use none, any, upnp, pmp[:gateway], extip:<ip> or stun[:host:port]"}
	}
	if c.netRestrict, err = parseNetRestrict(c.NetRestrict); err != nil {
		return err
	}
	return nil
}

// parseListen checks a host:port listen address with a literal IP.
func parseListen(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", &sdk.ConfigError{Key: "listen", Problem: fmt.Sprintf("%q is not host:port: %v", s, err), Fix: "use a form such as 127.0.0.1:30303 or 0.0.0.0:0"}
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", &sdk.ConfigError{Key: "listen", Problem: fmt.Sprintf("%q: host %q is not an IP address", s, host), Fix: "use a literal IP such as 127.0.0.1 or 0.0.0.0"}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return "", &sdk.ConfigError{Key: "listen", Problem: fmt.Sprintf("%q: port %q is not a number from 0 to 65535", s, port), Fix: "use a port from 0 to 65535"}
	}
	return s, nil
}

// parseNodes parses enode URLs (or enr: records) of dialable nodes.
func parseNodes(key string, list []string) ([]*enode.Node, error) {
	if len(list) > maxNodesListed {
		return nil, &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("lists %d nodes", len(list)), Fix: fmt.Sprintf("list at most %d", maxNodesListed)}
	}
	out := make([]*enode.Node, 0, len(list))
	seen := make(map[enode.ID]bool, len(list))
	for _, s := range list {
		n, err := parseNode(s)
		if err != nil {
			return nil, &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("%q: %v", s, err), Fix: "use an enode URL such as enode://<128 hex digits>@192.0.2.1:30303"}
		}
		if seen[n.ID()] {
			continue
		}
		seen[n.ID()] = true
		out = append(out, n)
	}
	return out, nil
}

// parseNetRestrict parses the CIDR allow-list; nil when empty.
func parseNetRestrict(list []string) (*netutil.Netlist, error) {
	if len(list) == 0 {
		return nil, nil
	}
	for _, s := range list {
		if strings.ContainsAny(s, ", \t\n") {
			return nil, &sdk.ConfigError{Key: "net_restrict", Problem: fmt.Sprintf("%q holds more than one mask", s), Fix: "list one CIDR mask per entry"}
		}
		if _, _, err := net.ParseCIDR(s); err != nil {
			return nil, &sdk.ConfigError{Key: "net_restrict", Problem: fmt.Sprintf("%q is not a CIDR mask", s), Fix: "use a form such as 10.0.0.0/8 or 127.0.0.0/8"}
		}
	}
	nl, err := netutil.ParseNetlist(strings.Join(list, ","))
	if err != nil {
		return nil, &sdk.ConfigError{Key: "net_restrict", Problem: err.Error(), Fix: "use CIDR masks such as 10.0.0.0/8"}
	}
	return nl, nil
}
