package scenario

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/faults"
)

// leafKeys are the value keys of a scenario, flattened as koanf has them.
// The groups list and the faults section are read separately.
var leafKeys = []string{
	"name", "description", "seed", "nodes", "duration", "warmup", "settle", "groups",
	"traffic.rate", "traffic.senders",
	"traffic.size.distribution", "traffic.size.bytes", "traffic.size.min",
	"traffic.size.max", "traffic.size.median", "traffic.size.sigma",
	"churn.interval", "churn.downtime",
	"offline.fraction", "offline.online", "offline.offline",
}

// sectionKeys are the sections of a scenario (besides faults, which
// faults.Parse checks).
var sectionKeys = []string{"traffic", "traffic.size", "churn", "offline", "faults"}

// groupKeys are the keys of one element of the groups list.
var groupKeys = []string{"name", "size", "count"}

// requiredKeys are the keys a scenario must have, in the order they are
// reported.
var requiredKeys = []string{"name", "nodes", "duration", "groups", "traffic.rate"}

// allSizeKeys are the keys of traffic.size besides distribution.
var allSizeKeys = []string{"bytes", "min", "max", "median", "sigma"}

// sizeKeys are the keys each distribution takes, under traffic.size.
func sizeKeys(dist string) []string {
	switch dist {
	case DistFixed:
		return []string{"bytes"}
	case DistUniform:
		return []string{"min", "max"}
	case DistLognormal:
		return []string{"median", "sigma", "min", "max"}
	}
	return nil
}

// parse reads a scenario's keys into a Scenario, with the defaults filled
// in. It checks the keys' names and the values' types; Check checks the
// values.
func parse(data []byte) (*Scenario, error) {
	k, err := load(data)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(k); err != nil {
		return nil, err
	}
	r := &reader{k: k}
	for _, key := range requiredKeys {
		r.require(key)
	}
	s := &Scenario{
		Name:        r.str("name", ""),
		Description: r.str("description", ""),
		Seed:        r.int64("seed", DefaultSeed),
		Nodes:       r.integer("nodes", 0),
		Duration:    r.duration("duration", 0),
		Warmup:      r.duration("warmup", 0),
		Settle:      r.duration("settle", DefaultSettle),
		Traffic: Traffic{
			Rate:    r.number("traffic.rate", 0),
			Senders: strings.ToLower(strings.TrimSpace(r.str("traffic.senders", SendersAll))),
			Size:    readSize(r),
		},
		Churn: Churn{
			Interval: r.duration("churn.interval", 0),
			Downtime: r.duration("churn.downtime", 0),
		},
		Offline: Offline{
			Fraction: r.number("offline.fraction", 0),
			Online:   r.duration("offline.online", 0),
			Offline:  r.duration("offline.offline", 0),
		},
	}
	if r.err != nil {
		return nil, r.err
	}
	if s.Groups, err = readGroups(k.Get("groups")); err != nil {
		return nil, err
	}
	if s.Faults, err = readFaults(k, s.Seed); err != nil {
		return nil, err
	}
	return s, nil
}

// load decodes YAML into a koanf instance.
func load(data []byte) (*koanf.Koanf, error) {
	m, err := yaml.Parser().Unmarshal(data)
	if err != nil {
		return nil, err
	}
	return fromMap(m)
}

// fromMap loads a decoded section into a koanf instance.
func fromMap(m map[string]any) (*koanf.Koanf, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(m, "."), nil); err != nil {
		return nil, err
	}
	return k, nil
}

// checkKeys refuses keys a scenario does not know, outside the faults
// section, and values given where a section belongs.
func checkKeys(k *koanf.Koanf) error {
	keys := k.Keys()
	slices.Sort(keys)
	for _, key := range keys {
		switch {
		case key == "faults" || strings.HasPrefix(key, "faults."):
			continue // checked by faults.Parse
		case strings.HasPrefix(key, "groups."):
			return &sdk.ConfigError{Key: "groups", Problem: "is a section, want a list", Fix: hint("groups")}
		case slices.Contains(sectionKeys, key):
			if v := k.Get(key); !isEmpty(v) {
				return notSection(key, v, children(key))
			}
		case !slices.Contains(leafKeys, key):
			return &sdk.ConfigError{Key: key, Problem: "unknown key", Fix: suggest(key, leafKeys, children(parent(key)))}
		}
	}
	return nil
}

// readSize reads the traffic.size section.
func readSize(r *reader) Size {
	const p = "traffic.size."
	z := Size{Distribution: strings.ToLower(strings.TrimSpace(r.str(p+"distribution", DistFixed)))}
	if r.err != nil {
		return z
	}
	if err := checkDistribution(z.Distribution); err != nil {
		r.err = err
		return z
	}
	takes := sizeKeys(z.Distribution)
	for _, key := range allSizeKeys {
		if !slices.Contains(takes, key) && r.has(p+key) {
			r.fail(p+key, "does not apply to the "+z.Distribution+" distribution",
				"remove it; "+z.Distribution+" takes "+strings.Join(takes, ", ")+" (traffic.size.distribution chooses the distribution)")
		}
	}
	switch z.Distribution {
	case DistFixed:
		z.Bytes = r.integer(p+"bytes", DefaultBytes)
	case DistUniform:
		r.require(p + "min")
		r.require(p + "max")
		z.Min = r.integer(p+"min", 0)
		z.Max = r.integer(p+"max", 0)
	case DistLognormal:
		r.require(p + "median")
		r.require(p + "sigma")
		z.Median = r.integer(p+"median", 0)
		z.Sigma = r.number(p+"sigma", 0)
		z.Min = r.integer(p+"min", 1)
		z.Max = r.integer(p+"max", MaxMessageSize)
	}
	return z
}

// readGroups reads the groups list.
func readGroups(v any) ([]Group, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, &sdk.ConfigError{Key: "groups", Problem: "is " + describe(v) + ", want a list", Fix: hint("groups")}
	}
	if len(list) == 0 {
		return nil, &sdk.ConfigError{Key: "groups", Problem: "is empty", Fix: hint("groups")}
	}
	groups := make([]Group, 0, len(list))
	for i, e := range list {
		g, err := readGroup(fmt.Sprintf("groups[%d]", i), e)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// readGroup reads one element of the groups list; key is its key in
// errors ("groups[0]").
func readGroup(key string, v any) (Group, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Group{}, notSection(key, v, groupKeys)
	}
	if len(m) == 0 {
		return Group{}, &sdk.ConfigError{Key: key, Problem: "is empty", Fix: "give the group its keys (" + strings.Join(groupKeys, ", ") + ")"}
	}
	k, err := fromMap(m)
	if err != nil {
		return Group{}, fmt.Errorf("%s: %w", key, err)
	}
	keys := k.Keys()
	slices.Sort(keys)
	for _, kk := range keys {
		if !slices.Contains(groupKeys, kk) {
			return Group{}, &sdk.ConfigError{Key: key + "." + kk, Problem: "unknown key", Fix: suggest(kk, groupKeys, groupKeys)}
		}
	}
	r := &reader{k: k, prefix: key + ".", hints: "group."}
	r.require("name")
	r.require("size")
	g := Group{
		Name:  r.str("name", ""),
		Size:  r.integer("size", 0),
		Count: r.integer("count", 1),
	}
	return g, r.err
}

// readFaults reads the faults section with faults.Parse, as the host
// config does. Without a faults.seed key the seed is the scenario's.
func readFaults(k *koanf.Koanf, seed int64) (faults.Config, error) {
	if v := k.Get("faults"); v != nil {
		if _, ok := v.(map[string]any); !ok {
			return faults.Config{}, notSection("faults", v, []string{"seed", "p2p", "privacy", "secure", "sync"})
		}
	}
	cfg, err := faults.Parse(k.Cut("faults").All())
	if err != nil {
		return faults.Config{}, err
	}
	if k.Get("faults.seed") == nil {
		cfg.Seed = seed
	}
	return cfg, nil
}

// reader reads typed values from a koanf instance. The first mistake
// sticks in err and makes the later reads return their defaults.
type reader struct {
	k *koanf.Koanf
	// prefix is prepended to keys in errors ("groups[0].").
	prefix string
	// hints is prepended to keys to look up their fix ("group.").
	hints string
	err   error
}

// fail records a mistake about key, unless one is recorded already.
func (r *reader) fail(key, problem, fix string) {
	if r.err == nil {
		r.err = &sdk.ConfigError{Key: r.prefix + key, Problem: problem, Fix: fix}
	}
}

// has reports whether key is set; a key whose value is nil counts as absent.
func (r *reader) has(key string) bool {
	return r.k.Get(key) != nil
}

// require records a mistake when key is absent.
func (r *reader) require(key string) {
	if !r.has(key) {
		r.fail(key, "is required", hint(r.hints+key))
	}
}

// value returns key's value, or nil when it is absent or a mistake is
// recorded already.
func (r *reader) value(key string) any {
	if r.err != nil {
		return nil
	}
	return r.k.Get(key)
}

// loose is the value decoder for key: strict, as a hand-written file
// should be, with key's hint as the fix.
func (r *reader) loose(key string) sdk.Loose {
	return sdk.Loose{Strict: true, Fix: hint(r.hints + key)}
}

// keep records err, if any, as the reader's mistake.
func (r *reader) keep(err error) bool {
	if err == nil {
		return true
	}
	if r.err == nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			ce.Key = r.prefix + ce.Key
		}
		r.err = err
	}
	return false
}

func (r *reader) str(key, def string) string {
	v := r.value(key)
	if v == nil {
		return def
	}
	s, err := r.loose(key).String(key, v)
	if !r.keep(err) {
		return def
	}
	return s
}

func (r *reader) int64(key string, def int64) int64 {
	v := r.value(key)
	if v == nil {
		return def
	}
	n, err := r.loose(key).Int(key, v)
	if !r.keep(err) {
		return def
	}
	return n
}

func (r *reader) integer(key string, def int) int {
	n := r.int64(key, int64(def))
	if n < math.MinInt || n > math.MaxInt {
		r.fail(key, fmt.Sprintf("is %d, out of range", n), hint(r.hints+key))
		return def
	}
	return int(n)
}

func (r *reader) number(key string, def float64) float64 {
	v := r.value(key)
	if v == nil {
		return def
	}
	f, err := r.loose(key).Float(key, v)
	if !r.keep(err) {
		return def
	}
	return f
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v := r.value(key)
	if v == nil {
		return def
	}
	d, err := r.loose(key).Duration(key, v)
	if !r.keep(err) {
		return def
	}
	return d
}

// describe renders a value for an error message.
func describe(v any) string { return sdk.DescribeValue(v) }

// isEmpty reports whether v is nil or an empty section.
func isEmpty(v any) bool {
	m, ok := v.(map[string]any)
	return v == nil || ok && len(m) == 0
}

func notSection(key string, v any, keys []string) error {
	return &sdk.ConfigError{Key: key, Problem: "is " + describe(v) + ", not a section",
		Fix: "write its keys under it (" + strings.Join(keys, ", ") + ")"}
}

// parent returns the section holding key, "" for a top-level key.
func parent(key string) string {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return ""
	}
	return key[:i]
}

// children returns the keys directly under section ("" for the top
// level), without their section's prefix, in schema order.
func children(section string) []string {
	var out []string
	for _, key := range slices.Concat(leafKeys, sectionKeys) {
		if parent(key) != section {
			continue
		}
		name := key
		if section != "" {
			name = strings.TrimPrefix(key, section+".")
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// suggest says what to write instead of the unknown key: the known key
// closest to it when one is close (a key of the same section is compared
// by its last part only), or one whose last part is the key's (a key put
// in the wrong section), or else the keys of its section, siblings.
func suggest(key string, known, siblings []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range known {
		a, b := key, c
		if parent(c) == parent(key) {
			a, b = last(key), last(c)
		}
		if d := sdk.EditDistance(a, b); 3*d <= len(b) && d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	var same []string
	for _, c := range known {
		if last(c) == last(key) {
			same = append(same, c)
		}
	}
	if len(same) == 1 {
		return "did you mean " + same[0] + "?"
	}
	if len(siblings) == 0 {
		return "remove it or check its spelling"
	}
	return "remove it or check its spelling; the keys here are: " + strings.Join(siblings, ", ")
}

// last returns the last part of a dotted key.
func last(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}
