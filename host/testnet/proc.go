package testnet

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// proc names one process: its pid and its start time (in clock ticks
// since boot, /proc/<pid>/stat field 22), so that a reused pid is not
// taken for the process that had it.
type proc struct {
	pid   int
	start uint64
}

// procInfo is what /proc/<pid>/stat says about a process.
type procInfo struct {
	proc
	ppid  int
	state byte
	comm  string
}

// readStat parses /proc/<pid>/stat.
func readStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procInfo{}, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{proc: proc{pid: pid, start: start}, ppid: ppid, state: f[0][0], comm: string(b[open+1 : end])}, true
}

// haveProc reports whether /proc describes processes (Linux).
func haveProc() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// descendants returns root and every process below it, root first, from
// one scan of /proc. Without /proc it returns root alone. Zombies are left
// out: they have exited.
func descendants(root int) []proc {
	if !haveProc() {
		if pidExists(root) {
			return []proc{{pid: root}}
		}
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procInfo{}
	var top *procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		info, ok := readStat(pid)
		if !ok {
			continue
		}
		if pid == root {
			top = &info
			continue
		}
		children[info.ppid] = append(children[info.ppid], info)
	}
	if top == nil || gone(top.state) {
		return nil
	}
	out := []proc{top.proc}
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !gone(c.state) {
				out = append(out, c.proc)
			}
			queue = append(queue, c.pid)
		}
	}
	return out
}

// gone reports whether a process state means the process has exited
// (zombie or dead).
func gone(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

// alive reports whether p still runs: it exists, is the same process (same
// start time) and is not a zombie.
func alive(p proc) bool {
	if !haveProc() {
		return pidExists(p.pid)
	}
	info, ok := readStat(p.pid)
	return ok && info.start == p.start && !gone(info.state)
}

// describe names a process for an error message: "1234 (strata-plugin-x)".
func describe(p proc) string {
	if info, ok := readStat(p.pid); ok && info.start == p.start {
		return fmt.Sprintf("%d (%s)", p.pid, info.comm)
	}
	return strconv.Itoa(p.pid)
}

// waitGone waits up to timeout until none of procs runs, then kills those
// left with SIGKILL and reports them. A nil error means every one of them
// ended by itself.
func waitGone(procs []proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []proc
		for _, p := range procs {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(left))
			for i, p := range left {
				names[i] = describe(p)
				killPID(p.pid)
			}
			// Give SIGKILL a moment, so that the caller finds them gone.
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if !slices.ContainsFunc(left, alive) {
					break
				}
			}
			return fmt.Errorf("processes still running %s after the host ended, killed: %s", timeout, strings.Join(names, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spawner starts processes from one goroutine locked to its OS thread for
// the spawner's whole life. Linux sends a child its parent-death signal
// when the thread that forked it ends, not the process: a Go runtime thread
// can end (when a goroutine that locked it returns), which would kill a
// host that was forked on it. This thread ends only when close is called,
// after every child is gone.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

// start runs cmd.Start on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// close ends the spawner's goroutine; start must not be called after it.
func (s *spawner) close() { close(s.reqs) }
