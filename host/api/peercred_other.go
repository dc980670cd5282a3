//go:build !linux && !darwin && !freebsd

package api

import "errors"

// socketPeerUID fails: this platform's peer credentials are not read here,
// so every connection to the socket is refused rather than trusted. Serve
// the API on loopback TCP, where the token is checked, instead.
func socketPeerUID(int) (int, error) {
	return -1, errors.New("peer credentials are not supported on this platform: set api.listen to a loopback host:port")
}
