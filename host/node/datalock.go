package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataLockName is the lock file in <data_dir>/host that a running node
// holds, so that a second node on the same data directory fails at once,
// before any plugin starts on the first one's state and ports.
const dataLockName = "lock"

// lockDataDir takes the OS lock (flock) of a node's data directory, held
// until release or until the process ends (a kill -9 releases it too). The
// file holds the holder's process id, for the message of the one that
// finds it taken.
func lockDataDir(dataDir, hostDir string) (release func(), err error) {
	path := filepath.Join(hostDir, dataLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node.data_dir: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another strata process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf("another strata process (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("node.data_dir: %s is in use by %s; stop that node, or give this one its own data_dir", dataDir, holder)
		}
		return nil, fmt.Errorf("node.data_dir: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
