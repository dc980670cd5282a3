package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-msg/strata/host/compare"
	"github.com/strata-msg/strata/host/compare/report"
	"github.com/strata-msg/strata/host/scenario"
	"github.com/strata-msg/strata/host/testnet"
)

// compareOptions are the flags of `strata compare`.
type compareOptions struct {
	scenario        string
	runs            int
	out             string
	dir             string
	keep            bool
	relays          int
	allowUnverified bool
	quiet           bool
}

func compareCmd(env Env) *cobra.Command {
	var o compareOptions
	cmd := &cobra.Command{
		Use:   "compare STACK.yaml... [--scenario FILE]",
		Short: "Run one scenario on several stacks, each on a local testnet, and report them side by side",
		Long: `compare runs the scenario on every stack, --runs times each (the stacks
take turns run by run), on a testnet of local hosts (strata testnet), and
reports delivery, latency,
convergence, bytes on the wire, CPU and memory per stack, with ratios
against the first stack. It writes report.json (raw results) and
report.html (charts) to --out and prints a table. See docs/compare.md.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, stacks []string) error {
			return runCompare(cmd, env, o, stacks)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "configs/scenarios/small-1to1.yaml", "the scenario file")
	f.IntVar(&o.runs, "runs", 1, "runs per stack; figures show their spread")
	f.StringVar(&o.out, "out", "", "directory for report.json and report.html (default ./"+compareOutPrefix+"<scenario>-<time>)")
	f.StringVar(&o.dir, "dir", "", "directory for the testnets' data (default: a temporary one, removed at the end)")
	f.BoolVar(&o.keep, "keep", false, "keep the testnets' data directory")
	f.IntVar(&o.relays, "relays", testnet.AutoRelays, "relays per testnet; -1: what the privacy layer needs: a whole mixnet for mixnet, one relay for a layer that provides \"relayed\" (whisper), else none")
	f.BoolVar(&o.allowUnverified, "allow-unverified", false, "run plugin binaries that have no recorded checksum")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar (there is none when standard error is not a terminal)")
	return cmd
}

func runCompare(cmd *cobra.Command, env Env, o compareOptions, stacks []string) error {
	sc, err := scenario.Load(o.scenario)
	if err != nil {
		return err
	}
	if o.runs < 1 {
		return fmt.Errorf("--runs is %d; give at least 1", o.runs)
	}
	for _, s := range stacks {
		if _, err := os.Stat(s); err != nil {
			return fmt.Errorf("stack %s: %w", s, err)
		}
	}
	dir := o.dir
	if dir == "" {
		// Short, for the nodes' API socket paths.
		if dir, err = os.MkdirTemp("", "sc-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	out := o.out
	if out == "" {
		out = defaultCompareOut(sc.Name, time.Now())
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var progress func(compare.Progress)
	var bar *compareBar
	if !o.quiet && isTerminal(env.Stderr) {
		bar = newCompareBar(env, len(stacks)*o.runs, sc.Duration+sc.Settle)
		defer bar.finish()
		progress = bar.update
	}
	rep, err := compare.Run(ctx, compare.Options{
		Stacks:          stacks,
		Scenario:        sc,
		ScenarioFile:    o.scenario,
		Runs:            o.runs,
		Dir:             dir,
		AllowUnverified: o.allowUnverified,
		Relays:          o.relays,
		Catalog:         env.Catalog,
		Progress:        progress,
	})
	// The bar goes before anything else is written: the table must not
	// share a line with it, nor have it redrawn below.
	bar.finish()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; every testnet was stopped")
		}
		return err
	}
	var js, page bytes.Buffer
	if err := report.WriteJSON(&js, rep); err != nil {
		return err
	}
	if err := report.WriteHTML(&page, rep); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "report.json"), js.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "report.html"), page.Bytes(), 0o644); err != nil {
		return err
	}
	if err := report.WriteTable(cmd.OutOrStdout(), rep); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "\nraw results: %s\nreport:      %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "report.html"))
	if o.keep && o.dir == "" {
		fmt.Fprintf(cmd.OutOrStdout(), "testnet data: %s\n", dir)
	}
	var failed []string
	for _, s := range rep.Stacks {
		if s.Error != "" {
			failed = append(failed, s.Name+": "+s.Error)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("some runs failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// compareBar is the live progress bar of a comparison: one unit per
// second of scenario time, over every run of every stack.
type compareBar struct {
	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	per  time.Duration
	done bool
}

func newCompareBar(env Env, runs int, per time.Duration) *compareBar {
	max := int64(runs) * int64(per/time.Second)
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(env.Stderr),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetDescription("starting"),
	)
	return &compareBar{bar: bar, per: per}
}

func (b *compareBar) update(p compare.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	k := int64(p.Index*p.Runs + p.Run - 1)
	pos := k*int64(b.per/time.Second) + int64(min(p.Elapsed, b.per)/time.Second)
	b.bar.Describe(fmt.Sprintf("%s run %d/%d %-8s sent %d delivered %d/%d", p.Stack, p.Run, p.Runs, p.Phase, p.Sent, p.Delivered, p.Expected))
	_ = b.bar.Set64(pos)
}

// finish erases the bar from the terminal and stops it; later updates
// are ignored. It may be called more than once, and on a nil bar.
func (b *compareBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		_ = b.bar.Clear()
		_ = b.bar.Exit()
	}
}

// compareOutPrefix starts the name of compare's default output directory;
// .gitignore ignores such directories anywhere in the repository.
const compareOutPrefix = "strata-compare-"

// defaultCompareOut is the output directory when --out is not given:
// ./strata-compare-<scenario>-<time>, in the working directory.
func defaultCompareOut(scenario string, now time.Time) string {
	return compareOutPrefix + scenario + "-" + now.Format("20060102-150405")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
