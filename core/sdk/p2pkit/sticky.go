package p2pkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// StickyFile is the file, in a layer's data directory, that keeps the
// addresses the node listened on last time.
const StickyFile = "listen.json"

// savedAddrs is StickyFile's content. Listen is the one address that
// devp2p wrote before this package existed; it is still read.
type savedAddrs struct {
	Addrs  []string `json:"addrs"`
	Listen string   `json:"listen,omitempty"`
}

// Sticky keeps a node's listen ports across restarts: a configured listen
// address with port 0 is replaced by the address of the same shape (the
// same address with its ports zeroed) that the node had last time.
type Sticky struct {
	// Dir is the layer's data directory.
	Dir string
	// Shape returns an address with its ports zeroed; an address whose
	// shape is itself has port 0 and is the one replaced. HostPortShape
	// and MultiaddrShape are the shapes of the stock overlays.
	Shape func(addr string) string
}

// Resolve returns the addresses to try first: each of listen with port 0
// replaced by last time's address of its shape, if there is one. A missing
// file is no error: the node has not run before.
func (s Sticky) Resolve(listen []string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, StickyFile))
	if errors.Is(err, os.ErrNotExist) {
		return listen, nil
	}
	if err != nil {
		return listen, fmt.Errorf("sticky listen addresses: %w", err)
	}
	var saved savedAddrs
	if err := json.Unmarshal(b, &saved); err != nil {
		return listen, fmt.Errorf("sticky listen addresses: %s: %w", StickyFile, err)
	}
	if saved.Listen != "" {
		saved.Addrs = append(saved.Addrs, saved.Listen)
	}
	last := map[string]string{}
	for _, a := range saved.Addrs {
		if _, seen := last[s.Shape(a)]; !seen {
			last[s.Shape(a)] = a
		}
	}
	out := make([]string, len(listen))
	for i, a := range listen {
		out[i] = a
		if s.Shape(a) == a { // port 0
			if prev, ok := last[a]; ok {
				out[i] = prev
			}
		}
	}
	return out, nil
}

// Save records the addresses the node listens on, atomically.
func (s Sticky) Save(addrs []string) error {
	b, err := json.Marshal(savedAddrs{Addrs: addrs})
	if err != nil {
		return fmt.Errorf("sticky listen addresses: %w", err)
	}
	tmp := filepath.Join(s.Dir, StickyFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sticky listen addresses: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, StickyFile)); err != nil {
		return fmt.Errorf("sticky listen addresses: %w", err)
	}
	return nil
}

// HostPortShape is the shape of a host:port address: host:0. Text that is
// not host:port is its own shape.
func HostPortShape(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, "0")
}

// MultiaddrShape is the shape of a multiaddr: every /tcp/<port> and
// /udp/<port> component with port 0.
func MultiaddrShape(addr string) string {
	parts := strings.Split(addr, "/")
	for i := 0; i+1 < len(parts); i++ {
		if (parts[i] == "tcp" || parts[i] == "udp") && isDigits(parts[i+1]) {
			parts[i+1] = "0"
			i++
		}
	}
	return strings.Join(parts, "/")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
