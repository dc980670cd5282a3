package scenario

import (
	"fmt"
	"strconv"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

// maxName is the longest scenario or group name.
const maxName = 64

// Check checks the values of s and how they relate: ranges, the warm-up
// within the duration, the size bounds and so on. It returns the first
// mistake as an *sdk.ConfigError naming the key as the file spells it.
// Parse runs it; run it on a Scenario built by hand before planning it
// (such a Scenario needs the defaults Parse fills in, such as Senders and
// Size.Distribution).
func (s *Scenario) Check() error {
	for _, check := range []func() error{s.checkRun, s.checkGroups, s.checkTraffic, s.Traffic.Size.check, s.checkChurn, s.checkOffline} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Scenario) checkRun() error {
	switch {
	case !validName(s.Name):
		return bad("name", "is "+strconv.Quote(s.Name)+", not a name")
	case s.Nodes < 2 || s.Nodes > MaxNodes:
		return bad("nodes", fmt.Sprintf("is %d, out of range", s.Nodes))
	case s.Duration <= 0 || s.Duration > MaxDuration:
		return bad("duration", "is "+shortDuration(s.Duration)+", out of range")
	case s.Warmup < 0 || s.Warmup >= s.Duration:
		return bad("warmup", "is "+shortDuration(s.Warmup)+", not less than duration ("+shortDuration(s.Duration)+")")
	case s.Settle < 0 || s.Settle > MaxDuration:
		return bad("settle", "is "+shortDuration(s.Settle)+", out of range")
	}
	return nil
}

func (s *Scenario) checkGroups() error {
	if len(s.Groups) == 0 {
		return bad("groups", "is empty")
	}
	names := map[string]int{} // conversation name → index of its group
	total := 0
	for i, g := range s.Groups {
		switch {
		case !validName(g.Name):
			return badGroup(i, "name", "is "+strconv.Quote(g.Name)+", not a name")
		case g.Size < 2 || g.Size > s.Nodes:
			return &sdk.ConfigError{Key: fmt.Sprintf("groups[%d].size", i), Problem: fmt.Sprintf("is %d, out of range: a conversation has 2 to nodes (%d) members", g.Size, s.Nodes),
				Fix: hint("group.size") + ", or raise nodes"}
		case g.Count < 1 || g.Count > MaxConversations:
			return badGroup(i, "count", fmt.Sprintf("is %d, out of range", g.Count))
		}
		if total += g.Count; total > MaxConversations {
			return badGroup(i, "count", fmt.Sprintf("makes %d conversations in all, more than %d", total, MaxConversations))
		}
		for c := range g.Count {
			name := g.Conversation(c)
			if j, dup := names[name]; dup {
				return &sdk.ConfigError{Key: fmt.Sprintf("groups[%d].name", i), Problem: fmt.Sprintf("gives a conversation the name %q, which groups[%d] gives too", name, j),
					Fix: "give every group its own name (a group of count n names its conversations name-1 to name-n)"}
			}
			names[name] = i
		}
	}
	return nil
}

func (s *Scenario) checkTraffic() error {
	t := s.Traffic
	if !(t.Rate > 0 && t.Rate <= MaxRate) { // also refuses NaN
		return bad("traffic.rate", "is "+strconv.FormatFloat(t.Rate, 'g', -1, 64)+", out of range")
	}
	if n := t.Rate * s.Duration.Seconds() * float64(s.Conversations()); n > MaxSends {
		return &sdk.ConfigError{Key: "traffic.rate",
			Problem: fmt.Sprintf("makes about %.0f sends (%g a second for %s in %s), more than %d",
				n, t.Rate, shortDuration(s.Duration), plural(s.Conversations(), "conversation"), MaxSends),
			Fix: "lower traffic.rate, duration or the groups' counts"}
	}
	if t.Senders != SendersAll && t.Senders != SendersOne {
		return bad("traffic.senders", "is "+strconv.Quote(t.Senders)+", not a choice of senders")
	}
	return nil
}

func (z Size) check() error {
	const p = "traffic.size."
	if err := checkDistribution(z.Distribution); err != nil {
		return err
	}
	if z.Distribution == DistFixed {
		if z.Bytes < 1 || z.Bytes > MaxMessageSize {
			return bad(p+"bytes", fmt.Sprintf("is %d, out of range", z.Bytes))
		}
		return nil
	}
	switch {
	case z.Min < 1 || z.Min > MaxMessageSize:
		return bad(p+"min", fmt.Sprintf("is %d, out of range", z.Min))
	case z.Max < 1 || z.Max > MaxMessageSize:
		return bad(p+"max", fmt.Sprintf("is %d, out of range", z.Max))
	case z.Max < z.Min:
		return bad(p+"max", fmt.Sprintf("is %d, less than min (%d)", z.Max, z.Min))
	case z.Distribution == DistUniform:
		return nil
	case z.Median < z.Min || z.Median > z.Max:
		return bad(p+"median", fmt.Sprintf("is %d, outside [min, max] = [%d, %d]", z.Median, z.Min, z.Max))
	case !(z.Sigma > 0 && z.Sigma <= MaxSigma):
		return bad(p+"sigma", "is "+strconv.FormatFloat(z.Sigma, 'g', -1, 64)+", out of range")
	}
	return nil
}

func (s *Scenario) checkChurn() error {
	c := s.Churn
	switch {
	case c.Interval < 0 || c.Interval > MaxDuration:
		return bad("churn.interval", "is "+shortDuration(c.Interval)+", out of range")
	case c.Downtime < 0:
		return bad("churn.downtime", "is "+shortDuration(c.Downtime)+", out of range")
	case c.Interval == 0:
		return nil
	case c.Downtime == 0:
		return bad("churn.downtime", "is not set, but churn.interval is")
	case c.Downtime < MinPeriod:
		return bad("churn.downtime", "is "+shortDuration(c.Downtime)+", shorter than "+shortDuration(MinPeriod))
	case c.Downtime >= s.Duration:
		return bad("churn.downtime", "is "+shortDuration(c.Downtime)+", not less than duration ("+shortDuration(s.Duration)+")")
	}
	return nil
}

func (s *Scenario) checkOffline() error {
	o := s.Offline
	switch {
	case !(o.Fraction >= 0 && o.Fraction <= 1):
		return bad("offline.fraction", "is "+strconv.FormatFloat(o.Fraction, 'g', -1, 64)+", out of range")
	case o.Online < 0 || o.Online > MaxDuration:
		return bad("offline.online", "is "+shortDuration(o.Online)+", out of range")
	case o.Offline < 0 || o.Offline > MaxDuration:
		return bad("offline.offline", "is "+shortDuration(o.Offline)+", out of range")
	case o.Fraction == 0:
		return nil
	}
	if err := period("offline.online", o.Online); err != nil {
		return err
	}
	return period("offline.offline", o.Offline)
}

// period checks the length of the offline periods when offline.fraction
// is set.
func period(key string, d time.Duration) error {
	switch {
	case d == 0:
		return bad(key, "is not set, but offline.fraction is")
	case d < MinPeriod:
		return bad(key, "is "+shortDuration(d)+", shorter than "+shortDuration(MinPeriod))
	}
	return nil
}

func checkDistribution(d string) error {
	switch d {
	case DistFixed, DistUniform, DistLognormal:
		return nil
	}
	return bad("traffic.size.distribution", "is "+strconv.Quote(d)+", not a distribution")
}

// validName reports whether s is a usable scenario or group name: 1 to
// maxName letters, digits, '-', '_' and '.', since names end up in file
// names and metric labels.
func validName(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// bad is a mistake about key, with key's usual fix.
func bad(key, problem string) error {
	return &sdk.ConfigError{Key: key, Problem: problem, Fix: hint(key)}
}

// badGroup is a mistake about key name of groups[i].
func badGroup(i int, name, problem string) error {
	return &sdk.ConfigError{Key: fmt.Sprintf("groups[%d].%s", i, name), Problem: problem, Fix: hint("group." + name)}
}

// hint says what to write for key ("group.size" for a group's size).
func hint(key string) string {
	dur := func(what, example string) string {
		return fmt.Sprintf("write %s as a duration string such as %q (at most %s)", what, example, shortDuration(MaxDuration))
	}
	size := fmt.Sprintf("a whole number of bytes from 1 to %d", MaxMessageSize)
	switch key {
	case "name":
		return fmt.Sprintf("name the scenario with 1 to %d letters, digits, '-', '_' or '.', such as lossy-mobile", maxName)
	case "description":
		return "write a sentence, in quotes if it holds a colon"
	case "seed":
		return "write a whole number, such as 7"
	case "nodes":
		return fmt.Sprintf("write the number of client nodes, a whole number from 2 to %d, such as 6", MaxNodes)
	case "duration":
		return dur("how long messages are sent, above 0,", "60s")
	case "warmup":
		return `write a duration string less than duration, such as "5s", or remove it for no warm-up`
	case "settle":
		return dur("how long to wait for convergence after duration", "90s")
	case "groups":
		return "list the conversation shapes, one item each, such as groups: [{name: pair, size: 2, count: 3}]"
	case "group.name":
		return fmt.Sprintf("name the group with 1 to %d letters, digits, '-', '_' or '.', such as pair", maxName)
	case "group.size":
		return "write the number of members, a whole number from 2 to nodes"
	case "group.count":
		return fmt.Sprintf("write how many conversations of this shape, a whole number from 1 to %d in all groups (default 1)", MaxConversations)
	case "traffic.rate":
		return fmt.Sprintf("write the mean messages per second per conversation, a number above 0 and at most %d, such as 2", MaxRate)
	case "traffic.senders":
		return `write "all" (every member sends) or "one" (the first member only)`
	case "traffic.size.distribution":
		return "write fixed (bytes), uniform (min, max) or lognormal (median, sigma, min, max)"
	case "traffic.size.bytes":
		return "write the size of every message, " + size + ", such as 256"
	case "traffic.size.min":
		return "write the smallest size, " + size + ", at most max"
	case "traffic.size.max":
		return "write the largest size, " + size + ", at least min"
	case "traffic.size.median":
		return "write the median size in bytes, from min to max, such as 200"
	case "traffic.size.sigma":
		return fmt.Sprintf("write the spread of the size's logarithm, a number above 0 and at most %d, such as 1.0", MaxSigma)
	case "churn.interval":
		return dur("the mean time between two kills across the network (0s: no churn)", "20s")
	case "churn.downtime":
		return fmt.Sprintf("write how long a killed node stays down, a duration string from %q to less than duration, such as \"5s\"", shortDuration(MinPeriod))
	case "offline.fraction":
		return "write the fraction of the nodes that go offline, from 0 to 1, such as 0.5"
	case "offline.online", "offline.offline":
		return fmt.Sprintf("write the length of a node's %s periods, a duration string from %q to %q, such as \"10s\"",
			key[len("offline."):], shortDuration(MinPeriod), shortDuration(MaxDuration))
	}
	return ""
}

// plural renders n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// shortDuration renders d without zero units: "24h" rather than "24h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"0s", "0m"} {
		if len(s) > len(z) && s[len(s)-len(z):] == z && s[len(s)-len(z)-1] >= 'a' {
			s = s[:len(s)-len(z)]
		}
	}
	return s
}
