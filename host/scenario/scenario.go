// Package scenario reads the scenario files of `strata compare` and turns
// them into a deterministic workload plan.
//
// A scenario (a YAML file, see configs/scenarios) describes a workload
// independently of the stack that runs it: how many client nodes, which
// conversations they hold, how fast and how large the messages are, which
// faults the host injects, and when nodes are killed or go offline. [Load]
// and [Parse] read and check a file into a [Scenario]; [Scenario.Plan]
// expands it into a [Plan], the exact list of conversations, outages and
// sends that a driver replays on every stack it compares.
//
// # File
//
//	name: lossy-mobile       # required; letters, digits, '-', '_', '.'
//	description: ...         # optional
//	seed: 7                  # default 1; same seed, same plan
//	nodes: 6                 # required, 2..MaxNodes client nodes
//	duration: 60s            # required: how long messages are sent
//	warmup: 5s               # default 0: sends before it are not measured
//	settle: 90s              # default 60s: wait for convergence after duration
//	groups:                  # required, at least one conversation shape
//	  - name: pair           # required
//	    size: 2              # required, 2..nodes members
//	    count: 3             # default 1: conversations of this shape
//	traffic:
//	  rate: 2                # required: messages per second per conversation
//	  senders: all           # default all; or one (the first member only)
//	  size:                  # default {distribution: fixed, bytes: 256}
//	    distribution: fixed  # fixed (bytes), uniform (min, max) or
//	    bytes: 256           # lognormal (median, sigma, min, max)
//	faults:                  # the host config's faults section, per node
//	  privacy: {drop: 0.3}
//	churn:                   # SIGKILL and restart
//	  interval: 20s          # mean time between kills; 0 or absent: none
//	  downtime: 5s           # how long a killed node stays down
//	offline:                 # graceful offline periods
//	  fraction: 0.5          # fraction of the nodes that go offline at all
//	  online: 10s            # such a node alternates periods of these lengths
//	  offline: 10s
//
// Durations are strings such as "60s" or "1m30s"; a bare number is refused,
// since its unit would be a guess. Unknown keys are errors. Every mistake is
// an *sdk.ConfigError that names the key ("traffic.size.median",
// "groups[1].size", with groups counted from 0) and says how to fix it.
//
// # Determinism
//
// The plan is a pure function of the scenario: every random choice is drawn
// from math/rand/v2's PCG seeded with the scenario's seed, one stream per
// purpose (membership, offline periods, churn, and each conversation's
// traffic), so that, for instance, adding churn does not change who is in
// which conversation. Times are kept in integer nanoseconds. The same
// scenario therefore gives the same plan, bit for bit, on every run of one
// build; the golden test in this package catches a change of the generator.
package scenario

import (
	"fmt"
	"os"
	"time"

	"github.com/strata-msg/strata/host/faults"
)

// Senders values ([Traffic.Senders]).
const (
	// SendersAll lets every member of a conversation send.
	SendersAll = "all"
	// SendersOne lets only the first member of a conversation send: a
	// broadcast or public-chat shape.
	SendersOne = "one"
)

// Size distributions ([Size.Distribution]).
const (
	// DistFixed gives every message Size.Bytes bytes.
	DistFixed = "fixed"
	// DistUniform draws sizes uniformly from Size.Min to Size.Max, inclusive.
	DistUniform = "uniform"
	// DistLognormal draws sizes from a log-normal distribution with median
	// Size.Median and shape Size.Sigma, rounded and clamped to
	// [Size.Min, Size.Max].
	DistLognormal = "lognormal"
)

// Limits of a scenario. They keep a plan small enough to hold in memory
// and replay on a laptop.
const (
	// MaxNodes is the largest number of client nodes.
	MaxNodes = 1000
	// MaxConversations is the largest number of conversations, summed over
	// all groups' counts.
	MaxConversations = 1000
	// MaxDuration is the longest duration, settle, churn interval or
	// offline period.
	MaxDuration = 24 * time.Hour
	// MaxRate is the highest traffic rate, in messages per second per
	// conversation.
	MaxRate = 10000
	// MaxSends is the largest expected number of sends (rate × duration ×
	// conversations).
	MaxSends = 1_000_000
	// MaxMessageSize is the largest message size, in bytes.
	MaxMessageSize = 1 << 20
	// MaxSigma is the largest log-normal sigma.
	MaxSigma = 10
	// MinPeriod is the shortest outage and the shortest time a node is up
	// between two outages: stopping and starting a node takes time, so
	// shorter periods would not mean what they say. offline.online,
	// offline.offline and churn.downtime must be at least MinPeriod.
	MinPeriod = time.Second
)

// Defaults of the optional keys.
const (
	// DefaultSeed is the seed of a scenario without a seed key.
	DefaultSeed = 1
	// DefaultSettle is the settle time of a scenario without a settle key.
	DefaultSettle = 60 * time.Second
	// DefaultBytes is the message size of a scenario without a
	// traffic.size section.
	DefaultBytes = 256
)

// Scenario is a checked scenario file.
type Scenario struct {
	// Name names the scenario (and its results): letters, digits, '-', '_'
	// and '.' only.
	Name string
	// Description says what the scenario is about, for reports.
	Description string
	// Seed seeds every random choice of the plan (default DefaultSeed).
	Seed int64
	// Nodes is the number of client nodes, 2..MaxNodes. Relays are the
	// testnet's business, not the scenario's.
	Nodes int
	// Duration is how long messages are sent.
	Duration time.Duration
	// Warmup is the offset before which sends are excluded from the
	// figures (they are still sent); less than Duration.
	Warmup time.Duration
	// Settle is how long to wait after Duration for the nodes to converge
	// before giving up (default DefaultSettle).
	Settle time.Duration
	// Groups are the conversation shapes, in file order.
	Groups []Group
	// Traffic says how messages are sent.
	Traffic Traffic
	// Faults is the faults section, parsed by faults.Parse exactly as the
	// host config's, to be applied to every node. When the section has no
	// seed key, Faults.Seed is the scenario's Seed, so that the one seed
	// governs the whole run.
	Faults faults.Config
	// Churn says how nodes are killed and restarted.
	Churn Churn
	// Offline says how nodes go offline gracefully.
	Offline Offline
	// Source is the file the scenario was read from (Parse's source).
	Source string
}

// Group is one conversation shape: Count conversations of Size members.
type Group struct {
	// Name names the conversations: Name itself when Count is 1,
	// Name-1 ... Name-Count otherwise ([Group.Conversation]).
	Name string
	// Size is the number of members, 2..Scenario.Nodes.
	Size int
	// Count is how many conversations of this shape there are (default 1).
	Count int
}

// Conversation returns the name of the group's i-th conversation, i from 0
// to Count-1: the group's name when Count is 1, name-(i+1) otherwise.
func (g Group) Conversation(i int) string {
	if g.Count == 1 {
		return g.Name
	}
	return fmt.Sprintf("%s-%d", g.Name, i+1)
}

// Traffic is the traffic section.
type Traffic struct {
	// Rate is the mean number of messages per second per conversation;
	// arrivals are a Poisson process. 0 < Rate <= MaxRate.
	Rate float64
	// Senders is SendersAll (the default) or SendersOne.
	Senders string
	// Size is the message size distribution.
	Size Size
}

// Size is the traffic.size section: the distribution of message sizes, in
// bytes. Only the fields of the chosen distribution are set.
type Size struct {
	// Distribution is DistFixed (the default), DistUniform or DistLognormal.
	Distribution string
	// Bytes is the size of every message (fixed), 1..MaxMessageSize.
	Bytes int
	// Min and Max bound the sizes (uniform and lognormal), inclusive,
	// 1 <= Min <= Max <= MaxMessageSize. Uniform requires both; lognormal
	// defaults them to 1 and MaxMessageSize.
	Min, Max int
	// Median is the log-normal median, Min <= Median <= Max.
	Median int
	// Sigma is the log-normal shape (the standard deviation of the size's
	// logarithm), 0 < Sigma <= MaxSigma.
	Sigma float64
}

// Churn is the churn section: nodes are killed (SIGKILL) at random and
// restarted after Downtime.
type Churn struct {
	// Interval is the mean time between two kills across the network (the
	// gaps are exponential); 0 means no churn.
	Interval time.Duration
	// Downtime is how long a killed node stays down, at least MinPeriod and
	// less than Scenario.Duration; required when Interval is set.
	Downtime time.Duration
}

// Offline is the offline section: some nodes stop gracefully and start
// again, over and over.
type Offline struct {
	// Fraction is the fraction of the nodes that go offline at all, 0..1
	// (0, the default: none).
	Fraction float64
	// Online and Offline are the lengths of the alternating periods of
	// such a node, each at least MinPeriod; required when Fraction > 0.
	Online, Offline time.Duration
}

// Conversations returns the number of conversations: the sum of the
// groups' counts.
func (s *Scenario) Conversations() int {
	n := 0
	for _, g := range s.Groups {
		n += g.Count
	}
	return n
}

// Load reads and checks the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(data, path)
}

// Parse reads and checks a scenario given as YAML; source names it in
// errors (usually the file name) and becomes Scenario.Source. A mistake in
// the file is an *sdk.ConfigError, wrapped with the source.
func Parse(data []byte, source string) (*Scenario, error) {
	s, err := parse(data)
	if err == nil {
		err = s.Check()
	}
	if err != nil {
		if source == "" {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		return nil, fmt.Errorf("scenario %s: %w", source, err)
	}
	s.Source = source
	return s, nil
}
