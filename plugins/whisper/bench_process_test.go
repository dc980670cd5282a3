package whisper_test

// The shipped relay as users run it, for BenchmarkForward: the strata host
// binary and the devp2p and whisper plugin binaries, each a process,
// started by `strata run` from configs/devp2p-whisper-relay.yaml with the
// benchmark's overrides. The plugin binaries are the flood tests' (built
// once per test binary into one directory) and are vouched for by a lock
// file that `strata plugins lock` writes there: the host runs nothing
// unverified.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// relayProcesses names the processes of the shipped relay, in the order
// their CPU figures are reported: the host, then its plugins by name.
var relayProcesses = []string{"host", "devp2p", "whisper"}

// strataBin is the host binary the benchmark builds, once per test binary,
// next to the flood tests' plugins (TestMain removes the directory).
var strataBin struct {
	once sync.Once
	path string
	err  error
}

// shippedBinaries builds the strata host and the plugin binaries (the
// plugins' directory is the flood tests'), locks the plugins with
// `strata plugins lock`, and returns the host binary and that directory.
// $STRATA_BENCH_STRATA names a host binary to use instead of building
// one (bin/strata of `make build`, say).
func shippedBinaries(tb testing.TB) (host, pluginDir string) {
	tb.Helper()
	pluginDir = floodPlugins(tb)
	strataBin.once.Do(func() {
		path := os.Getenv("STRATA_BENCH_STRATA")
		if path == "" {
			hostDir := filepath.Join(pluginDir, "host")
			if strataBin.err = os.MkdirAll(hostDir, 0o755); strataBin.err != nil {
				return
			}
			path = filepath.Join(hostDir, "strata")
			if out, err := exec.Command("go", "build", "-o", path, "github.com/strata-msg/strata/host/cmd/strata").CombinedOutput(); err != nil {
				strataBin.err = fmt.Errorf("go build strata: %w\n%s", err, strings.TrimSpace(string(out)))
				return
			}
		}
		// The lock vouches for the binaries this test binary built, so
		// that the host runs them without --allow-unverified.
		if out, err := exec.Command(path, "plugins", "lock", "--dir", pluginDir).CombinedOutput(); err != nil {
			strataBin.err = fmt.Errorf("strata plugins lock --dir %s: %w\n%s", pluginDir, err, strings.TrimSpace(string(out)))
			return
		}
		strataBin.path = path
	})
	if strataBin.err != nil {
		tb.Fatal(strataBin.err)
	}
	return strataBin.path, pluginDir
}

// relayProcess is a running `strata run` of the shipped relay.
type relayProcess struct {
	cmd     *exec.Cmd
	started time.Time

	mu       sync.Mutex
	tail     []string    // the last lines of its log (standard error)
	enode    chan string // the enode URL, once it is logged
	enodeURL string
	written  int           // "CPU profile written" lines seen
	profiles chan struct{} // a token for each of them
	exited   chan struct{}
}

// relayLogTail is how many log lines a relayProcess keeps for failure
// messages.
const relayLogTail = 40

// enodeRE finds the devp2p layer's enode URL in the host's "layer started"
// log line.
var enodeRE = regexp.MustCompile(`layer started: plugin=devp2p .*address=(enode://\S+)`)

// profileSpan asks the relay's processes for a CPU profile (sdk's
// EnvCPUProfileDir) written to dir, starting after and lasting for.
type profileSpan struct {
	dir         string
	after, for_ time.Duration
}

// startShipped starts the shipped devp2p + whisper relay with `strata run`
// on the benchmark's settings and returns it with its enode URL.
func startShipped(tb testing.TB, prof *profileSpan) *relayProcess {
	tb.Helper()
	bin, pluginDir := shippedBinaries(tb)
	shipped, err := filepath.Abs(filepath.Join("..", "..", "configs", "devp2p-whisper-relay.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{"run", "-c", shipped}
	for _, s := range []string{
		"node.data_dir=" + filepath.Join(tb.TempDir(), "relay"),
		"plugins.dir=" + pluginDir,
		"layers.p2p.config.listen=127.0.0.1:0",
		fmt.Sprintf("layers.privacy.config.min_pow=%g", benchMinPoW),
		fmt.Sprintf("layers.privacy.config.max_message_size=%d", benchMaxSize),
		// The per-peer rate limits (default 200 packets/s, 8 MiB/s in and
		// 8 MiB/s out) would cap the feeder at 12,800 envelopes/s and the
		// sink at 8 MiB/s; geth has none, so they are off here.
		"layers.privacy.config.rate_limit_packets=0",
		"layers.privacy.config.rate_limit_bytes=0",
		"layers.privacy.config.peer_out_rate=0",
		// The overlay's per-peer read limit (16 MiB/s by default) caps
		// the feeder at about 32,700 of these envelopes a second.
		"layers.p2p.config.peer_in_rate=0",
		"log.level=info",
	} {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(bin, args...)
	// The relay's config comes from the file and --set alone: no STRATA_
	// variable of the test's environment reaches it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if prof != nil {
		cmd.Env = append(cmd.Env,
			sdk.EnvCPUProfileDir+"="+prof.dir,
			sdk.EnvCPUProfileAfter+"="+prof.after.String(),
			sdk.EnvCPUProfileFor+"="+prof.for_.String())
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", bin, err)
	}
	r := &relayProcess{cmd: cmd, started: started, enode: make(chan string, 1), profiles: make(chan struct{}, 16), exited: make(chan struct{})}
	go r.readLog(bufio.NewScanner(stderr))
	tb.Cleanup(r.stop)
	select {
	case r.enodeURL = <-r.enode:
	case <-r.exited:
		tb.Fatalf("strata run exited: %v\n%s", cmd.ProcessState, r.logTail())
	case <-time.After(30 * time.Second):
		tb.Fatalf("strata run: no devp2p enode URL in its log within 30 s\n%s", r.logTail())
	}
	return r
}

// readLog keeps the log's tail, and passes on the enode URL and each
// written CPU profile.
func (r *relayProcess) readLog(sc *bufio.Scanner) {
	defer close(r.exited)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.tail = append(r.tail, line)
		if len(r.tail) > relayLogTail {
			r.tail = r.tail[len(r.tail)-relayLogTail:]
		}
		r.mu.Unlock()
		if m := enodeRE.FindStringSubmatch(line); m != nil {
			select {
			case r.enode <- m[1]:
			default:
			}
		}
		if strings.Contains(line, "CPU profile written") {
			r.profiles <- struct{}{}
		}
	}
}

func (r *relayProcess) logTail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.tail, "\n")
}

// waitProfiles waits until n processes have written their CPU profile.
func (r *relayProcess) waitProfiles(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for ; r.written < n; r.written++ {
		select {
		case <-r.profiles:
		case <-deadline:
			tb.Fatalf("%d of %d CPU profiles written after %v\n%s", r.written, n, timeout, r.logTail())
		}
	}
}

// stop asks the relay to stop (SIGINT, as Ctrl-C) and kills it if it has
// not within 20 s.
func (r *relayProcess) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	_ = r.cmd.Wait()
}

// cpu is the CPU time (user + system) each of the relay's processes has
// used so far, by relayProcesses name; ok is false when one cannot be
// read.
func (r *relayProcess) cpu() (map[string]time.Duration, bool) {
	host := r.cmd.Process.Pid
	out := map[string]time.Duration{}
	d, err := pidCPU(host)
	if err != nil {
		return nil, false
	}
	out["host"] = d
	kids, err := childPIDs(host)
	if err != nil {
		return nil, false
	}
	for pid, exe := range kids {
		name := strings.TrimPrefix(filepath.Base(exe), "strata-plugin-")
		if !slices.Contains(relayProcesses, name) {
			continue
		}
		if out[name], err = pidCPU(pid); err != nil {
			return nil, false
		}
	}
	return out, len(out) == len(relayProcesses)
}

// startShippedNode starts the shipped relay as the node under test.
func startShippedNode(tb testing.TB, prof *profileSpan) benchNode {
	r := startShipped(tb, prof)
	return benchNode{
		url:   r.enodeURL,
		diag:  func() string { return "strata run's log:\n" + r.logTail() },
		parts: r.cpu,
		relay: r,
	}
}
