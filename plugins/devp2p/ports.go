package devp2p

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// portsFile keeps, in the data directory, the address the node listened on
// last time, so that a listen port of 0 gets the same port again and the
// node's enode URL stays valid across restarts.
const portsFile = "listen.json"

// savedListen is the content of portsFile.
type savedListen struct {
	Listen string `json:"listen"`
}

// stickyListen returns the address to try first: the configured one, or,
// when its port is 0, the same host with the port used last time.
func stickyListen(dir, listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != "0" {
		return listen, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return listen, nil
	}
	if err != nil {
		return listen, err
	}
	var saved savedListen
	if err := json.Unmarshal(b, &saved); err != nil {
		return listen, fmt.Errorf("%s: %w", portsFile, err)
	}
	_, last, err := net.SplitHostPort(saved.Listen)
	if err != nil {
		return listen, fmt.Errorf("%s: %w", portsFile, err)
	}
	return net.JoinHostPort(host, last), nil
}

// saveListen records the address the node listens on.
func saveListen(dir, addr string) error {
	b, err := json.Marshal(savedListen{Listen: addr})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, portsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, portsFile))
}
