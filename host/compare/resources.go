package compare

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/testnet"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// resources samples every node of a testnet: CPU time and resident memory
// of its processes from /proc, and its counters from the Stats API. The
// host's counters start again when the host restarts, and a layer's when
// its plugin restarts: what an earlier instance counted is kept.
type resources struct {
	net *testnet.Net

	mu    sync.Mutex
	nodes map[string]*nodeUsage
}

// nodeUsage is what is known of one node.
type nodeUsage struct {
	role    string
	cpu     map[int]float64 // seconds, by pid: the last value read
	allocs  map[int]uint64  // heap allocations (objects), by pid: the last value reported
	kind    map[int]string  // "host" or a layer's key, by pid, as the host named them
	peakRSS uint64

	hostPID  int32
	bounds   map[string]BoundaryTraffic // this host instance's
	doneB    map[string]BoundaryTraffic // earlier instances'
	wirePID  int32
	wire     [3]uint64 // bytes_sent, bytes_received, frames_sent of this p2p instance
	doneWire [3]uint64
	restarts uint64 // this host instance's plugin restarts
	doneRst  uint64
	// counters holds every layer's counters, by layer and by the pid of
	// the process that reported them: each instance's last report.
	counters map[string]map[int32]map[string]uint64
}

func newResources(net *testnet.Net) *resources {
	r := &resources{net: net, nodes: map[string]*nodeUsage{}}
	for _, m := range append(net.Clients(), net.Relays()...) {
		r.nodes[m.Name] = &nodeUsage{role: m.Role, cpu: map[int]float64{}, allocs: map[int]uint64{}, kind: map[int]string{}, bounds: map[string]BoundaryTraffic{}, doneB: map[string]BoundaryTraffic{}, counters: map[string]map[int32]map[string]uint64{}}
	}
	return r
}

// sample reads every node, or only m when it is not nil.
func (r *resources) sample(ctx context.Context, only *testnet.Member) {
	members := append(r.net.Clients(), r.net.Relays()...)
	if only != nil {
		members = []*testnet.Member{only}
	}
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.sampleOne(ctx, m)
		}()
	}
	wg.Wait()
}

func (r *resources) sampleOne(ctx context.Context, m *testnet.Member) {
	pids := m.PIDs()
	var rss uint64
	cpu := map[int]float64{}
	for _, pid := range pids {
		if c, mem, ok := readProc(pid); ok {
			cpu[pid], rss = c, rss+mem
		}
	}
	var stats *appv1.StatsResponse
	if m.Alive() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		stats, _ = m.Client().Stats(sctx, &appv1.StatsRequest{})
		cancel()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.nodes[m.Name]
	for pid, c := range cpu {
		u.cpu[pid] = max(u.cpu[pid], c)
	}
	u.peakRSS = max(u.peakRSS, rss)
	if stats != nil {
		u.take(stats)
	}
}

// take folds a Stats answer into u, starting a new instance when the
// host's or the p2p plugin's process changed.
func (u *nodeUsage) take(s *appv1.StatsResponse) {
	if s.GetPid() != u.hostPID {
		for name, b := range u.bounds {
			u.doneB[name] = addTraffic(u.doneB[name], b)
		}
		u.bounds = map[string]BoundaryTraffic{}
		u.doneRst += u.restarts
		u.restarts = 0
		u.hostPID = s.GetPid()
	}
	u.kind[int(s.GetPid())] = "host"
	u.allocs[int(s.GetPid())] = max(u.allocs[int(s.GetPid())], s.GetHeapAllocs())
	for _, l := range s.GetLayers() {
		if l.GetPid() != 0 && l.GetPid() != s.GetPid() {
			u.kind[int(l.GetPid())] = l.GetLayer()
			if a, ok := l.GetCounters()[sdk.HeapAllocsCounter]; ok {
				u.allocs[int(l.GetPid())] = max(u.allocs[int(l.GetPid())], a)
			}
		}
	}
	for _, b := range s.GetBoundaries() {
		u.bounds[b.GetName()] = BoundaryTraffic{
			Name: b.GetName(), FramesDown: b.GetFramesDown(), FramesUp: b.GetFramesUp(),
			BytesDown: b.GetBytesDown(), BytesUp: b.GetBytesUp(), Dropped: b.GetDropped(),
		}
	}
	var restarts uint64
	for _, l := range s.GetLayers() {
		restarts += l.GetRestarts()
		// In process, a layer has no pid of its own: it lives as long as
		// the host.
		pid := l.GetPid()
		if pid == 0 {
			pid = s.GetPid()
		}
		c := l.GetCounters()
		if len(c) == 0 {
			continue // no health check yet
		}
		if u.counters[l.GetLayer()] == nil {
			u.counters[l.GetLayer()] = map[int32]map[string]uint64{}
		}
		u.counters[l.GetLayer()][pid] = c
		if l.GetLayer() != "p2p" {
			continue
		}
		if pid != u.wirePID {
			for i := range u.wire {
				u.doneWire[i] += u.wire[i]
			}
			u.wire, u.wirePID = [3]uint64{}, pid
		}
		u.wire = [3]uint64{c["bytes_sent"], c["bytes_received"], c["frames_sent"]}
	}
	u.restarts = restarts
}

func addTraffic(a, b BoundaryTraffic) BoundaryTraffic {
	a.Name = b.Name
	a.FramesDown += b.FramesDown
	a.FramesUp += b.FramesUp
	a.BytesDown += b.BytesDown
	a.BytesUp += b.BytesUp
	if len(b.Dropped) > 0 && a.Dropped == nil {
		a.Dropped = map[string]uint64{}
	}
	for k, v := range b.Dropped {
		a.Dropped[k] += v
	}
	return a
}

// fill puts the resource and traffic figures into res.
func (r *resources) fill(res *RunResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := map[string]BoundaryTraffic{}
	var order []string
	for _, m := range append(r.net.Clients(), r.net.Relays()...) {
		u := r.nodes[m.Name]
		n := NodeResult{Name: m.Name, Role: u.role, PeakRSS: u.peakRSS, Restarts: u.doneRst + u.restarts}
		for pid, c := range u.cpu {
			n.CPUSeconds += c
			kind := u.kind[pid]
			if kind == "" {
				kind = "other"
			}
			if n.CPUByProcess == nil {
				n.CPUByProcess = map[string]float64{}
			}
			n.CPUByProcess[kind] += c
			if res.CPUPerDelivered == nil {
				res.CPUPerDelivered = map[string]float64{}
			}
			res.CPUPerDelivered[kind] += c
		}
		for pid, a := range u.allocs {
			kind := u.kind[pid]
			if kind == "" {
				kind = "other"
			}
			if res.AllocsPerDelivered == nil {
				res.AllocsPerDelivered = map[string]float64{}
			}
			res.AllocsPerDelivered[kind] += float64(a)
		}
		for layer, byPID := range u.counters {
			sum := map[string]uint64{}
			for _, c := range byPID {
				for k, v := range c {
					sum[k] += v
				}
			}
			if n.Counters == nil {
				n.Counters = map[string]map[string]uint64{}
			}
			n.Counters[layer] = sum
		}
		n.PrivacyCounters = n.Counters["privacy"]
		n.WireBytesSent = u.doneWire[0] + u.wire[0]
		n.WireBytesReceived = u.doneWire[1] + u.wire[1]
		res.WireBytes += n.WireBytesSent
		res.WireFrames += u.doneWire[2] + u.wire[2]
		res.Nodes = append(res.Nodes, n)
		for _, set := range []map[string]BoundaryTraffic{u.doneB, u.bounds} {
			for name, b := range set {
				if _, ok := total[name]; !ok {
					order = append(order, name)
				}
				total[name] = addTraffic(total[name], b)
			}
		}
	}
	for _, name := range boundaryOrder(order) {
		res.Boundaries = append(res.Boundaries, total[name])
	}
	for k, c := range res.CPUPerDelivered {
		if res.Delivered > 0 {
			res.CPUPerDelivered[k] = c * 1e6 / float64(res.Delivered)
		} else {
			delete(res.CPUPerDelivered, k)
		}
	}
	for k, a := range res.AllocsPerDelivered {
		if res.Delivered > 0 {
			res.AllocsPerDelivered[k] = a / float64(res.Delivered)
		} else {
			delete(res.AllocsPerDelivered, k)
		}
	}
	if res.Delivered > 0 {
		res.BytesPerDelivered = float64(res.WireBytes) / float64(res.Delivered)
		res.FramesPerDelivered = float64(res.WireFrames) / float64(res.Delivered)
	}
	res.Mixnet = mixnetFigures(res.Nodes, res.Duration)
}

// mixnetFigures sums the privacy counters of a mixnet (a privacy layer
// that counts loops_sent) over the run's nodes; nil for other layers.
func mixnetFigures(nodes []NodeResult, d time.Duration) *MixnetResult {
	var m MixnetResult
	var clients int
	var clientOut, clientReal, forwarded, delayMs uint64
	found := false
	for _, n := range nodes {
		c := n.PrivacyCounters
		if _, ok := c["loops_sent"]; !ok {
			continue
		}
		found = true
		if n.Role == "client" {
			clients++
			clientOut += c["packets_out"]
			clientReal += c["real_sent"]
			continue
		}
		m.RelayPacketsIn += c["packets_in"]
		m.RelayPacketsOut += c["packets_out"]
		forwarded += c["packets_forwarded"]
		delayMs += c["queue_delay_ms_total"]
		m.RelayReplayed += c["dropped_replayed"]
		for k, v := range c {
			if strings.HasPrefix(k, "dropped_") {
				m.RelayDropped += v
			}
		}
	}
	if !found {
		return nil
	}
	if clients > 0 && d > 0 {
		m.ClientPacketsPerSecond = float64(clientOut) / float64(clients) / d.Seconds()
	}
	if clientOut > 0 {
		m.ClientCoverShare = 1 - float64(min(clientReal, clientOut))/float64(clientOut)
	}
	if forwarded > 0 {
		m.RelayQueueDelayMs = float64(delayMs) / float64(forwarded)
	}
	return &m
}

// boundaryOrder sorts boundary names bottom up: by the rank of their
// lower layer, then by name.
func boundaryOrder(names []string) []string {
	rank := map[string]int{"p2p": 0, "privacy": 1, "secure": 2, "sync": 3}
	lower := func(s string) int {
		l, _, _ := strings.Cut(s, "|")
		if k, ok := rank[l]; ok {
			return k
		}
		return len(rank)
	}
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(lower(a), lower(b)), strings.Compare(a, b))
	})
	return out
}

// readProc returns a process's CPU time (user+system, seconds) and
// resident set (bytes), from /proc.
func readProc(pid int) (cpu float64, rss uint64, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15,
	// rss (pages) field 24.
	if len(f) < 22 {
		return 0, 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	pages, err3 := strconv.ParseUint(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return float64(ut+st) / clockTicks, pages * uint64(os.Getpagesize()), true
}
