//go:build linux

package mixnet_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pidCPU is the CPU time (user + system, all threads) process pid has used
// so far: fields 14 and 15 of /proc/<pid>/stat (stat(5)), in clock ticks
// of USER_HZ (100 on every Linux the benchmark runs on).
func pidCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, s := range f[11:13] { // f[0] is field 3
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: /proc stat field %q: %w", pid, s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// procStat returns the fields of /proc/<pid>/stat from field 3 (state)
// on: after the command name, which may hold spaces.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("process %d: /proc stat %q has no command name", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("process %d: /proc stat %q is short", pid, b)
	}
	return f, nil
}

// childPIDs are the processes whose parent is pid (field 4 of their
// stat), each with its executable's path (its first argument).
func childPIDs(pid int) (map[int]string, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		f, err := procStat(child)
		if err != nil || f[1] != strconv.Itoa(pid) {
			continue // gone since the listing, or not a child
		}
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		exe, _, _ := bytes.Cut(cmdline, []byte{0})
		out[child] = string(exe)
	}
	return out, nil
}
