package whisper_test

// Test-side shh/6 peers and envelopes, shared by the forwarding benchmark
// (bench_forward_test.go) and the flood tests (flood_test.go): a feeder
// sends distinct valid envelopes to the node under test, a sink counts what
// the node forwards to it. shhPeer speaks shh/6 over devp2p; libp2pShhPeer
// (flood_test.go) speaks it over libp2p's /strata/shh/6.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// envelopeSpec says what envelopes mineEnvelopes makes.
type envelopeSpec struct {
	n        int
	dataSize int     // the envelope's Data (ciphertext) size in bytes
	ttl      uint32  // seconds
	pow      float64 // mined to at least this
	minPoW   float64 // the requirement they are checked against
	seed     uint64  // distinguishes envelopes of different calls
}

// mineEnvelopes returns spec.n distinct valid envelopes (RLP) with random
// data, mined on every CPU, and the time they expire.
func mineEnvelopes(tb testing.TB, spec envelopeSpec) ([][]byte, time.Time) {
	tb.Helper()
	now := time.Now()
	expiry := uint32(now.Unix()) + spec.ttl
	raws := make([][]byte, spec.n)
	workers := runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(spec.seed, uint64(w)<<32|uint64(spec.n)))
			ctx := context.Background()
			for i := w; i < spec.n; i += workers {
				e := &wire.Envelope{Expiry: expiry, TTL: spec.ttl, Data: make([]byte, spec.dataSize)}
				for j := range e.Data {
					e.Data[j] = byte(rng.Uint32())
				}
				e.Topic = wire.TopicType{0xbe, 0x0c, byte(i >> 8), byte(i)}
				if err := e.Mine(ctx, spec.pow); err != nil {
					errs <- err
					return
				}
				if err := e.Validate(now, uint32(wire.DefaultMaxMessageSize), spec.minPoW); err != nil {
					errs <- fmt.Errorf("a mined envelope does not validate: %w", err)
					return
				}
				raws[i] = e.Encode()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	return raws, time.Unix(int64(expiry), 0)
}

// benchPackets groups envelopes into code-1 payloads (RLP lists) of per each.
func benchPackets(raws [][]byte, per int) [][]byte {
	var out [][]byte
	for i := 0; i < len(raws); i += per {
		list := make([]rlp.RawValue, 0, per)
		for _, r := range raws[i:min(i+per, len(raws))] {
			list = append(list, r)
		}
		b, err := rlp.EncodeToBytes(list)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// ---- test-side shh/6 peers (go-ethereum v1.17 p2p) ----

// shhPeer is one test-side devp2p node running shh/6 towards the node
// under test: the feeder (sends) or the sink (counts what it receives).
type shhPeer struct {
	srv *p2p.Server
	pow float64 // the PoW requirement its Status advertises

	ready chan p2p.MsgReadWriter // the connection, once the Status exchange is done
	fail  chan error

	envCounter
}

// envCounter is a sink's count of the envelopes it received in code-1
// packets; when count reaches target, last is set and done closed.
type envCounter struct {
	count  atomic.Int64
	target atomic.Int64
	last   atomic.Int64 // unix ns
	done   chan struct{}
	doneMu sync.Mutex

	// arrivals: every code-1 packet since expect, its time and size.
	arrMu    sync.Mutex
	arrivals []arrival
}

func (c *envCounter) init() {
	c.done = make(chan struct{})
	c.target.Store(math.MaxInt64)
}

// received counts a code-1 packet of k envelopes that arrived at now.
func (c *envCounter) received(now time.Time, k int) {
	c.arrMu.Lock()
	c.arrivals = append(c.arrivals, arrival{now, k})
	c.arrMu.Unlock()
	if n := c.count.Add(int64(k)); n >= c.target.Load() {
		c.doneMu.Lock()
		select {
		case <-c.done:
		default:
			c.last.Store(now.UnixNano())
			close(c.done)
		}
		c.doneMu.Unlock()
	}
}

// countPacket counts the envelopes of a code-1 packet's RLP list.
func (c *envCounter) countPacket(body []byte) error {
	content, _, err := rlp.SplitList(body)
	if err != nil {
		return fmt.Errorf("bad code-1 packet: %w", err)
	}
	k, err := rlp.CountValues(content)
	if err != nil {
		return fmt.Errorf("bad code-1 packet: %w", err)
	}
	c.received(time.Now(), k)
	return nil
}

type arrival struct {
	at time.Time
	n  int
}

func newShhPeer(tb testing.TB, name string) *shhPeer {
	tb.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	p := &shhPeer{pow: benchMinPoW, ready: make(chan p2p.MsgReadWriter, 1), fail: make(chan error, 1)}
	p.init()
	p.srv = &p2p.Server{Config: p2p.Config{
		PrivateKey:  key,
		MaxPeers:    4,
		NoDiscovery: true,
		Name:        "strata-bench-" + name,
		Logger:      log.NewLogger(log.DiscardHandler()),
		Protocols: []p2p.Protocol{{
			Name: wire.ProtocolName, Version: uint(wire.ProtocolVersion), Length: uint64(wire.NumberOfMessageCodes),
			Run: p.run,
		}},
	}}
	if err := p.srv.Start(); err != nil {
		tb.Fatalf("%s p2p server: %v", name, err)
	}
	tb.Cleanup(p.srv.Stop)
	return p
}

func (p *shhPeer) failf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	select {
	case p.fail <- err:
	default:
	}
	return err
}

// run is the shh/6 protocol of a test peer: the Status exchange (a full
// node advertising p.pow), then reading until the connection ends,
// counting the envelopes of code-1 packets.
func (p *shhPeer) run(_ *p2p.Peer, rw p2p.MsgReadWriter) error {
	if err := p2p.Send(rw, uint64(wire.StatusCode), []any{uint64(wire.ProtocolVersion), math.Float64bits(p.pow), []byte{}, false}); err != nil {
		return p.failf("sending Status: %v", err)
	}
	msg, err := rw.ReadMsg()
	if err != nil {
		return p.failf("reading Status: %v", err)
	}
	if msg.Code != uint64(wire.StatusCode) {
		return p.failf("first packet has code %d, want Status", msg.Code)
	}
	_ = msg.Discard()
	select {
	case p.ready <- rw:
	default: // a second connection (a redial): nobody waits for it
	}
	var buf []byte
	for {
		msg, err := rw.ReadMsg()
		if err != nil {
			return err
		}
		if msg.Code != uint64(wire.MessagesCode) {
			_ = msg.Discard()
			continue
		}
		if cap(buf) < int(msg.Size) {
			buf = make([]byte, msg.Size)
		}
		buf = buf[:msg.Size]
		if _, err := io.ReadFull(msg.Payload, buf); err != nil {
			return err
		}
		if err := p.countPacket(buf); err != nil {
			return p.failf("%v", err)
		}
	}
}

// steadyRate is the rate between the first and the last packet received
// since expect: the envelopes of the packets in between, over the time
// between the first and the last but one. For geth, whose packets come
// every 300 ms with what it validated since the previous one, the
// envelopes of packets 2..M-1 were validated exactly in that time, so this
// is its rate without the start and end phases of its timer; for ours it
// is nearly envelopes/s. 0 with fewer than 3 packets.
func (p *envCounter) steadyRate() float64 {
	p.arrMu.Lock()
	defer p.arrMu.Unlock()
	a := p.arrivals
	if len(a) < 3 {
		return 0
	}
	n := 0
	for _, x := range a[1 : len(a)-1] {
		n += x.n
	}
	d := a[len(a)-2].at.Sub(a[0].at)
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// expect arms the sink: done closes when count reaches n.
func (p *envCounter) expect(n int64) {
	p.arrMu.Lock()
	p.arrivals = nil
	p.arrMu.Unlock()
	p.doneMu.Lock()
	p.done = make(chan struct{})
	p.doneMu.Unlock()
	p.target.Store(n)
	if p.count.Load() >= n {
		p.doneMu.Lock()
		p.last.Store(time.Now().UnixNano())
		close(p.done)
		p.doneMu.Unlock()
	}
}

func (p *envCounter) doneCh() <-chan struct{} {
	p.doneMu.Lock()
	defer p.doneMu.Unlock()
	return p.done
}

// connect dials the node under test and waits for the Status exchange.
func (p *shhPeer) connect(tb testing.TB, url string) p2p.MsgReadWriter {
	tb.Helper()
	n, err := enode.ParseV4(url)
	if err != nil {
		tb.Fatalf("node under test's enode %q: %v", url, err)
	}
	p.srv.AddPeer(n)
	select {
	case rw := <-p.ready:
		return rw
	case err := <-p.fail:
		tb.Fatalf("shh/6 with the node under test: %v", err)
	case <-time.After(15 * time.Second):
		tb.Fatalf("no shh/6 Status exchange with %s within 15 s", url)
	}
	return nil
}

func sendPacket(rw p2p.MsgReadWriter, pkt []byte) error {
	return rw.WriteMsg(p2p.Msg{Code: uint64(wire.MessagesCode), Size: uint32(len(pkt)), Payload: bytes.NewReader(pkt)})
}
