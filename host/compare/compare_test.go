package compare_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/compare"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/scenario"
	"github.com/strata-msg/strata/host/testnet"
)

// bin holds the strata binary and the plugins, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cmp-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bin = dir
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"libp2p", "none", "devp2p", "whisper", "doubleratchet", "mvds"} {
		if _, err := sdktest.Build(plugins, "github.com/strata-msg/strata/plugins/"+name+"/cmd/strata-plugin-"+name, name); err != nil {
			return err
		}
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "strata"), "github.com/strata-msg/strata/host/cmd/strata").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build strata: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(dir, "strata"), "plugins", "lock", "--dir", plugins).CombinedOutput(); err != nil {
		return fmt.Errorf("strata plugins lock: %v\n%s", err, out)
	}
	return nil
}

// stackFile copies a ready config from configs/ with its plugin directory
// pointing at the test's binaries.
func stackFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "dir: ../bin/plugins", "dir: "+filepath.Join(bin, "plugins"), 1)
	if text == string(b) {
		t.Fatalf("%s has no plugins.dir to replace", name)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const smallScenario = `
name: test-small
seed: 3
nodes: 3
duration: 4s
settle: 60s
groups:
  - name: trio
    size: 3
traffic:
  rate: 2
  size:
    distribution: uniform
    min: 32
    max: 512
`

// TestCompareCountsMatchTheNodes runs a small scenario on two stacks, one
// with a relay, and checks the report against what the nodes themselves
// stored: every message a client sent is in its history as outgoing, and
// every delivery is in the receiver's history as incoming. It also checks
// that the figures hang together and that no process is left.
func TestCompareCountsMatchTheNodes(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Log("runs in -short too: it is the one end-to-end check of compare")
	}
	dir, err := os.MkdirTemp("", "cmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sc, err := scenario.Parse([]byte(smallScenario), "test")
	if err != nil {
		t.Fatal(err)
	}
	stacks := []string{stackFile(t, dir, "libp2p-none-dr-mvds.yaml"), stackFile(t, dir, "devp2p-whisper-dr-mvds.yaml")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progressed bool
	rep, err := compare.Run(ctx, compare.Options{
		Stacks:   stacks,
		Scenario: sc,
		Runs:     1,
		Dir:      filepath.Join(dir, "w"),
		Binary:   filepath.Join(bin, "strata"),
		Relays:   testnet.AutoRelays,
		Progress: func(compare.Progress) { progressed = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !progressed {
		t.Error("no progress was reported")
	}
	if len(rep.Stacks) != 2 {
		t.Fatalf("%d stacks in the report", len(rep.Stacks))
	}
	plan := sc.Plan()
	for i, s := range rep.Stacks {
		if s.Error != "" || len(s.Runs) != 1 {
			t.Fatalf("stack %s: error %q, %d runs", s.Name, s.Error, len(s.Runs))
		}
		if want := []int{0, 1}[i]; s.Relays != want {
			t.Errorf("stack %s ran %d relays, want %d", s.Name, s.Relays, want)
		}
		r := s.Runs[0]
		runDir := filepath.Join(dir, "w", fmt.Sprintf("%d-%s-1", i, shortName(s.Name)))
		var outgoing, incoming int
		for n := range plan.Nodes {
			out, in := countHistory(t, filepath.Join(runDir, fmt.Sprintf("n%d", n)))
			outgoing += out
			incoming += in
		}
		if r.Sent+r.SendErrors != len(plan.Sends) {
			t.Errorf("%s: %d sent + %d errors, the plan has %d sends", s.Name, r.Sent, r.SendErrors, len(plan.Sends))
		}
		if r.Sent != outgoing {
			t.Errorf("%s: report says %d sent, the nodes stored %d outgoing messages", s.Name, r.Sent, outgoing)
		}
		if r.Delivered != incoming {
			t.Errorf("%s: report says %d delivered, the nodes stored %d incoming messages", s.Name, r.Delivered, incoming)
		}
		if r.Expected != 2*r.Sent { // each message is for the two other members
			t.Errorf("%s: %d expected for %d sent in a trio", s.Name, r.Expected, r.Sent)
		}
		if !r.Converged || r.DeliveryRatio != 1 || r.Delivered != r.Expected {
			t.Errorf("%s: converged %v, ratio %v (%d of %d)", s.Name, r.Converged, r.DeliveryRatio, r.Delivered, r.Expected)
		}
		if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max || len(r.Latency.CDF) != 101 {
			t.Errorf("%s: latency %+v", s.Name, r.Latency)
		}
		var timelineSent, timelineDelivered int
		for _, p := range r.Timeline {
			timelineSent += p.Sent
			timelineDelivered += p.Delivered
		}
		if timelineSent != r.Sent || timelineDelivered != r.Delivered {
			t.Errorf("%s: timeline counts %d sent, %d delivered", s.Name, timelineSent, timelineDelivered)
		}
		if r.WireBytes == 0 || r.BytesPerDelivered <= 0 {
			t.Errorf("%s: %d wire bytes", s.Name, r.WireBytes)
		}
		if len(r.Nodes) != plan.Nodes+s.Relays {
			t.Errorf("%s: %d nodes in the report", s.Name, len(r.Nodes))
		}
		var syncDelivered uint64
		for _, n := range r.Nodes {
			if n.CPUSeconds <= 0 || n.PeakRSS == 0 || n.Died {
				t.Errorf("%s: node %+v", s.Name, n)
			}
			// Every layer's counters are in the report.
			layers := []string{"p2p", "privacy"}
			if n.Role == "client" {
				layers = append(layers, "secure", "sync")
			}
			for _, l := range layers {
				if len(n.Counters[l]) == 0 {
					t.Errorf("%s: node %s has no %s counters", s.Name, n.Name, l)
				}
			}
			syncDelivered += n.Counters["sync"]["delivered"]
		}
		// mvds delivered at least what the hosts took (warm-up included).
		if syncDelivered < uint64(r.Delivered) {
			t.Errorf("%s: the sync layers delivered %d, the hosts took %d measured", s.Name, syncDelivered, r.Delivered)
		}
		// Every process of the stack reports its allocations: the host
		// and each layer's plugin process.
		for _, kind := range []string{"host", "p2p", "privacy", "secure", "sync"} {
			if r.AllocsPerDelivered[kind] <= 0 {
				t.Errorf("%s: %v heap allocations per delivered message in the %s processes", s.Name, r.AllocsPerDelivered[kind], kind)
			}
		}
		if len(r.Boundaries) == 0 || r.Boundaries[0].Name != "p2p|privacy" {
			t.Errorf("%s: boundaries %+v", s.Name, r.Boundaries)
		}
	}
	if leftovers := processesUnder(t, dir); len(leftovers) > 0 {
		t.Errorf("processes left behind: %v", leftovers)
	}
}

// shortName mirrors the run directory naming of package compare.
func shortName(name string) string {
	if len(name) > 12 {
		return name[:12]
	}
	return name
}

// countHistory counts the outgoing and incoming messages a stopped node
// stored.
func countHistory(t *testing.T, dataDir string) (outgoing, incoming int) {
	t.Helper()
	ctx := context.Background()
	st, err := conversations.Open(ctx, filepath.Join(dataDir, "host", conversations.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msgs, err := st.History(ctx, nil, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Outgoing {
			outgoing++
		} else {
			incoming++
		}
	}
	return outgoing, incoming
}

// processesUnder lists live processes whose command line mentions dir.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// TestCompareInterrupted cancels a comparison in the middle of its sending
// phase, as Ctrl-C does: Run returns the context's error, and no process
// of the testnet is left.
func TestCompareInterrupted(t *testing.T) {
	dir, err := os.MkdirTemp("", "cmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sc, err := scenario.Parse([]byte(strings.Replace(smallScenario, "duration: 4s", "duration: 60s", 1)), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = compare.Run(ctx, compare.Options{
		Stacks:   []string{stackFile(t, dir, "devp2p-whisper-dr-mvds.yaml")},
		Scenario: sc,
		Dir:      filepath.Join(dir, "w"),
		Binary:   filepath.Join(bin, "strata"),
		Relays:   testnet.AutoRelays,
		Progress: func(p compare.Progress) {
			if p.Phase == "sending" && p.Sent > 0 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if leftovers := processesUnder(t, dir); len(leftovers) > 0 {
		t.Errorf("processes left behind: %v", leftovers)
	}
}
