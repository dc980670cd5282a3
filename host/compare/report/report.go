// Package report renders a compare.Report: as indented JSON (the raw
// results), as a terminal table (one row per measure, one column per
// stack, ratios against the first stack), and as one self-contained HTML
// page with the same table, charts and the node events of every run.
//
// The renderers treat the Report as given: each StackResult's Summary is
// shown as the caller filled it, never recomputed from its runs. A node
// that dies mid-run is reported, not hidden.
package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-msg/strata/host/compare"
)

// measure is one row of the summary table.
type measure struct {
	// label names the row, unit included.
	label string
	// figure picks the row's Figure from a Summary.
	figure func(*compare.Summary) compare.Figure
	// scale converts the Figure's values to the row's unit.
	scale float64
	// note, if set, adds a remark to a stack's cell.
	note func(*compare.StackResult, *compare.Report) string
	// optional rows are left out when no stack has a value.
	optional bool
}

// measures are the summary table's rows, in order.
var measures = []measure{
	{label: "offered send rate (msg/s)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.OfferedRate }},
	{label: "achieved send rate (msg/s)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.AchievedRate }, note: overloadedNote},
	{label: "delivery ratio (%)", scale: 100, figure: func(s *compare.Summary) compare.Figure { return s.DeliveryRatio }},
	{label: "latency p50 (ms)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.LatencyP50Ms }},
	{label: "latency p95 (ms)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.LatencyP95Ms }},
	{label: "latency p99 (ms)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.LatencyP99Ms }},
	{label: "convergence (s)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.ConvergenceS }, note: unconvergedNote},
	{label: "wire bytes / delivered msg", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.BytesPerDelivered }},
	{label: "wire msgs / delivered msg", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.FramesPerDelivered }},
	{label: "CPU s / node", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.CPUSecondsPerNode }},
	{label: "CPU µs / delivered msg", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.CPUPerDeliveredAll }},
	cpuRow("host"), cpuRow("p2p"), cpuRow("privacy"), cpuRow("secure"), cpuRow("sync"),
	{label: "heap allocs / delivered msg", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.AllocsPerDeliveredAll }},
	allocRow("host"), allocRow("p2p"), allocRow("privacy"), allocRow("secure"), allocRow("sync"),
	{label: "peak RSS (MiB)", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.PeakRSSMiB }},
	{label: "mixnet: packets / client / s", scale: 1, optional: true, figure: func(s *compare.Summary) compare.Figure { return s.MixClientPacketRate }},
	{label: "mixnet: cover share of client packets (%)", scale: 100, optional: true, figure: func(s *compare.Summary) compare.Figure { return s.MixCoverShare }},
	{label: "mixnet: relay delay per packet (ms)", scale: 1, optional: true, figure: func(s *compare.Summary) compare.Figure { return s.MixQueueDelayMs }},
	{label: "mixnet: relay packets dropped", scale: 1, optional: true, figure: func(s *compare.Summary) compare.Figure { return s.MixRelayDropped }},
	{label: "  of which replays", scale: 1, optional: true, figure: func(s *compare.Summary) compare.Figure { return s.MixRelayReplayed }},
	{label: "plugin restarts", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.Restarts }},
	{label: "duplicates", scale: 1, figure: func(s *compare.Summary) compare.Figure { return s.Duplicates }},
}

// cpuRow is the row of one kind of process's CPU time per delivered
// message ("host", or a layer's plugin processes).
func cpuRow(kind string) measure {
	return measure{
		label: "  of which " + kind,
		scale: 1,
		figure: func(s *compare.Summary) compare.Figure {
			return s.CPUPerDelivered[kind]
		},
	}
}

// allocRow is the row of one kind of process's heap allocations per
// delivered message.
func allocRow(kind string) measure {
	return measure{
		label: "  by " + kind,
		scale: 1,
		figure: func(s *compare.Summary) compare.Figure {
			return s.AllocsPerDelivered[kind]
		},
	}
}

// unconvergedNote says how many of a stack's runs did not converge.
func unconvergedNote(s *compare.StackResult, r *compare.Report) string {
	k := s.Summary.Unconverged
	if k <= 0 {
		return ""
	}
	n := len(s.Runs)
	if n == 0 {
		n = r.Runs
	}
	n = max(n, k)
	return fmt.Sprintf("%d of %d runs unconverged", k, n)
}

// overloadedNote says how many of a stack's runs sent below
// compare.OverloadThreshold of the offered rate.
func overloadedNote(s *compare.StackResult, r *compare.Report) string {
	k := s.Summary.Overloaded
	if k <= 0 {
		return ""
	}
	n := max(len(s.Runs), k)
	return fmt.Sprintf("%d of %d runs below %.0f%% of offered", k, n, 100*compare.OverloadThreshold)
}

// overloads describes, one line each, every run whose load generator did
// not keep up with the scenario: its achieved send rate is below
// compare.OverloadThreshold of the offered one.
func overloads(r *compare.Report) []string {
	var out []string
	for i := range r.Stacks {
		s := &r.Stacks[i]
		for _, run := range s.Runs {
			if !run.Overloaded {
				continue
			}
			out = append(out, fmt.Sprintf("%s run %d: sent %.1f msg/s of the %.1f offered (%.0f%%)",
				s.Name, run.Run, run.AchievedRate, run.OfferedRate, 100*run.AchievedRate/run.OfferedRate))
		}
	}
	return out
}

// overloadWarning heads the list of n overloaded runs.
func overloadWarning(n int) string {
	runs := "runs"
	if n == 1 {
		runs = "run"
	}
	return fmt.Sprintf("%d %s sent below %.0f%% of the offered send rate: the load generator did not keep up, so the figures describe a lighter load than the scenario asks for (lower traffic.rate, or use fewer nodes)",
		n, runs, 100*compare.OverloadThreshold)
}

// summaryTable is the summary table, rendered as text or HTML.
type summaryTable struct {
	// Stacks are the stack columns' headers, RatioHeads the ratio
	// columns' ("B/A" for every stack after the first).
	Stacks     []string
	RatioHeads []string
	Rows       []tableRow
	// Baseline names the first stack, the A of the ratios.
	Baseline string
}

// tableRow is one measure across the stacks.
type tableRow struct {
	Measure string
	// Cells holds one "mean ± stddev" per stack, Ratios one ratio per
	// stack after the first.
	Cells  []string
	Ratios []string
}

// newSummaryTable lays out a Report's summaries.
func newSummaryTable(r *compare.Report) summaryTable {
	t := summaryTable{}
	for i := range r.Stacks {
		t.Stacks = append(t.Stacks, r.Stacks[i].Name)
		if i > 0 {
			t.RatioHeads = append(t.RatioHeads, r.Stacks[i].Name+"/"+r.Stacks[0].Name)
		}
	}
	if len(r.Stacks) > 0 {
		t.Baseline = r.Stacks[0].Name
	}
	for _, m := range measures {
		row := tableRow{Measure: m.label}
		figs := make([]compare.Figure, len(r.Stacks))
		any := false
		for i := range r.Stacks {
			figs[i] = m.figure(&r.Stacks[i].Summary)
			any = any || figs[i].N > 0
		}
		if m.optional && !any {
			continue
		}
		d := rowDecimals(figs, m.scale)
		for i := range r.Stacks {
			s := &r.Stacks[i]
			f := figs[i]
			cell := formatFigure(f, m.scale, d)
			if m.note != nil {
				if note := m.note(s, r); note != "" {
					cell += " (" + note + ")"
				}
			}
			row.Cells = append(row.Cells, cell)
			if i > 0 {
				row.Ratios = append(row.Ratios, formatRatio(f, m.figure(&r.Stacks[0].Summary)))
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// legend explains the ratio columns; empty when there are none.
func (t summaryTable) legend() string {
	if len(t.RatioHeads) == 0 {
		return ""
	}
	return fmt.Sprintf("ratios are B/A with A = %s: below 1 means fewer bytes/lower latency than A", t.Baseline)
}

// notAvailable stands for a value no run gave.
const notAvailable = "n/a"

// formatFigure renders a Figure as "mean ± stddev" in the row's unit with
// d decimals: "n/a" when no run gave a value, the mean alone when only one
// did.
func formatFigure(f compare.Figure, scale float64, d int) string {
	if f.N == 0 {
		return notAvailable
	}
	mean, sd := f.Mean*scale, f.StdDev*scale
	if f.N < 2 {
		return formatNumber(mean, d)
	}
	return formatNumber(mean, d) + " ± " + formatNumber(sd, d)
}

// formatRatio renders mean(b)/mean(a) as "0.82x": "n/a" when either has
// no value or a's mean is 0.
func formatRatio(b, a compare.Figure) string {
	if a.N == 0 || b.N == 0 || a.Mean == 0 || !finite(a.Mean) || !finite(b.Mean) {
		return notAvailable
	}
	return fmt.Sprintf("%.2fx", b.Mean/a.Mean)
}

// rowDecimals is how many decimals a row shows its figures with, the
// same for every stack so that they line up: none when every mean and
// spread shown is a whole number, else three significant digits of the
// smallest non-zero mean (of the smallest spread when all means are 0),
// but at most two more than the largest mean needs, and at most six.
func rowDecimals(figs []compare.Figure, scale float64) int {
	whole := true
	var smallest, largest, smallestSD float64
	for _, f := range figs {
		if f.N == 0 {
			continue
		}
		mean, sd := math.Abs(f.Mean*scale), math.Abs(f.StdDev*scale)
		if f.N < 2 {
			sd = 0
		}
		whole = whole && isWhole(mean) && isWhole(sd)
		if mean > 0 && finite(mean) {
			if smallest == 0 || mean < smallest {
				smallest = mean
			}
			largest = max(largest, mean)
		}
		if sd > 0 && finite(sd) && (smallestSD == 0 || sd < smallestSD) {
			smallestSD = sd
		}
	}
	if whole {
		return 0
	}
	if smallest == 0 {
		return significant(smallestSD)
	}
	return min(significant(smallest), significant(largest)+2)
}

// significant is how many decimals show three significant digits of a,
// from none to six.
func significant(a float64) int {
	if a == 0 || !finite(a) {
		return 0
	}
	d := 2 - int(math.Floor(math.Log10(a)))
	return min(max(d, 0), 6)
}

// isWhole says whether v is a whole number, give or take rounding noise.
func isWhole(v float64) bool {
	if !finite(v) {
		return false
	}
	return math.Abs(v-math.Round(v)) <= 1e-9*max(1, math.Abs(v))
}

// finite says whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// formatNumber renders v with d decimals; "-0" becomes "0".
func formatNumber(v float64, d int) string {
	s := strconv.FormatFloat(v, 'f', d, 64)
	if strings.TrimLeft(s, "-0.") == "" && strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	return s
}

// formatAt renders a time offset within a run, to the millisecond.
func formatAt(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

// machineString describes the machine on one line.
func machineString(m compare.Machine) string {
	var parts []string
	switch {
	case m.OS != "" && m.Arch != "":
		parts = append(parts, m.OS+"/"+m.Arch)
	case m.OS != "":
		parts = append(parts, m.OS)
	case m.Arch != "":
		parts = append(parts, m.Arch)
	}
	if m.CPUs > 0 {
		unit := "CPUs"
		if m.CPUs == 1 {
			unit = "CPU"
		}
		parts = append(parts, fmt.Sprintf("%d %s", m.CPUs, unit))
	}
	if m.GoVersion != "" {
		parts = append(parts, m.GoVersion)
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}

// startedString renders when the comparison began.
func startedString(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// scenarioString names the scenario and the file it came from.
func scenarioString(r *compare.Report) string {
	name := r.Scenario
	if name == "" {
		name = "(unnamed)"
	}
	if r.ScenarioFile != "" && r.ScenarioFile != r.Scenario {
		name += " (" + r.ScenarioFile + ")"
	}
	return name
}

// nodeEvent is one thing that happened to a node in one run of a stack,
// as the reports list it.
type nodeEvent struct {
	Stack string
	Run   int
	// At is when it happened; HasAt is false for a node that died at a
	// time the Report does not give.
	At    time.Duration
	HasAt bool
	Node  string
	Kind  string
	// Detail says more: the event's detail or the dead node's error.
	Detail string
}

// Died says whether the event is a node dying on its own.
func (e nodeEvent) Died() bool { return e.Kind == "died" }

// When renders the event's time within its run.
func (e nodeEvent) When() string {
	if !e.HasAt {
		return "unknown time"
	}
	return formatAt(e.At)
}

// runEvents lists what happened to the nodes in one run: its events in
// time order, and then every node marked Died that no "died" event names
// (a dead node is reported, not hidden). A died event takes the node's
// Error as its detail when it has none of its own.
func runEvents(stack string, run *compare.RunResult) []nodeEvent {
	errs := map[string]string{}
	for _, n := range run.Nodes {
		if n.Died {
			errs[n.Name] = n.Error
		}
	}
	var evs []nodeEvent
	reported := map[string]bool{}
	for _, e := range run.Events {
		ev := nodeEvent{Stack: stack, Run: run.Run, At: e.At, HasAt: true, Node: e.Node, Kind: e.Kind, Detail: e.Detail}
		if ev.Died() {
			reported[e.Node] = true
			if ev.Detail == "" {
				ev.Detail = errs[e.Node]
			}
		}
		evs = append(evs, ev)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At < evs[j].At })
	for _, n := range run.Nodes {
		if n.Died && !reported[n.Name] {
			reported[n.Name] = true
			evs = append(evs, nodeEvent{Stack: stack, Run: run.Run, Node: n.Name, Kind: "died", Detail: n.Error})
		}
	}
	return evs
}

// deaths lists every node that died on its own, over all stacks and runs.
func deaths(r *compare.Report) []nodeEvent {
	var out []nodeEvent
	for i := range r.Stacks {
		s := &r.Stacks[i]
		for j := range s.Runs {
			for _, e := range runEvents(s.Name, &s.Runs[j]) {
				if e.Died() {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// deathLine describes a dead node on one line.
func deathLine(e nodeEvent) string {
	s := fmt.Sprintf("%s run %d: node %s died at %s", e.Stack, e.Run, e.Node, e.When())
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}
