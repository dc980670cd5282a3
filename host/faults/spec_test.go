package faults

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

func TestParse(t *testing.T) {
	full := Config{Seed: 42, Boundaries: map[string]Spec{
		"p2p": {Drop: 0.3, Duplicate: 0.1, Reorder: 8, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Direction: "both"},
	}}
	tests := []struct {
		name    string
		section map[string]any
		want    Config
	}{
		{"nil", nil, Config{}},
		{"empty", map[string]any{}, Config{}},
		{"yaml types", map[string]any{"seed": 42, "p2p": map[string]any{
			"drop": 0.3, "duplicate": 0.1, "reorder": 8, "delay": "20ms", "jitter": "10ms", "direction": "both"}}, full},
		{"toml types", map[string]any{"seed": int64(42), "p2p": map[string]any{
			"drop": 0.3, "duplicate": 0.1, "reorder": int64(8), "delay": "20ms", "jitter": "10ms"}}, full},
		{"env strings", map[string]any{"seed": "42", "p2p": map[string]any{
			"drop": "0.3", "duplicate": " 0.1", "reorder": "8", "delay": "20ms", "jitter": "10ms", "direction": "BOTH"}}, full},
		{"float whole numbers", map[string]any{"seed": 42.0, "p2p": map[string]any{
			"drop": 0.3, "duplicate": 0.1, "reorder": 8.0, "delay": "20ms", "jitter": "10ms"}}, full},
		{"flattened keys", map[string]any{"seed": 42, "p2p.drop": 0.3, "p2p.duplicate": 0.1, "p2p.reorder": 8,
			"p2p.delay": "20ms", "p2p.jitter": "10ms"}, full},
		{"integer probabilities", map[string]any{"secure": map[string]any{"drop": 1, "duplicate": 0}},
			Config{Boundaries: map[string]Spec{"secure": {Drop: 1, Direction: "both"}}}},
		{"jitter without delay", map[string]any{"privacy": map[string]any{"jitter": "5ms", "direction": "up"}},
			Config{Boundaries: map[string]Spec{"privacy": {Jitter: 5 * time.Millisecond, Direction: "up"}}}},
		{"empty boundary and nil keys", map[string]any{"seed": nil, "sync": nil, "secure": map[string]any{"drop": nil}},
			Config{Boundaries: map[string]Spec{"sync": {Direction: "both"}, "secure": {Direction: "both"}}}},
		{"every boundary", map[string]any{"seed": -7,
			"p2p": map[string]any{"drop": 0.5}, "privacy": map[string]any{"reorder": 1},
			"secure": map[string]any{"delay": "1h"}, "sync": map[string]any{"direction": "down"}},
			Config{Seed: -7, Boundaries: map[string]Spec{
				"p2p": {Drop: 0.5, Direction: "both"}, "privacy": {Reorder: 1, Direction: "both"},
				"secure": {Delay: time.Hour, Direction: "both"}, "sync": {Direction: "down"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.section)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	p2p := func(k string, v any) map[string]any { return map[string]any{"p2p": map[string]any{k: v}} }
	tests := []struct {
		name    string
		section map[string]any
		key     string
		fix     string // a substring of the Fix
	}{
		{"drop above 1", p2p("drop", 1.5), "faults.p2p.drop", "from 0 to 1"},
		{"drop negative", p2p("drop", -0.1), "faults.p2p.drop", "from 0 to 1"},
		{"drop bool", p2p("drop", true), "faults.p2p.drop", "from 0 to 1"},
		{"drop NaN string", p2p("drop", "NaN"), "faults.p2p.drop", "from 0 to 1"},
		{"duplicate not a number", p2p("duplicate", "lots"), "faults.p2p.duplicate", "from 0 to 1"},
		{"reorder negative", p2p("reorder", -1), "faults.p2p.reorder", "whole number"},
		{"reorder fraction", p2p("reorder", 2.5), "faults.p2p.reorder", "whole number"},
		{"reorder too large", p2p("reorder", MaxReorder+1), "faults.p2p.reorder", "1024"},
		{"delay not a duration", p2p("delay", "soon"), "faults.p2p.delay", `"20ms"`},
		{"delay a number", p2p("delay", 20), "faults.p2p.delay", `"20ms"`},
		{"delay negative", p2p("delay", "-5ms"), "faults.p2p.delay", `"20ms"`},
		{"delay too long", p2p("delay", "2h"), "faults.p2p.delay", `"1h"`},
		{"jitter a number", map[string]any{"sync": map[string]any{"jitter": int64(1000)}}, "faults.sync.jitter", `"20ms"`},
		{"direction unknown", p2p("direction", "sideways"), "faults.p2p.direction", `"both", "up"`},
		{"direction not a string", p2p("direction", 1), "faults.p2p.direction", `"both", "up"`},
		{"unknown key", p2p("dropp", 0.1), "faults.p2p.dropp", "drop, duplicate, reorder, delay, jitter, direction"},
		{"unknown nil key", p2p("lag", nil), "faults.p2p.lag", "drop, duplicate"},
		{"unknown flattened key", map[string]any{"privacy.loss": 0.1}, "faults.privacy.loss", "drop, duplicate"},
		{"unknown boundary", map[string]any{"wire": map[string]any{"drop": 0.1}}, "faults.wire", "p2p, privacy, secure, sync"},
		{"unknown flattened boundary", map[string]any{"wire.drop": 0.1}, "faults.wire", "p2p, privacy, secure, sync"},
		{"boundary not a section", map[string]any{"p2p": 0.3}, "faults.p2p", "drop, duplicate"},
		{"seed fraction", map[string]any{"seed": 1.5}, "faults.seed", "integer"},
		{"seed text", map[string]any{"seed": "forty-two"}, "faults.seed", "integer"},
		{"seed too large", map[string]any{"seed": uint64(1) << 63}, "faults.seed", "integer"},
		{"seed with a key", map[string]any{"seed.value": 1}, "faults.seed.value", "seed"},
		{"first mistake in key order", map[string]any{"sync": map[string]any{"drop": 2}, "p2p": map[string]any{"reorder": -1, "drop": 2}},
			"faults.p2p.drop", "from 0 to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(tt.section)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error for %s", cfg, tt.key)
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *sdk.ConfigError", err, err)
			}
			if ce.Key != tt.key {
				t.Errorf("Key = %q, want %q (error: %v)", ce.Key, tt.key, err)
			}
			if ce.Problem == "" || !strings.Contains(ce.Fix, tt.fix) {
				t.Errorf("error %v: want a problem and a fix containing %q", err, tt.fix)
			}
		})
	}
}

func TestSpecActiveApplies(t *testing.T) {
	tests := []struct {
		spec     Spec
		active   bool
		down, up bool
	}{
		{Spec{}, false, true, true},
		{Spec{Reorder: 1, Direction: "both"}, false, true, true},
		{Spec{Reorder: 2}, true, true, true},
		{Spec{Drop: 0.1, Direction: "down"}, true, true, false},
		{Spec{Duplicate: 0.1, Direction: "up"}, true, false, true},
		{Spec{Delay: time.Millisecond, Direction: "Down"}, true, true, false},
		{Spec{Jitter: time.Millisecond, Direction: "sideways"}, true, false, false},
	}
	for _, tt := range tests {
		if got := tt.spec.Active(); got != tt.active {
			t.Errorf("%+v.Active() = %v, want %v", tt.spec, got, tt.active)
		}
		if got := tt.spec.Applies(true); got != tt.down {
			t.Errorf("%+v.Applies(down) = %v, want %v", tt.spec, got, tt.down)
		}
		if got := tt.spec.Applies(false); got != tt.up {
			t.Errorf("%+v.Applies(up) = %v, want %v", tt.spec, got, tt.up)
		}
	}
}
