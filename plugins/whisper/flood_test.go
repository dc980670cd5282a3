package whisper_test

// Flood tests: a whisper relay run as plugin processes from a shipped
// config (configs/devp2p-whisper-relay.yaml, configs/libp2p-whisper-relay.yaml;
// rate limits off) takes a geth-style flood of distinct valid envelopes, 64
// per code-1 packet, from one feeder on 127.0.0.1, and every envelope must
// reach the sink with nothing dropped anywhere: no layer's dropped_*
// counter and no host boundary's drop counter may move. A third test has
// two relays, each flooded by its own feeder, flood each other; it must
// complete the same way. See docs/architecture.md, "Flow control at the
// overlay". -short runs a tenth of the flood; `make flood` runs it all.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/hashicorp/go-hclog"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Flood parameters.
const (
	// floodEnvelopes is the flood's size (-short: floodEnvelopesShort).
	floodEnvelopes      = 200_000
	floodEnvelopesShort = 20_000
	// floodPerPacket envelopes go in each code-1 packet of a feeder.
	floodPerPacket = 64
	// floodDataSize is each envelope's Data size in bytes.
	floodDataSize = 200
	// floodMinPoW is the relay's min_pow and what the test peers
	// advertise; the envelopes are mined to floodPoW. They are low so
	// that mining 2×10^5 envelopes takes seconds: the relay hashes each
	// envelope once to get its PoW whatever the target.
	floodMinPoW = 0.00001
	floodPoW    = 0.00002
	// floodTTL outlives the longest flood.
	floodTTL = 1200
	// floodProtocol is shh/6 on the libp2p overlay.
	floodProtocol = "/strata/shh/6"
)

// floodSize is the number of envelopes each feeder sends.
func floodSize(full int) int {
	if testing.Short() {
		return full / 10
	}
	return full
}

// floodBins is the directory of the plugin binaries the flood tests
// build, once per test binary; TestMain removes it.
var floodBins struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the flood tests' plugin binaries after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if floodBins.dir != "" {
		os.RemoveAll(floodBins.dir)
	}
	os.Exit(code)
}

// floodPlugins builds the overlay and whisper plugin binaries the first
// time it is called and returns their directory.
func floodPlugins(t testing.TB) string {
	t.Helper()
	floodBins.once.Do(func() {
		if floodBins.dir, floodBins.err = os.MkdirTemp("", "strata-flood-plugins-"); floodBins.err != nil {
			return
		}
		for _, name := range []string{"devp2p", "libp2p", "whisper"} {
			if _, err := sdktest.Build(floodBins.dir, "github.com/strata-msg/strata/plugins/"+name+"/cmd/strata-plugin-"+name, name); err != nil {
				floodBins.err = err
				return
			}
		}
	})
	if floodBins.err != nil {
		t.Fatal(floodBins.err)
	}
	return floodBins.dir
}

// startRelay starts a relay from a shipped config with the flood's
// overrides: its own data directory, the test's plugin binaries, a free
// loopback port, the flood's min_pow and no rate limits.
func startRelay(t *testing.T, shipped, name, pluginDir, listen string) *node.Node {
	t.Helper()
	set := []string{
		"node.name=" + name,
		"node.data_dir=" + filepath.Join(t.TempDir(), name),
		"plugins.dir=" + pluginDir,
		"layers.p2p.config.listen=" + listen,
		fmt.Sprintf("layers.privacy.config.min_pow=%g", floodMinPoW),
		"layers.privacy.config.rate_limit_packets=0",
		"layers.privacy.config.rate_limit_bytes=0",
		"layers.privacy.config.peer_out_rate=0",
	}
	cfg, err := config.Load(config.Sources{File: filepath.Join("..", "..", "configs", shipped), Environ: []string{}, Set: set})
	if err != nil {
		t.Fatalf("%s: %v", shipped, err)
	}
	n, err := node.New(cfg, node.Options{
		Catalog:         plugins.Catalog{},
		Logger:          hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: os.Stderr}),
		AllowUnverified: true, // the test built the binaries
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// nodeInfo is the relay overlay's NodeInfo.
func nodeInfo(t *testing.T, n *node.Node) *p2pv1.LocalNode {
	t.Helper()
	conn, err := n.Control("p2p")
	if err != nil {
		t.Fatal(err)
	}
	info, err := p2pv1.NewControlClient(conn.Control()).NodeInfo(context.Background(), &p2pv1.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// relayReport describes what the relays counted, for failure messages.
func relayReport(relays ...*node.Node) string {
	var b strings.Builder
	for _, n := range relays {
		for _, layer := range []string{"p2p", "privacy"} {
			c, err := n.LayerCounters(context.Background(), layer)
			fmt.Fprintf(&b, "\n%s %s: %v %v", n.Name(), layer, nonZero(c), err)
		}
		for _, bs := range n.Boundaries() {
			fmt.Fprintf(&b, "\n%s boundary %s: down %d up %d dropped %v", n.Name(), bs.Name, bs.FramesDown, bs.FramesUp, nonZero(bs.Dropped))
		}
	}
	return b.String()
}

func nonZero(c map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range c {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// checkNothingDropped fails the test for every dropped_* counter of the
// relay's layers, every slow-peer reset and every host boundary drop that
// is not zero.
func checkNothingDropped(t *testing.T, n *node.Node) {
	t.Helper()
	for _, layer := range []string{"p2p", "privacy"} {
		c, err := n.LayerCounters(context.Background(), layer)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c {
			if v != 0 && (strings.HasPrefix(k, "dropped_") || k == "peers_reset_slow" || k == "peers_penalised") {
				t.Errorf("%s %s: %s = %d", n.Name(), layer, k, v)
			}
		}
	}
	for _, bs := range n.Boundaries() {
		for k, v := range bs.Dropped {
			if v != 0 {
				t.Errorf("%s boundary %s: dropped %s = %d", n.Name(), bs.Name, k, v)
			}
		}
	}
}

// feeder sends code-1 packets to the relay it is connected to.
type feeder interface {
	send(pkt []byte) error
}

// devp2pFeeder is the shh/6 connection of a devp2p test peer.
type devp2pFeeder struct{ rw p2p.MsgReadWriter }

func (f devp2pFeeder) send(pkt []byte) error { return sendPacket(f.rw, pkt) }

// floodPackets mines n envelopes (seed tells floods apart) and groups them
// in packets of floodPerPacket.
func floodPackets(t *testing.T, n int, seed uint64) [][]byte {
	t.Helper()
	raws, _ := mineEnvelopes(t, envelopeSpec{n: n, dataSize: floodDataSize, ttl: floodTTL, pow: floodPoW, minPoW: floodMinPoW, seed: seed})
	return benchPackets(raws, floodPerPacket)
}

// waitSinks waits until every sink has its target, failing with diag.
func waitSinks(t *testing.T, timeout time.Duration, diag func() string, sinks ...*envCounter) {
	t.Helper()
	deadline := time.After(timeout)
	for _, s := range sinks {
		select {
		case <-s.doneCh():
		case <-deadline:
			var got []string
			for _, s := range sinks {
				got = append(got, fmt.Sprintf("%d of %d", s.count.Load(), s.target.Load()))
			}
			t.Fatalf("sinks got %s envelopes after %v;%s", strings.Join(got, ", "), timeout, diag())
		}
	}
}

// runFlood sends every packet through each feeder at once (its own
// packets) and waits until every sink has want envelopes more than it had.
func runFlood(t *testing.T, feeds map[feeder][][]byte, sinks []*envCounter, want int, diag func() string) time.Duration {
	t.Helper()
	for _, s := range sinks {
		s.expect(s.count.Load() + int64(want))
	}
	t0 := time.Now()
	errs := make(chan error, len(feeds))
	for f, pkts := range feeds {
		go func() {
			for _, pkt := range pkts {
				if err := f.send(pkt); err != nil {
					errs <- fmt.Errorf("feeder: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range feeds {
		if err := <-errs; err != nil {
			t.Fatalf("%v;%s", err, diag())
		}
	}
	waitSinks(t, 2*time.Minute+time.Duration(want)*time.Millisecond, diag, sinks...)
	return time.Since(t0)
}

// TestFloodDevp2pRelay floods the shipped devp2p + whisper relay from one
// geth-style devp2p peer.
func TestFloodDevp2pRelay(t *testing.T) {
	bins := floodPlugins(t)
	relay := startRelay(t, "devp2p-whisper-relay.yaml", "relay", bins, "127.0.0.1:0")
	url := nodeInfo(t, relay).GetListenAddresses()[0]
	diag := func() string { return relayReport(relay) }

	sink := newShhPeer(t, "sink")
	sink.pow = floodMinPoW
	sink.connect(t, url)
	fp := newShhPeer(t, "feeder")
	fp.pow = floodMinPoW
	feed := devp2pFeeder{fp.connect(t, url)}

	n := floodSize(floodEnvelopes)
	pkts := floodPackets(t, floodPerPacket+n, 1)
	// Warm-up: one packet proves that the relay has both Statuses.
	runFlood(t, map[feeder][][]byte{feed: pkts[:1]}, []*envCounter{&sink.envCounter}, floodPerPacket, diag)
	d := runFlood(t, map[feeder][][]byte{feed: pkts[1:]}, []*envCounter{&sink.envCounter}, n, diag)
	t.Logf("devp2p relay: sent %d envelopes, sink received %d, in %v (%.0f envelopes/s)", n, sink.count.Load()-floodPerPacket, d.Round(time.Millisecond), float64(n)/d.Seconds())
	checkNothingDropped(t, relay)
	checkForwarded(t, relay, floodPerPacket+n)
	if t.Failed() {
		t.Log(diag())
	}
}

// checkForwarded checks that the relay's whisper layer received and
// forwarded want envelopes, and no more, to the sink.
func checkForwarded(t *testing.T, relay *node.Node, want int) {
	t.Helper()
	c, err := relay.LayerCounters(context.Background(), "privacy")
	if err != nil {
		t.Fatal(err)
	}
	if c["envelopes_received"] != uint64(want) || c["envelopes_forwarded"] != uint64(want) {
		t.Errorf("whisper received %d and forwarded %d envelopes, want %d each", c["envelopes_received"], c["envelopes_forwarded"], want)
	}
}

// TestFloodLibp2pRelay floods the shipped libp2p + whisper relay from one
// peer that speaks shh/6 on /strata/shh/6.
func TestFloodLibp2pRelay(t *testing.T) {
	bins := floodPlugins(t)
	relay := startRelay(t, "libp2p-whisper-relay.yaml", "relay", bins, "/ip4/127.0.0.1/tcp/0")
	addr := nodeInfo(t, relay).GetListenAddresses()[0]
	diag := func() string { return relayReport(relay) }

	sink := newLibp2pShhPeer(t, addr)
	feed := newLibp2pShhPeer(t, addr)

	n := floodSize(floodEnvelopes)
	pkts := floodPackets(t, floodPerPacket+n, 2)
	runFlood(t, map[feeder][][]byte{feed: pkts[:1]}, []*envCounter{&sink.envCounter}, floodPerPacket, diag)
	d := runFlood(t, map[feeder][][]byte{feed: pkts[1:]}, []*envCounter{&sink.envCounter}, n, diag)
	t.Logf("libp2p relay: sent %d envelopes, sink received %d, in %v (%.0f envelopes/s)", n, sink.count.Load()-floodPerPacket, d.Round(time.Millisecond), float64(n)/d.Seconds())
	checkNothingDropped(t, relay)
	checkForwarded(t, relay, floodPerPacket+n)
	if t.Failed() {
		t.Log(diag())
	}
}

// TestFloodRelaysEachOther: two devp2p + whisper relays, connected to each
// other, each flooded by its own feeder at the same time, so each relay
// floods the other while the other floods it. It must complete, every sink
// (one per relay) getting both floods, with nothing dropped: neither
// relay's reading of the other waits on its writing to the other.
func TestFloodRelaysEachOther(t *testing.T) {
	bins := floodPlugins(t)
	a := startRelay(t, "devp2p-whisper-relay.yaml", "relay-a", bins, "127.0.0.1:0")
	b := startRelay(t, "devp2p-whisper-relay.yaml", "relay-b", bins, "127.0.0.1:0")
	diag := func() string { return relayReport(a, b) }
	conn, err := a.Control("p2p")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := p2pv1.NewControlClient(conn.Control()).Connect(ctx, &p2pv1.ConnectRequest{ContactSection: nodeInfo(t, b).GetContactSection(), Persistent: true}); err != nil {
		t.Fatalf("connecting the relays: %v", err)
	}

	var sinks []*envCounter
	feeds := map[feeder][][]byte{}
	n := floodSize(floodEnvelopes / 2)
	warm := map[feeder][][]byte{}
	for i, r := range []*node.Node{a, b} {
		url := nodeInfo(t, r).GetListenAddresses()[0]
		sink := newShhPeer(t, "sink")
		sink.pow = floodMinPoW
		sink.connect(t, url)
		fp := newShhPeer(t, "feeder")
		fp.pow = floodMinPoW
		f := devp2pFeeder{fp.connect(t, url)}
		pkts := floodPackets(t, floodPerPacket+n, uint64(10+i))
		warm[f], feeds[f] = pkts[:1], pkts[1:]
		sinks = append(sinks, &sink.envCounter)
	}
	// Warm-up: each relay's packet reaches both sinks, so both relays have
	// every Status.
	runFlood(t, warm, sinks, 2*floodPerPacket, diag)
	d := runFlood(t, feeds, sinks, 2*n, diag)
	t.Logf("two relays flooding each other: sent %d envelopes into each, each sink received %d and %d, in %v", n, sinks[0].count.Load()-2*floodPerPacket, sinks[1].count.Load()-2*floodPerPacket, d.Round(time.Millisecond))
	checkNothingDropped(t, a)
	checkNothingDropped(t, b)
	if t.Failed() {
		t.Log(diag())
	}
}

// libp2pShhPeer is a test-side libp2p host speaking shh/6 on
// /strata/shh/6 with the relay: frames are a uvarint length and the
// payload (message code, then the message's RLP), as the libp2p overlay
// writes them. It sends the relay its Status on a stream of its own and
// counts the envelopes of the code-1 packets the relay sends it.
type libp2pShhPeer struct {
	h     host.Host
	ready chan struct{} // closed at the relay's Status
	fail  chan error
	once  sync.Once

	mu sync.Mutex
	w  *bufio.Writer
	s  network.Stream

	envCounter
}

// newLibp2pShhPeer starts a peer on 127.0.0.1, connects it to the relay at
// addr (a multiaddr with /p2p/), and completes the Status exchange.
func newLibp2pShhPeer(t *testing.T, addr string) *libp2pShhPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p := &libp2pShhPeer{h: h, ready: make(chan struct{}), fail: make(chan error, 1)}
	p.init()
	h.SetStreamHandler(floodProtocol, p.read)
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatalf("relay address %q: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatalf("connecting to the relay: %v", err)
	}
	if p.s, err = h.NewStream(ctx, ai.ID, floodProtocol); err != nil {
		t.Fatalf("opening %s: %v", floodProtocol, err)
	}
	p.w = bufio.NewWriterSize(p.s, 64<<10)
	status, err := rlp.EncodeToBytes([]any{uint64(wire.ProtocolVersion), math.Float64bits(floodMinPoW), []byte{}, false})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write(wire.StatusCode, status); err != nil {
		t.Fatalf("sending Status: %v", err)
	}
	select {
	case <-p.ready:
	case err := <-p.fail:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no Status from the relay within 15 s")
	}
	return p
}

// write sends one shh message on the peer's stream.
func (p *libp2pShhPeer) write(code byte, body []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Write(binary.AppendUvarint(nil, uint64(1+len(body))))
	p.w.WriteByte(code)
	p.w.Write(body)
	return p.w.Flush()
}

func (p *libp2pShhPeer) send(pkt []byte) error { return p.write(wire.MessagesCode, pkt) }

// read handles a stream the relay opened: a Status, then code-1 packets
// to count; other codes are skipped.
func (p *libp2pShhPeer) read(s network.Stream) {
	defer s.Close()
	r := bufio.NewReaderSize(s, 64<<10)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.failf("reading a frame length: %v", err)
			}
			return
		}
		if n == 0 || n > uint64(wire.DefaultMaxMessageSize)+1 {
			p.failf("frame of %d bytes", n)
			return
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			p.failf("reading a frame: %v", err)
			return
		}
		switch buf[0] {
		case wire.StatusCode:
			p.once.Do(func() { close(p.ready) })
		case wire.MessagesCode:
			if err := p.countPacket(buf[1:]); err != nil {
				p.failf("%v", err)
				return
			}
		}
	}
}

func (p *libp2pShhPeer) failf(format string, args ...any) {
	select {
	case p.fail <- fmt.Errorf(format, args...):
	default:
	}
}
