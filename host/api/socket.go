package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// checkDir refuses a directory for the API's socket or token that is not
// this user's, or that group or others may write to: whoever can write to
// it can remove the socket and put their own in its place, and the CLI
// would then hand them what the user sends.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("the directory %s belongs to another user: put the socket in a directory of the user that runs the node (uid %d), such as the default <node.data_dir>/host", dir, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("the directory %s (mode %04o) is writable by group or others: chmod go-w %s, or put the socket in a directory only its user can write to", dir, perm, dir)
	}
	return nil
}

// umaskMu serialises the umask changes of listenUnix.
var umaskMu sync.Mutex

// listenUnix creates the API's Unix socket at path, with no access for
// group or others from its first instant. A stale socket file from a node
// that died is replaced; one that a live process serves is not.
func listenUnix(path string, log hclog.Logger) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is served by another process (is this node already running?)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := bindUnix(path)
	if err != nil {
		return nil, err
	}
	// Whatever else changed the umask meanwhile: check what was made.
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = fmt.Errorf("the socket %s came out with mode %04o", path, fi.Mode().Perm())
	}
	if err != nil {
		lis.Close()
		return nil, err
	}
	uid := os.Getuid()
	return &peerListener{Listener: lis, uid: uid, log: log}, nil
}

// bindUnix binds and listens on the socket at path under umask 077, so the
// socket file never exists with more than the owner's access: a chmod
// after bind would leave a moment in which another user could connect.
//
// The umask belongs to the whole process, not to this goroutine, and is
// 077 for the time of one bind and listen. Whatever another goroutine
// creates meanwhile (a file, or a plugin process restarting, which inherits
// the umask) gets no access for group or others: tighter than asked, never
// looser, so the window exposes nothing. (The one file the host makes
// readable by others, card.txt, is only read by its own user.) umaskMu
// serialises the callers in this process that change the umask here: two
// overlapping calls would otherwise let the second one save 077 as "the
// old umask" and the first restore the original before the second binds.
func bindUnix(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// peerListener accepts only connections from processes of its own user,
// by the peer credentials the kernel recorded when the client connected
// (SO_PEERCRED, LOCAL_PEERCRED): the socket's mode keeps other users out
// already, and this holds even if the mode or the directory fails to.
type peerListener struct {
	net.Listener
	uid int
	log hclog.Logger
}

// Accept returns the next connection of a process of the listener's user;
// it closes the others as they come.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && uid == l.uid {
			return c, nil
		}
		c.Close()
		if l.log != nil {
			if err != nil {
				l.log.Warn("messaging API: refused a connection whose peer credentials could not be read", "error", err)
			} else {
				l.log.Warn("messaging API: refused a connection from another user", "uid", uid)
			}
		}
	}
}

// peerUID returns the user id of the process at the other end of the Unix
// socket connection c, as the kernel recorded it at connect.
func peerUID(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no file descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid := -1
	var uerr error
	if err := raw.Control(func(fd uintptr) { uid, uerr = socketPeerUID(int(fd)) }); err != nil {
		return -1, err
	}
	return uid, uerr
}
