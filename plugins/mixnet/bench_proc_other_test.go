//go:build !linux

package mixnet_test

import (
	"errors"
	"time"
)

// errNoProc: the per-process CPU times are read from /proc, which only
// Linux has; elsewhere BenchmarkMixProcess fails at its first reading.
var errNoProc = errors.New("per-process CPU times need Linux's /proc")

func pidCPU(int) (time.Duration, error) { return 0, errNoProc }

func childPIDs(int) (map[int]string, error) { return nil, errNoProc }
