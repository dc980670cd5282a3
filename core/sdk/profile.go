package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Environment variables that make a host or plugin process write a CPU
// profile, for finding where a running stack spends its time. Profiling is
// off unless EnvCPUProfileDir is set; the host passes all three on to the
// plugins it launches.
const (
	// EnvCPUProfileDir is the directory the profile is written to, as
	// <name>.<pid>.cpu.pprof.
	EnvCPUProfileDir = "STRATA_CPUPROFILE_DIR"
	// EnvCPUProfileAfter is how long after the process starts profiling
	// begins (a Go duration such as "10s"; default 0).
	EnvCPUProfileAfter = "STRATA_CPUPROFILE_AFTER"
	// EnvCPUProfileFor is how long the profile covers (default 30s). The
	// profile is written when that time is over, while the process goes on
	// running, so that a process that is killed still leaves one.
	EnvCPUProfileFor = "STRATA_CPUPROFILE_FOR"
)

// defaultProfileFor is the length of a profile without EnvCPUProfileFor.
const defaultProfileFor = 30 * time.Second

// StartCPUProfile starts the CPU profile the environment asks for, if any,
// on its own goroutine, and logs where it is written. name names the
// process (the plugin's name, or "host"). A bad setting is logged and
// profiling stays off.
func StartCPUProfile(name string, logger hclog.Logger) {
	dir := os.Getenv(EnvCPUProfileDir)
	if dir == "" {
		return
	}
	after, err := envDuration(EnvCPUProfileAfter, 0)
	if err != nil {
		logger.Error("no CPU profile", "error", err)
		return
	}
	span, err := envDuration(EnvCPUProfileFor, defaultProfileFor)
	if err != nil {
		logger.Error("no CPU profile", "error", err)
		return
	}
	path := filepath.Join(dir, fmt.Sprintf("%s.%d.cpu.pprof", name, os.Getpid()))
	go func() {
		time.Sleep(after)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			logger.Error("no CPU profile", "error", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logger.Error("no CPU profile", "error", err)
			return
		}
		logger.Info("CPU profile started", "path", path, "for", span)
		time.Sleep(span)
		pprof.StopCPUProfile()
		logger.Info("CPU profile written", "path", path)
	}()
}

// envDuration reads a duration from the environment variable key.
func envDuration(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s", key, v)
	}
	return d, nil
}

// profileEnv is the profiling part of this process's environment, which a
// launched plugin inherits (plugins get no other variable of the host's).
func profileEnv() []string {
	var out []string
	for _, k := range []string{EnvCPUProfileDir, EnvCPUProfileAfter, EnvCPUProfileFor} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}
