//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package sdktest

import "time"

// ProcessCPU cannot read the process's CPU time on this system: ok is
// always false.
func ProcessCPU() (d time.Duration, ok bool) { return 0, false }
