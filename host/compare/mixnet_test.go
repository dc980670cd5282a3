package compare

import (
	"math"
	"testing"
	"time"
)

// TestMixnetFigures: the figures come from the privacy counters of a
// mixnet's clients and relays, and a stack whose privacy layer counts no
// loops has none.
func TestMixnetFigures(t *testing.T) {
	if m := mixnetFigures([]NodeResult{{Role: "client", PrivacyCounters: map[string]uint64{"envelopes_sent": 5}}}, time.Second); m != nil {
		t.Fatalf("figures for a privacy layer that is not a mixnet: %+v", m)
	}
	nodes := []NodeResult{
		{Role: "client", PrivacyCounters: map[string]uint64{"loops_sent": 10, "packets_out": 100, "real_sent": 10}},
		{Role: "client", PrivacyCounters: map[string]uint64{"loops_sent": 10, "packets_out": 300, "real_sent": 30}},
		{Role: "relay", PrivacyCounters: map[string]uint64{"loops_sent": 2, "packets_in": 400, "packets_out": 390, "packets_forwarded": 380, "queue_delay_ms_total": 19000, "dropped_replayed": 3, "dropped_late": 2}},
		{Role: "relay", PrivacyCounters: map[string]uint64{"loops_sent": 2, "packets_in": 100, "packets_out": 90, "packets_forwarded": 20, "queue_delay_ms_total": 1000}},
		{Role: "client", PrivacyCounters: nil}, // no health check yet
	}
	m := mixnetFigures(nodes, 10*time.Second)
	if m == nil {
		t.Fatal("no figures for a mixnet")
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	// The client that reported nothing is not in the mean: 400 packets
	// over 2 clients and 10 s.
	if want := 400.0 / 2 / 10; !near(m.ClientPacketsPerSecond, want) {
		t.Errorf("ClientPacketsPerSecond = %v, want %v", m.ClientPacketsPerSecond, want)
	}
	if !near(m.ClientCoverShare, 0.9) {
		t.Errorf("ClientCoverShare = %v, want 0.9", m.ClientCoverShare)
	}
	if !near(m.RelayQueueDelayMs, 50) {
		t.Errorf("RelayQueueDelayMs = %v, want 50", m.RelayQueueDelayMs)
	}
	if m.RelayPacketsIn != 500 || m.RelayPacketsOut != 480 || m.RelayDropped != 5 || m.RelayReplayed != 3 {
		t.Errorf("relay sums %+v", m)
	}
}
