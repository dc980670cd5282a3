package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/strata-msg/strata/host/compare"
)

// WriteTable writes the Report as a terminal table: the scenario, seed,
// runs and machine above it; one row per measure and one column per stack,
// each cell "mean ± stddev" over the runs (the mean alone when one run
// gave a value, "n/a" when none did); then one ratio column per stack
// after the first, the stack's mean over the first stack's ("0.82x", "n/a"
// when the first has no value or 0). Below the table come a legend for the
// ratios, every run whose achieved send rate fell below 95% of the
// offered one (a WARNING: its figures are for a lighter load), and every
// node that died on its own during a run, each on a line.
func WriteTable(w io.Writer, r *compare.Report) error {
	if r == nil {
		return fmt.Errorf("report: nil Report")
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "scenario: %s\n", scenarioString(r))
	fmt.Fprintf(bw, "seed:     %d\n", r.Seed)
	fmt.Fprintf(bw, "runs:     %d\n", r.Runs)
	fmt.Fprintf(bw, "machine:  %s\n", machineString(r.Machine))
	fmt.Fprintln(bw)

	t := newSummaryTable(r)
	if len(t.Stacks) == 0 {
		fmt.Fprintln(bw, "no stacks")
		return bw.Flush()
	}
	head := append(append([]string{"measure"}, t.Stacks...), t.RatioHeads...)
	rows := [][]string{head}
	for _, row := range t.Rows {
		rows = append(rows, append(append([]string{row.Measure}, row.Cells...), row.Ratios...))
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rule := make([]string, len(head))
	for i, n := range widths {
		rule[i] = strings.Repeat("-", n)
	}
	writeRow(bw, rows[0], widths)
	writeRow(bw, rule, widths)
	for _, row := range rows[1:] {
		writeRow(bw, row, widths)
	}

	if l := t.legend(); l != "" {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, l)
	}
	if ol := overloads(r); len(ol) > 0 {
		fmt.Fprintln(bw)
		fmt.Fprint(bw, wrapText("WARNING: "+overloadWarning(len(ol))+":", 80))
		for _, l := range ol {
			fmt.Fprintf(bw, "  %s\n", l)
		}
	}
	fmt.Fprintln(bw)
	if ds := deaths(r); len(ds) == 0 {
		fmt.Fprintln(bw, "no node died during a run")
	} else {
		fmt.Fprintf(bw, "nodes that died during a run (%d):\n", len(ds))
		for _, d := range ds {
			fmt.Fprintf(bw, "  %s\n", deathLine(d))
		}
	}
	return bw.Flush()
}

// wrapText folds s at spaces into lines of at most width columns, each
// ending in a newline.
func wrapText(s string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(s) {
		n := utf8.RuneCountInString(word)
		if i > 0 && line+1+n > width {
			b.WriteString("\n")
			line = 0
		} else if i > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += n
	}
	b.WriteString("\n")
	return b.String()
}

// writeRow writes one table row: the first column left-aligned, the
// others right-aligned, two spaces apart, no trailing blanks.
func writeRow(w io.Writer, cells []string, widths []int) {
	var b strings.Builder
	for i, c := range cells {
		pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
		if i == 0 {
			b.WriteString(c + pad)
			continue
		}
		b.WriteString("  " + pad + c)
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
}
