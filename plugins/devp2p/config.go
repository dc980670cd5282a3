package devp2p

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/p2p/nat"
	"github.com/ethereum/go-ethereum/p2p/netutil"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// Defaults and bounds of the numeric config keys, shared by the schema in
// Describe and the checks in parseConfig.
const (
	defaultListen   = "127.0.0.1:0"
	defaultMaxPeers = 25
	maxMaxPeers     = 100_000

	defaultMaxFrame = 1 << 20
	// maxMaxFrame keeps a frame, with RLPx's message header, under the
	// 24-bit RLPx frame size limit.
	maxMaxFrame = 16<<20 - 1<<10

	defaultQueue = 1024
	maxQueue     = 1 << 20

	maxNodesListed = 1024
)

// Discovery modes accepted by the "discovery" key.
const (
	discOff  = "off"
	discV4   = "v4"
	discV5   = "v5"
	discBoth = "both"
)

const defaultNAT = "none"

// configSchema is the plugin's config section as declared in Describe.
func configSchema() []*commonv1.ConfigField {
	return []*commonv1.ConfigField{
		sdk.String("listen", "TCP address host:port the RLPx listener binds (and discovery's UDP socket when discovery is on); port 0 lets the system choose.", defaultListen),
		sdk.Int("max_peers", "Most peers connected at once; a third of them may be dialed, the rest are inbound slots.", defaultMaxPeers, 1, maxMaxPeers),
		sdk.StringList("static", "Enode URLs (enode://<pubkey>@<ip>:<port>) of peers kept connected: dialed at start and redialed when they drop.", nil),
		sdk.StringList("bootstrap", "Enode URLs of discovery bootstrap nodes (used when discovery is v4, v5 or both).", nil),
		sdk.OneOf(sdk.String("discovery", "Node discovery: off (no UDP socket), v4, v5 or both.", discOff), discOff, discV4, discV5, discBoth),
		sdk.String("nat", "NAT traversal, as go-ethereum's --nat: none, any, upnp, pmp[:gateway], extip:<ip>, stun[:host:port].", defaultNAT),
		sdk.StringList("net_restrict", "CIDR masks (such as 10.0.0.0/8) that peers must be in; empty allows any address.", nil),
		sdk.Int("max_frame", "Largest frame payload in bytes, sent or received; larger frames are refused and counted.", defaultMaxFrame, 1, maxMaxFrame),
		sdk.Int("queue", "Outbound queue length per peer and protocol; frames that find it full are dropped and counted.", defaultQueue, 1, maxQueue),
		sdk.Bool("sticky_port", "A listen port of 0 gets a port from the system on first start and the same port at later starts (when it is free), kept in <data_dir>/listen.json, so that the node's enode URL stays valid.", true),
	}
}

// configSection is the JSON form of the config section.
type configSection struct {
	Listen      string   `json:"listen"`
	MaxPeers    int      `json:"max_peers"`
	Static      []string `json:"static"`
	Bootstrap   []string `json:"bootstrap"`
	Discovery   string   `json:"discovery"`
	NAT         string   `json:"nat"`
	NetRestrict []string `json:"net_restrict"`
	MaxFrame    int      `json:"max_frame"`
	Queue       int      `json:"queue"`
	StickyPort  bool     `json:"sticky_port"`
}

func defaultSection() configSection {
	return configSection{
		Listen:     defaultListen,
		MaxPeers:   defaultMaxPeers,
		Discovery:  discOff,
		NAT:        defaultNAT,
		MaxFrame:   defaultMaxFrame,
		Queue:      defaultQueue,
		StickyPort: true,
	}
}

// config is a validated config section with its values parsed.
type config struct {
	listen      string
	maxPeers    int
	static      []*enode.Node
	bootstrap   []*enode.Node
	discovery   string
	natSpec     string
	nat         nat.Interface
	netRestrict *netutil.Netlist
	maxFrame    int
	queue       int
	stickyPort  bool
}

// parseConfig decodes and checks a config section. Absent keys take their
// defaults. Every problem is a *sdk.ConfigError naming the key.
func parseConfig(configJSON string) (*config, error) {
	s := defaultSection()
	if err := sdk.DecodeConfig(configJSON, &s); err != nil {
		return nil, err
	}
	c := &config{stickyPort: s.StickyPort}
	var err error
	if c.listen, err = parseListen(s.Listen); err != nil {
		return nil, err
	}
	if c.static, err = parseNodes("static", s.Static); err != nil {
		return nil, err
	}
	if c.bootstrap, err = parseNodes("bootstrap", s.Bootstrap); err != nil {
		return nil, err
	}
	switch s.Discovery {
	case discOff, discV4, discV5, discBoth:
		c.discovery = s.Discovery
	default:
		return nil, &sdk.ConfigError{Key: "discovery", Problem: fmt.Sprintf("is %q", s.Discovery), Fix: "use one of: off, v4, v5, both"}
	}
	if c.discovery == discOff && len(c.bootstrap) > 0 {
		return nil, &sdk.ConfigError{Key: "bootstrap", Problem: "is set but discovery is off", Fix: "set discovery to v4, v5 or both, or list the nodes under static"}
	}
	c.natSpec = strings.TrimSpace(s.NAT)
	if c.natSpec == "" {
		c.natSpec = defaultNAT
	}
	if c.nat, err = nat.Parse(c.natSpec); err != nil {
		return nil, &sdk.ConfigError{Key: "nat", Problem: fmt.Sprintf("%q: %v", s.NAT, err), Fix: "use none, any, upnp, pmp[:gateway], extip:<ip> or stun[:host:port]"}
	}
	if c.netRestrict, err = parseNetRestrict(s.NetRestrict); err != nil {
		return nil, err
	}
	ints := []struct {
		key    string
		v      int
		lo, hi int
		dst    *int
	}{
		{"max_peers", s.MaxPeers, 1, maxMaxPeers, &c.maxPeers},
		{"max_frame", s.MaxFrame, 1, maxMaxFrame, &c.maxFrame},
		{"queue", s.Queue, 1, maxQueue, &c.queue},
	}
	for _, f := range ints {
		if f.v < f.lo || f.v > f.hi {
			return nil, &sdk.ConfigError{Key: f.key, Problem: fmt.Sprintf("is %d, out of range", f.v), Fix: fmt.Sprintf("use a value from %d to %d", f.lo, f.hi)}
		}
		*f.dst = f.v
	}
	return c, nil
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
