//go:build unix

package group

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used, user and system, so
// that benchmarks on a shared machine can report the work they did apart
// from the time they waited for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
