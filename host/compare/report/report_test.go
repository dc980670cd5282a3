package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/host/compare"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixtures are the hand-built Reports the tests render.
var fixtures = []struct {
	name string
	make func() *compare.Report
}{
	{"two-stacks", twoStacks},
	{"zero-deliveries", zeroDeliveries},
	{"all-stacks", allStacks},
	{"one-run", oneRun},
}

func TestWriteJSONRoundTrip(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			in := fx.make()
			var buf bytes.Buffer
			if err := WriteJSON(&buf, in); err != nil {
				t.Fatal(err)
			}
			var out compare.Report
			if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			if !reflect.DeepEqual(&out, in) {
				t.Errorf("JSON does not round-trip:\n got %+v\nwant %+v", out, *in)
			}
			// Stable: the same Report gives the same bytes, indented, in
			// the order the fields are declared.
			var again bytes.Buffer
			if err := WriteJSON(&again, fx.make()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("two writes of the same Report differ")
			}
			s := buf.String()
			if !strings.HasPrefix(s, "{\n  \"scenario\": ") {
				t.Errorf("output does not start with the indented scenario field: %.40q", s)
			}
			assertInOrder(t, s, `"scenario"`, `"scenario_file"`, `"seed"`, `"runs"`, `"started"`, `"machine"`, `"stacks"`)
			assertInOrder(t, s, `"dup": 1`, `"ttl": 2`) // map keys sorted
		})
	}
}

func TestWriteJSONRefusesNonFinite(t *testing.T) {
	r := twoStacks()
	r.Stacks[0].Runs[0].BytesPerDelivered = math.Inf(1)
	if err := WriteJSON(&bytes.Buffer{}, r); err == nil {
		t.Error("WriteJSON accepted +Inf, which JSON cannot hold")
	}
}

// assertInOrder checks that the strings occur in s in this order.
func assertInOrder(t *testing.T, s string, subs ...string) {
	t.Helper()
	at := -1
	for _, sub := range subs {
		i := strings.Index(s, sub)
		if i < 0 {
			t.Errorf("%s missing", sub)
			return
		}
		if i < at {
			t.Errorf("%s comes before the field before it", sub)
		}
		at = i
	}
}

// tableCells parses WriteTable's output into measure -> cells (the stack
// columns, then the ratio columns).
func tableCells(t *testing.T, r *compare.Report) (map[string][]string, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	cols := regexp.MustCompile(`\s{2,}`)
	cells := map[string][]string{}
	for _, line := range strings.Split(buf.String(), "\n") {
		for _, m := range measures {
			if strings.HasPrefix(line, m.label+"  ") {
				cells[m.label] = cols.Split(strings.TrimSpace(line), -1)[1:]
			}
		}
	}
	for _, m := range measures {
		if _, ok := cells[m.label]; !ok && !m.optional {
			t.Fatalf("no row %q in\n%s", m.label, buf.String())
		}
	}
	return cells, buf.String()
}

// TestMixnetRows: the mixnet rows appear only when a stack has a mixnet,
// with its figures, and n/a for a stack without one.
func TestMixnetRows(t *testing.T) {
	cells, out := tableCells(t, twoStacks())
	for label := range cells {
		if strings.HasPrefix(label, "mixnet:") {
			t.Fatalf("a report without a mixnet has the row %q:\n%s", label, out)
		}
	}
	r := twoStacks()
	mixed := &r.Stacks[1]
	for i := range mixed.Runs {
		mixed.Runs[i].Mixnet = &compare.MixnetResult{ClientPacketsPerSecond: 10 + float64(i), ClientCoverShare: 0.9, RelayQueueDelayMs: 50, RelayDropped: 4, RelayReplayed: 2}
	}
	mixed.Summary = compare.Summarize(mixed.Runs)
	cells, out = tableCells(t, r)
	for _, c := range []struct {
		label string
		col   int
		want  string
	}{
		{"mixnet: packets / client / s", 0, "n/a"},
		{"mixnet: packets / client / s", 1, "10.5 ± 0.7"},
		{"mixnet: cover share of client packets (%)", 1, "90 ± 0"},
		{"mixnet: relay delay per packet (ms)", 1, "50 ± 0"},
		{"mixnet: relay packets dropped", 1, "4 ± 0"},
		{"  of which replays", 1, "2 ± 0"},
	} {
		if got := cells[c.label]; len(got) <= c.col || got[c.col] != c.want {
			t.Errorf("%q = %q, want column %d %q:\n%s", c.label, got, c.col, c.want, out)
		}
	}
}

// spread formats an expected "mean ± stddev" cell with d decimals.
func spread(f compare.Figure, scale float64, d int) string {
	return fmt.Sprintf("%.*f ± %.*f", d, f.Mean*scale, d, f.StdDev*scale)
}

// ratio formats an expected ratio cell.
func ratio(b, a compare.Figure) string { return fmt.Sprintf("%.2fx", b.Mean/a.Mean) }

func TestTableCells(t *testing.T) {
	two, zero, one := twoStacks(), zeroDeliveries(), oneRun()
	wh, wk := two.Stacks[0].Summary, two.Stacks[1].Summary
	sl := zero.Stacks[1].Summary
	tests := []struct {
		name    string
		report  *compare.Report
		measure string
		col     int // stack columns first, then ratio columns
		want    string
	}{
		// Means and spreads, in the row's unit, from the Summary given.
		{"delivery as percent", two, "delivery ratio (%)", 0, spread(wh.DeliveryRatio, 100, 1)},
		{"delivery of the second stack", two, "delivery ratio (%)", 1, spread(wk.DeliveryRatio, 100, 1)},
		{"p50 without spread", two, "latency p50 (ms)", 0, spread(wh.LatencyP50Ms, 1, 1)},
		{"p50 with spread", two, "latency p50 (ms)", 1, spread(wk.LatencyP50Ms, 1, 1)},
		{"p99", two, "latency p99 (ms)", 1, spread(wk.LatencyP99Ms, 1, 0)},
		{"bytes per delivered", two, "wire bytes / delivered msg", 0, spread(wh.BytesPerDelivered, 1, 0)},
		{"frames per delivered", two, "wire msgs / delivered msg", 1, spread(wk.FramesPerDelivered, 1, 2)},
		{"CPU per node", two, "CPU s / node", 0, spread(wh.CPUSecondsPerNode, 1, 2)},
		{"CPU per message", two, "CPU µs / delivered msg", 0, spread(wh.CPUPerDeliveredAll, 1, 0)},
		{"CPU per message of one process", two, "  of which p2p", 1, spread(wk.CPUPerDelivered["p2p"], 1, 0)},
		{"CPU per message of a layer the stack lacks", two, "  of which secure", 0, "n/a"},
		{"allocations per message", two, "heap allocs / delivered msg", 0, spread(wh.AllocsPerDeliveredAll, 1, 0)},
		{"allocations per message of one process", two, "  by sync", 1, spread(wk.AllocsPerDelivered["sync"], 1, 1)},
		{"allocations ratio", two, "heap allocs / delivered msg", 2, ratio(wk.AllocsPerDeliveredAll, wh.AllocsPerDeliveredAll)},
		{"peak RSS", two, "peak RSS (MiB)", 1, spread(wk.PeakRSSMiB, 1, 1)},
		{"restarts", two, "plugin restarts", 1, spread(wk.Restarts, 1, 2)},
		{"duplicates", two, "duplicates", 1, spread(wk.Duplicates, 1, 2)},
		{"unconverged runs are counted", two, "convergence (s)", 0,
			fmt.Sprintf("%.2f (%d of %d runs unconverged)", wh.ConvergenceS.Mean, wh.Unconverged, len(two.Stacks[0].Runs))},
		{"converged runs", two, "convergence (s)", 1, spread(wk.ConvergenceS, 1, 2)},
		// Ratios: B's mean over A's.
		{"p50 ratio", two, "latency p50 (ms)", 2, ratio(wk.LatencyP50Ms, wh.LatencyP50Ms)},
		{"p50 ratio is half", two, "latency p50 (ms)", 2, "0.50x"},
		{"bytes ratio", two, "wire bytes / delivered msg", 2, ratio(wk.BytesPerDelivered, wh.BytesPerDelivered)},
		{"delivery ratio ratio", two, "delivery ratio (%)", 2, ratio(wk.DeliveryRatio, wh.DeliveryRatio)},
		{"ratio against zero is n/a", two, "duplicates", 2, "n/a"},
		// No value: n/a, and so is the ratio.
		{"no deliveries, no latency", zero, "latency p50 (ms)", 1, "n/a"},
		{"no latency, no ratio", zero, "latency p95 (ms)", 2, "n/a"},
		{"no deliveries, no bytes per delivered", zero, "wire bytes / delivered msg", 1, "n/a"},
		{"never converged", zero, "convergence (s)", 1, fmt.Sprintf("n/a (%d of %d runs unconverged)", sl.Unconverged, len(zero.Stacks[1].Runs))},
		{"zero delivery is a value", zero, "delivery ratio (%)", 1, "0.0 ± 0.0"},
		{"zero delivery ratio", zero, "delivery ratio (%)", 2, "0.00x"},
		{"CPU still measured", zero, "CPU s / node", 2, ratio(sl.CPUSecondsPerNode, zero.Stacks[0].Summary.CPUSecondsPerNode)},
		// One run: the mean alone.
		{"one run, no spread", one, "latency p50 (ms)", 0, strconv.FormatFloat(one.Stacks[0].Summary.LatencyP50Ms.Mean, 'f', 0, 64)},
		{"one run, percent", one, "delivery ratio (%)", 0, "100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cells, out := tableCells(t, tt.report)
			row := cells[tt.measure]
			if tt.col >= len(row) {
				t.Fatalf("row %q has %d cells, want column %d:\n%s", tt.measure, len(row), tt.col, out)
			}
			if got := row[tt.col]; got != tt.want {
				t.Errorf("%s column %d = %q, want %q", tt.measure, tt.col, got, tt.want)
			}
		})
	}
}

func TestTableLayout(t *testing.T) {
	t.Run("header, legend and columns", func(t *testing.T) {
		cells, out := tableCells(t, twoStacks())
		for _, want := range []string{
			"scenario: group-chat (scenarios/group-chat.yaml)\n",
			"seed:     42\n",
			"runs:     2\n",
			"machine:  linux/amd64, 8 CPUs, go1.26.8\n",
			"ratios are B/A with A = whisper: below 1 means fewer bytes/lower latency than A\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`(?m)^measure +whisper +waku +waku/whisper$`).MatchString(out) {
			t.Errorf("table header is not measure, stacks, ratios:\n%s", out)
		}
		for m, row := range cells {
			if len(row) != 3 {
				t.Errorf("row %q has %d cells, want 3", m, len(row))
			}
		}
	})
	t.Run("one stack has no ratios", func(t *testing.T) {
		cells, out := tableCells(t, oneRun())
		if strings.Contains(out, "±") {
			t.Errorf("one run shows a spread:\n%s", out)
		}
		if strings.Contains(out, "ratios are") {
			t.Errorf("one stack has a ratio legend:\n%s", out)
		}
		for m, row := range cells {
			if len(row) != 1 {
				t.Errorf("row %q has %d cells, want 1", m, len(row))
			}
		}
	})
}

func TestTableReportsDeadNodes(t *testing.T) {
	tests := []struct {
		name   string
		report *compare.Report
		want   []string
		absent []string
	}{
		{
			name:   "died event and Died node",
			report: twoStacks(),
			want: []string{
				"nodes that died during a run (2):\n",
				// Marked Died, no event: reported all the same.
				"  waku run 1: node relay-0 died at unknown time: plugin p2p: signal: killed\n",
				// A died event and the node's Died flag: one line, with the
				// event's time and the node's error.
				"  waku run 2: node client-3 died at 12.5s: exit status 2\n",
			},
			absent: []string{"no node died"},
		},
		{
			name:   "nobody died",
			report: zeroDeliveries(),
			want:   []string{"no node died during a run\n"},
			absent: []string{"nodes that died"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, tt.report); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("table lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("table has %q:\n%s", a, out)
				}
			}
			if n := strings.Count(out, "client-3 died"); n > 1 {
				t.Errorf("client-3's death reported %d times", n)
			}
		})
	}
}

func TestTableGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, fx.make()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", fx.name+".table.golden")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("table differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// writeHTML renders r and fails the test on error.
func writeHTML(t *testing.T, r *compare.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// remoteRef matches anything that would make the page load from the
// network: a script, stylesheet, image or frame with a URL, a CSS import
// or url(), a remote font.
var remoteRef = regexp.MustCompile(`(?i)<(script|link|img|iframe|source|embed|object)\b[^>]*\b(src|href|data)\s*=|@import|url\(|https?://[^"'\s]*\.(js|css|woff2?|ttf)\b`)

func TestHTMLSelfContained(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			page := writeHTML(t, fx.make())
			// The library itself names XML namespaces and uses url(#id)
			// for SVG gradients; everything around it must refer to
			// nothing at all.
			own := strings.Replace(page, echartsJS, "", 1)
			if m := remoteRef.FindString(own); m != "" {
				t.Errorf("page refers to something outside it: %q", m)
			}
			if m := regexp.MustCompile(`(?i)<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//`).FindString(page); m != "" {
				t.Errorf("page loads a remote script or stylesheet: %q", m)
			}
			if strings.Contains(own, "http://") || strings.Contains(own, "https://") {
				t.Error("page names a URL outside the embedded library")
			}
			for _, bad := range []string{`<script src`, `<link`, `cdn`, `go-echarts-assets`, `__f__`} {
				if strings.Contains(strings.ToLower(page), bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			if !strings.Contains(page, "<script>\n"+echartsJS) {
				t.Error("page does not inline echarts.min.js")
			}
			if len(echartsJS) < 500_000 || !strings.Contains(echartsJS, "echarts") {
				t.Errorf("embedded ECharts looks wrong (%d bytes)", len(echartsJS))
			}
			if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
				t.Errorf("page has %d script elements, want 2 (library, charts)", n)
			}
		})
	}
}

// pageSpecs decodes the chart data the page's script hands to ECharts.
func pageSpecs(t *testing.T, page string) []struct {
	ID     string         `json:"id"`
	Option map[string]any `json:"option"`
} {
	t.Helper()
	const start = "var specs = "
	i := strings.Index(page, start)
	if i < 0 {
		t.Fatal("page has no chart data")
	}
	rest := page[i+len(start):]
	j := strings.Index(rest, ";\n")
	if j < 0 {
		t.Fatal("chart data does not end")
	}
	var specs []struct {
		ID     string         `json:"id"`
		Option map[string]any `json:"option"`
	}
	if err := json.Unmarshal([]byte(rest[:j]), &specs); err != nil {
		t.Fatalf("chart data is not JSON: %v", err)
	}
	return specs
}

// chartIDsWant are the charts the page must have, in order.
var chartIDsWant = []string{"chart-latency-cdf", "chart-delivery", "chart-bandwidth", "chart-overhead", "chart-resources"}

func TestHTMLContent(t *testing.T) {
	r := allStacks()
	page := writeHTML(t, r)

	t.Run("header", func(t *testing.T) {
		for _, want := range []string{
			"<title>strata compare: group-chat</title>",
			r.Description,
			"scenarios/group-chat.yaml",
			"<dd>42</dd>",
			"<dd>2 per stack</dd>",
			"linux/amd64, 8 CPUs, go1.26.8",
			`<time datetime="2025-03-14T15:09:26Z">2025-03-14 15:09:26 UTC</time>`,
			"Apache ECharts " + echartsVersion,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	t.Run("every stack", func(t *testing.T) {
		for _, s := range r.Stacks {
			for _, want := range []string{">" + s.Name + "</td>", "<th class=\"num\">" + s.Name + "</th>", ">" + s.Name + "</h3>", s.Config} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		}
	})

	t.Run("summary table as in the terminal", func(t *testing.T) {
		tbl := newSummaryTable(r)
		for _, row := range tbl.Rows {
			var b strings.Builder
			b.WriteString("<tr><td>" + row.Measure + "</td>")
			for _, c := range row.Cells {
				b.WriteString(`<td class="num">` + c + "</td>")
			}
			for _, c := range row.Ratios {
				b.WriteString(`<td class="num ratio">` + c + "</td>")
			}
			b.WriteString("</tr>")
			if !strings.Contains(page, b.String()) {
				t.Errorf("page lacks summary row %s", b.String())
			}
		}
		if !strings.Contains(page, "Ratios are B/A with A = whisper") {
			t.Error("page lacks the ratio legend")
		}
	})

	t.Run("one container per chart", func(t *testing.T) {
		if n := strings.Count(page, `<div class="chart" `); n != len(chartIDsWant) {
			t.Errorf("page has %d chart containers, want %d", n, len(chartIDsWant))
		}
		for _, id := range chartIDsWant {
			if n := strings.Count(page, `id="`+id+`"`); n != 1 {
				t.Errorf("container %s appears %d times", id, n)
			}
		}
		specs := pageSpecs(t, page)
		var ids []string
		for _, s := range specs {
			ids = append(ids, s.ID)
		}
		if !reflect.DeepEqual(ids, chartIDsWant) {
			t.Errorf("chart data ids = %v, want %v", ids, chartIDsWant)
		}
	})

	t.Run("latency CDF data", func(t *testing.T) {
		// Every run's distribution, in ms, against the percentile.
		for _, s := range r.Stacks {
			for _, run := range s.Runs {
				for _, i := range []int{0, 50, 100} {
					if len(run.Latency.CDF) == 0 {
						continue
					}
					pt := fmt.Sprintf(`"value":[%s,%d]`, strconv.FormatFloat(ms(run.Latency.CDF[i]), 'f', -1, 64), i)
					if !strings.Contains(page, pt) {
						t.Errorf("%s run %d: page lacks CDF point %s", s.Name, run.Run, pt)
					}
				}
			}
		}
		if !strings.Contains(page, `"value":[100.25,50]`) {
			t.Error("whisper run 1's median (100.25 ms) is not in the page")
		}
		specs := pageSpecs(t, page)
		series := specs[0].Option["series"].([]any)
		// whisper 2 runs, waku 2 runs, silent none: an empty series keeps
		// it in the legend.
		if len(series) != 5 {
			t.Fatalf("latency chart has %d series, want 5", len(series))
		}
		names := map[string]int{}
		for _, s := range series {
			names[s.(map[string]any)["name"].(string)]++
		}
		if want := map[string]int{"whisper": 2, "waku": 2, "silent": 1}; !reflect.DeepEqual(names, want) {
			t.Errorf("latency series per stack = %v, want %v", names, want)
		}
		first := series[0].(map[string]any)["data"].([]any)
		if len(first) != 101 {
			t.Errorf("first CDF has %d points, want 101", len(first))
		}
	})

	t.Run("delivery over time", func(t *testing.T) {
		specs := pageSpecs(t, page)
		series := specs[1].Option["series"].([]any)
		var dashed, solid int
		for _, s := range series {
			m := s.(map[string]any)
			if m["lineStyle"].(map[string]any)["type"] == "dashed" {
				dashed++
				if !strings.HasSuffix(m["name"].(string), " sent") {
					t.Errorf("dashed series %q is not sends", m["name"])
				}
			} else {
				solid++
			}
		}
		if dashed != 6 || solid != 6 {
			t.Errorf("delivery chart has %d solid and %d dashed series, want 6 and 6", solid, dashed)
		}
		// whisper run 1 delivers 8, 16, 12, 4: cumulative 40 at 4 s.
		first := series[0].(map[string]any)["data"].([]any)
		last := first[len(first)-1].(map[string]any)["value"].([]any)
		if last[0].(float64) != 4 || last[1].(float64) != 40 {
			t.Errorf("whisper run 1 ends at %v, want [4 40]", last)
		}
	})

	t.Run("bars", func(t *testing.T) {
		specs := pageSpecs(t, page)
		// Per-layer overhead: whisper's p2p|privacy is (20000+20000)/40
		// in run 1 and (22800+22800)/38 in run 2: 1100 bytes on average.
		over := specs[3].Option["series"].([]any)
		got := over[0].(map[string]any)["data"].([]any)[0].(map[string]any)["value"]
		if got != 1100.0 {
			t.Errorf("whisper p2p|privacy overhead = %v, want 1100", got)
		}
		// silent delivers nothing: no bytes per delivered message.
		got = over[2].(map[string]any)["data"].([]any)[0].(map[string]any)["value"]
		if got != missing {
			t.Errorf("silent overhead = %v, want %q", got, missing)
		}
		// Resources: a CPU and an RSS series per stack, on two grids.
		res := specs[4].Option["series"].([]any)
		if len(res) != 2*len(r.Stacks) {
			t.Errorf("resource chart has %d series, want %d", len(res), 2*len(r.Stacks))
		}
		if grids := specs[4].Option["grid"].([]any); len(grids) != 2 {
			t.Errorf("resource chart has %d grids, want 2", len(grids))
		}
		bw := specs[2].Option["series"].([]any)
		if len(bw) != len(r.Stacks) {
			t.Errorf("bandwidth chart has %d series, want %d", len(bw), len(r.Stacks))
		}
	})

	t.Run("node events", func(t *testing.T) {
		for _, want := range []string{
			"<td>1.5s</td><td>client-2</td><td>killed</td><td>scenario: kill client-2</td>",
			"<td>3s</td><td>client-2</td><td>restarted</td>",
			"<td>2s</td><td>client-1</td><td>offline</td>",
			`<tr class="died"><td>2</td><td>12.5s</td><td>client-3</td><td>died</td><td>exit status 2</td></tr>`,
			`<tr class="died"><td>1</td><td>unknown time</td><td>relay-0</td><td>died</td><td>plugin p2p: signal: killed</td></tr>`,
			"<li>waku run 2: node client-3 died at 12.5s: exit status 2</li>",
			"Nodes that died during a run (2):",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
}

func TestHTMLEscapes(t *testing.T) {
	r := twoStacks()
	evil := `</script><script>alert("x")</script>`
	r.Stacks[1].Name = evil
	r.Description = `<b>bold</b> & "quoted"`
	page := writeHTML(t, r)
	if strings.Contains(page, `<script>alert(`) || strings.Contains(page, "<b>bold</b>") {
		t.Error("page lets markup from the Report through")
	}
	if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
		t.Errorf("page has %d script elements, want 2", n)
	}
	// The chart data still decodes, with the name intact.
	specs := pageSpecs(t, page)
	name := specs[0].Option["series"].([]any)[2].(map[string]any)["name"]
	if name != evil {
		t.Errorf("series name = %q, want %q", name, evil)
	}
}

func TestEmptyAndNil(t *testing.T) {
	writers := []struct {
		name  string
		write func(*bytes.Buffer, *compare.Report) error
	}{
		{"json", func(b *bytes.Buffer, r *compare.Report) error { return WriteJSON(b, r) }},
		{"table", func(b *bytes.Buffer, r *compare.Report) error { return WriteTable(b, r) }},
		{"html", func(b *bytes.Buffer, r *compare.Report) error { return WriteHTML(b, r) }},
	}
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			if err := w.write(&bytes.Buffer{}, nil); err == nil {
				t.Error("nil Report accepted")
			}
			var buf bytes.Buffer
			if err := w.write(&buf, &compare.Report{}); err != nil {
				t.Errorf("empty Report: %v", err)
			}
			if buf.Len() == 0 {
				t.Error("empty Report wrote nothing")
			}
		})
	}
	// A stack whose runs are all missing shows n/a everywhere.
	r := baseReport(2, whisper(), compare.StackResult{Name: "empty"})
	cells, _ := tableCells(t, r)
	for m, row := range cells {
		if row[1] != notAvailable || row[2] != notAvailable {
			t.Errorf("%s: empty stack shows %q, ratio %q", m, row[1], row[2])
		}
	}
	writeHTML(t, r)
}

func TestSummaryIsTakenAsGiven(t *testing.T) {
	r := twoStacks()
	// A Summary that its runs would not give: the table shows it anyway.
	r.Stacks[0].Summary.LatencyP50Ms = compare.Figure{Mean: 200, StdDev: 4, N: 2}
	cells, _ := tableCells(t, r)
	if got := cells["latency p50 (ms)"]; got[0] != "200.0 ± 4.0" || got[2] != "0.25x" {
		t.Errorf("p50 row = %q, want the given 200.0 ± 4.0 and 50/200 = 0.25x", got)
	}
}

func TestFormatting(t *testing.T) {
	fig := func(mean, sd float64, n int) compare.Figure { return compare.Figure{Mean: mean, StdDev: sd, N: n} }
	tests := []struct {
		name  string
		figs  []compare.Figure
		scale float64
		want  []string
	}{
		{"whole numbers stay whole", []compare.Figure{fig(100, 0, 2), fig(3, 1, 2)}, 1, []string{"100 ± 0", "3 ± 1"}},
		{"three significant digits of the smallest", []compare.Figure{fig(100, 0, 2), fig(50, 14.142, 2)}, 1, []string{"100.0 ± 0.0", "50.0 ± 14.1"}},
		{"sub-millisecond", []compare.Figure{fig(0.0123, 0.001, 2)}, 1, []string{"0.0123 ± 0.0010"}},
		{"scaled to percent", []compare.Figure{fig(0.975, 0.035355, 2)}, 100, []string{"97.5 ± 3.5"}},
		{"one value, no spread", []compare.Figure{fig(12.5, 0, 1)}, 1, []string{"12.5"}},
		{"no value", []compare.Figure{fig(0, 0, 0), fig(2.5, 0.5, 2)}, 1, []string{"n/a", "2.50 ± 0.50"}},
		{"zero mean, spread decides", []compare.Figure{fig(0, 0.25, 2)}, 1, []string{"0.000 ± 0.250"}},
		{"small next to large", []compare.Figure{fig(0.05, 0, 1), fig(500, 0, 1)}, 1, []string{"0.05", "500.00"}},
		{"tiny next to large", []compare.Figure{fig(0.0001, 0, 1), fig(1500, 0, 1)}, 1, []string{"0.00", "1500.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := rowDecimals(tt.figs, tt.scale)
			for i, f := range tt.figs {
				if got := formatFigure(f, tt.scale, d); got != tt.want[i] {
					t.Errorf("figure %d = %q, want %q", i, got, tt.want[i])
				}
			}
		})
	}

	for _, tt := range []struct {
		v    float64
		d    int
		want string
	}{{-0.0001, 2, "0.00"}, {-0, 0, "0"}, {-1.5, 1, "-1.5"}, {2.25, 1, "2.2"}} {
		if got := formatNumber(tt.v, tt.d); got != tt.want {
			t.Errorf("formatNumber(%v, %d) = %q, want %q", tt.v, tt.d, got, tt.want)
		}
	}

	ratios := []struct {
		name string
		b, a compare.Figure
		want string
	}{
		{"half", fig(50, 0, 2), fig(100, 0, 2), "0.50x"},
		{"more", fig(123, 0, 2), fig(100, 0, 2), "1.23x"},
		{"a is zero", fig(5, 0, 2), fig(0, 0, 2), "n/a"},
		{"a missing", fig(5, 0, 2), fig(0, 0, 0), "n/a"},
		{"b missing", fig(0, 0, 0), fig(5, 0, 2), "n/a"},
		{"b is zero", fig(0, 0, 2), fig(5, 0, 2), "0.00x"},
		{"a not finite", fig(5, 0, 2), fig(math.NaN(), 0, 2), "n/a"},
	}
	for _, tt := range ratios {
		t.Run("ratio "+tt.name, func(t *testing.T) {
			if got := formatRatio(tt.b, tt.a); got != tt.want {
				t.Errorf("formatRatio = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPercentileAt(t *testing.T) {
	tests := []struct {
		i, n int
		want float64
	}{
		{0, 101, 0}, {50, 101, 50}, {100, 101, 100},
		{0, 11, 0}, {5, 11, 50}, {10, 11, 100},
		{0, 1, 100},
	}
	for _, tt := range tests {
		if got := percentileAt(tt.i, tt.n); got != tt.want {
			t.Errorf("percentileAt(%d, %d) = %v, want %v", tt.i, tt.n, got, tt.want)
		}
	}
}

func TestRunEventsOrder(t *testing.T) {
	run := compare.RunResult{
		Run: 3,
		Events: []compare.NodeEvent{
			{At: 5 * time.Second, Node: "b", Kind: "online"},
			{At: time.Second, Node: "b", Kind: "offline"},
			{At: 7 * time.Second, Node: "c", Kind: "died"},
		},
		Nodes: []compare.NodeResult{{Name: "a", Died: true, Error: "oom"}, {Name: "c", Died: true, Error: "panic"}},
	}
	var got []string
	for _, e := range runEvents("s", &run) {
		got = append(got, fmt.Sprintf("%s %s %s %s", e.When(), e.Node, e.Kind, e.Detail))
	}
	want := []string{"1s b offline ", "5s b online ", "7s c died panic", "unknown time a died oom"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runEvents = %q, want %q", got, want)
	}
}

func TestAssetsREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("assets", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(echartsJS))
	for _, want := range []string{hex.EncodeToString(sum[:]), "echarts-" + echartsVersion + ".tgz", "Apache ECharts " + echartsVersion, strconv.Itoa(len(echartsJS)) + " bytes", "sha512-"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("assets/README.md does not say %q", want)
		}
	}
	for _, f := range []string{"LICENSE", "NOTICE", "LICENSE-d3"} {
		if _, err := os.Stat(filepath.Join("assets", f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(echartsJS, "Licensed to the Apache Software Foundation") {
		t.Error("embedded ECharts has lost its license header")
	}
}

// TestOverloadedRunFlagged: a run whose achieved send rate fell below 95%
// of the offered one is flagged in the table, the HTML page and the JSON,
// beside the two rates.
func TestOverloadedRunFlagged(t *testing.T) {
	r := twoStacks()
	var table, js bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	page := writeHTML(t, r)
	for what, text := range map[string]string{"table": table.String(), "html": page} {
		for _, want := range []string{"offered send rate (msg/s)", "achieved send rate (msg/s)", "1 of 2 runs below 95% of offered", "waku run 2: sent 1.6 msg/s of the 2.5 offered (65%)", "the load generator did"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s does not say %q", what, want)
			}
		}
		if strings.Contains(text, "whisper run 1: sent") || strings.Contains(text, "whisper run 2: sent") {
			t.Errorf("%s flags a run that kept up", what)
		}
	}
	for _, want := range []string{`"offered_rate": 2.5`, `"achieved_rate": 1.625`, `"overloaded": true`, `"overloaded": 1`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("report.json has no %s", want)
		}
	}
}
