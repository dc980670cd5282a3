package report

import (
	"time"

	"github.com/strata-msg/strata/host/compare"
)

// The fixtures are built by hand: two stacks with two runs each, one of
// which loses nodes and one of whose runs sent below 95% of the offered
// rate, another that delivers nothing, and one with a single run. Summaries are filled by compare.Summarize, as the caller does.

// cdf is a latency distribution of 101 points, CDF[i] = base + i*step.
func cdf(base, step time.Duration) []time.Duration {
	out := make([]time.Duration, 101)
	for i := range out {
		out[i] = base + time.Duration(i)*step
	}
	return out
}

// nodes is four clients and a relay with the given per-node figures.
func nodes(cpu float64, rss uint64, sent, recv uint64) []compare.NodeResult {
	var out []compare.NodeResult
	for i, name := range []string{"client-0", "client-1", "client-2", "client-3", "relay-0"} {
		role := "client"
		if name == "relay-0" {
			role = "relay"
		}
		out = append(out, compare.NodeResult{
			Name:              name,
			Role:              role,
			CPUSeconds:        cpu + float64(i)*0.25,
			PeakRSS:           rss + uint64(i)<<20,
			WireBytesSent:     sent + uint64(i)*1000,
			WireBytesReceived: recv + uint64(i)*500,
		})
	}
	return out
}

// boundaries is the traffic across the three boundaries of a stack.
func boundaries(p2p, privacy, sync uint64) []compare.BoundaryTraffic {
	return []compare.BoundaryTraffic{
		{Name: "p2p|privacy", FramesDown: 40, FramesUp: 40, BytesDown: p2p, BytesUp: p2p, Dropped: map[string]uint64{"ttl": 2, "dup": 1}},
		{Name: "privacy|sync", FramesDown: 20, FramesUp: 20, BytesDown: privacy, BytesUp: privacy},
		{Name: "sync|app", FramesDown: 10, FramesUp: 40, BytesDown: sync, BytesUp: sync},
	}
}

// timeline is four one-second intervals.
func timeline(sent, delivered []int) []compare.TimelinePoint {
	var out []compare.TimelinePoint
	for i := range sent {
		out = append(out, compare.TimelinePoint{At: time.Duration(i+1) * time.Second, Sent: sent[i], Delivered: delivered[i]})
	}
	return out
}

// whisper is the baseline stack: it delivers, p50 100 ms, and its second
// run does not converge.
func whisper() compare.StackResult {
	runs := []compare.RunResult{
		{
			Run: 1, Sent: 10, Expected: 40, Delivered: 40, DeliveryRatio: 1, OfferedRate: 2.5, AchievedRate: 2.5,
			Latency:   compare.Latency{P50: 100 * time.Millisecond, P95: 200 * time.Millisecond, P99: 300 * time.Millisecond, Max: 350 * time.Millisecond, CDF: cdf(250*time.Microsecond, 2*time.Millisecond)},
			Converged: true, Convergence: 2 * time.Second,
			WireBytes: 40000, WireFrames: 80, BytesPerDelivered: 1000, FramesPerDelivered: 2,
			CPUPerDelivered:    map[string]float64{"host": 400, "p2p": 300, "privacy": 200, "sync": 100},
			AllocsPerDelivered: map[string]float64{"host": 60, "p2p": 20, "privacy": 30, "sync": 40},
			Boundaries:         boundaries(20000, 10000, 4000),
			Nodes:              nodes(1.5, 30<<20, 8000, 8000),
			Timeline:           timeline([]int{4, 4, 2, 0}, []int{8, 16, 12, 4}),
			Events: []compare.NodeEvent{
				{At: 1500 * time.Millisecond, Node: "client-2", Kind: "killed", Detail: "scenario: kill client-2"},
				{At: 3 * time.Second, Node: "client-2", Kind: "restarted"},
			},
			Duration: 10 * time.Second,
		},
		{
			Run: 2, Sent: 10, Expected: 40, Delivered: 38, DeliveryRatio: 0.95, OfferedRate: 2.5, AchievedRate: 2.45,
			Latency:   compare.Latency{P50: 100 * time.Millisecond, P95: 220 * time.Millisecond, P99: 340 * time.Millisecond, Max: 400 * time.Millisecond, CDF: cdf(500*time.Microsecond, 2*time.Millisecond)},
			Converged: false,
			WireBytes: 45600, WireFrames: 95, BytesPerDelivered: 1200, FramesPerDelivered: 2.5,
			CPUPerDelivered:    map[string]float64{"host": 440, "p2p": 320, "privacy": 210, "sync": 110},
			AllocsPerDelivered: map[string]float64{"host": 64, "p2p": 22, "privacy": 31, "sync": 43},
			Boundaries:         boundaries(22800, 11400, 3800),
			Nodes:              nodes(1.7, 32<<20, 9000, 9000),
			Timeline:           timeline([]int{4, 4, 2, 0}, []int{8, 14, 12, 4}),
			Events: []compare.NodeEvent{
				{At: 2 * time.Second, Node: "client-1", Kind: "offline"},
				{At: 4 * time.Second, Node: "client-1", Kind: "online"},
			},
			Duration: 12 * time.Second,
		},
	}
	return compare.StackResult{
		Name: "whisper", Config: "stacks/whisper.yaml",
		Layers: []string{"p2p=devp2p", "privacy=whisper", "sync=mvds"},
		Relays: 1, Runs: runs, Summary: compare.Summarize(runs),
	}
}

// waku is the second stack: half the p50 latency, and it loses a node in
// each run (one with a "died" event, one marked Died only).
func waku() compare.StackResult {
	n1 := nodes(0.9, 20<<20, 5000, 5000)
	n1[4].Died, n1[4].Error = true, "plugin p2p: signal: killed"
	n2 := nodes(1.1, 22<<20, 5500, 5500)
	n2[3].Died, n2[3].Error = true, "exit status 2"
	n2[3].Restarts = 3
	runs := []compare.RunResult{
		{
			Run: 1, Sent: 10, Expected: 40, Delivered: 36, Duplicates: 2, DeliveryRatio: 0.9, OfferedRate: 2.5, AchievedRate: 2.5,
			Latency:   compare.Latency{P50: 40 * time.Millisecond, P95: 90 * time.Millisecond, P99: 120 * time.Millisecond, Max: 150 * time.Millisecond, CDF: cdf(125*time.Microsecond, time.Millisecond)},
			Converged: true, Convergence: 1500 * time.Millisecond,
			WireBytes: 28800, WireFrames: 54, BytesPerDelivered: 800, FramesPerDelivered: 1.5,
			CPUPerDelivered:    map[string]float64{"host": 300, "p2p": 250, "privacy": 150, "sync": 80},
			AllocsPerDelivered: map[string]float64{"host": 50, "p2p": 18, "privacy": 25, "sync": 35},
			Boundaries:         boundaries(14400, 7200, 3600),
			Nodes:              n1,
			Timeline:           timeline([]int{5, 5, 0, 0}, []int{10, 16, 8, 2}),
			Duration:           9 * time.Second,
		},
		{
			Run: 2, Sent: 10, Expected: 40, Delivered: 34, Duplicates: 4, DeliveryRatio: 0.85, OfferedRate: 2.5, AchievedRate: 1.625, Overloaded: true,
			Latency:   compare.Latency{P50: 60 * time.Millisecond, P95: 110 * time.Millisecond, P99: 140 * time.Millisecond, Max: 170 * time.Millisecond, CDF: cdf(375*time.Microsecond, time.Millisecond)},
			Converged: true, Convergence: 2500 * time.Millisecond,
			WireBytes: 30600, WireFrames: 68, BytesPerDelivered: 900, FramesPerDelivered: 2,
			CPUPerDelivered:    map[string]float64{"host": 320, "p2p": 260, "privacy": 160, "sync": 90},
			AllocsPerDelivered: map[string]float64{"host": 52, "p2p": 19, "privacy": 26, "sync": 38},
			Boundaries:         boundaries(15300, 7650, 3400),
			Nodes:              n2,
			Timeline:           timeline([]int{5, 5, 0, 0}, []int{9, 15, 8, 2}),
			Events: []compare.NodeEvent{
				{At: 12500 * time.Millisecond, Node: "client-3", Kind: "died"},
			},
			Duration: 11 * time.Second,
		},
	}
	return compare.StackResult{
		Name: "waku", Config: "stacks/waku.yaml",
		Layers: []string{"p2p=libp2p", "privacy=waku-relay", "sync=mvds"},
		Relays: 1, Runs: runs, Summary: compare.Summarize(runs),
	}
}

// silent is a stack that delivers nothing: no latency, no convergence.
func silent() compare.StackResult {
	run := func(n int) compare.RunResult {
		return compare.RunResult{
			Run: n, Sent: 10, SendErrors: 2, Expected: 40, Delivered: 0, DeliveryRatio: 0,
			Converged: false,
			WireBytes: 12000, WireFrames: 30,
			Boundaries: boundaries(6000, 0, 0),
			Nodes:      nodes(0.5, 18<<20, 1000, 1000),
			Timeline:   timeline([]int{5, 5, 0, 0}, []int{0, 0, 0, 0}),
			Duration:   20 * time.Second,
		}
	}
	runs := []compare.RunResult{run(1), run(2)}
	return compare.StackResult{
		Name: "silent", Config: "stacks/silent.yaml",
		Layers: []string{"p2p=devp2p", "privacy=broken"},
		Relays: 1, Runs: runs, Summary: compare.Summarize(runs),
	}
}

// baseReport is a Report around the given stacks.
func baseReport(runs int, stacks ...compare.StackResult) *compare.Report {
	return &compare.Report{
		Scenario:     "group-chat",
		ScenarioFile: "scenarios/group-chat.yaml",
		Description:  "Five members chat in one group; one member is killed and restarted.",
		Seed:         42,
		Runs:         runs,
		Started:      time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
		Machine:      compare.Machine{OS: "linux", Arch: "amd64", CPUs: 8, GoVersion: "go1.26.8"},
		Stacks:       stacks,
	}
}

// twoStacks is whisper against waku, two runs each.
func twoStacks() *compare.Report { return baseReport(2, whisper(), waku()) }

// zeroDeliveries is whisper against a stack that delivers nothing.
func zeroDeliveries() *compare.Report { return baseReport(2, whisper(), silent()) }

// allStacks is all three stacks.
func allStacks() *compare.Report { return baseReport(2, whisper(), waku(), silent()) }

// oneRun is a single stack with a single run.
func oneRun() *compare.Report {
	s := whisper()
	s.Runs = s.Runs[:1]
	s.Summary = compare.Summarize(s.Runs)
	return baseReport(1, s)
}
