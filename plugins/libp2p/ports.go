package libp2pplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	ma "github.com/multiformats/go-multiaddr"
)

// portsFile keeps, in the data directory, the addresses the node listened
// on last time, so that a listen address with port 0 gets the same port
// again: the node's contact card, which carries its addresses, then stays
// valid across restarts.
const portsFile = "listen.json"

// savedPorts is the content of portsFile.
type savedPorts struct {
	Addrs []string `json:"addrs"`
}

// portRE matches the port of a TCP or UDP component.
var portRE = regexp.MustCompile(`/(tcp|udp)/[0-9]+`)

// shape is an address with its ports zeroed: what a configured listen
// address and the address it got have in common.
func shape(a ma.Multiaddr) string {
	return portRE.ReplaceAllString(a.String(), "/$1/0")
}

// stickyListen returns the listen addresses to try first: each configured
// address with port 0 replaced by the address of the same shape the node
// had last time, if any. Addresses with a fixed port are kept as they are.
func stickyListen(dir string, listen []ma.Multiaddr) ([]ma.Multiaddr, error) {
	b, err := os.ReadFile(filepath.Join(dir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return listen, nil
	}
	if err != nil {
		return listen, err
	}
	var saved savedPorts
	if err := json.Unmarshal(b, &saved); err != nil {
		return listen, fmt.Errorf("%s: %w", portsFile, err)
	}
	last := map[string]ma.Multiaddr{}
	for _, s := range saved.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		if _, seen := last[shape(a)]; !seen {
			last[shape(a)] = a
		}
	}
	out := make([]ma.Multiaddr, len(listen))
	for i, a := range listen {
		out[i] = a
		if shape(a) == a.String() { // port 0
			if prev, ok := last[shape(a)]; ok {
				out[i] = prev
			}
		}
	}
	return out, nil
}

// savePorts records the addresses the node listens on.
func savePorts(dir string, addrs []ma.Multiaddr) error {
	saved := savedPorts{}
	for _, a := range addrs {
		saved.Addrs = append(saved.Addrs, a.String())
	}
	b, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, portsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, portsFile))
}
