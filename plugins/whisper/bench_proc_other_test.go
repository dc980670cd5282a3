//go:build !linux

package whisper_test

import (
	"errors"
	"time"
)

// errNoProc: the relay's per-process CPU times are read from /proc, which
// only Linux has; elsewhere the benchmark reports none.
var errNoProc = errors.New("per-process CPU times need Linux's /proc")

func pidCPU(int) (time.Duration, error) { return 0, errNoProc }

func childPIDs(int) (map[int]string, error) { return nil, errNoProc }
