package whisper_test

// Relay throughput of our node (devp2p + whisper) against the go-ethereum
// v1.9.20 whisperv6 reference node (cmd/refnode), measured the same way in
// one run: a feeder peer sends distinct valid envelopes to the node under
// test over shh/6, a sink peer counts what the node forwards to it. See
// docs/performance.md ("The whisper layer") for the figures and how to
// read them.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/p2p"

	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Forwarding benchmark parameters, the same for both nodes.
const (
	// benchMinPoW is both nodes' requirement (our min_pow, refnode
	// -minpow; geth enforces a -minpow below its 0.2 tolerance exactly)
	// and what the test peers advertise. It is low so that pre-mining
	// 10^5 envelopes takes seconds, not hours: a relay's validation work
	// does not depend on it (both nodes hash each envelope once to get its
	// PoW, whatever the target).
	benchMinPoW = 0.001
	// benchPoW is what the envelopes are mined to (above benchMinPoW).
	benchPoW = 0.002
	// benchDataSize is the envelope's Data (ciphertext) size in bytes.
	benchDataSize = 512
	// benchTTL: the pre-mined envelopes serve every sub-benchmark of a
	// run while they have 2 minutes to live, and are mined again after.
	benchTTL = 300
	// benchPerPacket envelopes go in each code-1 packet of the feeder.
	benchPerPacket = 64
	// benchMaxSize is both nodes' max_message_size (the default).
	benchMaxSize = wire.DefaultMaxMessageSize
)

// refnodeForBench builds cmd/refnode once per benchmark (or takes
// $STRATA_WHISPER_REFNODE), skipping when it cannot.
func refnodeForBench(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("STRATA_WHISPER_REFNODE"); p != "" {
		return p
	}
	if _, err := exec.LookPath("go"); err != nil {
		b.Skip("go is not on PATH: cannot build the geth v1.9.20 refnode")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		b.Skip(err)
	}
	mod := filepath.Join(root, "interop", "whisperv6")
	if _, err := os.Stat(filepath.Join(mod, "go.mod")); err != nil {
		b.Skipf("refnode module not found at %s: %v", mod, err)
	}
	out := filepath.Join(b.TempDir(), "refnode")
	cmd := exec.Command("go", "build", "-C", mod, "-ldflags=-checklinkname=0", "-o", out, "./cmd/refnode")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Skipf("cannot build the geth v1.9.20 refnode: %v\n%s", err, msg)
	}
	return out
}

// ---- pre-mined envelopes ----

var benchEnvs struct {
	mu    sync.Mutex
	raws  [][]byte // RLP of each envelope
	until time.Time
	next  uint64 // distinguishes envelopes of different minings
}

// minedEnvelopes returns n distinct valid envelopes (RLP), mined to
// benchPoW, with at least 2 minutes to live. The same envelopes serve
// every sub-benchmark while they last, so our node and geth relay the
// same bytes.
func minedEnvelopes(tb testing.TB, n int) [][]byte {
	tb.Helper()
	benchEnvs.mu.Lock()
	defer benchEnvs.mu.Unlock()
	if len(benchEnvs.raws) >= n && time.Until(benchEnvs.until) > 2*time.Minute {
		return benchEnvs.raws[:n]
	}
	spec := envelopeSpec{n: n, dataSize: benchDataSize, ttl: benchTTL, pow: benchPoW, minPoW: benchMinPoW, seed: benchEnvs.next}
	benchEnvs.next++
	raws, until := mineEnvelopes(tb, spec)
	benchEnvs.raws, benchEnvs.until = raws, until
	return raws
}

// ---- the nodes under test ----

// benchNode is a started node under test: its enode URL, a description
// of its counters or log for failure messages, and, when it runs as
// processes of its own, the CPU time it has used so far: the refnode's
// (cpu), or each process's of the shipped relay (parts, by name; relay is
// that relay).
type benchNode struct {
	url   string
	diag  func() string
	cpu   func() (time.Duration, bool)
	parts func() (map[string]time.Duration, bool)
	relay *relayProcess
}

// nodeUnderTest is one started node (ours or geth) with the feeder and
// the sink connected and warmed up.
type nodeUnderTest struct {
	benchNode
	feeder p2p.MsgReadWriter
	sink   *shhPeer
}

// startOurs starts our devp2p and whisper layers in this test process
// (BenchmarkForwardInProcess).
func startOurs(b *testing.B) benchNode {
	h := newHost(b,
		map[string]any{"listen": "127.0.0.1:0", "discovery": "off", "sticky_port": false},
		// The per-peer rate limits (default 200 packets/s, 8 MiB/s in and
		// 8 MiB/s out) would cap the feeder at 12,800 envelopes/s and the
		// sink at 8 MiB/s; geth has none, so they are off here.
		map[string]any{"min_pow": benchMinPoW, "max_message_size": benchMaxSize, "rate_limit_packets": 0, "rate_limit_bytes": 0, "peer_out_rate": 0},
		false)
	return benchNode{url: h.enode(b), diag: func() string {
		return fmt.Sprintf("whisper %v; devp2p %v", h.counters(), h.p2pCounters())
	}}
}

// startGeth starts the refnode (geth v1.9.20's whisperv6) as the node
// under test.
func startGeth(b *testing.B, bin string) benchNode {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// -sniff-messages=false: the refnode's wrapper does not read code-1
	// packets, geth reads them itself as it does without the wrapper.
	args := []string{"-listen", "127.0.0.1:0", "-minpow", fmt.Sprint(benchMinPoW),
		"-maxsize", fmt.Sprint(benchMaxSize), "-verbosity", "1", "-sniff-messages=false"}
	if p := os.Getenv("STRATA_BENCH_REFNODE_CPUPROFILE"); p != "" {
		// A CPU profile of the refnode's whole life (the last one started wins).
		args = append(args, "-cpuprofile", p)
	}
	ref, err := startRefnode(ctx, bin, args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ref.close)
	info, err := ref.info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.MinPoW != benchMinPoW {
		b.Fatalf("refnode min_pow %v, want %v", info.MinPoW, benchMinPoW)
	}
	return benchNode{
		url: info.Enode,
		diag: func() string {
			st := map[string]any{}
			_ = ref.call(context.Background(), "stats", nil, &st)
			return fmt.Sprintf("refnode stats %v; stderr %s", st, ref.stderr.String())
		},
		cpu: func() (time.Duration, bool) {
			var ru struct {
				User int64 `json:"user_ns"`
				Sys  int64 `json:"sys_ns"`
			}
			if err := ref.call(context.Background(), "rusage", nil, &ru); err != nil {
				return 0, false
			}
			return time.Duration(ru.User + ru.Sys), true
		},
	}
}

// benchSetup starts the node, connects the sink then the feeder, and relays
// one packet of warm-up envelopes (which also proves that the node has
// both Statuses).
func benchSetup(b *testing.B, start func() benchNode, warm [][]byte) *nodeUnderTest {
	n := &nodeUnderTest{benchNode: start()}
	n.sink = newShhPeer(b, "sink")
	n.sink.connect(b, n.url)
	n.feeder = newShhPeer(b, "feeder").connect(b, n.url)
	n.sink.expect(int64(len(warm)))
	for _, pkt := range benchPackets(warm, benchPerPacket) {
		if err := sendPacket(n.feeder, pkt); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	select {
	case <-n.sink.doneCh():
	case err := <-n.sink.fail:
		b.Fatalf("sink: %v", err)
	case <-time.After(15 * time.Second):
		b.Fatalf("warm-up: sink got %d of %d envelopes; %s", n.sink.count.Load(), len(warm), n.diag())
	}
	return n
}

// relayResult is one measurement of benchRelay.
type relayResult struct {
	rate   float64 // envelopes per second, feeder's first write to the sink's last receipt
	steady float64 // the sink's steadyRate
	// CPU time per envelope over the same span: of this test process (the
	// feeder and the sink, and our node when it runs in it), and of the
	// node under test when it runs as processes (the refnode; the shipped
	// relay's processes together). 0 when unknown.
	procCPU, nodeCPU float64 // ns per envelope
	// parts is the shipped relay's CPU time per envelope by process
	// (relayProcesses), nil for other nodes.
	parts map[string]float64
}

// Profiles of the timed part. STRATA_BENCH_TIMED_CPUPROFILE=DIR writes one
// of this test process per sub-benchmark, DIR/<name>.prof, and makes each
// process of the shipped relay write its own through the SDK's
// EnvCPUProfileDir, in DIR/<name>-procs/<process>.<pid>.cpu.pprof. A
// process's profile starts a fixed delay after the process (profileAfter,
// which the benchmark waits out after its setup, so the profile holds
// neither the start nor the warm-up) and lasts profileFor(b.N), which the
// benchmark waits out after the flood; idle time adds no samples.
const (
	envTimedProfile = "STRATA_BENCH_TIMED_CPUPROFILE"
	profileAfter    = 6 * time.Second
)

// profileFor is how long the relay's processes profile a flood of n
// envelopes: enough at 10,000 envelopes/s, a fifth of geth's rate here.
func profileFor(n int) time.Duration {
	return 2*time.Second + time.Duration(n)*100*time.Microsecond
}

// benchRelay runs one measurement: b.N envelopes through the node, from the
// feeder's first write to the sink's receipt of the last one. start gets
// the profile span the shipped relay's processes are to write, nil for
// none.
func benchRelay(b *testing.B, start func(*profileSpan) benchNode) relayResult {
	b.StopTimer()
	all := minedEnvelopes(b, benchPerPacket+b.N)
	warm, envs := all[:benchPerPacket], all[benchPerPacket:]
	pkts := benchPackets(envs, benchPerPacket)
	profDir := os.Getenv(envTimedProfile)
	var span *profileSpan
	if profDir != "" && b.N > 1 {
		span = &profileSpan{dir: filepath.Join(profDir, filepath.Base(b.Name())+"-procs"), after: profileAfter, for_: profileFor(b.N)}
		if err := os.MkdirAll(span.dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	n := benchSetup(b, func() benchNode { return start(span) }, warm)
	if span != nil && n.relay != nil {
		// The processes' profiles start profileAfter after the processes.
		time.Sleep(time.Until(n.relay.started.Add(span.after + 250*time.Millisecond)))
	}
	want := int64(len(warm) + len(envs))
	n.sink.expect(want)
	done := n.sink.doneCh()
	sent := make(chan error, 1)
	runtime.GC()

	var prof *os.File
	if profDir != "" {
		// A CPU profile of the timed part only (no mining, no setup), one
		// file per sub-benchmark; the last round (the largest b.N) wins.
		var err error
		if prof, err = os.Create(filepath.Join(profDir, filepath.Base(b.Name())+".prof")); err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			b.Fatal(err)
		}
	}
	var nodeCPU0 time.Duration
	haveNode := n.cpu != nil
	if haveNode {
		nodeCPU0, haveNode = n.cpu()
	}
	var parts0 map[string]time.Duration
	haveParts := n.parts != nil
	if haveParts {
		parts0, haveParts = n.parts()
	}
	procCPU0, haveProc := sdktest.ProcessCPU()
	b.StartTimer()
	t0 := time.Now()
	go func() {
		for _, pkt := range pkts {
			if err := sendPacket(n.feeder, pkt); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	timeout := time.After(60*time.Second + time.Duration(b.N)*100*time.Microsecond)
	for done != nil {
		select {
		case <-done:
			done = nil
		case err := <-sent:
			if err != nil {
				b.Fatalf("feeder: %v", err)
			}
			sent = nil
		case err := <-n.sink.fail:
			b.Fatalf("sink: %v", err)
		case <-timeout:
			b.Fatalf("sink got %d of %d envelopes; %s", n.sink.count.Load(), want, n.diag())
		}
	}
	b.StopTimer()
	procCPU1, _ := sdktest.ProcessCPU()
	var res relayResult
	if haveNode {
		if nodeCPU1, ok := n.cpu(); ok {
			res.nodeCPU = float64(nodeCPU1-nodeCPU0) / float64(b.N)
		}
	}
	if haveParts {
		if parts1, ok := n.parts(); ok {
			res.parts = map[string]float64{}
			var sum time.Duration
			for _, name := range relayProcesses {
				d := parts1[name] - parts0[name]
				res.parts[name] = float64(d) / float64(b.N)
				sum += d
			}
			res.nodeCPU = float64(sum) / float64(b.N)
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	if haveProc {
		res.procCPU = float64(procCPU1-procCPU0) / float64(b.N)
	}
	if got := n.sink.count.Load(); got != want {
		b.Fatalf("sink got %d envelopes, want exactly %d (every envelope once)", got, want)
	}
	elapsed := time.Duration(n.sink.last.Load() - t0.UnixNano())
	res.rate = float64(b.N) / elapsed.Seconds()
	b.ReportMetric(res.rate, "envelopes/s")
	if res.steady = n.sink.steadyRate(); res.steady > 0 {
		b.ReportMetric(res.steady, "steady-env/s")
	}
	if span != nil && n.relay != nil {
		n.relay.waitProfiles(b, len(relayProcesses), span.after+span.for_+30*time.Second)
	}
	return res
}

// reportCPU reports a measurement's CPU figures: the node's and the test
// process's (the feeder and the sink) per envelope, and the shipped
// relay's by process.
func reportCPU(b *testing.B, r relayResult) {
	if r.nodeCPU > 0 {
		b.ReportMetric(r.nodeCPU, "node-cpu-ns/env")
	}
	if r.procCPU > 0 {
		b.ReportMetric(r.procCPU, "peers-cpu-ns/env")
	}
	for name, ns := range r.parts {
		b.ReportMetric(ns, name+"-cpu-ns/env")
	}
}

// reportVsGeth reports ours' figures over geth's of the same run.
func reportVsGeth(b *testing.B, ours, geth relayResult, oursNodeCPU float64) {
	if geth.rate > 0 {
		b.ReportMetric(ours.rate/geth.rate, "x-vs-geth")
	}
	if geth.steady > 0 && ours.steady > 0 {
		b.ReportMetric(ours.steady/geth.steady, "steady-x-vs-geth")
	}
	if geth.nodeCPU > 0 && oursNodeCPU > 0 {
		b.ReportMetric(geth.nodeCPU/oursNodeCPU, "cpu-x-vs-geth")
	}
}

// BenchmarkForward measures envelopes validated and forwarded per second
// by the go-ethereum v1.9.20 reference node (geth) and by the shipped
// devp2p + whisper relay as users run it (ours: `strata run` of
// configs/devp2p-whisper-relay.yaml, the host and the devp2p and whisper
// plugins each a process, the plugins vouched for by a lock file), the
// same way, in one run: geth, then ours; ours also reports its rate over
// geth's (x-vs-geth, against the last geth measurement of the run: use
// -count 1 and repeat the command for more pairs). b.N is the number of envelopes, so ns/op
// is the wall time per relayed envelope, and every one of them must reach
// the sink exactly once. Run it with a large fixed -benchtime (200000x):
// geth forwards its pool on a 300 ms timer, and the figure must be
// throughput, not that latency.
//
// steady-env/s is the rate between the sink's first and last packets
// (see steadyRate): geth's without the 300 ms of its timer at the start
// and the end; steady-x-vs-geth compares those.
//
// CPU figures, less sensitive than rates to other load on the machine:
// node-cpu-ns/env is the CPU time the node under test used per envelope,
// from its processes (/proc/<pid>/stat for ours, the refnode's rusage for
// geth); host-, devp2p- and whisper-cpu-ns/env split ours by process;
// peers-cpu-ns/env is the test process's (the feeder and the sink).
// cpu-x-vs-geth is geth's node-cpu-ns/env over ours.
func BenchmarkForward(b *testing.B) {
	bin := refnodeForBench(b)
	shippedBinaries(b)
	var geth relayResult
	b.Run("geth", func(b *testing.B) {
		geth = benchRelay(b, func(*profileSpan) benchNode { return startGeth(b, bin) })
		reportCPU(b, geth)
	})
	b.Run("ours", func(b *testing.B) {
		ours := benchRelay(b, func(span *profileSpan) benchNode { return startShippedNode(b, span) })
		reportCPU(b, ours)
		reportVsGeth(b, ours, geth, ours.nodeCPU)
	})
}

// BenchmarkForwardInProcess is BenchmarkForward with our devp2p and whisper
// layers in this test process, routed by sdktest.Stack, instead of the
// shipped relay's processes: what the layers cost without the host and
// the plugin boundary, which users never run. node-cpu-ns/env for ours is
// this process's CPU time in the ours run minus the feeder's and the
// sink's (this process's in the geth run).
func BenchmarkForwardInProcess(b *testing.B) {
	bin := refnodeForBench(b)
	var geth relayResult
	b.Run("geth", func(b *testing.B) {
		geth = benchRelay(b, func(*profileSpan) benchNode { return startGeth(b, bin) })
		reportCPU(b, geth)
	})
	b.Run("ours-inprocess", func(b *testing.B) {
		ours := benchRelay(b, func(*profileSpan) benchNode { return startOurs(b) })
		node := ours.procCPU - geth.procCPU
		if geth.procCPU <= 0 || ours.procCPU <= 0 || node <= 0 {
			node = 0
		}
		// This process's CPU time holds the node's here: no peers- figure.
		ours.nodeCPU, ours.procCPU = node, 0
		reportCPU(b, ours)
		reportVsGeth(b, ours, geth, node)
	})
}
