package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/faults"
)

// base is a minimal valid scenario, one top-level key a line.
var base = []string{
	"name: t",
	"nodes: 4",
	"duration: 10s",
	"groups: [{name: g, size: 2}]",
	"traffic: {rate: 1}",
}

// doc returns base with edits: "key: value" replaces the line of that
// top-level key, or is added; "-key" removes the key's line.
func doc(edits ...string) string {
	lines := append([]string(nil), base...)
	for _, e := range edits {
		if key, ok := strings.CutPrefix(e, "-"); ok {
			lines = slicesDeleteKey(lines, key)
			continue
		}
		key, _, _ := strings.Cut(e, ":")
		if i := indexKey(lines, key); i >= 0 {
			lines[i] = e
		} else {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func indexKey(lines []string, key string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, key+":") {
			return i
		}
	}
	return -1
}

func slicesDeleteKey(lines []string, key string) []string {
	if i := indexKey(lines, key); i >= 0 {
		return append(lines[:i], lines[i+1:]...)
	}
	return lines
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(doc()), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Scenario{
		Name:     "t",
		Seed:     DefaultSeed,
		Nodes:    4,
		Duration: 10 * time.Second,
		Settle:   DefaultSettle,
		Groups:   []Group{{Name: "g", Size: 2, Count: 1}},
		Traffic:  Traffic{Rate: 1, Senders: SendersAll, Size: Size{Distribution: DistFixed, Bytes: DefaultBytes}},
		Faults:   faults.Config{Seed: DefaultSeed},
		Source:   "t.yaml",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

const full = `
name: lossy-mobile
description: 30% loss at the privacy boundary
seed: 7
nodes: 6
duration: 60s
warmup: 5s
settle: 90s
groups:
  - name: pair
    size: 2
    count: 3
  - {name: family, size: 4}
traffic:
  rate: 2
  senders: One
  size:
    distribution: lognormal
    min: 16
    max: 4096
    median: 200
    sigma: 1.0
faults:
  privacy: {drop: 0.3, duplicate: 0.1, reorder: 8}
churn:
  interval: 20s
  downtime: 5s
offline:
  fraction: 0.5
  online: 10s
  offline: 10s
`

func TestParseFull(t *testing.T) {
	s, err := Parse([]byte(full), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Scenario{
		Name:        "lossy-mobile",
		Description: "30% loss at the privacy boundary",
		Seed:        7,
		Nodes:       6,
		Duration:    60 * time.Second,
		Warmup:      5 * time.Second,
		Settle:      90 * time.Second,
		Groups:      []Group{{Name: "pair", Size: 2, Count: 3}, {Name: "family", Size: 4, Count: 1}},
		Traffic: Traffic{Rate: 2, Senders: SendersOne,
			Size: Size{Distribution: DistLognormal, Min: 16, Max: 4096, Median: 200, Sigma: 1}},
		Faults: faults.Config{Seed: 7, Boundaries: map[string]faults.Spec{
			"privacy": {Drop: 0.3, Duplicate: 0.1, Reorder: 8, Direction: faults.DirectionBoth},
		}},
		Churn:   Churn{Interval: 20 * time.Second, Downtime: 5 * time.Second},
		Offline: Offline{Fraction: 0.5, Online: 10 * time.Second, Offline: 10 * time.Second},
		Source:  "full.yaml",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	if n := s.Conversations(); n != 4 {
		t.Errorf("Conversations() = %d, want 4", n)
	}
}

// TestFaultsAsHost checks that the faults section is read by faults.Parse,
// with its own seed when it has one and the scenario's otherwise.
func TestFaultsAsHost(t *testing.T) {
	for _, tc := range []struct {
		faults string
		want   faults.Config
	}{
		{"faults: {seed: 3, p2p: {delay: 20ms, direction: up}}", faults.Config{Seed: 3, Boundaries: map[string]faults.Spec{
			"p2p": {Delay: 20 * time.Millisecond, Direction: faults.DirectionUp}}}},
		{"faults: {p2p.drop: 0.5}", faults.Config{Seed: 9, Boundaries: map[string]faults.Spec{
			"p2p": {Drop: 0.5, Direction: faults.DirectionBoth}}}},
		{"faults: {seed: 0}", faults.Config{Seed: 0}},
		{"faults:", faults.Config{Seed: 9}},
	} {
		s, err := Parse([]byte(doc("seed: 9", tc.faults)), "f.yaml")
		if err != nil {
			t.Errorf("%s: %v", tc.faults, err)
			continue
		}
		if !reflect.DeepEqual(s.Faults, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.faults, s.Faults, tc.want)
		}
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		size string
		want Size
	}{
		{"{bytes: 1000}", Size{Distribution: DistFixed, Bytes: 1000}},
		{"{distribution: fixed}", Size{Distribution: DistFixed, Bytes: DefaultBytes}},
		{"{distribution: uniform, min: 1, max: 10}", Size{Distribution: DistUniform, Min: 1, Max: 10}},
		{"{distribution: uniform, min: 7, max: 7}", Size{Distribution: DistUniform, Min: 7, Max: 7}},
		{"{distribution: LogNormal, median: 50, sigma: 0.5}", Size{Distribution: DistLognormal, Min: 1, Max: MaxMessageSize, Median: 50, Sigma: 0.5}},
	} {
		s, err := Parse([]byte(doc("traffic: {rate: 1, size: "+tc.size+"}")), "s.yaml")
		if err != nil {
			t.Errorf("%s: %v", tc.size, err)
			continue
		}
		if s.Traffic.Size != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.size, s.Traffic.Size, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		key  string
		// text, when set, must appear in the message.
		text string
	}{
		{"name missing", doc("-name"), "name", "is required"},
		{"nodes missing", doc("-nodes"), "nodes", "is required"},
		{"duration missing", doc("-duration"), "duration", "is required"},
		{"groups missing", doc("-groups"), "groups", "is required"},
		{"traffic missing", doc("-traffic"), "traffic.rate", "is required"},
		{"rate missing", doc("traffic: {senders: all}"), "traffic.rate", "is required"},

		{"name empty", doc(`name: ""`), "name", "not a name"},
		{"name space", doc("name: a b"), "name", "not a name"},
		{"name slash", doc("name: a/b"), "name", "not a name"},
		{"name long", doc("name: " + strings.Repeat("x", 65)), "name", "not a name"},
		{"name number", doc("name: 5"), "name", "want a string"},
		{"description list", doc("description: [a]"), "description", "want a string"},
		{"seed text", doc("seed: seven"), "seed", "want a whole number"},
		{"seed fraction", doc("seed: 1.5"), "seed", "want a whole number"},
		{"nodes one", doc("nodes: 1"), "nodes", "out of range"},
		{"nodes many", doc("nodes: 1001"), "nodes", "out of range"},
		{"nodes fraction", doc("nodes: 2.5"), "nodes", "want a whole number"},
		{"nodes quoted", doc(`nodes: "4"`), "nodes", "want a whole number"},
		{"duration zero", doc("duration: 0s"), "duration", "out of range"},
		{"duration negative", doc("duration: -1s"), "duration", "out of range"},
		{"duration long", doc("duration: 25h"), "duration", "out of range"},
		{"duration bare", doc("duration: 60"), "duration", "bare number"},
		{"duration text", doc("duration: soon"), "duration", "not a duration"},
		{"warmup negative", doc("warmup: -1s"), "warmup", "not less than duration"},
		{"warmup equal", doc("warmup: 10s"), "warmup", "not less than duration"},
		{"warmup longer", doc("warmup: 1m"), "warmup", "not less than duration"},
		{"settle negative", doc("settle: -1s"), "settle", "out of range"},
		{"settle long", doc("settle: 48h"), "settle", "out of range"},

		{"groups section", doc("groups: {name: g, size: 2}"), "groups", "want a list"},
		{"groups empty", doc("groups: []"), "groups", "is empty"},
		{"groups scalar", doc("groups: 3"), "groups", "want a list"},
		{"group scalar", doc("groups: [3]"), "groups[0]", "not a section"},
		{"group empty", doc("groups: [{}]"), "groups[0]", "is empty"},
		{"group name missing", doc("groups: [{size: 2}]"), "groups[0].name", "is required"},
		{"group size missing", doc("groups: [{name: g}]"), "groups[0].size", "is required"},
		{"group name bad", doc("groups: [{name: g!, size: 2}]"), "groups[0].name", "not a name"},
		{"group size one", doc("groups: [{name: g, size: 1}]"), "groups[0].size", "out of range"},
		{"group size above nodes", doc("groups: [{name: g, size: 2}, {name: h, size: 5}]"), "groups[1].size", "nodes (4)"},
		{"group size text", doc("groups: [{name: g, size: two}]"), "groups[0].size", "want a whole number"},
		{"group count zero", doc("groups: [{name: g, size: 2, count: 0}]"), "groups[0].count", "out of range"},
		{"group count many", doc("groups: [{name: g, size: 2, count: 1001}]"), "groups[0].count", "out of range"},
		{"groups total", doc("groups: [{name: g, size: 2, count: 600}, {name: h, size: 2, count: 600}]"), "groups[1].count", "1200 conversations"},
		{"group unknown key", doc("groups: [{name: g, size: 2, members: 3}]"), "groups[0].members", "unknown key"},
		{"group typo", doc("groups: [{name: g, sise: 2}]"), "groups[0].sise", "did you mean size?"},
		{"group names twice", doc("groups: [{name: g, size: 2}, {name: g, size: 3}]"), "groups[1].name", `"g"`},
		{"group names clash", doc("groups: [{name: g, size: 2, count: 2}, {name: g-2, size: 3}]"), "groups[1].name", `"g-2"`},

		{"traffic scalar", doc("traffic: 5"), "traffic", "not a section"},
		{"rate zero", doc("traffic: {rate: 0}"), "traffic.rate", "out of range"},
		{"rate negative", doc("traffic: {rate: -1}"), "traffic.rate", "out of range"},
		{"rate high", doc("traffic: {rate: 10001}"), "traffic.rate", "out of range"},
		{"rate nan", doc("traffic: {rate: .nan}"), "traffic.rate", "out of range"},
		{"rate text", doc("traffic: {rate: fast}"), "traffic.rate", "want a number"},
		{"too many sends", doc("duration: 24h", "traffic: {rate: 100}"), "traffic.rate", "more than 1000000"},
		{"senders", doc("traffic: {rate: 1, senders: some}"), "traffic.senders", "not a choice"},
		{"senders number", doc("traffic: {rate: 1, senders: 1}"), "traffic.senders", "want a string"},
		{"size scalar", doc("traffic: {rate: 1, size: 256}"), "traffic.size", "not a section"},
		{"distribution", doc("traffic: {rate: 1, size: {distribution: normal}}"), "traffic.size.distribution", "not a distribution"},
		{"bytes zero", doc("traffic: {rate: 1, size: {bytes: 0}}"), "traffic.size.bytes", "out of range"},
		{"bytes huge", doc("traffic: {rate: 1, size: {bytes: 2000000}}"), "traffic.size.bytes", "out of range"},
		{"fixed with min", doc("traffic: {rate: 1, size: {bytes: 10, min: 1}}"), "traffic.size.min", "does not apply"},
		{"uniform with bytes", doc("traffic: {rate: 1, size: {distribution: uniform, bytes: 10, min: 1, max: 2}}"), "traffic.size.bytes", "does not apply"},
		{"uniform with median", doc("traffic: {rate: 1, size: {distribution: uniform, min: 1, max: 2, median: 1}}"), "traffic.size.median", "does not apply"},
		{"uniform min missing", doc("traffic: {rate: 1, size: {distribution: uniform, max: 2}}"), "traffic.size.min", "is required"},
		{"uniform max missing", doc("traffic: {rate: 1, size: {distribution: uniform, min: 2}}"), "traffic.size.max", "is required"},
		{"uniform min zero", doc("traffic: {rate: 1, size: {distribution: uniform, min: 0, max: 2}}"), "traffic.size.min", "out of range"},
		{"uniform max huge", doc("traffic: {rate: 1, size: {distribution: uniform, min: 1, max: 2000000}}"), "traffic.size.max", "out of range"},
		{"uniform max below min", doc("traffic: {rate: 1, size: {distribution: uniform, min: 5, max: 4}}"), "traffic.size.max", "less than min"},
		{"lognormal median missing", doc("traffic: {rate: 1, size: {distribution: lognormal, sigma: 1}}"), "traffic.size.median", "is required"},
		{"lognormal sigma missing", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 100}}"), "traffic.size.sigma", "is required"},
		{"lognormal median above max", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 100, sigma: 1, max: 50}}"), "traffic.size.median", "outside"},
		{"lognormal median below min", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 10, sigma: 1, min: 50}}"), "traffic.size.median", "outside"},
		{"lognormal sigma zero", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 10, sigma: 0}}"), "traffic.size.sigma", "out of range"},
		{"lognormal sigma high", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 10, sigma: 11}}"), "traffic.size.sigma", "out of range"},
		{"lognormal with bytes", doc("traffic: {rate: 1, size: {distribution: lognormal, median: 10, sigma: 1, bytes: 3}}"), "traffic.size.bytes", "does not apply"},

		{"faults scalar", doc("faults: 3"), "faults", "not a section"},
		{"faults drop", doc("faults: {privacy: {drop: 1.5}}"), "faults.privacy.drop", "out of range"},
		{"faults boundary", doc("faults: {app: {drop: 0.1}}"), "faults.app", "unknown key"},
		{"faults key", doc("faults: {p2p: {loss: 0.1}}"), "faults.p2p.loss", "unknown key"},
		{"faults delay bare", doc("faults: {p2p: {delay: 5}}"), "faults.p2p.delay", "bare number"},

		{"churn scalar", doc("churn: yes"), "churn", "not a section"},
		{"churn interval negative", doc("churn: {interval: -1s}"), "churn.interval", "out of range"},
		{"churn interval bare", doc("churn: {interval: 20}"), "churn.interval", "bare number"},
		{"churn interval long", doc("churn: {interval: 25h, downtime: 1s}"), "churn.interval", "out of range"},
		{"churn downtime missing", doc("churn: {interval: 5s}"), "churn.downtime", "is not set"},
		{"churn downtime short", doc("churn: {interval: 5s, downtime: 500ms}"), "churn.downtime", "shorter than 1s"},
		{"churn downtime long", doc("churn: {interval: 5s, downtime: 10s}"), "churn.downtime", "not less than duration (10s)"},
		{"churn downtime negative", doc("churn: {downtime: -1s}"), "churn.downtime", "out of range"},

		{"offline scalar", doc("offline: 0.5"), "offline", "not a section"},
		{"offline fraction high", doc("offline: {fraction: 1.5, online: 1s, offline: 1s}"), "offline.fraction", "out of range"},
		{"offline fraction negative", doc("offline: {fraction: -0.1}"), "offline.fraction", "out of range"},
		{"offline fraction text", doc("offline: {fraction: half}"), "offline.fraction", "want a number"},
		{"offline online missing", doc("offline: {fraction: 0.5, offline: 1s}"), "offline.online", "is not set"},
		{"offline offline missing", doc("offline: {fraction: 0.5, online: 1s}"), "offline.offline", "is not set"},
		{"offline online short", doc("offline: {fraction: 0.5, online: 100ms, offline: 1s}"), "offline.online", "shorter than 1s"},
		{"offline online negative", doc("offline: {online: -1s}"), "offline.online", "out of range"},
		{"offline offline long", doc("offline: {offline: 25h}"), "offline.offline", "out of range"},

		{"unknown top", doc("nodez: 4"), "nodez", "did you mean nodes?"},
		{"unknown misplaced", doc("rate: 2"), "rate", "did you mean traffic.rate?"},
		{"unknown misplaced section", doc("interval: 2s"), "interval", "did you mean churn.interval?"},
		{"unknown nested", doc("traffic: {rate: 1, sendrs: all}"), "traffic.sendrs", "did you mean traffic.senders?"},
		{"unknown far", doc("traffic: {rate: 1, burst: 3}"), "traffic.burst", "rate, senders, size"},
		{"unknown far top", doc("xyzzy: 3"), "xyzzy", "name, description, seed"},
		{"unknown size key", doc("traffic: {rate: 1, size: {mean: 3}}"), "traffic.size.mean", "did you mean"},
		{"unknown churn key", doc("churn: {intervall: 3s}"), "churn.intervall", "did you mean churn.interval?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "bad.yaml")
			if err == nil {
				t.Fatalf("no error for\n%s", tc.doc)
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%v is not a ConfigError", err)
			}
			if ce.Key != tc.key {
				t.Errorf("key %q, want %q (%v)", ce.Key, tc.key, err)
			}
			if ce.Fix == "" {
				t.Errorf("no fix: %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "scenario bad.yaml: ") {
				t.Errorf("%q does not name the source", msg)
			}
			if !strings.Contains(msg, tc.text) {
				t.Errorf("%q does not say %q", msg, tc.text)
			}
		})
	}
}

func TestParseYAMLError(t *testing.T) {
	for _, d := range []string{"name: [", "- a\n- b\n", "name: a\nname: b\n"} {
		_, err := Parse([]byte(d), "broken.yaml")
		if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
			t.Errorf("%q: error %v, want one naming the file", d, err)
		}
	}
	if _, err := Parse(nil, "empty.yaml"); err == nil || !strings.Contains(err.Error(), `"name": is required`) {
		t.Errorf("empty file: %v, want name is required", err)
	}
}

func TestParseNoSource(t *testing.T) {
	_, err := Parse([]byte(doc("nodes: 0")), "")
	if err == nil || !strings.HasPrefix(err.Error(), "scenario: ") {
		t.Errorf("error %v, want one starting with scenario:", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(doc()), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != path || s.Name != "t" {
		t.Errorf("got source %q name %q", s.Source, s.Name)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(doc("nodes: 0")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "nodes" || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v, want a ConfigError on nodes naming %s", err, bad)
	}
}

// TestCheckHandBuilt checks a Scenario built in Go, not parsed.
func TestCheckHandBuilt(t *testing.T) {
	s := &Scenario{
		Name: "x", Seed: 1, Nodes: 3, Duration: time.Minute,
		Groups:  []Group{{Name: "g", Size: 3, Count: 1}},
		Traffic: Traffic{Rate: 1, Senders: SendersAll, Size: Size{Distribution: DistFixed, Bytes: 10}},
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	s.Traffic.Senders = ""
	var ce *sdk.ConfigError
	if err := s.Check(); !errors.As(err, &ce) || ce.Key != "traffic.senders" {
		t.Errorf("empty senders: %v", err)
	}
}

func TestConversationNames(t *testing.T) {
	if got := (Group{Name: "pair", Count: 1}).Conversation(0); got != "pair" {
		t.Errorf("count 1: %q", got)
	}
	if got := (Group{Name: "pair", Count: 3}).Conversation(2); got != "pair-3" {
		t.Errorf("count 3: %q", got)
	}
}
