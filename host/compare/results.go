// Package compare runs one scenario on several stacks, each on a local
// testnet, and measures what users of a messaging stack care about:
// delivery, latency, convergence, bytes on the wire, CPU and memory. Its
// results are plain data (Report), rendered by package compare/report.
package compare

import (
	"math"
	"time"
)

// Report is the outcome of one `strata compare`: every stack, every run.
type Report struct {
	// Scenario is the scenario's name, ScenarioFile the file it came from.
	Scenario     string `json:"scenario"`
	ScenarioFile string `json:"scenario_file"`
	// Description is the scenario's description.
	Description string `json:"description,omitempty"`
	// Seed is the scenario's seed: the same seed gives the same workload.
	Seed uint64 `json:"seed"`
	// Runs is the number of runs per stack.
	Runs int `json:"runs"`
	// Started is when the comparison began.
	Started time.Time `json:"started"`
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
	// Stacks are in the order given on the command line; ratios are
	// against the first.
	Stacks []StackResult `json:"stacks"`
}

// Machine describes the machine a comparison ran on.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
}

// StackResult is one stack's runs and their summary.
type StackResult struct {
	// Name labels the stack in reports (the config file's base name).
	Name string `json:"name"`
	// Config is the stack's config file.
	Config string `json:"config"`
	// Layers is the stack bottom up: "p2p=devp2p", "privacy=whisper", ...
	Layers []string `json:"layers"`
	// Relays is how many relay nodes the testnet ran besides the clients.
	Relays int `json:"relays"`
	// Runs holds each run's measurements.
	Runs []RunResult `json:"runs"`
	// Summary aggregates the runs.
	Summary Summary `json:"summary"`
	// Error says why runs are missing: the testnet did not start, or a run
	// was aborted. Empty when every run completed.
	Error string `json:"error,omitempty"`
}

// RunResult is what one run of the scenario on one stack measured.
type RunResult struct {
	// Run numbers the run from 1.
	Run int `json:"run"`
	// Sent counts the measured sends (warm-up excluded) the API accepted;
	// SendErrors the sends it refused or that could not be made.
	Sent       int `json:"sent"`
	SendErrors int `json:"send_errors"`
	// FirstSendError says why the first failed send failed.
	FirstSendError string `json:"first_send_error,omitempty"`
	// OfferedRate is the send rate the scenario asks for, in messages per
	// second over all conversations: its measured sends over the measured
	// part of the sending phase (duration minus warm-up). AchievedRate is
	// the rate the load generator made them at: the measured sends the API
	// accepted over the same span, stretched to the last of them when they
	// ran late. Overloaded says AchievedRate fell below OverloadThreshold
	// of OfferedRate: the stacks were measured under a lighter load than
	// the scenario's.
	OfferedRate  float64 `json:"offered_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Overloaded   bool    `json:"overloaded,omitempty"`
	// Expected is the deliveries the measured sends call for: one per
	// member other than the sender.
	Expected int `json:"expected"`
	// Delivered counts distinct (message, receiver) deliveries of measured
	// sends; Duplicates counts deliveries beyond the first.
	Delivered  int `json:"delivered"`
	Duplicates int `json:"duplicates"`
	// DeliveryRatio is Delivered / Expected.
	DeliveryRatio float64 `json:"delivery_ratio"`
	// Latency is from the time the plan made the send due (or its node
	// came back, if it was down then) to the receiver's API delivery,
	// over measured deliveries: time queued behind a busy node counts.
	Latency Latency `json:"latency"`
	// Converged says whether every expected delivery happened before the
	// settle time ran out; Convergence is the time from the end of the
	// sending phase (when faults, churn and offline periods stop) to the
	// last expected delivery.
	Converged   bool          `json:"converged"`
	Convergence time.Duration `json:"convergence_ns"`
	// WireBytes is the payload bytes the p2p layers of all nodes (relays
	// included) handed to the wire, WireFrames the frames. Ratios over
	// Delivered or Expected are 0 when the divisor is 0.
	WireBytes  uint64 `json:"wire_bytes"`
	WireFrames uint64 `json:"wire_frames"`
	// BytesPerDelivered is WireBytes / Delivered; FramesPerDelivered is
	// WireFrames / Delivered (messages on the wire per delivered message).
	BytesPerDelivered  float64 `json:"bytes_per_delivered"`
	FramesPerDelivered float64 `json:"frames_per_delivered"`
	// CPUPerDelivered is the CPU time of each kind of process (as
	// NodeResult.CPUByProcess), summed over every node of the testnet,
	// relays included, per delivered message, in microseconds: what a
	// message costs each process of the stack.
	CPUPerDelivered map[string]float64 `json:"cpu_us_per_delivered,omitempty"`
	// AllocsPerDelivered is, like CPUPerDelivered, the heap allocations
	// (objects, as the Go runtime counts them) of each kind of process
	// over the whole run, per delivered message. A layer in the host's
	// process counts as the host.
	AllocsPerDelivered map[string]float64 `json:"allocs_per_delivered,omitempty"`
	// Boundaries sums, over all nodes, the traffic across each layer
	// boundary ("p2p|privacy", ..., "sync|app"), bottom up.
	Boundaries []BoundaryTraffic `json:"boundaries"`
	// Nodes is each node's resource use, relays included.
	Nodes []NodeResult `json:"nodes"`
	// Mixnet holds what the privacy counters of a mixnet stack tell;
	// nil for other privacy layers.
	Mixnet *MixnetResult `json:"mixnet,omitempty"`
	// Timeline counts sends and deliveries per interval, for the
	// delivery-over-time chart.
	Timeline []TimelinePoint `json:"timeline"`
	// Events lists what happened to nodes during the run: kills,
	// restarts, offline periods, and any node that died on its own.
	Events []NodeEvent `json:"events,omitempty"`
	// Duration is how long the run took, settle included.
	Duration time.Duration `json:"duration_ns"`
	// SendingEnded is when the sending phase (and with it faults, churn
	// and offline periods) ended, from the start of sending; convergence
	// counts from here.
	SendingEnded time.Duration `json:"sending_ended_ns"`
	// TimelineInterval is the width of one Timeline interval.
	TimelineInterval time.Duration `json:"timeline_interval_ns"`
}

// OverloadThreshold is the share of the offered send rate below which a
// run is flagged Overloaded.
const OverloadThreshold = 0.95

// sendRates returns the offered and achieved send rates of a run with
// planned measured sends, of which sent were accepted, over the measured
// window, the last accepted one made at last (from the start of the
// window), and whether the run is overloaded.
func sendRates(planned, sent int, window, last time.Duration) (offered, achieved float64, overloaded bool) {
	if window <= 0 || planned == 0 {
		return 0, 0, false
	}
	offered = float64(planned) / window.Seconds()
	achieved = float64(sent) / max(window, last).Seconds()
	return offered, achieved, achieved < OverloadThreshold*offered
}

// Latency summarises end-to-end latencies.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// CDF is the latency distribution at 101 points: CDF[i] is the i-th
	// percentile (CDF[0] the least, CDF[100] the greatest). Empty when
	// nothing was delivered.
	CDF []time.Duration `json:"cdf_ns,omitempty"`
}

// BoundaryTraffic is the traffic across one layer boundary, summed over
// nodes.
type BoundaryTraffic struct {
	Name       string `json:"name"`
	FramesDown uint64 `json:"frames_down"`
	FramesUp   uint64 `json:"frames_up"`
	BytesDown  uint64 `json:"bytes_down"`
	BytesUp    uint64 `json:"bytes_up"`
	// Dropped sums the boundary's drops, by reason.
	Dropped map[string]uint64 `json:"dropped,omitempty"`
}

// NodeResult is one node's resource use over a run: the host process and
// its plugin processes together.
type NodeResult struct {
	Name string `json:"name"`
	// Role is "client" or "relay".
	Role string `json:"role"`
	// CPUSeconds is user+system CPU time, PeakRSS the largest resident set
	// seen (bytes; the sum over the node's processes at one sample).
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    uint64  `json:"peak_rss_bytes"`
	// CPUByProcess splits CPUSeconds by process: "host", or the layer a
	// plugin process serves ("p2p", "privacy", "secure", "sync"); "other"
	// is a process the host never named (one that lived between two
	// samples). Layers run in process count as the host's.
	CPUByProcess map[string]float64 `json:"cpu_by_process,omitempty"`
	// Restarts counts plugin restarts by the host's supervisor.
	Restarts uint64 `json:"restarts"`
	// PrivacyCounters are the privacy layer's Health counters at the end
	// of the run, summed over its plugin's instances (a restart starts
	// them again).
	PrivacyCounters map[string]uint64 `json:"privacy_counters,omitempty"`
	// Counters are every layer's Health counters at the end of the run,
	// by layer ("p2p", "privacy", "secure", "sync"), each summed over its
	// plugin's instances as PrivacyCounters is: what to read when a
	// figure above needs explaining.
	Counters map[string]map[string]uint64 `json:"counters,omitempty"`
	// WireBytesSent and WireBytesReceived are the p2p layer's payload
	// bytes to and from the wire.
	WireBytesSent     uint64 `json:"wire_bytes_sent"`
	WireBytesReceived uint64 `json:"wire_bytes_received"`
	// Died says the node ended on its own (not by the scenario) during the
	// run; Error says how.
	Died  bool   `json:"died,omitempty"`
	Error string `json:"error,omitempty"`
	// DiedAt is when the node was found dead, from the start of sending.
	DiedAt time.Duration `json:"died_at_ns,omitempty"`
}

// MixnetResult is what a mixnet's counters (docs/plugins/mixnet.md) say
// about a run: the clients' packet rate and how much of it is cover, and
// the relays' (mixes' and providers') forwarding.
type MixnetResult struct {
	// ClientPacketsPerSecond is a client's Sphinx packets sent per second
	// over the run (real, drop cover and loops), the mean over clients.
	ClientPacketsPerSecond float64 `json:"client_packets_per_second"`
	// ClientCoverShare is the share of the clients' packets that carried
	// no message (drop cover and loops), 0 to 1.
	ClientCoverShare float64 `json:"client_cover_share"`
	// RelayQueueDelayMs is the mean time a forwarded packet waited at a
	// relay (the Poisson mixing delay and any queueing), in milliseconds.
	RelayQueueDelayMs float64 `json:"relay_queue_delay_ms"`
	// RelayPacketsIn and RelayPacketsOut count the relays' packets.
	RelayPacketsIn  uint64 `json:"relay_packets_in"`
	RelayPacketsOut uint64 `json:"relay_packets_out"`
	// RelayDropped counts what the relays dropped, every reason; of
	// which RelayReplayed were replays.
	RelayDropped  uint64 `json:"relay_dropped"`
	RelayReplayed uint64 `json:"relay_replayed"`
}

// TimelinePoint counts what happened in one interval of a run.
type TimelinePoint struct {
	// At is the interval's end, from the start of sending.
	At time.Duration `json:"at_ns"`
	// Sent and Delivered count measured sends and deliveries in the
	// interval.
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
}

// NodeEvent is something that happened to a node during a run.
type NodeEvent struct {
	At   time.Duration `json:"at_ns"`
	Node string        `json:"node"`
	// Kind is "killed", "restarted", "offline", "online" or "died".
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// Figure is one measure over repeated runs.
type Figure struct {
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"stddev"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// N is the number of runs that gave a value (a run that delivered
	// nothing gives no latency).
	N int `json:"n"`
}

// Summary aggregates a stack's runs, one Figure per measure.
type Summary struct {
	DeliveryRatio      Figure `json:"delivery_ratio"`
	LatencyP50Ms       Figure `json:"latency_p50_ms"`
	LatencyP95Ms       Figure `json:"latency_p95_ms"`
	LatencyP99Ms       Figure `json:"latency_p99_ms"`
	ConvergenceS       Figure `json:"convergence_s"`
	BytesPerDelivered  Figure `json:"bytes_per_delivered"`
	FramesPerDelivered Figure `json:"frames_per_delivered"`
	// CPUSecondsPerNode is the mean CPU time of a node in a run;
	// PeakRSSMiB the largest peak RSS of any node in a run.
	CPUSecondsPerNode Figure `json:"cpu_seconds_per_node"`
	PeakRSSMiB        Figure `json:"peak_rss_mib"`
	// CPUPerDelivered is RunResult.CPUPerDelivered over the runs, by
	// process; CPUPerDeliveredAll the sum over every process.
	CPUPerDelivered    map[string]Figure `json:"cpu_us_per_delivered,omitempty"`
	CPUPerDeliveredAll Figure            `json:"cpu_us_per_delivered_all"`
	// AllocsPerDelivered is RunResult.AllocsPerDelivered over the runs,
	// by process; AllocsPerDeliveredAll the sum over every process.
	AllocsPerDelivered    map[string]Figure `json:"allocs_per_delivered,omitempty"`
	AllocsPerDeliveredAll Figure            `json:"allocs_per_delivered_all"`
	// The mixnet figures (RunResult.Mixnet) over the runs; N is 0 for a
	// stack without a mixnet.
	MixClientPacketRate Figure `json:"mix_client_packets_per_second"`
	MixCoverShare       Figure `json:"mix_client_cover_share"`
	MixQueueDelayMs     Figure `json:"mix_relay_queue_delay_ms"`
	MixRelayDropped     Figure `json:"mix_relay_dropped"`
	MixRelayReplayed    Figure `json:"mix_relay_replayed"`
	Restarts            Figure `json:"restarts"`
	Duplicates          Figure `json:"duplicates"`
	// OfferedRate and AchievedRate are the runs' send rates (messages
	// per second); Overloaded counts the runs whose achieved rate fell
	// below OverloadThreshold of the offered one.
	OfferedRate  Figure `json:"offered_rate"`
	AchievedRate Figure `json:"achieved_rate"`
	Overloaded   int    `json:"overloaded"`
	// Unconverged counts runs that did not converge within settle time.
	Unconverged int `json:"unconverged"`
}

// Summarize aggregates runs into a Summary.
func Summarize(runs []RunResult) Summary {
	var s Summary
	fig := func(get func(RunResult) (float64, bool)) Figure {
		var vals []float64
		for _, r := range runs {
			if v, ok := get(r); ok {
				vals = append(vals, v)
			}
		}
		return newFigure(vals)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	delivered := func(r RunResult) bool { return r.Delivered > 0 }
	s.DeliveryRatio = fig(func(r RunResult) (float64, bool) { return r.DeliveryRatio, true })
	s.LatencyP50Ms = fig(func(r RunResult) (float64, bool) { return ms(r.Latency.P50), delivered(r) })
	s.LatencyP95Ms = fig(func(r RunResult) (float64, bool) { return ms(r.Latency.P95), delivered(r) })
	s.LatencyP99Ms = fig(func(r RunResult) (float64, bool) { return ms(r.Latency.P99), delivered(r) })
	s.ConvergenceS = fig(func(r RunResult) (float64, bool) { return r.Convergence.Seconds(), r.Converged })
	mix := func(get func(*MixnetResult) float64) Figure {
		return fig(func(r RunResult) (float64, bool) {
			if r.Mixnet == nil {
				return 0, false
			}
			return get(r.Mixnet), true
		})
	}
	s.MixClientPacketRate = mix(func(m *MixnetResult) float64 { return m.ClientPacketsPerSecond })
	s.MixCoverShare = mix(func(m *MixnetResult) float64 { return m.ClientCoverShare })
	s.MixQueueDelayMs = mix(func(m *MixnetResult) float64 { return m.RelayQueueDelayMs })
	s.MixRelayDropped = mix(func(m *MixnetResult) float64 { return float64(m.RelayDropped) })
	s.MixRelayReplayed = mix(func(m *MixnetResult) float64 { return float64(m.RelayReplayed) })
	s.BytesPerDelivered = fig(func(r RunResult) (float64, bool) { return r.BytesPerDelivered, delivered(r) })
	s.FramesPerDelivered = fig(func(r RunResult) (float64, bool) { return r.FramesPerDelivered, delivered(r) })
	s.CPUSecondsPerNode = fig(func(r RunResult) (float64, bool) {
		if len(r.Nodes) == 0 {
			return 0, false
		}
		var sum float64
		for _, n := range r.Nodes {
			sum += n.CPUSeconds
		}
		return sum / float64(len(r.Nodes)), true
	})
	s.PeakRSSMiB = fig(func(r RunResult) (float64, bool) {
		var peak uint64
		for _, n := range r.Nodes {
			peak = max(peak, n.PeakRSS)
		}
		return float64(peak) / (1 << 20), len(r.Nodes) > 0
	})
	kinds := map[string]bool{}
	for _, r := range runs {
		for k := range r.CPUPerDelivered {
			kinds[k] = true
		}
	}
	for k := range kinds {
		if s.CPUPerDelivered == nil {
			s.CPUPerDelivered = map[string]Figure{}
		}
		s.CPUPerDelivered[k] = fig(func(r RunResult) (float64, bool) { return r.CPUPerDelivered[k], r.Delivered > 0 })
	}
	s.CPUPerDeliveredAll = fig(func(r RunResult) (float64, bool) {
		var sum float64
		for _, v := range r.CPUPerDelivered {
			sum += v
		}
		return sum, r.Delivered > 0 && len(r.CPUPerDelivered) > 0
	})
	allocKinds := map[string]bool{}
	for _, r := range runs {
		for k := range r.AllocsPerDelivered {
			allocKinds[k] = true
		}
	}
	for k := range allocKinds {
		if s.AllocsPerDelivered == nil {
			s.AllocsPerDelivered = map[string]Figure{}
		}
		s.AllocsPerDelivered[k] = fig(func(r RunResult) (float64, bool) {
			v, ok := r.AllocsPerDelivered[k]
			return v, ok && r.Delivered > 0
		})
	}
	s.AllocsPerDeliveredAll = fig(func(r RunResult) (float64, bool) {
		var sum float64
		for _, v := range r.AllocsPerDelivered {
			sum += v
		}
		return sum, r.Delivered > 0 && len(r.AllocsPerDelivered) > 0
	})
	s.Restarts = fig(func(r RunResult) (float64, bool) {
		var sum uint64
		for _, n := range r.Nodes {
			sum += n.Restarts
		}
		return float64(sum), true
	})
	s.Duplicates = fig(func(r RunResult) (float64, bool) { return float64(r.Duplicates), true })
	s.OfferedRate = fig(func(r RunResult) (float64, bool) { return r.OfferedRate, r.OfferedRate > 0 })
	s.AchievedRate = fig(func(r RunResult) (float64, bool) { return r.AchievedRate, r.OfferedRate > 0 })
	for _, r := range runs {
		if !r.Converged {
			s.Unconverged++
		}
		if r.Overloaded {
			s.Overloaded++
		}
	}
	return s
}

// newFigure summarises values; the spread is the sample standard
// deviation (0 for fewer than two values).
func newFigure(vals []float64) Figure {
	f := Figure{N: len(vals)}
	if len(vals) == 0 {
		return f
	}
	f.Min, f.Max = vals[0], vals[0]
	var sum float64
	for _, v := range vals {
		sum += v
		f.Min, f.Max = min(f.Min, v), max(f.Max, v)
	}
	f.Mean = sum / float64(len(vals))
	if len(vals) > 1 {
		var ss float64
		for _, v := range vals {
			ss += (v - f.Mean) * (v - f.Mean)
		}
		f.StdDev = math.Sqrt(ss / float64(len(vals)-1))
	}
	return f
}
