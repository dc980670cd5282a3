package faults

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// Directions a Spec can apply to ([Spec.Direction]).
const (
	// DirectionBoth applies the faults to frames going up and down (the default).
	DirectionBoth = "both"
	// DirectionUp applies the faults to UP frames only (towards the application).
	DirectionUp = "up"
	// DirectionDown applies the faults to DOWN frames only (towards the wire).
	DirectionDown = "down"
)

// MaxReorder is the largest reorder window Parse accepts; New uses
// MaxReorder for a larger one.
const MaxReorder = 1024

// MaxDelay is the largest Delay and the largest Jitter Parse accepts; New
// uses MaxDelay for a larger one.
const MaxDelay = time.Hour

// boundaryNames are the boundary names Parse accepts, bottom to top. A
// boundary is named by its lower layer: "p2p" is the boundary between the
// p2p layer and the layer above it.
var boundaryNames = []string{"p2p", "privacy", "secure", "sync"}

// Spec is the faults of one boundary.
type Spec struct {
	// Drop is the probability that a frame is dropped, 0..1.
	Drop float64
	// Duplicate is the probability that a kept frame is delivered twice,
	// 0..1. The second copy is a proto.Clone of the first.
	Duplicate float64
	// Reorder is the reorder window: frames are released in a random order
	// within groups of up to this many (see the package doc for the exact
	// guarantee). 0 or 1 means no reordering.
	Reorder int
	// Delay delays every frame by Delay ± Jitter, never below 0. The delay
	// counts from the moment a frame leaves the reorder stage (from Apply,
	// when there is no reordering).
	Delay time.Duration
	// Jitter is the half-width of the uniform spread of the delay around
	// Delay. It may be larger than Delay: a negative draw means no delay.
	Jitter time.Duration
	// Direction is "both" (the default, also meant by ""), "up" or "down":
	// which directions the faults apply to. An Injector handles one
	// direction; Direction tells the caller which injectors to build
	// ([Spec.Applies]).
	Direction string
}

// Active reports whether any fault is set: a drop or duplicate
// probability, a reorder window above 1, a delay or a jitter. Direction is
// not a fault.
func (s Spec) Active() bool {
	return s.Drop > 0 || s.Duplicate > 0 || s.Reorder > 1 || s.Delay > 0 || s.Jitter > 0
}

// Applies reports whether the Spec's Direction covers frames going down
// (down = true) or up (down = false). "both" and "" cover both, "up" and
// "down" (in any case) one; any other value covers neither. It does not
// look at whether a fault is set: build an injector for a direction when
// s.Active() && s.Applies(down).
func (s Spec) Applies(down bool) bool {
	switch {
	case s.Direction == "" || strings.EqualFold(s.Direction, DirectionBoth):
		return true
	case strings.EqualFold(s.Direction, DirectionDown):
		return down
	case strings.EqualFold(s.Direction, DirectionUp):
		return !down
	}
	return false
}

// Config is the node config's faults section.
type Config struct {
	// Seed seeds every injector's PRNG, together with the injector's name.
	// Without a seed key it is 0, so runs are reproducible by default.
	Seed int64
	// Boundaries holds the Spec of every boundary the section names, by
	// boundary name ("p2p", "privacy", "secure" or "sync": the boundary's
	// lower layer), also one with no fault set (check Spec.Active). It is
	// nil when the section names no boundary.
	Boundaries map[string]Spec
}

// specKeys are a boundary's keys, in the order the error messages list them.
var specKeys = []string{"drop", "duplicate", "reorder", "delay", "jitter", "direction"}

// Parse reads the node config's faults section, as koanf decodes it from
// YAML or TOML (or from environment variables and --set flags, whose values
// are strings), for example
//
//	faults:
//	  seed: 42
//	  p2p: {drop: 0.3, duplicate: 0.1, reorder: 8, delay: 20ms, jitter: 10ms, direction: both}
//
// The section holds an optional seed (a whole number) and one sub-section
// per boundary ("p2p", "privacy", "secure", "sync"), with the keys drop and
// duplicate (probabilities from 0 to 1), reorder (a whole number from 0 to
// MaxReorder), delay and jitter (durations from 0 to MaxDelay) and
// direction ("both", "up" or "down"; default "both"). Numbers may be given
// as any Go integer or float type or as a string holding a number.
// Durations must be strings such as "20ms": a bare number is refused,
// since its unit would be a guess. A boundary may also be given by dotted
// keys ("p2p.drop": 0.3), as koanf's flattened maps have it. A key whose
// value is nil counts as absent.
//
// Every mistake is an *sdk.ConfigError whose Key is the full key
// ("faults.p2p.drop") and whose Fix says what to write; unknown boundaries
// and unknown keys are errors that list the known ones. When there are
// several mistakes, Parse reports the first in key order. A nil or empty
// section is an empty Config.
func Parse(section map[string]any) (Config, error) {
	var cfg Config
	if len(section) == 0 {
		return cfg, nil
	}
	bounds := map[string]map[string]any{}
	for _, k := range sortedKeys(section) {
		v := section[k]
		name, sub, dotted := strings.Cut(k, ".")
		if name == "seed" {
			if dotted {
				return Config{}, unknownTop("faults." + k)
			}
			if v == nil {
				continue
			}
			n, err := integer("faults.seed", v, math.MinInt64, math.MaxInt64, "write an integer such as 42")
			if err != nil {
				return Config{}, err
			}
			cfg.Seed = n
			continue
		}
		if !isBoundary(name) {
			return Config{}, unknownTop("faults." + name)
		}
		m := bounds[name]
		if m == nil {
			m = map[string]any{}
			bounds[name] = m
		}
		if dotted {
			m[sub] = v
			continue
		}
		switch s := v.(type) {
		case nil:
		case map[string]any:
			for kk, vv := range s {
				m[kk] = vv
			}
		default:
			return Config{}, &sdk.ConfigError{Key: "faults." + name, Problem: "is " + describe(v) + ", not a section",
				Fix: "write the boundary's keys under it (" + strings.Join(specKeys, ", ") + "), or remove it"}
		}
	}
	if len(bounds) > 0 {
		cfg.Boundaries = make(map[string]Spec, len(bounds))
	}
	for _, name := range boundaryNames {
		m, ok := bounds[name]
		if !ok {
			continue
		}
		s, err := parseSpec("faults."+name+".", m)
		if err != nil {
			return Config{}, err
		}
		cfg.Boundaries[name] = s
	}
	return cfg, nil
}

// parseSpec reads one boundary's keys; prefix is "faults.<boundary>.".
func parseSpec(prefix string, m map[string]any) (Spec, error) {
	s := Spec{Direction: DirectionBoth}
	for _, k := range sortedKeys(m) {
		v := m[k]
		key := prefix + k
		if v == nil {
			if !isSpecKey(k) {
				return Spec{}, unknownSpecKey(key)
			}
			continue
		}
		var err error
		switch k {
		case "drop":
			s.Drop, err = probability(key, v)
		case "duplicate":
			s.Duplicate, err = probability(key, v)
		case "reorder":
			var n int64
			n, err = integer(key, v, 0, MaxReorder, fmt.Sprintf("write a whole number from 0 to %d (0 or 1: no reordering), such as 8", MaxReorder))
			s.Reorder = int(n)
		case "delay":
			s.Delay, err = duration(key, v)
		case "jitter":
			s.Jitter, err = duration(key, v)
		case "direction":
			s.Direction, err = direction(key, v)
		default:
			err = unknownSpecKey(key)
		}
		if err != nil {
			return Spec{}, err
		}
	}
	return s, nil
}

func unknownTop(key string) error {
	return &sdk.ConfigError{Key: key, Problem: "unknown key",
		Fix: "the faults section takes seed and one section per boundary, named by its lower layer: " + strings.Join(boundaryNames, ", ")}
}

func unknownSpecKey(key string) error {
	return &sdk.ConfigError{Key: key, Problem: "unknown key", Fix: "a boundary's keys are: " + strings.Join(specKeys, ", ")}
}

func probability(key string, v any) (float64, error) {
	const fix = "write a probability from 0 to 1, such as 0.3"
	f, err := sdk.Loose{Fix: fix}.Float(key, v)
	if err != nil {
		return 0, err
	}
	if !(f >= 0 && f <= 1) {
		return 0, &sdk.ConfigError{Key: key, Problem: "is " + describe(v) + ", out of range", Fix: fix}
	}
	return f, nil
}

func integer(key string, v any, lo, hi int64, fix string) (int64, error) {
	n, err := sdk.Loose{Fix: fix}.Int(key, v)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, &sdk.ConfigError{Key: key, Problem: "is " + describe(v) + ", out of range", Fix: fix}
	}
	return n, nil
}

func duration(key string, v any) (time.Duration, error) {
	const fix = `write a duration string from "0s" to "1h", such as "20ms" or "1.5s"`
	d, err := sdk.Loose{Fix: fix}.Duration(key, v)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > MaxDelay {
		return 0, &sdk.ConfigError{Key: key, Problem: "is " + describe(v) + ", out of range", Fix: fix}
	}
	return d, nil
}

func direction(key string, v any) (string, error) {
	const fix = `write "both", "up" (towards the application) or "down" (towards the wire)`
	s, err := sdk.Loose{Fix: fix}.String(key, v)
	if err != nil {
		return "", err
	}
	switch d := strings.ToLower(strings.TrimSpace(s)); d {
	case DirectionBoth, DirectionUp, DirectionDown:
		return d, nil
	}
	return "", &sdk.ConfigError{Key: key, Problem: "is " + describe(v) + ", not a direction", Fix: fix}
}

// describe renders a config value for an error message.
func describe(v any) string { return sdk.DescribeValue(v) }

func isBoundary(s string) bool {
	for _, b := range boundaryNames {
		if b == s {
			return true
		}
	}
	return false
}

func isSpecKey(s string) bool {
	for _, k := range specKeys {
		if k == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
