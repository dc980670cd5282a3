package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/plugins/mls/layer"
)

// mlsConfig is libp2p + none + mls + mvds with test-sized timings.
const mlsConfig = `
node:
  name: %[1]s
  data_dir: %[2]s
plugins:
  dir: %[3]s
  restart:
    initial: 50ms
    max: 1s
layers:
  p2p:
    plugin: libp2p
    mode: %[4]s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
    mode: %[4]s
  secure:
    plugin: mls
    mode: %[4]s
    config:
      settle_window: 5s
      branch_retention: 30s
      retransmit_initial: 300ms
      retransmit_max: 2s
      takeover_timeout: 5s
  sync:
    plugin: mvds
    mode: %[4]s
    config:
      epoch: 50ms
      backoff_max: 8
api:
  listen: "off"
%[5]s`

// startMLS starts a node of mlsConfig in process, with the mls layer in
// the catalog.
func startMLS(t *testing.T, dir, name, extra string, edits ...func(string) string) *fullNode {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(mlsConfig, name, filepath.Join(dir, name), pluginDir, config.ModeInProc, extra)
	for _, edit := range edits {
		text = edit(text)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fullNode{cfg: cfg, got: map[string]int{}}
	n, err := node.New(cfg, node.Options{
		Catalog:        catalog().Add(func() sdk.Layer { return layer.New() }),
		Logger:         hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error, Output: os.Stderr}),
		Deliver:        f.deliver,
		HealthInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	f.Node = n
	return f
}

// TestFullStackMLS runs libp2p+none+mls+mvds through the host, in process,
// with loss, duplication and reordering at every node's p2p boundary: a
// group of four made by the hosts' SetConversation, every message reaching
// every member's application once, after its parents; the group's Commit
// and Welcomes get through the loss by the layer's own retransmission.
func TestFullStackMLS(t *testing.T) {
	if testing.Short() {
		t.Skip("a full stack of four nodes; runs without -short")
	}
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 4 {
		nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("m%d", i), fmt.Sprintf(lossy, i+1)))
	}
	logOnFailure(t, nodes...)
	conv := []byte("mls group")
	mesh(t, nodes, conv)
	want := post(t, nodes, conv, 5)
	waitAll(t, nodes, want, 90*time.Second)
	var commits, joined uint64
	for _, n := range nodes {
		c, err := n.LayerCounters(context.Background(), "secure")
		if err != nil {
			t.Fatal(err)
		}
		commits += c["commits_made"]
		joined += c["welcomes_joined"]
		if c["sealed"] == 0 || c["opened"] == 0 {
			t.Errorf("%s: sealed %d, opened %d", n.Name(), c["sealed"], c["opened"])
		}
	}
	if commits == 0 || joined < 3 {
		t.Fatalf("commits %d, welcomes joined %d: the group was not made by the layer", commits, joined)
	}
}

// TestFullStackMLSKill runs libp2p+none+mls+mvds with every plugin its
// own process and kills the committer's mls plugin with SIGKILL right
// after its host asked it to add a member: the host restarts it, the
// restarted layer finds the Commit (or the request) in its database and
// sends it again, and afterwards every member, the new one included, is
// in the group and every message reaches every member once.
func TestFullStackMLSKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mls plugin and runs four full stacks; runs without -short")
	}
	plugDir := t.TempDir()
	entries, err := os.ReadDir(pluginDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "strata.lock" {
			raw, err := os.ReadFile(filepath.Join(pluginDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(plugDir, e.Name()), raw, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := sdktest.Build(plugDir, "github.com/strata-msg/strata/plugins/mls/cmd/strata-plugin-mls", layer.Name); err != nil {
		t.Fatal(err)
	}
	if err := writeLock(plugDir); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 4 {
		name := fmt.Sprintf("k%d", i)
		text := fmt.Sprintf(mlsConfig, name, filepath.Join(dir, name), plugDir, config.ModeProcess, "")
		nodes = append(nodes, startFull(t, writeConfig(t, dir, name, text), nil))
	}
	logOnFailure(t, nodes...)
	// The committer is the member with the lowest identity.
	slices.SortFunc(nodes, func(x, y *fullNode) int { return bytes.Compare(x.Identity(), y.Identity()) })
	ctx := context.Background()
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				if _, err := x.AddContact(ctx, y.CardText()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	conv := []byte("mls kill")
	three := nodes[:3]
	var ids []ed25519.PublicKey
	for _, n := range three {
		waitPeers(t, n.Node, len(nodes)-1)
		ids = append(ids, n.Identity())
	}
	for _, n := range three {
		if err := n.SetConversation(ctx, conv, ids); err != nil {
			t.Fatal(err)
		}
	}
	before := post(t, three, conv, 3)
	waitAll(t, three, before, 60*time.Second)

	committer := nodes[0]
	restarts := committer.Restarts("secure")
	ids = append(ids, nodes[3].Identity())
	if err := committer.SetConversation(ctx, conv, ids); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(committer.PluginPID("secure"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := n.SetConversation(ctx, conv, ids); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for committer.Restarts("secure") == restarts {
		if time.Now().After(deadline) {
			t.Fatal("the committer's mls plugin was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Everyone talks, the new member included: its messages sealed before
	// its Welcome arrived wait for it, and the sync layer sends the
	// others' again until it has them.
	after := post(t, nodes, conv, 3)
	waitAll(t, nodes, after, 90*time.Second)
	waitAll(t, three, before, 10*time.Second)
}

// TestFullStackMLSGroupSizes runs groups of 2, 8 and 20 members (or
// STRATA_MLS_GROUP_SIZE) through the host (libp2p+none+mls+mvds in
// process; above shardSize members in several processes of this binary,
// runSharded): every node a contact of every other, so that each also has
// a 1:1 conversation with each (its MLS group made, from the same cards,
// only when something is sent in it).
func TestFullStackMLSGroupSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("up to twenty full stacks; runs without -short")
	}
	sizes := []int{2, 8, 20}
	if s := os.Getenv("STRATA_MLS_GROUP_SIZE"); s != "" {
		// A larger run by hand: STRATA_MLS_GROUP_SIZE=200.
		size, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		sizes = []int{size}
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if size > shardSize {
				runSharded(t, size)
				return
			}
			dir := t.TempDir()
			start := time.Now()
			var edits []func(string) string
			if size > 20 {
				edits = append(edits, largeGroup(size))
			}
			var nodes []*fullNode
			for i := range size {
				nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("s%d", i), "", edits...))
			}
			logOnFailure(t, nodes...)
			t.Logf("%d stacks started in %v", size, time.Since(start).Round(time.Millisecond))
			if size > 20 {
				// A run by hand: show where it is every 30 s.
				stop := make(chan struct{})
				defer close(stop)
				go progress(t, nodes, start, stop)
			}
			phase := time.Now()
			conv := []byte(fmt.Sprintf("mls group of %d", size))
			if size > 20 {
				meshParallel(t, nodes, conv)
			} else {
				mesh(t, nodes, conv)
			}
			t.Logf("contacts and conversation given in %v", time.Since(phase).Round(time.Millisecond))
			phase = time.Now()
			want := post(t, nodes, conv, 2)
			waitAll(t, nodes, want, time.Duration(30+10*size)*time.Second)
			t.Logf("%d messages reached every member in %v (total %v)", len(want), time.Since(phase).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			logMLSCounters(t, nodes)
		})
	}
}

// largeGroup is the config of the runs above twenty members. libp2p
// listens on QUIC only (one socket per node: over TCP every pair's
// connection is a descriptor at each end, 39,800 for 200 nodes in one
// process, twice this machine's limit) and keeps a connection to every
// member (conn_low above the group's size). mls ticks every 250 ms
// (retransmit_initial 1 s): a tick visits every conversation, and every
// node here has one with every other. mvds uses an epoch of 3 s up to 100
// members and 3 s × (n/100)² above (12 s at 200): at each epoch a
// member's acks go to the whole group in one payload, which every member
// opens, so the group's acks cost n(n-1) opens per epoch, and at 200
// members and 3 s that alone was more than two CPUs could open. An ack
// waits up to 3 epochs to ride on another payload (ack_delay), which
// divides the acks by up to three while messages flow, and an author sends
// a message again after 6 epochs (backoff_base): with 2, the acks of
// members busy opening came after it nearly always, and each
// retransmission was one more frame to open. mvds runs with relay off,
// and group acks and retransmissions:
//   - Relay on makes every member offer every message it receives to
//     every other member: n(n-1) payloads per post, 39,800 at 200 members
//     (relay_delay postpones the offers, only group_acks cancels them).
//   - A payload for one member of an MLS group still uses a generation of
//     its sender's ratchet, which every other member then skips. With
//     acks and retransmissions per member, each member's state held 256
//     skipped keys for every sender, written to its database after every
//     batch, and a member that missed more than 1,000 of a sender's
//     generations could no longer open its frames: the run of 200 in one
//     process did not finish. Group acks and group retransmissions go to
//     the whole group in one payload, sealed once and opened by every
//     member, and mls keeps 16 skipped keys per sender (skipped_keys):
//     each member's frames reach another in order over one connection, so
//     nearly all the keys kept are those of frames for other members.
//
// Without relay, a message's author alone sends it to the members that
// have not acknowledged it: a group that large needs its members online,
// or the author to stay until they are.
func largeGroup(size int) func(string) string {
	epoch := 3 * time.Second
	if size > 100 {
		epoch = epoch * time.Duration(size*size) / (100 * 100)
	}
	return func(text string) string {
		text = strings.Replace(text, `      listen: ["/ip4/127.0.0.1/tcp/0"]`+"\n",
			`      listen: ["/ip4/127.0.0.1/udp/0/quic-v1"]`+"\n      conn_low: 1000\n      conn_high: 2000\n", 1)
		text = strings.Replace(text, "      retransmit_initial: 300ms\n", "      retransmit_initial: 1s\n      skipped_keys: 16\n", 1)
		return strings.Replace(text, "      epoch: 50ms\n", fmt.Sprintf("      epoch: %v\n      backoff_base: 6\n      ack_delay: 3\n      relay: false\n      group_acks: true\n      group_retransmit: true\n", epoch), 1)
	}
}

// TestFullStackMLSRace makes every member commit the same change at once
// (takeover_timeout: 1ms, so that no one waits for the first in commit
// order) while all of them send: the competing Commits meet through the
// host, every member converges on one branch (the new member included),
// and every message sent during the race reaches every member once.
func TestFullStackMLSRace(t *testing.T) {
	if testing.Short() {
		t.Skip("four full stacks; runs without -short")
	}
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 4 {
		// 50 ms on the wire: a Commit takes longer to arrive than the
		// others wait before they commit too.
		slow := fmt.Sprintf("faults:\n  seed: %d\n  p2p: {delay: 50ms, jitter: 5ms}\n", i+1)
		nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("r%d", i), slow, func(text string) string {
			return strings.Replace(text, "takeover_timeout: 5s", "takeover_timeout: 1ms", 1)
		}))
	}
	logOnFailure(t, nodes...)
	ctx := context.Background()
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				if _, err := x.AddContact(ctx, y.CardText()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	conv := []byte("mls race")
	three := nodes[:3]
	var ids []ed25519.PublicKey
	for _, n := range three {
		waitPeers(t, n.Node, len(nodes)-1)
		ids = append(ids, n.Identity())
	}
	for _, n := range three {
		if err := n.SetConversation(ctx, conv, ids); err != nil {
			t.Fatal(err)
		}
	}
	before := post(t, three, conv, 2)
	waitAll(t, three, before, 60*time.Second)
	ids = append(ids, nodes[3].Identity())
	// The new member's host has the conversation before it posts (a Send
	// racing its own SetConversation may reach a layer that does not have
	// it yet); the three members' hosts take the addition at once, so
	// that their layers race to commit it.
	if err := nodes[3].SetConversation(ctx, conv, ids); err != nil {
		t.Fatal(err)
	}
	for _, n := range three {
		go n.SetConversation(ctx, conv, ids)
	}
	during := post(t, nodes, conv, 3)
	waitAll(t, nodes, during, 120*time.Second)
	var forks uint64
	for _, n := range nodes {
		c, err := n.LayerCounters(ctx, "secure")
		if err != nil {
			t.Fatal(err)
		}
		forks += c["forks_detected"]
		t.Logf("%s: commits %d, rollbacks %d, forks detected %d resolved %d unresolved %d, opened in a losing branch %d",
			n.Name(), c["commits_made"], c["rollbacks"], c["forks_detected"], c["forks_resolved"], c["forks_unresolved"], c["opened_in_losing_branch"])
	}
	if forks == 0 {
		t.Fatal("no two Commits met: the test did not race")
	}
}

// TestFullStackMLSLearned gives the conversation to its first member's
// host only: the others learn it from the mls layer's Welcome
// (ConversationLearned), their hosts store it without any announcement,
// and messages flow both ways.
func TestFullStackMLSLearned(t *testing.T) {
	if testing.Short() {
		t.Skip("three full stacks; runs without -short")
	}
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 3 {
		nodes = append(nodes, startMLS(t, dir, fmt.Sprintf("l%d", i), ""))
	}
	logOnFailure(t, nodes...)
	slices.SortFunc(nodes, func(x, y *fullNode) int { return bytes.Compare(x.Identity(), y.Identity()) })
	ctx := context.Background()
	var ids []ed25519.PublicKey
	for _, x := range nodes {
		ids = append(ids, x.Identity())
		for _, y := range nodes {
			if x != y {
				if _, err := x.AddContact(ctx, y.CardText()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, n := range nodes {
		waitPeers(t, n.Node, len(nodes)-1)
	}
	conv := []byte("mls learned")
	if err := nodes[0].SetConversation(ctx, conv, ids); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		deadline := time.Now().Add(60 * time.Second)
		for !knows(t, n, conv) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the host never stored the conversation from the layer: %v", n.Name(), n.LayerEventStats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want := post(t, nodes, conv, 3)
	waitAll(t, nodes, want, 60*time.Second)
}

// knows reports whether n's host has stored the conversation.
func knows(t *testing.T, n *fullNode, conv []byte) bool {
	t.Helper()
	cs, err := n.Conversations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(cs, func(c *conversations.Conversation) bool { return bytes.Equal(c.ID, conv) })
}

// logMLSCounters logs the sum over nodes of the mls layer's counters that
// measure its traffic.
func logMLSCounters(t *testing.T, nodes []*fullNode) {
	t.Helper()
	sum := map[string]uint64{}
	for _, n := range nodes {
		c, err := n.LayerCounters(context.Background(), "secure")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c {
			sum[k] += v
		}
	}
	var parts []string
	for _, k := range []string{"commits_made", "commits_applied", "welcomes_joined", "status_sent", "status_received", "retransmitted",
		"duplicates", "forks_detected", "held_down", "held_up", "sealed", "opened", "lazy_groups_needed", "group_asks_sent", "group_asks_received"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, sum[k]))
	}
	for k, v := range sum {
		if strings.HasPrefix(k, "dropped_") && v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	t.Log("mls counters over all nodes: " + strings.Join(parts, ", "))
}

// progress logs, every 30 s until stop is closed, the sums of a few mls
// and mvds counters, the messages handed to the applications, the
// goroutines and the heap: where a large run is. With
// STRATA_MLS_PROFILE_DIR set it also writes a CPU profile of each 30 s
// there (cpu-<process id>-<seconds since start>.pprof), and its
// goroutines grouped by stack at the start of each 30 s
// (goroutines-<process id>-<seconds>.txt), so that a run that never
// finishes still shows where its time goes and what it waits for.
func progress(t *testing.T, nodes []*fullNode, start time.Time, stop <-chan struct{}) {
	tk := time.NewTicker(30 * time.Second)
	defer tk.Stop()
	dir := os.Getenv("STRATA_MLS_PROFILE_DIR")
	var prof *os.File
	profile := func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
			prof = nil
		}
		if dir == "" {
			return
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d-%04d.pprof", os.Getpid(), int(time.Since(start).Seconds()))))
		if err != nil {
			t.Logf("profile: %v", err)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			t.Logf("profile: %v", err)
			return
		}
		prof = f
		// And what every goroutine waits on, grouped by stack.
		g, err := os.Create(filepath.Join(dir, fmt.Sprintf("goroutines-%d-%04d.txt", os.Getpid(), int(time.Since(start).Seconds()))))
		if err != nil {
			t.Logf("profile: %v", err)
			return
		}
		defer g.Close()
		if err := pprof.Lookup("goroutine").WriteTo(g, 1); err != nil {
			t.Logf("profile: %v", err)
		}
	}
	profile()
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		profile()
		// A layer that has not answered 10 s into the round is left out
		// of the sums (and counted), so that the log goes on when layers
		// are stuck.
		round := time.Now().Add(10 * time.Second)
		sum := map[string]uint64{}
		busy := 0
		for _, n := range nodes {
			c, err := countersWithin(n, "secure", time.Until(round))
			if err != nil {
				busy++
				continue
			}
			for k, v := range c {
				sum[k] += v
			}
		}
		syncSum := map[string]uint64{}
		got := 0
		for _, n := range nodes {
			if c, err := countersWithin(n, "sync", time.Until(round)); err == nil {
				for k, v := range c {
					syncSum[k] += v
				}
			} else {
				busy++
			}
			n.mu.Lock()
			got += len(n.got)
			n.mu.Unlock()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("%v: %d layers did not answer; mls: welcomes_joined %d, commits_made %d, status_sent %d, retransmitted %d, sealed %d, opened %d; "+
			"mvds: sent %d, multicast_payloads %d, retransmissions %d (to the group %d), acks_sent %d, delivered %d; delivered to applications %d; %d goroutines, heap %d MiB",
			time.Since(start).Round(time.Second), busy, sum["welcomes_joined"], sum["commits_made"], sum["status_sent"], sum["retransmitted"],
			sum["sealed"], sum["opened"], syncSum["sent"], syncSum["multicast_payloads"], syncSum["retransmissions"], syncSum["group_retransmissions"], syncSum["acks_sent"],
			syncSum["delivered"], got, runtime.NumGoroutine(), ms.HeapAlloc>>20)
	}
}

// countersWithin returns a layer's counters, or an error when it has not
// answered within d: a layer in process answers its Health call only
// between its batches, whatever the context says, so the call is left to
// finish on its own.
func countersWithin(n *fullNode, kind string, d time.Duration) (map[string]uint64, error) {
	if d <= 0 {
		return nil, fmt.Errorf("%s: no time left to ask the %s layer", n.Name(), kind)
	}
	type answer struct {
		c   map[string]uint64
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		c, err := n.LayerCounters(context.Background(), kind)
		ch <- answer{c, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-t.C:
		return nil, fmt.Errorf("%s: the %s layer did not answer within %v", n.Name(), kind, d)
	}
}

// meshParallel is mesh for a run by hand with many nodes: every node adds
// its contacts in its own goroutine (mesh adds them one after another, and
// each AddContact waits for several synchronous database commits: at 200
// nodes, 39,800 of them took most of an hour), then waits for its peers,
// then gets the conversation.
func meshParallel(t *testing.T, nodes []*fullNode, conv []byte) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	cards := make([]string, len(nodes))
	var members []ed25519.PublicKey
	for i, n := range nodes {
		cards[i] = n.CardText()
		members = append(members, n.Identity())
	}
	errs := make(chan error, len(nodes))
	for i, a := range nodes {
		go func() {
			for j := range nodes {
				if j == i {
					continue
				}
				if _, err := a.AddContact(ctx, cards[j]); err != nil {
					errs <- fmt.Errorf("%s adds %s: %w", a.Name(), nodes[j].Name(), err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d contacts added in %v", len(nodes)*(len(nodes)-1), time.Since(start).Round(time.Millisecond))
	waitMeshed(t, nodes, len(nodes)-1)
	t.Logf("every node connected to every other after %v", time.Since(start).Round(time.Millisecond))
	slowest := giveConversation(t, nodes, conv, members)
	t.Logf("conversation given to every host, the slowest call %v", slowest.Round(time.Millisecond))
}

// waitMeshed waits up to ten minutes until every node's overlay has at
// least want peers.
func waitMeshed(t *testing.T, nodes []*fullNode, want int) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	deadline := start.Add(10 * time.Minute)
	peers := func(n *fullNode) int {
		conn, err := n.Control("p2p")
		if err != nil {
			return -1
		}
		resp, err := p2pv1.NewControlClient(conn.Control()).Peers(ctx, &p2pv1.PeersRequest{})
		if err != nil {
			return -1
		}
		return len(resp.GetPeers())
	}
	next := start.Add(30 * time.Second)
	for i, n := range nodes {
		for peers(n) < want {
			if time.Now().After(next) {
				// Where the mesh stands: the nodes still short, with their
				// peer counts.
				var short []string
				for _, m := range nodes[i:] {
					if c := peers(m); c < want {
						short = append(short, fmt.Sprintf("%s %d", m.Name(), c))
					}
				}
				t.Logf("meshing for %v: %d nodes have fewer than %d peers: %s",
					time.Since(start).Round(time.Second), len(short), want, strings.Join(short, ", "))
				next = time.Now().Add(30 * time.Second)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has fewer than %d peers", n.Name(), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// giveConversation gives every node's host the conversation and returns
// the slowest call. Each host's call into its mls layer waits for the
// batch or tick in progress there, and with many stacks on two CPUs that
// can pass the 30 s a control call gets by default: each call gets five
// minutes.
func giveConversation(t *testing.T, nodes []*fullNode, conv []byte, members []ed25519.PublicKey) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, n := range nodes {
		callStart := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := n.SetConversation(ctx, conv, members)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(callStart))
	}
	return slowest
}
