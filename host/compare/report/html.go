package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/strata-msg/strata/host/compare"
)

// WriteHTML writes the Report as one self-contained HTML page: a header
// (scenario, description, seed, runs, machine, start time), the stacks,
// the summary table of WriteTable, five charts (latency distribution,
// delivery over time, bandwidth per node, per-layer overhead, resource use
// per node; one colour per stack) and the node events of every run. The
// page loads nothing: Apache ECharts is inlined, there are no external
// fonts, styles or scripts, so it can be opened offline or mailed around.
func WriteHTML(w io.Writer, r *compare.Report) error {
	if r == nil {
		return fmt.Errorf("report: nil Report")
	}
	page, err := newHTMLPage(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("report: rendering HTML: %w", err)
	}
	_, err = buf.WriteTo(w)
	return err
}

// htmlPage is what the page template shows.
type htmlPage struct {
	Title       string
	Scenario    string
	File        string
	Description string
	Seed        uint64
	Runs        int
	Machine     string
	Started     string
	// StartedISO is Started for the <time> element; empty when unknown.
	StartedISO string
	Stacks     []htmlStack
	Table      summaryTable
	Legend     string
	Deaths     []string
	// Overloads lists the runs whose achieved send rate fell below
	// compare.OverloadThreshold of the offered one; OverloadWarning heads
	// the list.
	Overloads       []string
	OverloadWarning string
	Charts          []chartSpec
	// ChartData is the charts' ids and options as a JavaScript value.
	ChartData template.JS
	// ECharts is the inlined ECharts library, Version its version.
	ECharts template.JS
	Version string
}

// htmlStack is one stack's description and node events.
type htmlStack struct {
	Name   string
	Color  string
	Config string
	Layers string
	Relays int
	Runs   int
	Events []nodeEvent
}

// newHTMLPage gathers what the page shows.
func newHTMLPage(r *compare.Report) (*htmlPage, error) {
	p := &htmlPage{
		Title:       "strata compare: " + r.Scenario,
		Scenario:    r.Scenario,
		File:        r.ScenarioFile,
		Description: r.Description,
		Seed:        r.Seed,
		Runs:        r.Runs,
		Machine:     machineString(r.Machine),
		Started:     startedString(r.Started),
		Table:       newSummaryTable(r),
		Charts:      buildCharts(r),
		ECharts:     template.JS(echartsJS),
		Version:     echartsVersion,
	}
	if r.Scenario == "" {
		p.Title = "strata compare"
	}
	if !r.Started.IsZero() {
		p.StartedISO = r.Started.Format("2006-01-02T15:04:05Z07:00")
	}
	if l := p.Table.legend(); l != "" {
		p.Legend = strings.ToUpper(l[:1]) + l[1:]
	}
	for _, d := range deaths(r) {
		p.Deaths = append(p.Deaths, deathLine(d))
	}
	p.Overloads = overloads(r)
	p.OverloadWarning = overloadWarning(len(p.Overloads))
	for i := range r.Stacks {
		s := &r.Stacks[i]
		hs := htmlStack{
			Name:   s.Name,
			Color:  stackColor(i),
			Config: s.Config,
			Layers: strings.Join(s.Layers, " → "),
			Relays: s.Relays,
			Runs:   len(s.Runs),
		}
		for j := range s.Runs {
			hs.Events = append(hs.Events, runEvents(s.Name, &s.Runs[j])...)
		}
		p.Stacks = append(p.Stacks, hs)
	}
	data, err := chartData(p.Charts)
	if err != nil {
		return nil, err
	}
	p.ChartData = data
	return p, nil
}

// chartData encodes the charts' ids and options for the page's script.
// encoding/json escapes <, > and & (and U+2028, U+2029), so no value can
// end the script element early.
func chartData(specs []chartSpec) (template.JS, error) {
	type item struct {
		ID     string                 `json:"id"`
		Option map[string]interface{} `json:"option"`
	}
	items := make([]item, len(specs))
	for i, s := range specs {
		items[i] = item{ID: s.ID, Option: s.Option}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return "", fmt.Errorf("report: encoding chart data: %w", err)
	}
	return template.JS(b), nil
}

// pageTemplate lays out the page; html/template escapes every value.
var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --bad: #b42318; --badbg: #fef3f2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p { margin: 6px 0; }
.muted, .note { color: var(--muted); }
.note { font-size: 13.5px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--soft); border-bottom: 2px solid var(--line); white-space: nowrap; }
table.summary td.num, table.summary th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary td.ratio, table.summary th.ratio { color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.chart { width: 100%; border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin-top: 8px; }
.deaths { background: var(--badbg); border: 1px solid #fecdca; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.deaths strong { color: var(--bad); }
.deaths ul { margin: 4px 0; padding-left: 20px; }
tr.died td { color: var(--bad); background: var(--badbg); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { margin-top: 40px; font-size: 12.5px; color: var(--muted); }
</style>
</head>
<body>
<main>
<header>
<h1>strata compare: {{if .Scenario}}{{.Scenario}}{{else}}(unnamed scenario){{end}}</h1>
{{- if .Description}}
<p class="description">{{.Description}}</p>
{{- end}}
<dl class="meta">
<dt>scenario</dt><dd>{{if .Scenario}}{{.Scenario}}{{else}}(unnamed){{end}}{{if .File}} <span class="muted">(<code>{{.File}}</code>)</span>{{end}}</dd>
<dt>seed</dt><dd>{{.Seed}}</dd>
<dt>runs</dt><dd>{{.Runs}} per stack</dd>
<dt>machine</dt><dd>{{.Machine}}</dd>
<dt>started</dt><dd>{{if .StartedISO}}<time datetime="{{.StartedISO}}">{{.Started}}</time>{{else}}{{.Started}}{{end}}</dd>
</dl>
</header>

<section id="stacks">
<h2>Stacks</h2>
{{- if .Stacks}}
<table>
<thead><tr><th>stack</th><th>config</th><th>layers (bottom up)</th><th>relays</th><th>runs</th></tr></thead>
<tbody>
{{- range .Stacks}}
<tr><td><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</td><td><code>{{.Config}}</code></td><td>{{.Layers}}</td><td>{{.Relays}}</td><td>{{.Runs}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="muted">No stacks.</p>
{{- end}}
</section>

<section id="summary">
<h2>Summary</h2>
{{- if .Table.Stacks}}
<table class="summary">
<thead><tr><th>measure</th>{{range .Table.Stacks}}<th class="num">{{.}}</th>{{end}}{{range .Table.RatioHeads}}<th class="num ratio">{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Table.Rows}}
<tr><td>{{.Measure}}</td>{{range .Cells}}<td class="num">{{.}}</td>{{end}}{{range .Ratios}}<td class="num ratio">{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
<p class="note">Each cell is the mean ± the standard deviation over the runs that gave a value; n/a when none did.{{if .Legend}} {{.Legend}}.{{end}}</p>
{{- end}}
{{- if .Overloads}}
<div class="deaths overloads"><strong>Warning: {{.OverloadWarning}}:</strong>
<ul>
{{- range .Overloads}}
<li>{{.}}</li>
{{- end}}
</ul>
</div>
{{- end}}
{{- if .Deaths}}
<div class="deaths"><strong>Nodes that died during a run ({{len .Deaths}}):</strong>
<ul>
{{- range .Deaths}}
<li>{{.}}</li>
{{- end}}
</ul>
</div>
{{- else}}
<p class="note">No node died during a run.</p>
{{- end}}
</section>

<section id="charts">
{{- range .Charts}}
<h2>{{.Title}}</h2>
<p class="note">{{.Note}}</p>
<div class="chart" id="{{.ID}}" style="height: {{.Height}}px"></div>
{{- end}}
<noscript><p class="note">The charts need JavaScript; the tables hold the numbers.</p></noscript>
</section>

<section id="events">
<h2>Node events</h2>
<p class="note">Kills, restarts and offline periods the scenario caused, and every node that died on its own.</p>
{{- range .Stacks}}
<h3><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</h3>
{{- if .Events}}
<table class="events">
<thead><tr><th>run</th><th>at</th><th>node</th><th>event</th><th>detail</th></tr></thead>
<tbody>
{{- range .Events}}
<tr{{if .Died}} class="died"{{end}}><td>{{.Run}}</td><td>{{.When}}</td><td>{{.Node}}</td><td>{{.Kind}}</td><td>{{.Detail}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="muted">No node events.</p>
{{- end}}
{{- end}}
</section>

<footer>
Written by <code>strata compare</code>. Charts drawn with Apache ECharts {{.Version}} (Apache License 2.0), embedded in this page.
</footer>
</main>
<script>
{{.ECharts}}
</script>
<script>
(function () {
  "use strict";
  if (typeof echarts === "undefined") { return; }
  var specs = {{.ChartData}};
  var drawn = [];
  specs.forEach(function (s) {
    var el = document.getElementById(s.id);
    if (!el) { return; }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(s.option);
    drawn.push(chart);
  });
  window.addEventListener("resize", function () {
    drawn.forEach(function (c) { c.resize(); });
  });
})();
</script>
</body>
</html>
`
