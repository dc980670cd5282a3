//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package whisper_test

import "time"

// processCPU cannot be read here: the benchmarks report no CPU figures.
func processCPU() (time.Duration, bool) { return 0, false }
