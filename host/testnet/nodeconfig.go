package testnet

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"

	"github.com/strata-msg/strata/host/config"
)

// ownedKeys are the keys the testnet sets for every node; Options.Set may
// not override them.
var ownedKeys = []string{"node.name", "node.data_dir", "node.role", "node.peers", "api.listen", "metrics.listen"}

// relayLayers are the layers a relay keeps.
var relayLayers = []string{"p2p", "privacy"}

// stack is a stack config file, read as a tree.
type stack struct {
	// path is the file, absolute.
	path string
	raw  map[string]any
}

// readStack reads the stack config as the host would (YAML or TOML) and
// checks what the testnet needs of it.
func readStack(path string) (*stack, error) {
	if path == "" {
		return nil, fmt.Errorf("testnet: no stack config: set Options.Stack to a node config (ready stacks are in configs/)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("testnet: stack config: %w", err)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("testnet: stack config: %w", err)
	}
	var raw map[string]any
	switch strings.ToLower(filepath.Ext(abs)) {
	case ".yaml", ".yml":
		raw, err = yaml.Parser().Unmarshal(b)
	case ".toml":
		raw, err = toml.Parser().Unmarshal(b)
	default:
		return nil, fmt.Errorf("testnet: stack config %s: unknown format; name it .yaml, .yml or .toml", path)
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: stack config %s: %w", path, err)
	}
	if raw == nil {
		raw = map[string]any{}
	}
	s := &stack{path: abs, raw: raw}
	for _, l := range []string{"p2p", "privacy", "secure"} {
		if s.plugin(l) == "" {
			return nil, fmt.Errorf("testnet: stack config %s has no layers.%s.plugin: a testnet's clients run p2p, privacy and secure (and usually sync), so the stack must be a client stack", path, l)
		}
	}
	return s, nil
}

// plugin returns layers.<layer>.plugin, "" when unset.
func (s *stack) plugin(layer string) string {
	l, _ := section(s.raw, "layers")[layer].(map[string]any)
	p, _ := l["plugin"].(string)
	return p
}

// nodeConfig returns the config tree of one node: the stack with the
// node's name, role, data directory and peers, absolute paths, the API on
// its default socket, metrics off, and the p2p layer listening on
// 127.0.0.1 with a port the system picks. A relay keeps the p2p and privacy
// layers only. faults, when not nil, replaces a client's faults section
// (empty: removes it); a relay keeps only the stack's faults of its own two
// boundaries.
func (s *stack) nodeConfig(name, role, dataDir string, peers []string, faults map[string]any) map[string]any {
	cfg := deepCopy(s.raw).(map[string]any)
	base := filepath.Dir(s.path)

	node := section(cfg, "node")
	node["name"] = name
	node["data_dir"] = dataDir
	node["role"] = role
	if len(peers) > 0 {
		list := make([]any, len(peers))
		for i, p := range peers {
			list[i] = p
		}
		node["peers"] = list
	} else {
		delete(node, "peers")
	}

	if p, ok := cfg["plugins"].(map[string]any); ok {
		for _, k := range []string{"dir", "lock_file"} {
			if v, ok := p[k].(string); ok && v != "" && !filepath.IsAbs(v) {
				p[k] = filepath.Join(base, v)
			}
		}
	}
	section(cfg, "api")["listen"] = ""
	section(cfg, "metrics")["listen"] = ""

	layers := section(cfg, "layers")
	if role == config.RoleRelay {
		for k := range layers {
			if !slices.Contains(relayLayers, k) {
				delete(layers, k)
			}
		}
	}
	if p2p, ok := layers["p2p"].(map[string]any); ok {
		plugin, _ := p2p["plugin"].(string)
		var lcfg map[string]any
		switch c := p2p["config"].(type) {
		case map[string]any:
			lcfg = c
		case nil:
			lcfg = map[string]any{}
			p2p["config"] = lcfg
		}
		if lcfg != nil {
			if l, ok := loopbackListen(lcfg["listen"], plugin); ok {
				lcfg["listen"] = l
			}
		}
	}

	switch {
	case role == config.RoleRelay:
		if f, ok := cfg["faults"].(map[string]any); ok {
			for k := range f {
				if k != "seed" && !slices.Contains(relayLayers, k) {
					delete(f, k)
				}
			}
			if _, p2p := f["p2p"]; !p2p {
				if _, priv := f["privacy"]; !priv {
					delete(cfg, "faults")
				}
			}
		}
	case faults != nil && len(faults) == 0:
		delete(cfg, "faults")
	case faults != nil:
		f := deepCopy(faults).(map[string]any)
		f["seed"] = nodeSeed(f["seed"], name)
		cfg["faults"] = f
	}
	return cfg
}

// loopbackListen rewrites a p2p listen value to listen on 127.0.0.1 with
// port 0, keeping its form: multiaddrs (a list, or one comma-separated
// string) or host:port. With no listen key it uses the form of the two
// overlays this repository has, libp2p and devp2p; for another plugin it
// leaves the key alone.
func loopbackListen(v any, plugin string) (any, bool) {
	switch v := v.(type) {
	case nil:
		switch plugin {
		case "libp2p":
			return []any{"/ip4/127.0.0.1/tcp/0"}, true
		case "devp2p":
			return "127.0.0.1:0", true
		}
		return nil, false
	case string:
		if strings.HasPrefix(strings.TrimSpace(v), "/") {
			parts := strings.Split(v, ",")
			out := make([]string, 0, len(parts))
			for _, p := range parts {
				if a := loopbackAddr(strings.TrimSpace(p)); !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
			return strings.Join(out, ","), true
		}
		return loopbackAddr(v), true
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			if a := loopbackAddr(s); !slices.Contains(out, any(a)) {
				out = append(out, a)
			}
		}
		return out, true
	}
	return nil, false
}

// loopbackAddr rewrites one listen address: a multiaddr gets /ip4/127.0.0.1
// for its IP or DNS part and 0 for its tcp and udp ports; anything else is
// taken for host:port and becomes 127.0.0.1:0.
func loopbackAddr(a string) string {
	if !strings.HasPrefix(a, "/") {
		return "127.0.0.1:0"
	}
	toks := strings.Split(a, "/")
	for i := 1; i+1 < len(toks); i++ {
		switch toks[i] {
		case "ip4", "ip6", "dns", "dns4", "dns6":
			toks[i], toks[i+1] = "ip4", "127.0.0.1"
			i++
		case "tcp", "udp":
			toks[i+1] = "0"
			i++
		}
	}
	return strings.Join(toks, "/")
}

// section returns m[key] as a map, creating it when it is missing or not
// a map.
func section(m map[string]any, key string) map[string]any {
	s, ok := m[key].(map[string]any)
	if !ok {
		s = map[string]any{}
		m[key] = s
	}
	return s
}

// deepCopy copies the maps and slices of a config tree.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// writeConfig writes a node's config tree as YAML.
func writeConfig(path, stackPath, name, role string, cfg map[string]any) error {
	b, err := yaml.Parser().Marshal(cfg)
	if err != nil {
		return fmt.Errorf("testnet: %s: config: %w", name, err)
	}
	head := fmt.Sprintf("# Written by strata testnet from %s: node %s (%s).\n", stackPath, name, role)
	if err := os.WriteFile(path, append([]byte(head), b...), 0o600); err != nil {
		return fmt.Errorf("testnet: %s: %w", name, err)
	}
	return nil
}

// checkSet refuses Options.Set entries that are not key=value or that set
// a key the testnet owns, and returns those a relay takes: a relay has no
// secure or sync layer and no faults (Options.Set's faults are for
// clients, as Options.Faults is).
func checkSet(set []string) (relay []string, err error) {
	for _, kv := range set {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("testnet: Set entry %q is not key=value", kv)
		}
		for _, owned := range ownedKeys {
			if key == owned || strings.HasPrefix(key, owned+".") {
				return nil, fmt.Errorf("testnet: Set entry %q: the testnet sets %s itself for every node", kv, owned)
			}
		}
		if strings.HasPrefix(key, "layers.secure") || strings.HasPrefix(key, "layers.sync") || key == "faults" || strings.HasPrefix(key, "faults.") {
			continue
		}
		relay = append(relay, kv)
	}
	return relay, nil
}

// nodeSeed is a client's fault seed: the given seed mixed with the node's
// name, so that nodes given one faults section draw different faults (the
// injectors' streams depend on the seed and the boundary only) while the
// same seed still gives the same faults at each node.
func nodeSeed(seed any, name string) int64 {
	var base int64
	switch v := seed.(type) {
	case int:
		base = int64(v)
	case int64:
		base = v
	case float64:
		base = int64(v)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return base ^ int64(h.Sum64()&(1<<62-1))
}
