package scenario

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Plan is a scenario expanded into the exact workload a driver replays:
// who is in which conversation, when each node is down, and every message
// to send. Times are offsets from the moment sending starts.
//
// The rules, beyond what the scenario says:
//
//   - Membership: the nodes are shuffled, then rotated so that node 0
//     comes first, and the conversations take their members in turn from
//     this order, wrapping around: every node is in as many conversations
//     as any other, give or take one, and node 0 is the first member of
//     conversation 0. Members are distinct within a conversation; two
//     conversations may share members (or, with few nodes, all of them).
//   - Node 0 never goes down, so that conversation 0 always has a sender.
//   - Offline: round(offline.fraction × nodes) nodes (at most nodes-1,
//     drawn from nodes 1..nodes-1) alternate offline.online and
//     offline.offline periods, each with its own random phase; the
//     periods are clipped to [0, duration], and a clipped period shorter
//     than MinPeriod is left out.
//   - Churn: kill times are a Poisson process with mean gap
//     churn.interval. Each kill takes a node drawn uniformly from those
//     that are up, with MinPeriod to spare, from the kill until
//     churn.downtime after it; a kill with no such node is left out, and
//     kills stop when the downtime would run past duration.
//   - So the outages of one node never overlap, are separated by at least
//     MinPeriod, last at least MinPeriod, and end by duration: every node
//     is up when sending stops.
//   - Sends: each conversation's arrivals are a Poisson process at
//     traffic.rate over [0, duration). With senders "all" the sender is
//     drawn uniformly from the members online at that moment; with "one"
//     it is the first member. An arrival with no such sender online is
//     left out (so outages lower the number of sends).
type Plan struct {
	// Nodes is the number of client nodes, numbered 0 to Nodes-1.
	Nodes int
	// Duration is how long messages are sent.
	Duration time.Duration
	// Warmup is the offset before which sends are not measured.
	Warmup time.Duration
	// Groups are the conversations, in the order of the scenario's groups
	// and their counts; a Send names one by its index.
	Groups []PlanGroup
	// Outages are the periods nodes are down, sorted by From, then Node.
	Outages []Outage
	// Sends are the messages to send, sorted by At, then Group.
	Sends []Send
}

// PlanGroup is one conversation.
type PlanGroup struct {
	// Name is the conversation's name (see Group.Conversation).
	Name string
	// Members are the member nodes' indices, distinct. With senders "one"
	// only Members[0] sends.
	Members []int
}

// Outage is a period a node is down: from From (included) to To
// (excluded).
type Outage struct {
	// Node is the node's index.
	Node int
	// From is when the node goes down.
	From time.Duration
	// To is when it is started again, at most Plan.Duration.
	To time.Duration
	// Kill is true for churn (the node is killed with SIGKILL) and false
	// for a graceful offline period (the host is stopped).
	Kill bool
}

// Send is one message to send.
type Send struct {
	// At is when to send it.
	At time.Duration
	// Group is the conversation's index in Plan.Groups.
	Group int
	// Sender is the sending node's index, a member of the conversation
	// that is up at At.
	Sender int
	// Size is the message's size in bytes.
	Size int
	// Warm is true for a send in the warm-up (At < Plan.Warmup): it is
	// sent but not measured.
	Warm bool
}

// PRNG streams: every purpose draws from its own stream, so that one
// section of a scenario does not change the draws of another.
const (
	streamGroups uint64 = iota + 1
	streamOffline
	streamChurn
	// streamTraffic is the first conversation's stream; conversation i
	// draws from streamTraffic+i.
	streamTraffic
)

// Plan expands s into its workload, deterministically: the same scenario
// gives the same plan. s must pass Check (Parse's result does).
func (s *Scenario) Plan() *Plan {
	p := &Plan{Nodes: s.Nodes, Duration: s.Duration, Warmup: s.Warmup}
	p.Groups = s.planGroups(s.rng(streamGroups))
	down := make(timeline, s.Nodes)
	s.planOffline(s.rng(streamOffline), down)
	s.planChurn(s.rng(streamChurn), down)
	for _, outages := range down {
		p.Outages = append(p.Outages, outages...)
	}
	slices.SortFunc(p.Outages, func(a, b Outage) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.Node, b.Node))
	})
	for i, g := range p.Groups {
		p.Sends = s.appendSends(p.Sends, s.rng(streamTraffic+uint64(i)), i, g.Members, down)
	}
	slices.SortStableFunc(p.Sends, func(a, b Send) int { return cmp.Compare(a.At, b.At) })
	return p
}

// rng returns the PRNG of one stream.
func (s *Scenario) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(s.Seed), stream))
}

// planGroups draws the conversations' members.
func (s *Scenario) planGroups(r *rand.Rand) []PlanGroup {
	// A seeded shuffle, rotated so that node 0 comes first.
	order := r.Perm(s.Nodes)
	i := slices.Index(order, 0)
	order = slices.Concat(order[i:], order[:i])
	groups := make([]PlanGroup, 0, s.Conversations())
	next := 0
	for _, g := range s.Groups {
		for c := range g.Count {
			members := make([]int, g.Size)
			for j := range members {
				members[j] = order[(next+j)%s.Nodes]
			}
			next = (next + g.Size) % s.Nodes
			groups = append(groups, PlanGroup{Name: g.Conversation(c), Members: members})
		}
	}
	return groups
}

// planOffline adds the graceful offline periods to down.
func (s *Scenario) planOffline(r *rand.Rand, down timeline) {
	o := s.Offline
	n := min(int(math.Round(o.Fraction*float64(s.Nodes))), s.Nodes-1)
	if n <= 0 {
		return
	}
	nodes := r.Perm(s.Nodes - 1)[:n]
	slices.Sort(nodes)
	period := o.Online + o.Offline
	for _, node := range nodes {
		node++ // node 0 stays up
		phase := time.Duration(r.Int64N(int64(period)))
		for start := o.Online - phase; start < s.Duration; start += period {
			from, to := max(start, 0), min(start+o.Offline, s.Duration)
			if to-from >= MinPeriod {
				down.add(Outage{Node: node, From: from, To: to})
			}
		}
	}
}

// planChurn adds the kills to down, avoiding the periods already there.
func (s *Scenario) planChurn(r *rand.Rand, down timeline) {
	c := s.Churn
	if c.Interval <= 0 {
		return
	}
	mean := float64(c.Interval)
	up := make([]int, 0, s.Nodes-1)
	for at := time.Duration(0); ; {
		at += time.Duration(r.ExpFloat64() * mean)
		if at+c.Downtime > s.Duration {
			return
		}
		up = up[:0]
		for node := 1; node < s.Nodes; node++ {
			if down.free(node, at, at+c.Downtime) {
				up = append(up, node)
			}
		}
		if len(up) > 0 {
			down.add(Outage{Node: up[r.IntN(len(up))], From: at, To: at + c.Downtime, Kill: true})
		}
	}
}

// appendSends appends the sends of conversation g, with the given members,
// to sends.
func (s *Scenario) appendSends(sends []Send, r *rand.Rand, g int, members []int, down timeline) []Send {
	gap := float64(time.Second) / s.Traffic.Rate
	online := make([]int, 0, len(members))
	for at := time.Duration(0); ; {
		at += time.Duration(r.ExpFloat64() * gap)
		if at >= s.Duration {
			return sends
		}
		sender, ok := s.sender(r, members, at, down, online[:0])
		if !ok {
			continue
		}
		sends = append(sends, Send{At: at, Group: g, Sender: sender, Size: s.Traffic.Size.draw(r), Warm: at < s.Warmup})
	}
}

// sender picks the sender of a message at offset at, among the members
// that are up then; ok is false when there is none. online is scratch
// space.
func (s *Scenario) sender(r *rand.Rand, members []int, at time.Duration, down timeline, online []int) (node int, ok bool) {
	if s.Traffic.Senders == SendersOne {
		return members[0], down.up(members[0], at)
	}
	// Draw a member; when it is down, draw again among those up. Either
	// way every member that is up is equally likely.
	if m := members[r.IntN(len(members))]; down.up(m, at) {
		return m, true
	}
	for _, m := range members {
		if down.up(m, at) {
			online = append(online, m)
		}
	}
	if len(online) == 0 {
		return 0, false
	}
	return online[r.IntN(len(online))], true
}

// draw draws a message size.
func (z Size) draw(r *rand.Rand) int {
	switch z.Distribution {
	case DistUniform:
		return z.Min + r.IntN(z.Max-z.Min+1)
	case DistLognormal:
		// The conversion keeps the compiler from fusing the multiply and
		// the add, which would change the result on some architectures.
		x := math.Exp(math.Log(float64(z.Median)) + float64(z.Sigma*r.NormFloat64()))
		return int(math.Round(min(max(x, float64(z.Min)), float64(z.Max))))
	}
	return z.Bytes
}

// timeline holds each node's outages, sorted by From.
type timeline [][]Outage

// add adds an outage, which must not overlap the node's others.
func (t timeline) add(o Outage) {
	outages := t[o.Node]
	i, _ := slices.BinarySearchFunc(outages, o.From, func(e Outage, from time.Duration) int { return cmp.Compare(e.From, from) })
	t[o.Node] = slices.Insert(outages, i, o)
}

// up reports whether node is up at offset at.
func (t timeline) up(node int, at time.Duration) bool {
	for _, o := range t[node] {
		if o.From <= at && at < o.To {
			return false
		}
	}
	return true
}

// free reports whether node is up from from to to, with MinPeriod to
// spare on either side.
func (t timeline) free(node int, from, to time.Duration) bool {
	for _, o := range t[node] {
		if o.From < to+MinPeriod && from < o.To+MinPeriod {
			return false
		}
	}
	return true
}

// Online reports whether node is up at offset at: whether it is a node of
// the plan and no outage of it covers at.
func (p *Plan) Online(node int, at time.Duration) bool {
	if node < 0 || node >= p.Nodes {
		return false
	}
	for _, o := range p.Outages {
		if o.Node == node && o.From <= at && at < o.To {
			return false
		}
	}
	return true
}

// OutagesOf returns node's outages, sorted by From.
func (p *Plan) OutagesOf(node int) []Outage {
	var out []Outage
	for _, o := range p.Outages {
		if o.Node == node {
			out = append(out, o)
		}
	}
	return out
}

// GroupsOf returns the indices in p.Groups of the conversations node is a
// member of, in increasing order.
func (p *Plan) GroupsOf(node int) []int {
	var out []int
	for i, g := range p.Groups {
		if slices.Contains(g.Members, node) {
			out = append(out, i)
		}
	}
	return out
}

// Measured returns the number of sends that count in the figures: those
// after the warm-up.
func (p *Plan) Measured() int {
	n := 0
	for _, s := range p.Sends {
		if !s.Warm {
			n++
		}
	}
	return n
}

// WriteTo writes p as text, one line per conversation, outage and send,
// for a dry run or a golden file. Durations are exact (time.Duration's
// String).
func (p *Plan) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "plan nodes=%d duration=%s warmup=%s groups=%d outages=%d sends=%d measured=%d\n",
		p.Nodes, p.Duration, p.Warmup, len(p.Groups), len(p.Outages), len(p.Sends), p.Measured())
	for i, g := range p.Groups {
		fmt.Fprintf(&b, "group %d %s members=%s\n", i, g.Name, joinInts(g.Members))
	}
	for _, o := range p.Outages {
		kind := "offline"
		if o.Kill {
			kind = "kill"
		}
		fmt.Fprintf(&b, "outage node=%d from=%s to=%s %s\n", o.Node, o.From, o.To, kind)
	}
	for _, s := range p.Sends {
		warm := ""
		if s.Warm {
			warm = " warm"
		}
		fmt.Fprintf(&b, "send at=%s group=%d sender=%d size=%d%s\n", s.At, s.Group, s.Sender, s.Size, warm)
	}
	return b.WriteTo(w)
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}
