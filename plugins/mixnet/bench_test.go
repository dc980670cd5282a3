package mixnet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// startNetwork starts the twelve layers of a network (2 providers, 3
// layers of 2 mixes, alice on provider-0 and bob on provider-1) with
// config keys extra on every node.
func startNetwork(b testing.TB, extra map[string]any) (alice, bob *layerNode) {
	n := newNetwork(b)
	o := &overlay{nodes: map[string]*layerNode{}}
	for _, m := range n.relays() {
		o.start(b, m.Name, n.peerID(b, m.Name), n.config(relayRole(m), m.Name, extra))
	}
	alice = o.start(b, "alice", "client-alice", n.config(mixnet.RoleClient, "provider-0", extra))
	bob = o.start(b, "bob", "client-bob", n.config(mixnet.RoleClient, "provider-1", extra))
	return alice, bob
}

// BenchmarkEndToEndLatency sends b.N one-packet messages from alice to
// bob through the whole in-process network on the real clock (the
// layers as the plugin runs them, minus the process boundary and the
// overlay: links are in-memory), one at a time with exponential gaps of
// mean 250 ms, and measures each from the DOWN frame at alice to the UP
// frame at bob. Rates: λP 20/s, μ 20/s, pulls every 100 ms, cover on
// (λL 2/s, λD 2/s, λM 1/s). The expected mean is the sum of the
// configured delays: the wait for alice's next λP event (1/λP = 50 ms),
// the four delayed hops (4/μ = 200 ms) and the wait for bob's next pull
// (half the interval, 50 ms): 300 ms. ratio = measured mean / expected.
// Run with -benchtime 200x.
func BenchmarkEndToEndLatency(b *testing.B) {
	const lambdaP, mu, pull = 20.0, 20.0, 100 * time.Millisecond
	alice, bob := startNetwork(b, map[string]any{
		"lambda_p": lambdaP, "lambda_l": 2.0, "lambda_d": 2.0, "lambda_m": 1.0, "mu": mu, "pull_interval": pull.String(),
	})
	ctx := context.Background()
	bAddr, _ := bob.l.OwnAddress(ctx, nil)
	time.Sleep(time.Second) // registrations, first pulls
	gaps := rand.New(rand.NewPCG(1, 2))
	sent := make([]time.Time, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		sent = append(sent, time.Now())
		alice.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: bAddr.GetAddress(), Conversation: []byte("c"), Payload: []byte(fmt.Sprintf("m%d", i))}}})
		time.Sleep(time.Duration(gaps.ExpFloat64() * float64(250*time.Millisecond)))
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(bob.delivered()) < b.N {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	bob.mu.Lock()
	ups, at := slices.Clone(bob.ups), slices.Clone(bob.upAt)
	bob.mu.Unlock()
	if len(ups) != b.N {
		b.Fatalf("bob got %d of %d messages", len(ups), b.N)
	}
	lat := make([]float64, 0, b.N)
	for k, f := range ups {
		var i int
		if _, err := fmt.Sscanf(string(f.GetPayload()), "m%d", &i); err != nil || i >= b.N {
			b.Fatalf("payload %q", f.GetPayload())
		}
		lat = append(lat, float64(at[k].Sub(sent[i]))/float64(time.Millisecond))
	}
	slices.Sort(lat)
	var sum float64
	for _, l := range lat {
		sum += l
	}
	mean := sum / float64(len(lat))
	expected := 1000/lambdaP + 4*1000/mu + float64(pull/time.Millisecond)/2
	b.ReportMetric(mean, "mean-ms")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*9/10], "p90-ms")
	b.ReportMetric(expected, "expected-ms")
	b.ReportMetric(mean/expected, "ratio")
}

// BenchmarkClientBandwidth runs the network at Katzenpost's default rates
// (the document's: λP 1/s, λL 0.5/s, λD 0.5/s, λM 0.2/s, μ 5/s) and the
// default pull interval (5 s) and batch (16), with idle clients, for b.N
// seconds (after 5 s to settle), and measures the bytes of alice's link
// frames in each direction (the overlay payloads, before the overlay's
// own framing and encryption). Expected: (λP+λL+λD) × 3083-byte packet
// frames up (6166 B/s) plus a 41-byte pull every 5 s; 16 × 2633-byte
// mailbox frames per pull down (8426 B/s). Run with -benchtime 60x.
func BenchmarkClientBandwidth(b *testing.B) {
	alice, _ := startNetwork(b, nil)
	time.Sleep(5 * time.Second)
	read := func() (down, up int) {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		return alice.bytesDown, alice.bytesUp
	}
	d0, u0 := read()
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	d1, u1 := read()
	secs := time.Since(start).Seconds()
	geo, err := sphinx.NewGeometry(2000, 5, true)
	if err != nil {
		b.Fatal(err)
	}
	packet := float64(1 + geo.PacketLength)
	b.ReportMetric(float64(d1-d0)/secs, "up-B/s")
	b.ReportMetric(float64(u1-u0)/secs, "down-B/s")
	b.ReportMetric(2*packet+41.0/5, "expected-up-B/s")
	b.ReportMetric(16*2633.0/5, "expected-down-B/s")
}
