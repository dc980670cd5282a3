package whisper

// What one peer can make this node send: a flood of repeated Statuses
// (the pool is handed over once per connection, not once per Status) and
// the per-peer outbound byte bucket (peer_out_rate, peer_out_burst).

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Status flood parameters: the pool of the report (20 envelopes of about
// 4 KB), mined cheaply and living longer than any flood's manual clock.
const (
	floodPoolSize  = 20
	floodPoolBytes = 4000 // payload of each pooled envelope
	floodPoolTTL   = 86400
	floodPoolPoW   = 0.00002
	floodMinPoW    = 0.00001
)

// maxStatusRatio bounds bytes out per byte in for any run of repeated
// Statuses a peer sends a full node, however timed. A repeated Status is
// answered by at most one Status of ours (14 bytes with its code byte:
// version, PoW, empty bloom, light flag), and by nothing else; the
// smallest Status a peer can send is 3 bytes (code, list header, version
// 6), so no Status draws more than 14/3 of its size. A light node's
// Status carries its 64-byte bloom (80 bytes), which this bound does not
// cover: that is 80/3 of the smallest Status, still at most once per
// statusRefresh.
const maxStatusRatio = 5

// minimalStatus is the smallest Status geth's handshake accepts: the
// version alone (no PoW, bloom or light flag).
var minimalStatus = []byte{0xc1, byte(wire.ProtocolVersion)}

// manualClock makes l's clock read *now.
func manualClock(l *Layer, now *time.Time) {
	l.mu.Lock()
	l.now = func() time.Time { return *now }
	l.mu.Unlock()
}

// pooledEnvelope is a symmetric envelope on topic of about size payload
// bytes, sent at sent with the given TTL and mined to pow.
func pooledEnvelope(tb testing.TB, size int, sent time.Time, ttl uint32, pow float64) *wire.Envelope {
	tb.Helper()
	key := make([]byte, 32)
	key[0] = 1
	p := &wire.MessageParams{TTL: ttl, KeySym: key, Topic: testTopic, Payload: bytes.Repeat([]byte{'x'}, size)}
	m, err := wire.NewSentMessage(p)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := m.Wrap(p, sent)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Seal(pow, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	return e
}

// floodLayer is a full node with the report's pool, from peer "src", and
// peer "p" connected with its handshake done and the pool handed to it.
// The layer's clock is *now.
func floodLayer(tb testing.TB, now *time.Time) (*Layer, *sdktest.Recorder) {
	tb.Helper()
	l, rec := newTestLayer(tb, map[string]any{"min_pow": floodMinPoW})
	manualClock(l, now)
	handshake(l, floodMinPoW, nil, "src")
	for range floodPoolSize {
		feed(l, upFrame("src", wire.MessagesCode, messages(pooledEnvelope(tb, floodPoolBytes, *now, floodPoolTTL, floodPoolPoW))))
	}
	if n := counter(l, "envelopes_received"); n != floodPoolSize {
		tb.Fatalf("pooled %d envelopes, want %d: %v", n, floodPoolSize, l.Health(context.Background()).GetCounters())
	}
	handshake(l, floodMinPoW, nil, "p")
	handed := 0
	for _, f := range framesTo(emitted(tb, l, rec), "p", wire.MessagesCode) {
		handed += len(f.GetPayload())
	}
	if handed < floodPoolSize*floodPoolBytes {
		tb.Fatalf("the handshake handed p %d bytes of the pool, want at least %d", handed, floodPoolSize*floodPoolBytes)
	}
	return l, rec
}

// statusFlood has p send n Statuses with the clock advancing step before
// each, and returns the bytes p sent and the bytes the layer sent p.
func statusFlood(tb testing.TB, l *Layer, rec *sdktest.Recorder, now *time.Time, status []byte, n int, step time.Duration) (in, out int) {
	tb.Helper()
	for range n {
		*now = now.Add(step)
		f := upFrame("p", wire.StatusCode, status)
		in += len(f.GetPayload())
		feed(l, f)
		for _, o := range emitted(tb, l, rec) {
			if o.GetDirection() == commonv1.Direction_DIRECTION_DOWN && string(o.GetPeer()) == "p" {
				out += len(o.GetPayload())
			}
		}
	}
	return in, out
}

// TestStatusFlood: a peer that repeats its Status after its handshake,
// when 20 envelopes of 4 KB are pooled, draws at most maxStatusRatio bytes
// out per byte in: our Status now and then, never the pool again. (Before
// the pool was handed over once per connection, each Status drew it whole:
// 100 Statuses of 14 bytes drew 8.3 MB.) Also when every Status comes
// statusRefresh after the last, so that each is answered, and when they
// are the smallest Status there is.
func TestStatusFlood(t *testing.T) {
	// The sizes maxStatusRatio rests on.
	full := len(packet(wire.StatusCode, encodeStatus(floodMinPoW, nil, false)))
	light := len(packet(wire.StatusCode, encodeStatus(floodMinPoW, make([]byte, wire.BloomFilterSize), true)))
	least := len(packet(wire.StatusCode, minimalStatus))
	if _, err := decodeStatus(minimalStatus); err != nil || full != 14 || light != 80 || least != 3 || full > maxStatusRatio*least {
		t.Fatalf("Statuses of %d (full), %d (light) and %d (smallest, %v) bytes", full, light, least, err)
	}
	for _, tc := range []struct {
		name   string
		status []byte
		step   time.Duration
	}{
		{"geth-status/at-once", encodeStatus(floodMinPoW, nil, false), 0},
		{"geth-status/100-per-second", encodeStatus(floodMinPoW, nil, false), 10 * time.Millisecond},
		{"geth-status/each-answered", encodeStatus(floodMinPoW, nil, false), statusRefresh},
		{"minimal-status/each-answered", minimalStatus, statusRefresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			l, rec := floodLayer(t, &now)
			const n = 100
			in, out := statusFlood(t, l, rec, &now, tc.status, n, tc.step)
			ratio := float64(out) / float64(in)
			t.Logf("%d Statuses: %d bytes in, %d bytes out, %.3g out per byte in", n, in, out, ratio)
			if ratio > maxStatusRatio {
				t.Fatalf("%d repeated Statuses (%d bytes) drew %d bytes: %.0f bytes out per byte in, want at most %d", n, in, out, ratio, maxStatusRatio)
			}
			l.mu.Lock()
			p := l.peers["p"]
			known, gotStatus, banned := knownBy(l, p), p.gotStatus, p.banned
			l.mu.Unlock()
			if known != floodPoolSize || !gotStatus || banned {
				t.Fatalf("after the flood p knows %d envelopes (want %d), status %v, banned %v", known, floodPoolSize, gotStatus, banned)
			}
			if got := counter(l, "status_refreshed"); got != n {
				t.Fatalf("status_refreshed = %d, want %d", got, n)
			}
		})
	}
}

// BenchmarkStatusFlood reports the bytes a peer's repeated Statuses draw
// per byte they carry (out/in), with 20 envelopes of 4 KB pooled, for
// geth-shaped Statuses (14 bytes) at 100 a second (half the default
// rate_limit_packets) and 2 s apart (each one answered). Run with
// -benchtime 100x for the report's 100 Statuses.
func BenchmarkStatusFlood(b *testing.B) {
	for _, step := range []time.Duration{10 * time.Millisecond, statusRefresh} {
		b.Run(fmt.Sprintf("every=%v", step), func(b *testing.B) {
			now := time.Now()
			l, rec := floodLayer(b, &now)
			b.ResetTimer()
			in, out := statusFlood(b, l, rec, &now, encodeStatus(floodMinPoW, nil, false), b.N, step)
			b.StopTimer()
			b.ReportMetric(float64(out)/float64(in), "out/in")
			b.ReportMetric(float64(out)/float64(b.N), "B-out/status")
		})
	}
}

// envelopeBytes returns the envelope bytes in frames of code 1 for peer.
func envelopeBytes(tb testing.TB, fs []*commonv1.Frame, peer string) (n, count int) {
	tb.Helper()
	for _, f := range framesTo(fs, peer, wire.MessagesCode) {
		_, raws, err := decodeMessagesRaw(f.GetPayload()[1:])
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range raws {
			n += len(r)
		}
		count += len(raws)
	}
	return n, count
}

// TestPeerOutCap: the envelope bytes sent to one peer stay within its
// bucket, peer_out_burst at once and peer_out_rate a second after; what
// does not fit is dropped for that peer and counted
// (dropped_out_rate_limited). The bucket outlives a reconnect (whose
// handshake hands over the pool again) until it has refilled; our Status
// is not held back by it.
func TestPeerOutCap(t *testing.T) {
	const (
		rate  = 4096
		burst = 8192
		size  = 900 // payload; each envelope is about 1 KB
	)
	now := time.Now()
	start := now
	l, rec := newTestLayer(t, map[string]any{"min_pow": floodMinPoW, "max_message_size": burst, "peer_out_rate": rate, "peer_out_burst": burst})
	manualClock(l, &now)
	handshake(l, floodMinPoW, nil, "src", "p")
	emitted(t, l, rec)
	sentBytes, sentCount := 0, 0
	offer := func(n int) {
		t.Helper()
		for range n {
			feed(l, upFrame("src", wire.MessagesCode, messages(pooledEnvelope(t, size, now, floodPoolTTL, floodPoolPoW))))
		}
		b, c := envelopeBytes(t, emitted(t, l, rec), "p")
		sentBytes += b
		sentCount += c
	}
	allowed := func() int { return burst + int(now.Sub(start).Seconds()*rate) }

	offer(20)
	received := int(counter(l, "envelopes_received"))
	dropped := int(counter(l, "dropped_out_rate_limited"))
	if received != 20 || sentBytes > allowed() || sentCount+dropped != received || sentCount < 6 || dropped == 0 {
		t.Fatalf("20 envelopes of 1 KB against a %d-byte burst: %d sent (%d bytes), %d dropped, %d received", burst, sentCount, sentBytes, dropped, received)
	}

	now = now.Add(time.Second)
	before := sentCount
	offer(5)
	if sentBytes > allowed() || sentCount-before < 3 {
		t.Fatalf("a second at %d B/s: %d more sent, %d bytes in all, %d allowed", rate, sentCount-before, sentBytes, allowed())
	}

	// A reconnect hands over the pool again, from the bucket as p left it.
	reconnect := func() []*commonv1.Frame {
		l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("p"), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
		handshake(l, floodMinPoW, nil, "p")
		return emitted(t, l, rec)
	}
	out := reconnect()
	if len(framesTo(out, "p", wire.StatusCode)) != 1 {
		t.Fatal("our Status did not go to the reconnected peer")
	}
	b, c := envelopeBytes(t, out, "p")
	sentBytes += b
	sentCount += c
	if sentBytes > allowed() {
		t.Fatalf("after a reconnect %d bytes sent in all, %d allowed: the reconnect refilled the bucket", sentBytes, allowed())
	}

	// Disconnected until its bucket has refilled, it is forgotten, and
	// the next connection starts with a full one.
	l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("p"), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
	now = now.Add(burst / rate * time.Second)
	l.Health(context.Background())
	l.mu.Lock()
	_, kept := l.outBuckets["p"]
	l.mu.Unlock()
	if kept {
		t.Fatal("the bucket of a peer gone until it refilled was kept")
	}
	handshake(l, floodMinPoW, nil, "p")
	if b, _ := envelopeBytes(t, emitted(t, l, rec), "p"); b < burst-1100 || b > burst {
		t.Fatalf("a new connection after a refill was handed %d bytes of the pool, want a full bucket of %d", b, burst)
	}
}
