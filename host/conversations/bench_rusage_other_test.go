//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package conversations

import "time"

// processCPU cannot be read here; BenchmarkAppend then reports wall time
// only.
func processCPU() (time.Duration, bool) { return 0, false }
