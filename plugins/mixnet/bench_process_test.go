package mixnet_test

// BenchmarkMixProcess: one mix as users run it. The shipped strata host
// binary and the libp2p and mixnet plugin binaries, each a process, are
// started by `strata run` from a config file (node.role relay, the mix
// mix-0-0 of a generated PKI document); around it, in the test, two
// libp2p peers speak the layer's overlay protocol /strata/mixnet/1 as the
// relays beside the mix would: a feeder with provider-0's identity sends
// valid Sphinx packets built for the mix's epoch key, routed through the
// mix to mix-1-0, and a sink with mix-1-0's identity (the next hop the
// document names, which the mix's overlay keeps connected) counts what
// arrives. Beside it, in the same run, the mix state machine (package
// loopix) takes the same packets in this process.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"

	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/pki/testnet"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// mixProtocol is the libp2p protocol id the libp2p layer gives the
// mixnet's overlay protocol (name mixnet, version 1).
const mixProtocol = protocol.ID("/strata/" + mixnet.ProtocolName + "/1")

// mixProcesses names the processes of a mix, in the order their CPU
// figures are reported: the host, then its plugins by name.
var mixProcesses = []string{"host", "libp2p", "mixnet"}

// mixBins is the directory of the binaries the benchmark runs, built once
// per test binary (TestMain removes it).
var mixBins struct {
	once  sync.Once
	dir   string // made by the benchmark, removed by TestMain
	host  string
	plugs string
	skip  string // why the benchmark cannot run here
	err   error
}

// mixTemp are more directories TestMain removes.
var mixTemp []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range append(mixTemp, mixBins.dir) {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// shippedMix returns the strata host binary and the plugin directory
// (with the libp2p and mixnet plugins, locked by `strata plugins lock`),
// built from this source tree once per test binary. $STRATA_BENCH_BIN
// names a directory holding strata and plugins/ to use instead (bin/ of
// `make build`, or an older build to compare with). Without a Go
// toolchain to build them, the benchmark skips.
func shippedMix(tb testing.TB) (hostBin, pluginDir string) {
	tb.Helper()
	mixBins.once.Do(func() {
		if dir := os.Getenv("STRATA_BENCH_BIN"); dir != "" {
			mixBins.host, mixBins.plugs = filepath.Join(dir, "strata"), filepath.Join(dir, "plugins")
		} else {
			gobin, err := exec.LookPath("go")
			if err != nil {
				mixBins.skip = fmt.Sprintf("no go toolchain to build the strata binaries (%v); set STRATA_BENCH_BIN to a directory with strata and plugins/", err)
				return
			}
			if mixBins.dir, mixBins.err = os.MkdirTemp("", "strata-mixbench-"); mixBins.err != nil {
				return
			}
			mixBins.host, mixBins.plugs = filepath.Join(mixBins.dir, "strata"), filepath.Join(mixBins.dir, "plugins")
			for _, b := range []struct{ out, pkg string }{
				{mixBins.host, "github.com/strata-msg/strata/host/cmd/strata"},
				{filepath.Join(mixBins.plugs, "strata-plugin-libp2p"), "github.com/strata-msg/strata/plugins/libp2p/cmd/strata-plugin-libp2p"},
				{filepath.Join(mixBins.plugs, "strata-plugin-mixnet"), "github.com/strata-msg/strata/plugins/mixnet/cmd/strata-plugin-mixnet"},
			} {
				if out, err := exec.Command(gobin, "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
					mixBins.err = fmt.Errorf("go build %s: %w\n%s", b.pkg, err, strings.TrimSpace(string(out)))
					return
				}
			}
		}
		// The lock vouches for the plugins, so that the host runs them
		// without --allow-unverified.
		if out, err := exec.Command(mixBins.host, "plugins", "lock", "--dir", mixBins.plugs).CombinedOutput(); err != nil {
			mixBins.err = fmt.Errorf("strata plugins lock --dir %s: %w\n%s", mixBins.plugs, err, strings.TrimSpace(string(out)))
		}
	})
	if mixBins.skip != "" {
		tb.Skip(mixBins.skip)
	}
	if mixBins.err != nil {
		tb.Fatal(mixBins.err)
	}
	return mixBins.host, mixBins.plugs
}

// mixBench is what the sub-benchmarks share: the network, its mix and
// its neighbours, and a pool of packets for the mix.
type mixBench struct {
	n            *network
	mix          testnet.Member // mix-0-0, under test
	feeder, sink testnet.Member // provider-0 and mix-1-0
	geo          *sphinx.Geometry
	mu           sync.Mutex
	packets      [][]byte // link frames (01 ‖ packet), each new to a fresh mix
}

func member(tb testing.TB, n *network, name string) testnet.Member {
	for _, m := range n.members {
		if m.Name == name {
			return m
		}
	}
	tb.Fatalf("no member %s", name)
	return testnet.Member{}
}

// frames returns k packet frames for the mix, building more if needed
// (on every core: a packet takes five X25519 multiplications). A packet's
// path is the mix, with a NodeDelay of 0 ms (what a sender's draw from
// Exp(μ) gives for μ → ∞: the benchmark measures throughput, not
// mixing), then mix-1-0 as the last hop (drop cover: recipient zero),
// whose routing block only the sink could open. The geometry is the
// deployed one (5 hops, 3082-byte packets).
func (mb *mixBench) frames(tb testing.TB, k int) [][]byte {
	tb.Helper()
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if need := k - len(mb.packets); need > 0 {
		epoch := mb.n.epoch
		hop := func(m testnet.Member) sphinx.PathHop {
			kp, err := m.Keys.Key(epoch)
			if err != nil {
				tb.Fatal(err)
			}
			return sphinx.PathHop{ID: m.Descriptor.NodeID(), PublicKey: sphinx.PublicKey(kp.Public)}
		}
		path := []sphinx.PathHop{hop(mb.mix), hop(mb.sink)}
		path[0].Commands = sphinx.Commands{sphinx.NodeDelay{Delay: 0}}
		path[1].Commands = sphinx.Commands{sphinx.Recipient{}}
		out := make([][]byte, need)
		var wg sync.WaitGroup
		var failed atomic.Value
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := make([]byte, mb.geo.ForwardPayloadLength)
				for i := w; i < need; i += workers {
					pkt, err := mb.geo.NewPacket(rand.Reader, path, payload)
					if err != nil {
						failed.Store(err)
						return
					}
					out[i] = append([]byte{byte(loopix.FramePacket)}, pkt...)
				}
			}()
		}
		wg.Wait()
		if err, ok := failed.Load().(error); ok {
			tb.Fatal(err)
		}
		mb.packets = append(mb.packets, out...)
	}
	return mb.packets[:k]
}

var (
	mixBenchOnce sync.Once
	mixBenchNet  *mixBench
)

// BenchmarkMixProcess measures one mix as users run it (see the top of
// this file), b.N packets per sub-benchmark, at both durabilities of the
// replay store, and the mix state machine on the same packets in this
// process with the same stores (one packet per HandleBatch, and 32). Each
// process sub-benchmark starts a fresh mix (a new data directory: an
// empty replay store), sends warm-up packets, waits for them at the sink,
// then sends b.N packets as fast as the overlay's flow control takes them
// and times them until the sink has them all. It reports packets/s
// through the mix and each process's CPU time per packet (from /proc),
// and for the state machine its packets/s.
//
//	go test -run '^$' -bench BenchmarkMixProcess -benchtime 20000x ./plugins/mixnet/
func BenchmarkMixProcess(b *testing.B) {
	mixBenchOnce.Do(func() {
		n := newNetwork(b)
		geo, err := sphinx.NewGeometry(2000, 5, true)
		if err != nil {
			b.Fatal(err)
		}
		mixBenchNet = &mixBench{n: n, mix: member(b, n, "mix-0-0"), feeder: member(b, n, "provider-0"), sink: member(b, n, "mix-1-0"), geo: geo}
		// newNetwork's files live in that first benchmark's temporary
		// directory; keep copies for the later runs of -count.
		dir, err := os.MkdirTemp("", "strata-mixbench-net-")
		if err != nil {
			b.Fatal(err)
		}
		keep := func(path string) string {
			data, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.Base(path))
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				b.Fatal(err)
			}
			return dst
		}
		n.docPath = keep(n.docPath)
		for name, p := range n.keys {
			n.keys[name] = keep(p)
		}
		mixTemp = append(mixTemp, dir)
	})
	mb := mixBenchNet
	for _, d := range []string{"full", "normal"} {
		b.Run("process/durability="+d, func(b *testing.B) { mb.runProcess(b, d) })
	}
	for _, d := range []struct {
		name string
		d    replay.Durability
	}{{"full", replay.SyncFull}, {"normal", replay.SyncWrite}} {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("state-machine/durability=%s/batch=%d", d.name, batch), func(b *testing.B) { mb.runStateMachine(b, d.d, batch) })
		}
	}
}

// warmup is how many packets go through a fresh mix before the timing
// starts (connections, streams and buffers settle).
const warmup = 500

// runProcess is one process sub-benchmark: a fresh mix with replay
// durability d.
func (mb *mixBench) runProcess(b *testing.B, durability string) {
	hostBin, pluginDir := shippedMix(b)
	frames := mb.frames(b, warmup+b.N)
	sink := startSink(b, mb.sink)
	mixKey := libp2pKey(b, mb.mix)
	mixID, err := peer.IDFromPrivateKey(mixKey)
	if err != nil {
		b.Fatal(err)
	}
	port := freePort(b)
	p := startMix(b, hostBin, pluginDir, mb.n, mb.mix, mixKey, port, sink.addr(), durability)
	// The mix's overlay dials its next hop (bootstrap) at start.
	deadline := time.Now().Add(30 * time.Second)
	for sink.h.Network().Connectedness(mixID) != lpnet.Connected {
		if time.Now().After(deadline) {
			b.Fatalf("the mix did not connect to its next hop within 30 s\n%s", p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	feed := startFeeder(b, mb.feeder, mixID, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))

	wait := func(want int64, timeout time.Duration) {
		b.Helper()
		end := time.Now().Add(timeout)
		for sink.count.Load() < want {
			if time.Now().After(end) {
				b.Fatalf("the sink has %d of %d packets after %v\n%s", sink.count.Load(), want, timeout, p.logTail())
			}
			if err := feed.failed(); err != nil {
				b.Fatalf("feeder: %v\n%s", err, p.logTail())
			}
			time.Sleep(time.Millisecond)
		}
	}
	feed.send(frames[:warmup])
	wait(warmup, 30*time.Second)
	cpu0, ok := p.cpu()
	if !ok {
		b.Fatal("cannot read the CPU times of the mix's processes")
	}
	b.ResetTimer()
	start := time.Now()
	feed.send(frames[warmup:])
	wait(int64(warmup+b.N), 60*time.Second+time.Duration(b.N)*2*time.Millisecond)
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, ok := p.cpu()
	if !ok {
		b.Fatal("cannot read the CPU times of the mix's processes")
	}
	if got := sink.count.Load(); got != int64(warmup+b.N) {
		b.Fatalf("the sink has %d packets, want %d", got, warmup+b.N)
	}
	if sink.bad.Load() != 0 {
		b.Fatalf("the sink got %d frames that are not packet frames", sink.bad.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "packets/s")
	var total time.Duration
	for _, name := range mixProcesses {
		d := cpu1[name] - cpu0[name]
		total += d
		b.ReportMetric(float64(d.Microseconds())/float64(b.N), name+"-µs/pkt")
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "cpu-µs/pkt")
	// The mean batch: packets per replay commit, from the mix's counters
	// (which binaries from before replay_batches do not have).
	if c := p.counters(b, "mixnet", "packets_in", int64(warmup+b.N)); c != nil && c["replay_batches"] > 0 {
		b.ReportMetric(float64(c["packets_in"])/float64(c["replay_batches"]), "pkts/commit")
	}
}

// runStateMachine is the mix state machine on the same packets in this
// process, with package replay at durability d, batch packets per
// HandleBatch: what the plugin drives, without the processes and the
// overlay.
func (mb *mixBench) runStateMachine(b *testing.B, d replay.Durability, batch int) {
	frames := mb.frames(b, b.N)
	ctx := context.Background()
	doc, err := pki.Verify(mustRead(b, mb.n.docPath), pki.VerifyOptions{
		Authorities: []ed25519.PublicKey{mb.n.authKey.Public().(ed25519.PublicKey)}, Threshold: 1,
		NetworkID: "test", Layers: 3, GeometryID: loopix.GeometryID(mb.geo), Epoch: mb.n.epoch,
	})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := loopix.NewDirectory(doc, func(d *pki.Descriptor) (loopix.PeerID, error) {
		id, err := peer.Decode(d.Libp2pPeerID)
		return loopix.PeerID(id), err
	})
	if err != nil {
		b.Fatal(err)
	}
	keys, err := pki.NewKeyChain(mb.mix.KeySecret, mb.n.epoch)
	if err != nil {
		b.Fatal(err)
	}
	st, err := replay.Open(ctx, b.TempDir(), mb.n.epoch, replay.Options{Durability: d})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	epochs, err := pki.NewEpochs(0, time.Time{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := mb.n.template.Params
	rates := loopix.RatesOf(&p)
	rates.LambdaM = 0
	now := time.Now()
	mx, err := loopix.NewMix(ctx, loopix.RelayConfig{
		Common: loopix.Common{Geometry: mb.geo, Epochs: epochs, Rand: rand.Reader, Rates: rates},
		Self:   mb.mix.Descriptor.NodeID(), Keys: keys, Replay: st, MaxQueue: 20000, MaxDelay: time.Minute,
	}, dir, now)
	if err != nil {
		b.Fatal(err)
	}
	from := loopix.PeerID(peerOf(b, mb.feeder))
	work := make([][]byte, batch)
	for i := range work {
		work[i] = make([]byte, len(frames[0]))
	}
	in := make([]loopix.Inbound, 0, batch)
	out := 0
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		w := work[len(in)]
		copy(w, frames[i])
		in = append(in, loopix.Inbound{From: from, Frame: w})
		if len(in) == batch || i == b.N-1 {
			mx.HandleBatch(ctx, now, in)
			in = in[:0]
			mx.Tick(ctx, now)
			out += len(mx.Ready().Out)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if out != b.N {
		c := mx.Counters()
		b.Fatalf("the mix forwarded %d of %d packets (%d replayed, %d undecryptable, %d bad commands)", out, b.N, c.Replayed.Load(), c.Undecryptable.Load(), c.BadCommands.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "packets/s")
}

func mustRead(tb testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// libp2pKey is a relay's libp2p host key: its identity key, as the
// generator publishes it.
func libp2pKey(tb testing.TB, m testnet.Member) crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(m.Identity)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func peerOf(tb testing.TB, m testnet.Member) peer.ID {
	id, err := peer.Decode(m.Descriptor.Libp2pPeerID)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// freePort is a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newPeer is a test-side libp2p host with a relay's identity.
func newPeer(tb testing.TB, m testnet.Member, listen ...string) host.Host {
	h, err := libp2p.New(libp2p.Identity(libp2pKey(tb, m)), libp2p.ListenAddrStrings(listen...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// sinkPeer counts the packet frames it receives on the mixnet protocol.
type sinkPeer struct {
	h     host.Host
	count atomic.Int64
	bad   atomic.Int64
}

func startSink(tb testing.TB, m testnet.Member) *sinkPeer {
	s := &sinkPeer{h: newPeer(tb, m, "/ip4/127.0.0.1/tcp/0")}
	s.h.SetStreamHandler(mixProtocol, func(st lpnet.Stream) {
		defer st.Close()
		r := bufio.NewReaderSize(st, 64<<10)
		buf := make([]byte, 0, 4096)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil || n > 1<<20 {
				return
			}
			buf = slices.Grow(buf[:0], int(n))[:n]
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			if n > 0 && buf[0] == byte(loopix.FramePacket) {
				s.count.Add(1)
			} else {
				s.bad.Add(1)
			}
		}
	})
	return s
}

// addr is the sink's full multiaddr, for the mix's bootstrap list.
func (s *sinkPeer) addr() string {
	return s.h.Addrs()[0].String() + "/p2p/" + s.h.ID().String()
}

// feederPeer writes packet frames to the mix on one stream.
type feederPeer struct {
	w    *bufio.Writer
	mu   sync.Mutex
	err  error
	jobs chan [][]byte
}

func startFeeder(tb testing.TB, m testnet.Member, mix peer.ID, mixAddr string) *feederPeer {
	h := newPeer(tb, m)
	a, err := ma.NewMultiaddr(mixAddr)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: mix, Addrs: []ma.Multiaddr{a}}); err != nil {
		tb.Fatalf("feeder: connect to the mix: %v", err)
	}
	st, err := h.NewStream(ctx, mix, mixProtocol)
	if err != nil {
		tb.Fatalf("feeder: open a %s stream to the mix: %v", mixProtocol, err)
	}
	f := &feederPeer{w: bufio.NewWriterSize(st, 64<<10), jobs: make(chan [][]byte, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var lb [binary.MaxVarintLen64]byte
		for frames := range f.jobs {
			for _, fr := range frames {
				_, err := f.w.Write(lb[:binary.PutUvarint(lb[:], uint64(len(fr)))])
				if err == nil {
					_, err = f.w.Write(fr)
				}
				if err != nil {
					f.fail(err)
					break
				}
			}
			if err := f.w.Flush(); err != nil {
				f.fail(err)
			}
		}
	}()
	tb.Cleanup(func() {
		close(f.jobs)
		st.Reset()
		<-done
	})
	return f
}

// send queues frames to be written (in order, after those queued before).
func (f *feederPeer) send(frames [][]byte) { f.jobs <- frames }

func (f *feederPeer) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *feederPeer) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// mixProcess is a running `strata run` of the mix.
type mixProcess struct {
	cmd     *exec.Cmd
	api     string // the API's socket
	mu      sync.Mutex
	tail    []string
	started chan struct{} // closed when the mixnet layer has started
	exited  chan struct{}
}

var mixStartedRE = regexp.MustCompile(`layer started: plugin=mixnet `)

// startMix writes the mix's config file — node.role relay, the libp2p
// and mixnet plugins as processes — and its keys, and starts `strata run
// -c` on it. The mix listens on port and keeps its next hop (the sink, at
// next) connected. Its own loops are off (lambda_m 0: they would go to
// the sink too) and mu is the highest the config allows (its loops would
// draw delays from it; the feeder's packets carry their own, 0 ms).
func startMix(tb testing.TB, hostBin, pluginDir string, n *network, m testnet.Member, key crypto.PrivKey, port int, next, durability string) *mixProcess {
	tb.Helper()
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	// The overlay's host key, where the libp2p layer keeps it: the
	// identity the PKI document publishes for the mix.
	kb, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "p2p", "libp2p"), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "p2p", "libp2p", "identity.key"), kb, 0o600); err != nil {
		tb.Fatal(err)
	}
	privacy := n.config(mixnet.RoleMix, m.Name, map[string]any{
		"durability": durability, "replay_expected_tags": replay.DefaultExpectedTags,
		"lambda_m": 0, "mu": 100000,
	})
	cfg := map[string]any{
		"node":    map[string]any{"name": m.Name, "data_dir": data, "role": "relay"},
		"plugins": map[string]any{"dir": pluginDir},
		"layers": map[string]any{
			"p2p": map[string]any{"plugin": "libp2p", "mode": "process", "config": map[string]any{
				"listen": []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}, "security": []string{"noise"},
				"mdns": false, "dht": "off", "bootstrap": []string{next},
				// The per-peer read limit (16 MiB/s by default) would
				// cap the feeder at about 5,400 packets/s.
				"peer_in_rate": 0,
			}},
			"privacy": map[string]any{"plugin": "mixnet", "mode": "process", "config": privacy},
		},
		// The messaging API, on a socket, for the layers' counters.
		"api": map[string]any{"listen": "unix:" + filepath.Join(dir, "api.sock")},
		"log": map[string]any{"level": "info"},
	}
	// JSON is YAML: the config file is written as JSON.
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "mix.yaml")
	if err := os.WriteFile(path, cb, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(hostBin, "run", "-c", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", hostBin, err)
	}
	p := &mixProcess{cmd: cmd, api: filepath.Join(dir, "api.sock"), started: make(chan struct{}), exited: make(chan struct{})}
	go p.readLog(bufio.NewScanner(stderr))
	tb.Cleanup(p.stop)
	select {
	case <-p.started:
	case <-p.exited:
		tb.Fatalf("strata run exited: %v\n%s", cmd.ProcessState, p.logTail())
	case <-time.After(60 * time.Second):
		tb.Fatalf("strata run: the mixnet layer did not start within 60 s\n%s", p.logTail())
	}
	return p
}

func (p *mixProcess) readLog(sc *bufio.Scanner) {
	defer close(p.exited)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	started := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 40 {
			p.tail = p.tail[len(p.tail)-40:]
		}
		p.mu.Unlock()
		if !started && mixStartedRE.MatchString(line) {
			started = true
			close(p.started)
		}
	}
}

func (p *mixProcess) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "strata run's log:\n" + strings.Join(p.tail, "\n")
}

// stop asks the mix to stop (SIGINT) and kills it if it has not within
// 20 s.
func (p *mixProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = p.cmd.Wait()
}

// cpu is the CPU time each of the mix's processes has used so far, by
// mixProcesses name; ok is false when one cannot be read.
func (p *mixProcess) cpu() (map[string]time.Duration, bool) {
	hostPID := p.cmd.Process.Pid
	out := map[string]time.Duration{}
	d, err := pidCPU(hostPID)
	if err != nil {
		return nil, false
	}
	out["host"] = d
	kids, err := childPIDs(hostPID)
	if err != nil {
		return nil, false
	}
	for pid, exe := range kids {
		name := strings.TrimPrefix(filepath.Base(exe), "strata-plugin-")
		if !slices.Contains(mixProcesses, name) {
			continue
		}
		if out[name], err = pidCPU(pid); err != nil {
			return nil, false
		}
	}
	return out, len(out) == len(mixProcesses)
}

// counters returns the counters plugin's layer last reported to the host
// (through the API's Stats), once counter key has reached at least want
// (the host polls its plugins' health every 2 s); nil if it cannot be
// read within 10 s.
func (p *mixProcess) counters(tb testing.TB, plugin, key string, want int64) map[string]uint64 {
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.api)
		}))
	if err != nil {
		tb.Logf("the mix's API: %v", err)
		return nil
	}
	defer conn.Close()
	c := appv1.NewMessagingClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		st, err := c.Stats(ctx, &appv1.StatsRequest{})
		if err != nil {
			tb.Logf("the mix's API: %v", err)
			return nil
		}
		for _, l := range st.GetLayers() {
			if l.GetPlugin() == plugin && int64(l.GetCounters()[key]) >= want {
				return l.GetCounters()
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Logf("the mix's %s counter %s did not reach %d within 10 s", plugin, key, want)
	return nil
}
