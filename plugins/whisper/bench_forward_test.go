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
// of its counters for failure messages, and (geth only: a process of its
// own) the CPU time it has used so far.
type benchNode struct {
	url  string
	diag func() string
	cpu  func() (time.Duration, bool)
}

// nodeUnderTest is one started node (ours or geth) with the feeder and
// the sink connected and warmed up.
type nodeUnderTest struct {
	benchNode
	feeder p2p.MsgReadWriter
	sink   *shhPeer
}

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
	// feeder and the sink, and our node when it is the one under test),
	// and of the refnode process (geth only). 0 when unknown.
	procCPU, nodeCPU float64 // ns per envelope
}

// benchRelay runs one measurement: b.N envelopes through the node, from the
// feeder's first write to the sink's receipt of the last one.
func benchRelay(b *testing.B, start func() benchNode) relayResult {
	b.StopTimer()
	all := minedEnvelopes(b, benchPerPacket+b.N)
	warm, envs := all[:benchPerPacket], all[benchPerPacket:]
	pkts := benchPackets(envs, benchPerPacket)
	n := benchSetup(b, start, warm)
	want := int64(len(warm) + len(envs))
	n.sink.expect(want)
	done := n.sink.doneCh()
	sent := make(chan error, 1)
	runtime.GC()

	var prof *os.File
	if dir := os.Getenv("STRATA_BENCH_TIMED_CPUPROFILE"); dir != "" {
		// A CPU profile of the timed part only (no mining, no setup), one
		// file per sub-benchmark; the last round (the largest b.N) wins.
		var err error
		if prof, err = os.Create(filepath.Join(dir, filepath.Base(b.Name())+".prof")); err != nil {
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
	procCPU0, haveProc := processCPU()
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
	procCPU1, _ := processCPU()
	var res relayResult
	if haveNode {
		if nodeCPU1, ok := n.cpu(); ok {
			res.nodeCPU = float64(nodeCPU1-nodeCPU0) / float64(b.N)
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	if haveProc {
		res.procCPU = float64(procCPU1-procCPU0) / float64(b.N)
	}
	elapsed := time.Duration(n.sink.last.Load() - t0.UnixNano())
	res.rate = float64(b.N) / elapsed.Seconds()
	b.ReportMetric(res.rate, "envelopes/s")
	if res.steady = n.sink.steadyRate(); res.steady > 0 {
		b.ReportMetric(res.steady, "steady-env/s")
	}
	return res
}

// BenchmarkForward measures envelopes validated and forwarded per second
// by the go-ethereum v1.9.20 reference node (geth) and by our devp2p +
// whisper layers (ours), the same way, in one run; ours also reports its
// rate over geth's (x-vs-geth, against the last geth measurement of the
// run: use -count 1 and repeat the command for more pairs). b.N is the
// number of envelopes, so ns/op is the wall time per relayed envelope.
// Run it with a large fixed -benchtime (e.g. 100000x): geth forwards its
// pool on a 300 ms timer, and the figure must be throughput, not that
// latency.
//
// steady-env/s is the rate between the sink's first and last packets
// (see steadyRate): geth's without the 300 ms of its timer at the start
// and the end; steady-x-vs-geth compares those.
//
// CPU figures, less sensitive than rates to other load on the machine:
// node-cpu-ns/env is the CPU time the node under test used per envelope.
// For geth it is the refnode process's own; ours runs inside the test
// process, so it is this process's CPU time in the ours run minus the
// feeder's and the sink's (this process's CPU time in the geth run,
// peers-cpu-ns/env). cpu-x-vs-geth is geth's node-cpu-ns/env over ours.
func BenchmarkForward(b *testing.B) {
	bin := refnodeForBench(b)
	var geth relayResult
	b.Run("geth", func(b *testing.B) {
		geth = benchRelay(b, func() benchNode { return startGeth(b, bin) })
		if geth.nodeCPU > 0 && geth.procCPU > 0 {
			b.ReportMetric(geth.nodeCPU, "node-cpu-ns/env")
			b.ReportMetric(geth.procCPU, "peers-cpu-ns/env")
		}
	})
	b.Run("ours", func(b *testing.B) {
		ours := benchRelay(b, func() benchNode { return startOurs(b) })
		if geth.rate > 0 {
			b.ReportMetric(ours.rate/geth.rate, "x-vs-geth")
		}
		if geth.steady > 0 && ours.steady > 0 {
			b.ReportMetric(ours.steady/geth.steady, "steady-x-vs-geth")
		}
		if node := ours.procCPU - geth.procCPU; geth.nodeCPU > 0 && geth.procCPU > 0 && ours.procCPU > 0 && node > 0 {
			b.ReportMetric(node, "node-cpu-ns/env")
			b.ReportMetric(geth.nodeCPU/node, "cpu-x-vs-geth")
		}
	})
}
