package compare

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/faults"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/host/scenario"
	"github.com/strata-msg/strata/host/testnet"
)

// Options say what to compare and how.
type Options struct {
	// Stacks are the stack configs to compare, A first.
	Stacks []string
	// Scenario is the workload every stack runs.
	Scenario *scenario.Scenario
	// ScenarioFile is where the scenario came from, for the report.
	ScenarioFile string
	// Runs is the number of runs per stack (default 1).
	Runs int
	// Dir holds the testnets' data: <Dir>/<stack>-<run>/. Required; keep
	// it short (a node's API socket lives under it).
	Dir string
	// Binary is the strata executable the testnets run ("": this one).
	Binary string
	// AllowUnverified lets plugin binaries without a recorded checksum
	// run.
	AllowUnverified bool
	// Catalog holds the plugins the hosts run in process, so that
	// testnet.AutoRelays can ask an in-process privacy layer whether it
	// needs relays (testnet.Options.Catalog).
	Catalog plugins.Catalog
	// Relays is the relay count of every testnet, or testnet.AutoRelays.
	Relays int
	// Sample is how often node resources and counters are read (default
	// 500 ms).
	Sample time.Duration
	// Progress, when set, is called about four times a second while a
	// run is in progress.
	Progress func(Progress)
}

// Progress is the state of a comparison, for a progress display.
type Progress struct {
	// Stack is the stack being run, Index its position from 0 among
	// Stacks of them; Run counts from 1 to Runs.
	Stack         string
	Index, Stacks int
	Run, Runs     int
	// Phase is "starting", "sending", "settling" or "stopping".
	Phase string
	// Elapsed and Total are the scenario time done and in all (duration
	// plus settle, for the current run).
	Elapsed, Total time.Duration
	// Sent, Delivered and Expected count measured sends and deliveries
	// so far.
	Sent, Delivered, Expected int
}

// Run runs the scenario on every stack, Runs times each, the stacks taking
// turns run by run, and returns the report. A stack whose testnet does not start, or a run that fails, is
// reported in StackResult.Error and the comparison goes on; Run returns
// an error only for bad options or when ctx ends.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Stacks) == 0 {
		return nil, errors.New("compare: no stack to run")
	}
	if opts.Scenario == nil {
		return nil, errors.New("compare: no scenario")
	}
	if opts.Dir == "" {
		return nil, errors.New("compare: no work directory")
	}
	if opts.Runs <= 0 {
		opts.Runs = 1
	}
	if opts.Sample <= 0 {
		opts.Sample = 500 * time.Millisecond
	}
	sc := opts.Scenario
	rep := &Report{
		Scenario:     sc.Name,
		ScenarioFile: opts.ScenarioFile,
		Description:  sc.Description,
		Seed:         uint64(sc.Seed),
		Runs:         opts.Runs,
		Started:      time.Now().UTC(),
		Machine:      Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()},
	}
	names := stackNames(opts.Stacks)
	stacks := make([]StackResult, len(opts.Stacks))
	errs := make([][]string, len(opts.Stacks))
	for i, path := range opts.Stacks {
		stacks[i] = StackResult{Name: names[i], Config: path}
		cfg, err := config.Load(config.Sources{File: path})
		if err != nil {
			return nil, fmt.Errorf("compare: stack %s: %w", path, err)
		}
		for _, key := range cfg.Stack() {
			stacks[i].Layers = append(stacks[i].Layers, key+"="+cfg.Layers[key].Plugin)
		}
	}
	// Runs take turns across the stacks (run 1 of every stack, then run 2,
	// ...), so that a change in the machine's load during the comparison
	// falls on every stack alike rather than on the last ones.
	for run := 1; run <= opts.Runs; run++ {
		for i, path := range opts.Stacks {
			sr := &stacks[i]
			r := &runner{opts: opts, stack: path, name: sr.Name, index: i, run: run}
			res, relays, err := r.do(ctx)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			sr.Relays = relays
			if err != nil {
				errs[i] = append(errs[i], fmt.Sprintf("run %d: %v", run, err))
				continue
			}
			sr.Runs = append(sr.Runs, res)
		}
	}
	for i := range stacks {
		stacks[i].Error = strings.Join(errs[i], "; ")
		stacks[i].Summary = Summarize(stacks[i].Runs)
	}
	rep.Stacks = stacks
	return rep, nil
}

// stackNames labels stacks by their file names without extension, made
// unique with a suffix where two are alike.
func stackNames(paths []string) []string {
	out := make([]string, len(paths))
	seen := map[string]int{}
	for i, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		seen[base]++
		if k := seen[base]; k > 1 {
			base = fmt.Sprintf("%s-%d", base, k)
		}
		out[i] = base
	}
	return out
}

// errSenderBehind is the failure of a send that came due while its
// sender's queue was full.
var errSenderBehind = fmt.Errorf("the load generator's queue of %d sends was full: the node took sends slower than they came due", sendQueue)

// sendQueue is how many due sends a client's sender may be behind before
// further ones are counted as failed.
const sendQueue = 16384

// runner is one run of the scenario on one stack.
type runner struct {
	opts  Options
	stack string
	name  string
	index int
	run   int

	net  *testnet.Net
	plan *scenario.Plan
	rec  *recorder
	res  *resources
	t0   time.Time

	mu   sync.Mutex
	down map[int]bool // clients the scenario has taken down
	// ready[i] is closed while client i is up; a sender waits on it.
	ready  []chan struct{}
	events []NodeEvent
	dead   map[string]time.Duration
}

// do runs it: testnet up, contacts and conversations, the plan, the
// settle time, then the figures. It returns the relay count too.
func (r *runner) do(ctx context.Context) (RunResult, int, error) {
	sc := r.opts.Scenario
	r.plan = sc.Plan()
	r.progress("starting", 0)
	dir := filepath.Join(r.opts.Dir, fmt.Sprintf("%s-%d", shortName(r.name, r.index), r.run))
	net, err := testnet.Start(ctx, testnet.Options{
		Stack:           r.stack,
		Nodes:           r.plan.Nodes,
		Relays:          r.opts.Relays,
		Dir:             dir,
		Binary:          r.opts.Binary,
		AllowUnverified: r.opts.AllowUnverified,
		Faults:          faultsSection(sc.Faults),
		Catalog:         r.opts.Catalog,
	})
	if err != nil {
		return RunResult{}, 0, err
	}
	r.net = net
	defer func() {
		r.progress("stopping", r.plan.Duration)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		net.Close(cctx)
	}()
	relays := len(net.Relays())
	convs, err := r.setup(ctx)
	if err != nil {
		return RunResult{}, relays, err
	}
	r.rec = newRecorder(r.plan)
	r.res = newResources(net)
	r.down = map[int]bool{}
	r.dead = map[string]time.Duration{}
	r.ready = make([]chan struct{}, r.plan.Nodes)
	for i := range r.ready {
		r.ready[i] = make(chan struct{})
		close(r.ready[i])
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	clients := net.Clients()
	for i, m := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); follow(runCtx, m, i, r.rec) }()
	}
	var senders sync.WaitGroup
	sendersDone := make(chan struct{})
	sendq := make([]chan scenario.Send, len(clients))
	for i := range clients {
		sendq[i] = make(chan scenario.Send, sendQueue)
		wg.Add(1)
		senders.Add(1)
		go func() { defer wg.Done(); defer senders.Done(); r.sender(runCtx, i, sendq[i], convs) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.watch(runCtx) }()

	r.t0 = time.Now()
	r.rec.setStart(r.t0)
	err = r.execute(runCtx, sendq)
	for _, q := range sendq {
		close(q)
	}
	go func() { senders.Wait(); close(sendersDone) }()
	if err == nil {
		r.settle(runCtx, sendersDone)
	}
	end := time.Since(r.t0)
	r.res.sample(runCtx, nil)
	stop()
	wg.Wait()
	if err != nil {
		return RunResult{}, relays, err
	}
	res := r.rec.result(r.plan.Duration)
	res.Run = r.run
	res.Duration = end
	res.SendingEnded = r.plan.Duration
	r.res.fill(&res)
	r.mu.Lock()
	res.Events = append(res.Events, r.events...)
	for i := range res.Nodes {
		if at, ok := r.dead[res.Nodes[i].Name]; ok {
			res.Nodes[i].Died, res.Nodes[i].DiedAt = true, at
		}
	}
	r.mu.Unlock()
	sort.SliceStable(res.Events, func(i, j int) bool { return res.Events[i].At < res.Events[j].At })
	return res, relays, nil
}

// shortName keeps run directories short: socket paths are bounded.
func shortName(name string, index int) string {
	if len(name) > 12 {
		name = name[:12]
	}
	return fmt.Sprintf("%d-%s", index, name)
}

// setup introduces the members of every conversation to each other and
// creates the conversations on every member. It returns the
// conversations' ids, by plan group.
func (r *runner) setup(ctx context.Context) ([][]byte, error) {
	clients := r.net.Clients()
	met := map[[2]int]bool{}
	for _, g := range r.plan.Groups {
		for i, a := range g.Members {
			for _, b := range g.Members[i+1:] {
				k := [2]int{min(a, b), max(a, b)}
				if met[k] {
					continue
				}
				met[k] = true
				if err := r.net.Introduce(ctx, clients[a], clients[b]); err != nil {
					return nil, fmt.Errorf("introduce %s and %s: %w", clients[a].Name, clients[b].Name, err)
				}
			}
		}
	}
	ids := make([][]byte, len(r.plan.Groups))
	for gi, g := range r.plan.Groups {
		sum := sha256.Sum256(fmt.Appendf(nil, "strata compare|%s|%d|%s", r.opts.Scenario.Name, gi, g.Name))
		ids[gi] = sum[:16]
		for _, a := range g.Members {
			var others [][]byte
			for _, b := range g.Members {
				if b != a {
					others = append(others, clients[b].Identity())
				}
			}
			if err := setConversation(ctx, clients[a], ids[gi], others); err != nil {
				return nil, fmt.Errorf("conversation %s on %s: %w", g.Name, clients[a].Name, err)
			}
		}
	}
	return ids, nil
}

// execute walks the plan in time: sends go to their sender's queue,
// outages take nodes down and bring them back. It returns when the
// sending phase is over and every node the plan took down is back.
func (r *runner) execute(ctx context.Context, sendq []chan scenario.Send) error {
	type step struct {
		at   time.Duration
		send *scenario.Send
		out  *scenario.Outage
		up   bool
	}
	var steps []step
	for i := range r.plan.Sends {
		steps = append(steps, step{at: r.plan.Sends[i].At, send: &r.plan.Sends[i]})
	}
	for i := range r.plan.Outages {
		o := &r.plan.Outages[i]
		steps = append(steps, step{at: o.From, out: o}, step{at: o.To, out: o, up: true})
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at < steps[j].at })
	var outages sync.WaitGroup
	defer outages.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for _, st := range steps {
		for {
			wait := time.Until(r.t0.Add(st.at))
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				r.progress("sending", time.Since(r.t0))
			case <-time.After(min(wait, 250*time.Millisecond)):
			}
		}
		switch {
		case st.send != nil:
			select {
			case sendq[st.send.Sender] <- *st.send:
			default:
				r.rec.sendFailed(*st.send, errSenderBehind)
			}
		case !st.up:
			r.takeDown(ctx, st.out)
		default:
			outages.Add(1)
			go func() { defer outages.Done(); r.bringUp(ctx, st.out) }()
		}
	}
	for time.Since(r.t0) < r.plan.Duration {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			r.progress("sending", time.Since(r.t0))
		}
	}
	return nil
}

// takeDown kills or stops a client as the outage says.
func (r *runner) takeDown(ctx context.Context, o *scenario.Outage) {
	m := r.net.Clients()[o.Node]
	r.mu.Lock()
	r.down[o.Node] = true
	r.ready[o.Node] = make(chan struct{})
	r.mu.Unlock()
	r.res.sample(ctx, m) // keep its counters up to this moment
	kind, err := "offline", error(nil)
	if o.Kill {
		kind = "killed"
		err = m.Kill()
	} else {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = m.Stop(sctx)
		cancel()
	}
	r.event(m.Name, kind, err)
}

// bringUp starts a client again after its outage.
func (r *runner) bringUp(ctx context.Context, o *scenario.Outage) {
	m := r.net.Clients()[o.Node]
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := m.Start(sctx)
	cancel()
	kind := "online"
	if o.Kill {
		kind = "restarted"
	}
	r.event(m.Name, kind, err)
	r.mu.Lock()
	r.down[o.Node] = false
	close(r.ready[o.Node])
	r.mu.Unlock()
}

func (r *runner) event(node, kind string, err error) {
	ev := NodeEvent{At: time.Since(r.t0), Node: node, Kind: kind}
	if err != nil {
		ev.Detail = err.Error()
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// watch reports nodes that die on their own: not taken down by the plan,
// yet not alive.
func (r *runner) watch(ctx context.Context) {
	tick := time.NewTicker(r.opts.Sample)
	defer tick.Stop()
	members := append(r.net.Clients(), r.net.Relays()...)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.res.sample(ctx, nil)
		for i, m := range members {
			r.mu.Lock()
			planned := i < r.plan.Nodes && r.down[i]
			_, dead := r.dead[m.Name]
			r.mu.Unlock()
			if planned || dead || m.Alive() {
				continue
			}
			detail := "exited"
			if err := m.ExitErr(); err != nil {
				detail = err.Error()
			}
			at := time.Since(r.t0)
			r.mu.Lock()
			r.dead[m.Name] = at
			r.events = append(r.events, NodeEvent{At: at, Node: m.Name, Kind: "died", Detail: detail})
			r.mu.Unlock()
		}
	}
}

// maxSendBatch bounds the messages of one SendBatch the load generator
// makes.
const maxSendBatch = 256

// sender makes client i's sends, in order, each when the node is up. It
// sends what has come due in one SendBatch (at most maxSendBatch), so that
// while one batch is in flight the next gathers and the generator keeps up
// with any rate the node can take. A send's latency is measured from the
// time the plan made it due, so time it waited behind earlier batches
// counts, or, if its node was down then, from the time the node was back.
func (r *runner) sender(ctx context.Context, i int, q <-chan scenario.Send, convs [][]byte) {
	m := r.net.Clients()[i]
	batch := make([]scenario.Send, 0, maxSendBatch)
	reqs := make([]*appv1.SendRequest, 0, maxSendBatch)
	for s := range q {
		batch = append(batch[:0], s)
	fill:
		for len(batch) < maxSendBatch {
			select {
			case s, ok := <-q:
				if !ok {
					break fill
				}
				batch = append(batch, s)
			default:
				break fill
			}
		}
		r.mu.Lock()
		ready := r.ready[i]
		r.mu.Unlock()
		var back time.Time
		select {
		case <-ready:
		default:
			select {
			case <-ready:
				back = time.Now()
			case <-ctx.Done():
				for _, s := range batch {
					r.rec.sendFailed(s, ctx.Err())
				}
				continue
			}
		}
		reqs = reqs[:0]
		for _, s := range batch {
			reqs = append(reqs, &appv1.SendRequest{Conversation: convs[s.Group], Payload: payloadFor(r.opts.Scenario.Seed, s)})
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ids, err := sendBatch(sctx, m, reqs)
		cancel()
		accepted := time.Now()
		for k, s := range batch {
			if err != nil {
				r.rec.sendFailed(s, err)
				continue
			}
			at := r.t0.Add(s.At)
			if back.After(at) {
				at = back
			}
			r.rec.sent(ids[k], at, accepted, s)
		}
	}
}

// settle waits, after the sending phase, until every expected delivery
// has happened or the scenario's settle time is over. Sends still queued
// behind a slow node are made first (sent is closed when the senders are
// done): until then the expected deliveries are not all known.
func (r *runner) settle(ctx context.Context, sent <-chan struct{}) {
	deadline := time.Now().Add(r.opts.Scenario.Settle)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if isClosed(sent) && r.rec.complete() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.progress("settling", time.Since(r.t0))
		}
	}
}

func (r *runner) progress(phase string, elapsed time.Duration) {
	if r.opts.Progress == nil {
		return
	}
	p := Progress{
		Stack: r.name, Index: r.index, Stacks: len(r.opts.Stacks), Run: r.run, Runs: r.opts.Runs,
		Phase: phase, Elapsed: elapsed, Total: r.opts.Scenario.Duration + r.opts.Scenario.Settle,
	}
	if r.rec != nil {
		p.Sent, p.Delivered, p.Expected = r.rec.counts()
	}
	r.opts.Progress(p)
}

// payloadFor is the payload of a send: its time, group and sender, then
// bytes drawn from the scenario's seed and the send's place, so the same
// seed sends the same bytes.
func payloadFor(seed int64, s scenario.Send) []byte {
	head := fmt.Appendf(nil, "strata-compare %d %d %d|", s.At.Nanoseconds(), s.Group, s.Sender)
	if s.Size <= len(head) {
		return head[:s.Size]
	}
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(s.At.Nanoseconds())^uint64(s.Group)<<48^uint64(s.Sender)<<32))
	out := make([]byte, s.Size)
	copy(out, head)
	for i := len(head); i < len(out); i++ {
		out[i] = byte(rng.Uint32())
	}
	return out
}

// faultsSection is cfg as a host config's faults: section. Without faults
// it is empty, not nil: the scenario's environment replaces any faults a
// stack file has, so every stack meets the same one.
func faultsSection(cfg faults.Config) map[string]any {
	if len(cfg.Boundaries) == 0 {
		return map[string]any{}
	}
	out := map[string]any{"seed": cfg.Seed}
	for name, s := range cfg.Boundaries {
		spec := map[string]any{}
		if s.Drop > 0 {
			spec["drop"] = s.Drop
		}
		if s.Duplicate > 0 {
			spec["duplicate"] = s.Duplicate
		}
		if s.Reorder > 0 {
			spec["reorder"] = s.Reorder
		}
		if s.Delay > 0 {
			spec["delay"] = s.Delay.String()
		}
		if s.Jitter > 0 {
			spec["jitter"] = s.Jitter.String()
		}
		if s.Direction != "" {
			spec["direction"] = s.Direction
		}
		out[name] = spec
	}
	return out
}

// isClosed says whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
