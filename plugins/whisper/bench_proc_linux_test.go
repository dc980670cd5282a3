//go:build linux

package whisper_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux the benchmark runs on).
const userHZ = 100

// pidCPU is the CPU time (user + system) process pid has used so far, all
// threads, from /proc/<pid>/stat.
func pidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	f, err := statFields(b)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// Fields 14 and 15 of stat(5): utime and stime, in clock ticks;
	// f[0] is field 3 (state).
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: /proc stat field %q: %w", pid, s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// statFields are the fields of a /proc/<pid>/stat after the command name
// (which may hold spaces), from field 3 (state) on.
func statFields(b []byte) ([]string, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc stat %q has no command name", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc stat %q is short", b)
	}
	return f, nil
}

// childPIDs are the processes whose parent is pid, each with the path of
// its executable (its first argument).
func childPIDs(pid int) (map[int]string, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	out := map[int]string{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone since the listing
		}
		f, err := statFields(b)
		if err != nil || f[1] != strconv.Itoa(pid) {
			continue
		}
		dir := filepath.Dir(p)
		child, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		exe, _, _ := bytes.Cut(cmdline, []byte{0})
		out[child] = string(exe)
	}
	return out, nil
}
