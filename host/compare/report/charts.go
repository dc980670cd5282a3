package report

import (
	"math"
	"strings"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/strata-msg/strata/host/compare"
)

// chartSpec is one chart of the HTML report: its container and the
// ECharts option that go-echarts built for it.
type chartSpec struct {
	// ID is the chart container's element id.
	ID string
	// Title heads the chart's section; Note explains what it shows.
	Title string
	Note  string
	// Height is the container's height in pixels.
	Height int
	// Option is the ECharts option, as go-echarts builds it.
	Option map[string]interface{}
}

// palette gives each stack its colour: every run and series of a stack is
// drawn in it (go-echarts' default palette).
var palette = []string{
	"#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de",
	"#3ba272", "#fc8452", "#9a60b4", "#ea7ccc",
}

// stackColor is the colour of the i-th stack.
func stackColor(i int) string { return palette[i%len(palette)] }

// stackColors is the palette for a Report's stacks, in order.
func stackColors(r *compare.Report) opts.Colors {
	c := make(opts.Colors, 0, len(r.Stacks))
	for i := range r.Stacks {
		c = append(c, stackColor(i))
	}
	if len(c) == 0 {
		c = append(c, palette...)
	}
	return c
}

// optioner is a go-echarts chart whose option can be had as data.
type optioner interface {
	Validate()
	JSON() map[string]interface{}
}

// optionOf settles a go-echarts chart and returns its ECharts option.
func optionOf(c optioner) map[string]interface{} {
	c.Validate()
	return c.JSON()
}

// axisVisitor amends what go-echarts' options cannot say: it left-aligns
// the y axes' names, which ECharts centres on the axis and so cuts off at
// the chart's left edge.
type axisVisitor struct {
	charts.BaseConfigurationVisitor
}

// yAxis is a y axis with a style for its name.
type yAxis struct {
	opts.YAxis
	NameTextStyle map[string]string `json:"nameTextStyle,omitempty"`
}

// VisitYAxis gives every named y axis a left-aligned name.
func (axisVisitor) VisitYAxis(axes []opts.YAxis) interface{} {
	out := make([]yAxis, len(axes))
	for i, a := range axes {
		out[i] = yAxis{YAxis: a}
		if a.Name != "" {
			out[i].NameTextStyle = map[string]string{"align": "left"}
		}
	}
	return out
}

// buildCharts builds the report's charts, in the order the page shows them.
func buildCharts(r *compare.Report) []chartSpec {
	return []chartSpec{
		latencyCDFChart(r),
		deliveryChart(r),
		bandwidthChart(r),
		overheadChart(r),
		resourceChart(r),
	}
}

// commonOpts are the options every chart shares.
func commonOpts(r *compare.Report) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithAnimation(false),
		charts.WithColorsOpts(stackColors(r)),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0", Type: "scroll"}),
		charts.WithToolboxOpts(opts.Toolbox{
			Show:    opts.Bool(true),
			Right:   "2%",
			Feature: &opts.ToolBoxFeature{SaveAsImage: &opts.ToolBoxFeatureSaveAsImage{Show: opts.Bool(true), Title: "save as PNG"}},
		}),
	}
}

// lineStyle draws one run's series of a stack: the stack's colour, the
// first run bold and the others faint, sends dashed.
func lineStyle(color string, first, dashed bool) []charts.SeriesOpts {
	ls := opts.LineStyle{Color: color, Width: 2, Opacity: opts.Float(1)}
	if !first {
		ls.Width, ls.Opacity = 1, opts.Float(0.45)
	}
	if dashed {
		ls.Type = "dashed"
	}
	return []charts.SeriesOpts{
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}),
		charts.WithLineStyleOpts(ls),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: color}),
	}
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentileAt is the percentile of the i-th of n CDF points: i itself
// for the full 101 points, else the points spread evenly over 0..100.
func percentileAt(i, n int) float64 {
	switch {
	case n == 101:
		return float64(i)
	case n <= 1:
		return 100
	default:
		return round(float64(i)*100/float64(n-1), 3)
	}
}

// round rounds v to d decimals.
func round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// missing is how ECharts is told a bar has no value.
const missing = "-"

// barValue is a bar's value, or missing when there is none.
func barValue(v float64, ok bool, d int) opts.BarData {
	if !ok || !finite(v) {
		return opts.BarData{Value: missing}
	}
	return opts.BarData{Value: round(v, d)}
}

// stacksWithout names the stacks for which pred holds, for a chart's note.
func stacksWithout(r *compare.Report, pred func(*compare.StackResult) bool) []string {
	var out []string
	for i := range r.Stacks {
		if pred(&r.Stacks[i]) {
			out = append(out, r.Stacks[i].Name)
		}
	}
	return out
}

// latencyCDFChart is the latency distribution of every run, one colour per
// stack.
func latencyCDFChart(r *compare.Report) chartSpec {
	c := charts.NewLine()
	c.Accept(axisVisitor{})
	c.SetGlobalOptions(commonOpts(r)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "latency (ms)", NameLocation: "middle", NameGap: 28, Scale: opts.Bool(true)}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "percentile", Min: 0, Max: 100}),
		charts.WithGridOpts(opts.Grid{Left: "3%", Right: "4%", Top: "48", Bottom: "40", ContainLabel: opts.Bool(true)}),
	)
	for i := range r.Stacks {
		s := &r.Stacks[i]
		color := stackColor(i)
		drawn := false
		for j := range s.Runs {
			cdf := s.Runs[j].Latency.CDF
			if len(cdf) == 0 {
				continue
			}
			data := make([]opts.LineData, len(cdf))
			for k, d := range cdf {
				data[k] = opts.LineData{Value: []interface{}{ms(d), percentileAt(k, len(cdf))}}
			}
			c.AddSeries(s.Name, data, lineStyle(color, !drawn, false)...)
			drawn = true
		}
		if !drawn {
			// Keep the stack in the legend even with nothing to draw.
			c.AddSeries(s.Name, nil, lineStyle(color, true, false)...)
		}
	}
	note := "Share of deliveries (y, percentile) within a latency (x, ms), from the sender's API call to the receiver's delivery; one line per run, the first run bold."
	if none := stacksWithout(r, func(s *compare.StackResult) bool { return !anyCDF(s) }); len(none) > 0 {
		note += " No delivery, so no latency: " + strings.Join(none, ", ") + "."
	}
	return chartSpec{ID: "chart-latency-cdf", Title: "Latency distribution", Note: note, Height: 420, Option: optionOf(c)}
}

// anyCDF says whether any run of the stack has a latency distribution.
func anyCDF(s *compare.StackResult) bool {
	for i := range s.Runs {
		if len(s.Runs[i].Latency.CDF) > 0 {
			return true
		}
	}
	return false
}

// deliveryChart is cumulative deliveries (solid) and sends (dashed) over
// the time since sending started, every run, one colour per stack.
func deliveryChart(r *compare.Report) chartSpec {
	c := charts.NewLine()
	c.Accept(axisVisitor{})
	c.SetGlobalOptions(commonOpts(r)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "seconds since sending started", NameLocation: "middle", NameGap: 28}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "cumulative count"}),
		charts.WithGridOpts(opts.Grid{Left: "3%", Right: "4%", Top: "48", Bottom: "40", ContainLabel: opts.Bool(true)}),
	)
	for i := range r.Stacks {
		s := &r.Stacks[i]
		color := stackColor(i)
		delivered, sent := s.Name+" delivered", s.Name+" sent"
		drawn := false
		for j := range s.Runs {
			tl := s.Runs[j].Timeline
			if len(tl) == 0 {
				continue
			}
			del, snt := cumulative(tl)
			c.AddSeries(delivered, del, lineStyle(color, !drawn, false)...)
			c.AddSeries(sent, snt, lineStyle(color, !drawn, true)...)
			drawn = true
		}
		if !drawn {
			c.AddSeries(delivered, nil, lineStyle(color, true, false)...)
			c.AddSeries(sent, nil, lineStyle(color, true, true)...)
		}
	}
	note := "Cumulative measured deliveries (solid) and sends (dashed) against the time since sending started; one pair of lines per run, the first run bold."
	return chartSpec{ID: "chart-delivery", Title: "Delivery over time", Note: note, Height: 420, Option: optionOf(c)}
}

// cumulative turns a timeline into cumulative deliveries and sends, from
// (0, 0).
func cumulative(tl []compare.TimelinePoint) (delivered, sent []opts.LineData) {
	var d, s int
	if tl[0].At > 0 {
		delivered = append(delivered, opts.LineData{Value: []interface{}{0.0, 0}})
		sent = append(sent, opts.LineData{Value: []interface{}{0.0, 0}})
	}
	for _, p := range tl {
		d += p.Delivered
		s += p.Sent
		at := round(p.At.Seconds(), 6)
		delivered = append(delivered, opts.LineData{Value: []interface{}{at, d}})
		sent = append(sent, opts.LineData{Value: []interface{}{at, s}})
	}
	return delivered, sent
}

// nodeNames lists every node of every stack and run, in the order first
// seen.
func nodeNames(r *compare.Report) []string {
	seen := map[string]bool{}
	var names []string
	for i := range r.Stacks {
		for j := range r.Stacks[i].Runs {
			for _, n := range r.Stacks[i].Runs[j].Nodes {
				if !seen[n.Name] {
					seen[n.Name] = true
					names = append(names, n.Name)
				}
			}
		}
	}
	return names
}

// perNodeMean averages get over the runs of a stack that have the node.
func perNodeMean(s *compare.StackResult, get func(compare.NodeResult) float64) map[string]float64 {
	sum := map[string]float64{}
	n := map[string]int{}
	for j := range s.Runs {
		for _, nd := range s.Runs[j].Nodes {
			sum[nd.Name] += get(nd)
			n[nd.Name]++
		}
	}
	mean := make(map[string]float64, len(sum))
	for k, v := range sum {
		mean[k] = v / float64(n[k])
	}
	return mean
}

// byteUnit picks a unit for byte counts up to maxBytes.
func byteUnit(maxBytes float64) (name string, size float64) {
	switch {
	case maxBytes >= 1<<30:
		return "GiB", 1 << 30
	case maxBytes >= 1<<20:
		return "MiB", 1 << 20
	case maxBytes >= 1<<10:
		return "KiB", 1 << 10
	default:
		return "bytes", 1
	}
}

// zoomShown is how many categories a bar chart shows at once; more get a
// zoom slider.
const zoomShown = 24

// categoryAxis is an x axis of categories; many categories get slanted
// labels, and too many for one view lose the axis name to the slider.
func categoryAxis(name string, cats []string, grid int) opts.XAxis {
	x := opts.XAxis{Type: "category", Name: name, NameLocation: "middle", NameGap: 30, Data: cats, GridIndex: grid}
	if len(cats) > 8 {
		x.AxisLabel = &opts.AxisLabel{Show: opts.Bool(true), Rotate: 35}
		x.NameGap = 60
	}
	if len(cats) > zoomShown {
		x.Name = ""
	}
	return x
}

// zoomFor adds a slider to bar charts with many nodes, over the given x
// axes.
func zoomFor(n int, xAxes ...int) []charts.GlobalOpts {
	const shown = zoomShown
	if n <= shown {
		return nil
	}
	return []charts.GlobalOpts{charts.WithDataZoomOpts(opts.DataZoom{
		Type: "slider", Start: 0, End: float32(100 * shown / n), XAxisIndex: xAxes,
	})}
}

// bandwidthChart is each node's wire bytes, sent plus received, averaged
// over runs, one bar per stack.
func bandwidthChart(r *compare.Report) chartSpec {
	names := nodeNames(r)
	means := make([]map[string]float64, len(r.Stacks))
	var peak float64
	for i := range r.Stacks {
		means[i] = perNodeMean(&r.Stacks[i], func(n compare.NodeResult) float64 {
			return float64(n.WireBytesSent) + float64(n.WireBytesReceived)
		})
		for _, v := range means[i] {
			peak = max(peak, v)
		}
	}
	unit, size := byteUnit(peak)
	bottom := "48"
	if len(names) > zoomShown {
		bottom = "56"
	}
	c := charts.NewBar()
	c.Accept(axisVisitor{})
	c.SetGlobalOptions(commonOpts(r)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", AxisPointer: &opts.AxisPointer{Type: "shadow"}}),
		charts.WithXAxisOpts(categoryAxis("node", names, 0)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "wire " + unit + " (sent + received)"}),
		charts.WithGridOpts(opts.Grid{Left: "3%", Right: "4%", Top: "48", Bottom: bottom, ContainLabel: opts.Bool(true)}),
	)
	c.SetGlobalOptions(zoomFor(len(names), 0)...)
	c.SetXAxis(names)
	for i := range r.Stacks {
		data := make([]opts.BarData, len(names))
		for k, n := range names {
			v, ok := means[i][n]
			data[k] = barValue(v/size, ok, 3)
		}
		c.AddSeries(r.Stacks[i].Name, data, charts.WithItemStyleOpts(opts.ItemStyle{Color: stackColor(i)}))
	}
	note := "Payload bytes each node's p2p layer sent to and received from the wire, mean over the runs in which the node ran; a gap is a node the stack does not have."
	return chartSpec{ID: "chart-bandwidth", Title: "Bandwidth per node", Note: note, Height: 420, Option: optionOf(c)}
}

// boundaryNames lists every layer boundary of every stack and run, in the
// order first seen (bottom up).
func boundaryNames(r *compare.Report) []string {
	seen := map[string]bool{}
	var names []string
	for i := range r.Stacks {
		for j := range r.Stacks[i].Runs {
			for _, b := range r.Stacks[i].Runs[j].Boundaries {
				if !seen[b.Name] {
					seen[b.Name] = true
					names = append(names, b.Name)
				}
			}
		}
	}
	return names
}

// boundaryPerDelivered is, for each boundary, the bytes that crossed it
// (down plus up) per delivered message, mean over the runs that delivered.
func boundaryPerDelivered(s *compare.StackResult) map[string]float64 {
	sum := map[string]float64{}
	n := map[string]int{}
	for j := range s.Runs {
		run := &s.Runs[j]
		if run.Delivered <= 0 {
			continue
		}
		for _, b := range run.Boundaries {
			sum[b.Name] += (float64(b.BytesDown) + float64(b.BytesUp)) / float64(run.Delivered)
			n[b.Name]++
		}
	}
	mean := make(map[string]float64, len(sum))
	for k, v := range sum {
		mean[k] = v / float64(n[k])
	}
	return mean
}

// overheadChart is the bytes per delivered message at each layer
// boundary, one bar per stack.
func overheadChart(r *compare.Report) chartSpec {
	names := boundaryNames(r)
	c := charts.NewBar()
	c.Accept(axisVisitor{})
	c.SetGlobalOptions(commonOpts(r)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", AxisPointer: &opts.AxisPointer{Type: "shadow"}}),
		charts.WithXAxisOpts(categoryAxis("layer boundary (bottom up)", names, 0)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "bytes / delivered msg"}),
		charts.WithGridOpts(opts.Grid{Left: "3%", Right: "4%", Top: "48", Bottom: "48", ContainLabel: opts.Bool(true)}),
	)
	c.SetXAxis(names)
	for i := range r.Stacks {
		per := boundaryPerDelivered(&r.Stacks[i])
		data := make([]opts.BarData, len(names))
		for k, n := range names {
			v, ok := per[n]
			data[k] = barValue(v, ok, 1)
		}
		c.AddSeries(r.Stacks[i].Name, data, charts.WithItemStyleOpts(opts.ItemStyle{Color: stackColor(i)}))
	}
	note := "Bytes that crossed each layer boundary, down plus up, summed over nodes, per delivered message; mean over the runs that delivered anything."
	if none := stacksWithout(r, func(s *compare.StackResult) bool { return len(boundaryPerDelivered(s)) == 0 }); len(none) > 0 {
		note += " Nothing to show (no delivery or no boundary counts): " + strings.Join(none, ", ") + "."
	}
	return chartSpec{ID: "chart-overhead", Title: "Per-layer overhead", Note: note, Height: 420, Option: optionOf(c)}
}

// resourceChart is each node's CPU time (top) and peak RSS (bottom),
// averaged over runs, one bar per stack.
func resourceChart(r *compare.Report) chartSpec {
	names := nodeNames(r)
	c := charts.NewBar()
	c.Accept(axisVisitor{})
	c.SetGlobalOptions(commonOpts(r)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis", AxisPointer: &opts.AxisPointer{Type: "shadow"}}),
		charts.WithXAxisOpts(categoryAxis("", names, 0)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "CPU seconds (user + system)"}),
		charts.WithGridOpts(
			opts.Grid{Left: "3%", Right: "4%", Top: "56", Height: "30%", ContainLabel: opts.Bool(true)},
			opts.Grid{Left: "3%", Right: "4%", Top: "58%", Height: "30%", ContainLabel: opts.Bool(true)},
		),
	)
	c.ExtendXAxis(categoryAxis("node", names, 1))
	c.ExtendYAxis(opts.YAxis{Type: "value", Name: "peak RSS (MiB)", GridIndex: 1})
	c.SetGlobalOptions(zoomFor(len(names), 0, 1)...)
	c.SetXAxis(names)
	for i := range r.Stacks {
		s := &r.Stacks[i]
		cpu := perNodeMean(s, func(n compare.NodeResult) float64 { return n.CPUSeconds })
		rss := perNodeMean(s, func(n compare.NodeResult) float64 { return float64(n.PeakRSS) / (1 << 20) })
		cpuData := make([]opts.BarData, len(names))
		rssData := make([]opts.BarData, len(names))
		for k, n := range names {
			v, ok := cpu[n]
			cpuData[k] = barValue(v, ok, 3)
			v, ok = rss[n]
			rssData[k] = barValue(v, ok, 1)
		}
		style := charts.WithItemStyleOpts(opts.ItemStyle{Color: stackColor(i)})
		c.AddSeries(s.Name, cpuData, style)
		c.AddSeries(s.Name, rssData, style, charts.WithBarChartOpts(opts.BarChart{XAxisIndex: 1, YAxisIndex: 1}))
	}
	note := "Each node's CPU time (top) and largest resident set (bottom), host and plugin processes together, mean over the runs in which the node ran."
	return chartSpec{ID: "chart-resources", Title: "Resource use per node", Note: note, Height: 600, Option: optionOf(c)}
}
