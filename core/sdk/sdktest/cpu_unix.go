//go:build linux || darwin || freebsd || netbsd || openbsd

package sdktest

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user and system, all threads) this process
// has used so far; ok is false where it cannot be read. A benchmark
// reports the difference over its timed part per operation, the cost of
// an operation to a CPU-bound process where ns/op is wall time.
func ProcessCPU() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
