package scenario

import (
	"bytes"
	"cmp"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.plan from the generator")

func mustParse(t *testing.T, d string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(d), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// busy is a scenario with a bit of everything, for the invariants.
const busy = `
name: busy
seed: 5
nodes: 12
duration: 2m
warmup: 10s
groups:
  - {name: pair, size: 2, count: 4}
  - {name: big, size: 9}
  - {name: all, size: 12}
traffic:
  rate: 3
  size: {distribution: lognormal, median: 300, sigma: 1.2, min: 20, max: 2000}
churn: {interval: 4s, downtime: 3s}
offline: {fraction: 0.5, online: 7s, offline: 5s}
`

func TestPlanDeterministic(t *testing.T) {
	s := mustParse(t, busy)
	a, b := s.Plan(), s.Plan()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans of one scenario differ")
	}
	// Parsing again gives the same plan too.
	if c := mustParse(t, busy).Plan(); !reflect.DeepEqual(a, c) {
		t.Fatal("the plans of two parses differ")
	}
	other := *s
	other.Seed++
	c := other.Plan()
	if reflect.DeepEqual(a.Sends, c.Sends) || reflect.DeepEqual(a.Outages, c.Outages) {
		t.Error("another seed gives the same sends or outages")
	}
}

// TestPlanStreams checks that one section does not change the draws of
// another: churn leaves membership alone, and traffic without outages is
// the same whatever the size of another conversation's stream.
func TestPlanStreams(t *testing.T) {
	s := mustParse(t, busy)
	calm := *s
	calm.Churn, calm.Offline = Churn{}, Offline{}
	a, b := s.Plan(), calm.Plan()
	if !reflect.DeepEqual(a.Groups, b.Groups) {
		t.Error("churn and offline periods change the membership")
	}
	if len(b.Outages) != 0 {
		t.Errorf("%d outages without churn or offline periods", len(b.Outages))
	}
	// Every send of the calm plan is there in the plan of one
	// conversation alone, at the same time.
	one := calm
	one.Groups = []Group{calm.Groups[0]} // pair, count 4
	c := one.Plan()
	var want []time.Duration
	for _, x := range b.Sends {
		if x.Group < 4 {
			want = append(want, x.At)
		}
	}
	var got []time.Duration
	for _, x := range c.Sends {
		got = append(got, x.At)
	}
	if !slices.Equal(got, want) {
		t.Error("the other conversations change a conversation's arrivals")
	}
}

func TestPlanGolden(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.Plan().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "small.plan")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to write it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("the plan of testdata/small.yaml changed: the generator draws differently.\n"+
			"If that is intended, run go test -run Golden -update and review the diff.\ngot:\n%s", b.String())
	}
}

// checkPlan checks the invariants every plan keeps.
func checkPlan(t *testing.T, s *Scenario, p *Plan) {
	t.Helper()
	if p.Nodes != s.Nodes || p.Duration != s.Duration || p.Warmup != s.Warmup {
		t.Errorf("plan header %d %s %s, scenario %d %s %s", p.Nodes, p.Duration, p.Warmup, s.Nodes, s.Duration, s.Warmup)
	}
	checkGroups(t, s, p)
	checkOutages(t, s, p)
	checkSends(t, s, p)
}

func checkGroups(t *testing.T, s *Scenario, p *Plan) {
	t.Helper()
	if len(p.Groups) != s.Conversations() {
		t.Fatalf("%d conversations, want %d", len(p.Groups), s.Conversations())
	}
	if p.Groups[0].Members[0] != 0 {
		t.Errorf("conversation 0 starts with node %d, want 0", p.Groups[0].Members[0])
	}
	load := make([]int, s.Nodes)
	i := 0
	for _, g := range s.Groups {
		for c := range g.Count {
			pg := p.Groups[i]
			i++
			if pg.Name != g.Conversation(c) || len(pg.Members) != g.Size {
				t.Errorf("conversation %q of %d members, want %q of %d", pg.Name, len(pg.Members), g.Conversation(c), g.Size)
			}
			seen := map[int]bool{}
			for _, m := range pg.Members {
				if m < 0 || m >= s.Nodes || seen[m] {
					t.Errorf("conversation %q: members %v", pg.Name, pg.Members)
				}
				seen[m] = true
				load[m]++
			}
		}
	}
	if lo, hi := slices.Min(load), slices.Max(load); hi-lo > 1 {
		t.Errorf("unbalanced membership: %v", load)
	}
	for n := range s.Nodes {
		for _, g := range p.GroupsOf(n) {
			if !slices.Contains(p.Groups[g].Members, n) {
				t.Errorf("GroupsOf(%d) has %d, which %d is not in", n, g, n)
			}
		}
		if len(p.GroupsOf(n)) != load[n] {
			t.Errorf("GroupsOf(%d) has %d conversations, want %d", n, len(p.GroupsOf(n)), load[n])
		}
	}
}

func checkOutages(t *testing.T, s *Scenario, p *Plan) {
	t.Helper()
	if !slices.IsSortedFunc(p.Outages, func(a, b Outage) int { return cmp.Compare(a.From, b.From) }) {
		t.Error("outages not sorted by From")
	}
	for n := range s.Nodes {
		outs := p.OutagesOf(n)
		if n == 0 && len(outs) > 0 {
			t.Errorf("node 0 goes down: %v", outs)
		}
		for i, o := range outs {
			if o.From < 0 || o.To > s.Duration || o.To-o.From < MinPeriod {
				t.Errorf("outage %+v: outside [0, %s] or shorter than %s", o, s.Duration, MinPeriod)
			}
			if o.Kill && o.To-o.From != s.Churn.Downtime {
				t.Errorf("kill %+v does not last churn.downtime %s", o, s.Churn.Downtime)
			}
			if !o.Kill && o.To-o.From > s.Offline.Offline {
				t.Errorf("offline period %+v longer than offline.offline %s", o, s.Offline.Offline)
			}
			if i > 0 && outs[i-1].To+MinPeriod > o.From {
				t.Errorf("outages %+v and %+v of node %d overlap or are less than %s apart", outs[i-1], o, n, MinPeriod)
			}
			if p.Online(n, o.From) || !p.Online(n, o.To) || !p.Online(n, o.From-1) || p.Online(n, o.To-1) {
				t.Errorf("Online disagrees with outage %+v", o)
			}
		}
		if !p.Online(n, s.Duration) {
			t.Errorf("node %d is down at the end of the sending", n)
		}
	}
}

func checkSends(t *testing.T, s *Scenario, p *Plan) {
	t.Helper()
	z := s.Traffic.Size
	lo, hi := z.Min, z.Max
	if z.Distribution == DistFixed {
		lo, hi = z.Bytes, z.Bytes
	}
	warm := 0
	for i, x := range p.Sends {
		if i > 0 && p.Sends[i-1].At > x.At {
			t.Fatalf("sends not sorted at %d", i)
		}
		if x.At <= 0 || x.At >= s.Duration {
			t.Errorf("send %+v outside (0, %s)", x, s.Duration)
		}
		if x.Group < 0 || x.Group >= len(p.Groups) {
			t.Fatalf("send %+v names no conversation", x)
		}
		members := p.Groups[x.Group].Members
		if !slices.Contains(members, x.Sender) || s.Traffic.Senders == SendersOne && x.Sender != members[0] {
			t.Errorf("send %+v: sender not allowed in %v", x, members)
		}
		if !p.Online(x.Sender, x.At) {
			t.Errorf("send %+v from a node that is down", x)
		}
		if x.Size < lo || x.Size > hi {
			t.Errorf("send %+v: size outside [%d, %d]", x, lo, hi)
		}
		if x.Warm != (x.At < s.Warmup) {
			t.Errorf("send %+v: warm is wrong for warmup %s", x, s.Warmup)
		}
		if x.Warm {
			warm++
		}
	}
	if p.Measured() != len(p.Sends)-warm {
		t.Errorf("Measured() = %d, want %d", p.Measured(), len(p.Sends)-warm)
	}
}

func TestPlanInvariants(t *testing.T) {
	for _, d := range []string{
		busy,
		doc(),
		doc("traffic: {rate: 5, senders: one}", "offline: {fraction: 1, online: 2s, offline: 3s}"),
		doc("nodes: 2", "duration: 30s", "churn: {interval: 1s, downtime: 2s}"),
		doc("nodes: 7", "groups: [{name: a, size: 3, count: 5}, {name: b, size: 7}]", "offline: {fraction: 0.3, online: 1s, offline: 1s}"),
	} {
		s := mustParse(t, d)
		checkPlan(t, s, s.Plan())
	}
}

// TestPlanSendCount checks the number of sends against rate × duration ×
// conversations: within six standard deviations of the Poisson count
// without outages, and not above that with them.
func TestPlanSendCount(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		outages bool
	}{
		{doc("duration: 10m", "groups: [{name: g, size: 3, count: 4}]", "traffic: {rate: 2}"), false},
		{doc("duration: 1m", "traffic: {rate: 0.5}"), false},
		{doc("duration: 10m", "nodes: 10", "groups: [{name: g, size: 10}]", "traffic: {rate: 10, senders: one}"), false},
		{busy, true},
	} {
		s := mustParse(t, tc.doc)
		for seed := range int64(5) {
			s.Seed = seed
			p := s.Plan()
			want := s.Traffic.Rate * s.Duration.Seconds() * float64(s.Conversations())
			slack := 6 * math.Sqrt(want)
			n := float64(len(p.Sends))
			if n > want+slack || !tc.outages && n < want-slack {
				t.Errorf("%s seed %d: %d sends, want %.0f ± %.0f", s.Name, seed, len(p.Sends), want, slack)
			}
			if tc.outages && n < want/3 {
				t.Errorf("%s seed %d: %d sends, want at least a third of %.0f", s.Name, seed, len(p.Sends), want)
			}
		}
	}
}

// TestPlanSenders checks that with senders "all" every member sends about
// as often as the others.
func TestPlanSenders(t *testing.T) {
	s := mustParse(t, doc("duration: 10m", "groups: [{name: g, size: 4}]", "traffic: {rate: 4}"))
	count := map[int]int{}
	p := s.Plan()
	for _, x := range p.Sends {
		count[x.Sender]++
	}
	want := float64(len(p.Sends)) / 4
	for _, m := range p.Groups[0].Members {
		if math.Abs(float64(count[m])-want) > 6*math.Sqrt(want) {
			t.Errorf("member %d sends %d of %d", m, count[m], len(p.Sends))
		}
	}
}

func TestPlanSizes(t *testing.T) {
	t.Run("uniform", func(t *testing.T) {
		s := mustParse(t, doc("duration: 10m", "traffic: {rate: 10, size: {distribution: uniform, min: 100, max: 300}}"))
		p := s.Plan()
		sum := 0
		for _, x := range p.Sends {
			sum += x.Size
		}
		if mean := float64(sum) / float64(len(p.Sends)); math.Abs(mean-200) > 5 {
			t.Errorf("mean size %.1f, want about 200", mean)
		}
		checkSends(t, s, p)
	})
	t.Run("lognormal", func(t *testing.T) {
		s := mustParse(t, doc("duration: 10m", "traffic: {rate: 10, size: {distribution: lognormal, median: 400, sigma: 1, min: 10, max: 1000}}"))
		p := s.Plan()
		sizes := make([]int, len(p.Sends))
		clamped := 0
		for i, x := range p.Sends {
			sizes[i] = x.Size
			if x.Size == 1000 {
				clamped++
			}
		}
		slices.Sort(sizes)
		if med := sizes[len(sizes)/2]; med < 360 || med > 440 {
			t.Errorf("median size %d, want about 400", med)
		}
		// P(X > 1000) = P(Z > ln 2.5) ≈ 0.18.
		if f := float64(clamped) / float64(len(sizes)); f < 0.14 || f > 0.22 {
			t.Errorf("%.2f of the sizes clamped to max, want about 0.18", f)
		}
		checkSends(t, s, p)
	})
	t.Run("fixed", func(t *testing.T) {
		s := mustParse(t, doc("traffic: {rate: 3, size: {bytes: 77}}"))
		checkSends(t, s, s.Plan())
	})
}

// TestPlanChurn checks the number of kills: about duration / interval when
// there are plenty of nodes to kill.
func TestPlanChurn(t *testing.T) {
	s := mustParse(t, doc("nodes: 50", "duration: 20m", "churn: {interval: 10s, downtime: 5s}"))
	p := s.Plan()
	kills := 0
	for _, o := range p.Outages {
		if !o.Kill {
			t.Fatalf("offline period %+v without offline section", o)
		}
		kills++
	}
	want := s.Duration.Seconds() / s.Churn.Interval.Seconds()
	if math.Abs(float64(kills)-want) > 6*math.Sqrt(want) {
		t.Errorf("%d kills, want about %.0f", kills, want)
	}
	checkOutages(t, s, p)
}

// TestPlanOffline checks which nodes go offline and for how long.
func TestPlanOffline(t *testing.T) {
	s := mustParse(t, doc("nodes: 10", "duration: 10m", "offline: {fraction: 0.5, online: 10s, offline: 10s}"))
	p := s.Plan()
	down := map[int]time.Duration{}
	for _, o := range p.Outages {
		down[o.Node] += o.To - o.From
	}
	if len(down) != 5 {
		t.Errorf("%d nodes go offline, want 5", len(down))
	}
	for n, d := range down {
		if f := d.Seconds() / s.Duration.Seconds(); f < 0.45 || f > 0.55 {
			t.Errorf("node %d offline %.2f of the time, want about half", n, f)
		}
	}
	// fraction 1 takes every node but node 0.
	s.Offline.Fraction = 1
	nodes := map[int]bool{}
	for _, o := range s.Plan().Outages {
		nodes[o.Node] = true
	}
	if len(nodes) != 9 || nodes[0] {
		t.Errorf("fraction 1: nodes %v go offline, want 1..9", nodes)
	}
}

func TestPlanHelpers(t *testing.T) {
	p := &Plan{
		Nodes:    3,
		Duration: 10 * time.Second,
		Groups:   []PlanGroup{{Name: "a", Members: []int{0, 1}}, {Name: "b", Members: []int{1, 2}}},
		Outages:  []Outage{{Node: 1, From: time.Second, To: 3 * time.Second}, {Node: 2, From: 2 * time.Second, To: 4 * time.Second, Kill: true}},
		Sends:    []Send{{At: 1, Warm: true}, {At: 2}, {At: 3}},
	}
	for _, tc := range []struct {
		node int
		at   time.Duration
		want bool
	}{
		{0, 2 * time.Second, true},
		{1, time.Second - 1, true},
		{1, time.Second, false},
		{1, 3*time.Second - 1, false},
		{1, 3 * time.Second, true},
		{2, 3 * time.Second, false},
		{3, 0, false},
		{-1, 0, false},
	} {
		if got := p.Online(tc.node, tc.at); got != tc.want {
			t.Errorf("Online(%d, %s) = %v, want %v", tc.node, tc.at, got, tc.want)
		}
	}
	if got := p.GroupsOf(1); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("GroupsOf(1) = %v", got)
	}
	if got := p.OutagesOf(2); len(got) != 1 || !got[0].Kill {
		t.Errorf("OutagesOf(2) = %v", got)
	}
	if got := p.Measured(); got != 2 {
		t.Errorf("Measured() = %d, want 2", got)
	}
}

// TestShippedScenarios loads and plans every scenario in configs/scenarios.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", "scenarios", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want the shipped scenarios, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name+".yaml" != filepath.Base(f) {
				t.Errorf("scenario %q is in %s: name the file after it", s.Name, f)
			}
			p := s.Plan()
			checkPlan(t, s, p)
			if p.Measured() == 0 {
				t.Error("no measured sends")
			}
		})
	}
}
