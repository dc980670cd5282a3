package api

import "golang.org/x/sys/unix"

// socketPeerUID reads the peer's user id of a connected Unix socket.
func socketPeerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return -1, err
	}
	return int(cred.Uid), nil
}
