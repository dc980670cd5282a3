package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// overloadScenario asks two nodes for 20,000 messages a second (twenty
// conversations at 1,000 each): far more than one sender per node can make
// through the API of a full stack, whatever the machine.
const overloadScenario = `name: overload
seed: 1
nodes: 2
duration: 2s
settle: 10s
groups:
  - {name: pair, size: 2, count: 20}
traffic:
  rate: 1000
  size: {distribution: uniform, min: 16, max: 64}
`

// TestCompareFlagsAnOverloadedRun: `strata compare` reports the offered and
// achieved send rates, and flags a run that sent below 95% of the offered
// rate, in the table and in report.json.
func TestCompareFlagsAnOverloadedRun(t *testing.T) {
	work, stack, sc, nets := compareFiles(t, overloadScenario)
	out := filepath.Join(work, "out")
	cmd := exec.Command(strataBin, "compare", stack, "--scenario", sc, "--dir", nets, "--out", out)
	cmd.Dir = work
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	b, err := cmd.CombinedOutput()
	text := string(b)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, text)
	}
	for _, want := range []string{"offered send rate (msg/s)", "achieved send rate (msg/s)", "1 of 1 runs below 95% of offered", "WARNING: 1 run sent below 95% of the offered send rate", "libp2p-none-dr-mvds run 1: sent"} {
		if !strings.Contains(text, want) {
			t.Errorf("compare's output does not say %q:\n%s", want, text)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Stacks []struct {
			Runs []struct {
				OfferedRate  float64 `json:"offered_rate"`
				AchievedRate float64 `json:"achieved_rate"`
				Overloaded   bool    `json:"overloaded"`
			} `json:"runs"`
		} `json:"stacks"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Stacks) != 1 || len(rep.Stacks[0].Runs) != 1 {
		t.Fatalf("report.json: want one stack with one run:\n%s", raw)
	}
	r := rep.Stacks[0].Runs[0]
	if r.OfferedRate < 19000 || r.OfferedRate > 21000 || !r.Overloaded || r.AchievedRate >= 0.95*r.OfferedRate {
		t.Fatalf("report.json: offered %.0f/s, achieved %.0f/s, overloaded %v; want about 20000/s offered, flagged", r.OfferedRate, r.AchievedRate, r.Overloaded)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || !strings.Contains(string(html), "the load generator did not keep up") {
		t.Fatalf("report.html does not flag the run: %v", err)
	}
}
