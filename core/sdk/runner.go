package sdk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
)

// RunAs is a user to run a plugin process as (LaunchConfig.RunAs).
type RunAs struct {
	// Name is the user's name, for messages.
	Name string
	// UID and GID are the user's ids. The process gets no supplementary
	// groups.
	UID, GID uint32
}

// HashFile returns the SHA-256 of an open file's whole content, read from
// offset 0 without moving the file's offset.
func HashFile(f *os.File) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return nil, fmt.Errorf("hash %s: %w", f.Name(), err)
	}
	return h.Sum(nil), nil
}

// procRunner is the go-plugin runner of a plugin process. Launch gives
// go-plugin a RunnerFunc that builds one rather than an exec.Cmd, because
// go-plugin would run a Cmd by its path (after hashing that path: two
// opens of what may be two files) and with the host's stdin. procRunner
// executes the very file Launch opened and hashed, through its descriptor;
// gives the plugin /dev/null as stdin; and puts the plugin's stderr
// through relayLog before go-plugin parses it into the host's log.
type procRunner struct {
	path   string // the binary's path, for names and logs
	cmd    *exec.Cmd
	stdin  *os.File
	stdout io.ReadCloser
	rawErr io.ReadCloser
	stderr *io.PipeReader
	errOut *io.PipeWriter
	log    hclog.Logger
	limit  LogLimit
	pid    atomic.Int64
}

var _ runner.Runner = (*procRunner)(nil)

// newProcRunner returns the runner of bin, the open binary at path. env
// is the plugin's environment: go-plugin's (magic cookie, protocol
// versions, AutoMTLS certificate, socket directory) after the host's own.
func newProcRunner(path string, bin *os.File, env []string, cfg *LaunchConfig) (*procRunner, error) {
	cmd := &exec.Cmd{Args: []string{path}, Env: env}
	execOpenFile(cmd, bin)
	setParentDeathSignal(cmd)
	if cfg.RunAs != nil {
		if err := setRunAs(cmd, cfg.RunAs); err != nil {
			return nil, err
		}
	}
	// The host's stdin is the operator's terminal or the host's own input:
	// no plugin reads it.
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	cmd.Stdin = stdin
	r := &procRunner{path: path, cmd: cmd, stdin: stdin, log: cfg.Logger, limit: cfg.LogLimit}
	if r.stdout, err = cmd.StdoutPipe(); err != nil {
		stdin.Close()
		return nil, err
	}
	if r.rawErr, err = cmd.StderrPipe(); err != nil {
		stdin.Close()
		return nil, err
	}
	r.stderr, r.errOut = io.Pipe()
	return r, nil
}

// Start implements runner.Runner.
func (r *procRunner) Start(context.Context) error {
	err := r.cmd.Start()
	r.stdin.Close() // the child has its own
	if err != nil {
		r.errOut.Close()
		return err
	}
	r.pid.Store(int64(r.cmd.Process.Pid))
	go relayLog(r.rawErr, r.errOut, r.limit, r.log, time.Now)
	return nil
}

// Wait implements runner.Runner.
func (r *procRunner) Wait(context.Context) error { return r.cmd.Wait() }

// Kill implements runner.Runner.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// ID implements runner.Runner: the pid, "" before Start.
func (r *procRunner) ID() string {
	if p := r.pid.Load(); p != 0 {
		return strconv.FormatInt(p, 10)
	}
	return ""
}

// Pid is the process id, 0 before Start.
func (r *procRunner) Pid() int { return int(r.pid.Load()) }

// Name implements runner.Runner: the binary's path, whose base names the
// plugin's lines in the host's log.
func (r *procRunner) Name() string { return r.path }

// Stdout implements runner.Runner.
func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }

// Stderr implements runner.Runner: the cleaned, rate-limited stderr.
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }

// Diagnose implements runner.Runner.
func (r *procRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("the plugin %s did not complete the go-plugin handshake: it may not be a Strata plugin, be built for another system, or have exited at start (its log lines above say why)", r.path)
}

// PluginToHost implements runner.AddrTranslator: the plugin runs on this
// machine, so addresses are the same on both sides.
func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

// HostToPlugin implements runner.AddrTranslator.
func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
