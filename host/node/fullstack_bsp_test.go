package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
)

// mvdsSection is the sync layer of fullConfig, which the bsp tests
// replace with bspSection.
const mvdsSection = `  sync:
    plugin: mvds
    mode: %[4]s
    config:
      epoch: 50ms
      backoff_max: 8
`

// bspSection is the sync layer of the bsp full-stack tests: test-sized
// latencies (Briar's 30 s would make a lost frame wait a minute).
const bspSection = `  sync:
    plugin: bsp
    mode: %[4]s
    config:
      initial_latency: 100ms
      min_latency: 20ms
      max_latency: 1s
      max_backoff: 2s
`

// bspCfg is fullCfg with the bsp sync layer.
func bspCfg(t testing.TB, dir, name, mode, extra string) *config.Config {
	t.Helper()
	if !strings.Contains(fullConfig, mvdsSection) {
		t.Fatal("fullConfig's sync section changed; update mvdsSection")
	}
	text := fmt.Sprintf(strings.Replace(fullConfig, mvdsSection, bspSection, 1), name, filepath.Join(dir, name), pluginDir, mode, extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Layers["sync"].Plugin != "bsp" {
		t.Fatalf("sync layer %q", cfg.Layers["sync"].Plugin)
	}
	return cfg
}

// TestFullStackBSPLossy is TestFullStackLossy on libp2p+none+
// doubleratchet+bsp: 30% loss, 30% duplication, reordering and jitter at
// every node's p2p boundary; two nodes with each plugin its own process,
// five in process; every message reaches every member's application
// exactly once, after its parents.
func TestFullStackBSPLossy(t *testing.T) {
	for _, tc := range []struct {
		nodes  int
		mode   string
		rounds int
	}{
		{2, config.ModeProcess, 20},
		{5, config.ModeInProc, 6},
	} {
		t.Run(fmt.Sprintf("%d-nodes-%s", tc.nodes, tc.mode), func(t *testing.T) {
			dir := t.TempDir()
			var nodes []*fullNode
			for i := range tc.nodes {
				nodes = append(nodes, startFull(t, bspCfg(t, dir, fmt.Sprintf("n%d", i), tc.mode, fmt.Sprintf(lossy, i+1)), nil))
			}
			logOnFailure(t, nodes...)
			conv := []byte("lossy group")
			mesh(t, nodes, conv)
			want := post(t, nodes, conv, tc.rounds)
			waitAll(t, nodes, want, 90*time.Second)
			var dropped uint64
			for _, n := range nodes {
				dropped += n.Boundaries()[0].Faults["dropped"]
			}
			if dropped == 0 {
				t.Fatal("the injector dropped nothing: the test did not test loss")
			}
		})
	}
}

// TestFullStackBSPOffline is TestFullStackOffline on bsp: a member that
// was stopped (every plugin and the host) while the others talked
// catches up from its peers when it starts again.
func TestFullStackBSPOffline(t *testing.T) {
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 3 {
		nodes = append(nodes, startFull(t, bspCfg(t, dir, fmt.Sprintf("n%d", i), config.ModeInProc, ""), nil))
	}
	logOnFailure(t, nodes...)
	conv := []byte("group with a sleeper")
	mesh(t, nodes, conv)
	before := post(t, nodes, conv, 2)
	waitAll(t, nodes, before, 60*time.Second)

	sleeper := nodes[2]
	sleeper.Close(context.Background())
	during := post(t, nodes[:2], conv, 5)
	waitAll(t, nodes[:2], during, 60*time.Second)

	nodes[2] = startFull(t, sleeper.cfg, sleeper.got)
	waitAll(t, nodes, append(before, during...), 60*time.Second)
}

// TestFullStackBSPAuthorGone: the author of messages that one member
// missed goes offline for good; the member still gets them, after their
// parents, from another member that has them.
func TestFullStackBSPAuthorGone(t *testing.T) {
	dir := t.TempDir()
	var nodes []*fullNode
	for i := range 3 {
		nodes = append(nodes, startFull(t, bspCfg(t, dir, fmt.Sprintf("n%d", i), config.ModeInProc, ""), nil))
	}
	logOnFailure(t, nodes...)
	conv := []byte("author leaves")
	mesh(t, nodes, conv)
	author, keeper, late := nodes[0], nodes[1], nodes[2]
	late.Close(context.Background())
	var want []sent
	var prev [][]byte
	for i := range 5 {
		m, err := author.Send(context.Background(), conv, []byte(fmt.Sprintf("before leaving %d", i)), node.SendOptions{Parents: prev})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sent{id: m.MessageID, author: 0, parents: prev})
		prev = [][]byte{m.MessageID}
	}
	waitAll(t, []*fullNode{author, keeper}, want, 60*time.Second)
	author.Close(context.Background()) // for good
	back := startFull(t, late.cfg, late.got)
	// waitAll indexes authors by position: the author keeps index 0 but
	// is not checked (its node is closed), so check the other two.
	deadline := time.Now().Add(60 * time.Second)
	for _, w := range want {
		for !back.has(w.id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not get %x from %s", back.Name(), w.id[:8], keeper.Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hist, err := back.History(context.Background(), conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range hist {
		pos[string(m.MessageID)] = i
	}
	for _, w := range want {
		for _, p := range w.parents {
			if pos[string(p)] > pos[string(w.id)] {
				t.Fatalf("%x before its parent %x", w.id[:8], p[:8])
			}
		}
		back.mu.Lock()
		c := back.got[string(w.id)]
		back.mu.Unlock()
		if c != 1 {
			t.Fatalf("%x delivered %d times", w.id[:8], c)
		}
	}
}

// TestFullStackBSPKill is TestFullStackKill on bsp: SIGKILL, during
// traffic, of the receiver's bsp plugin and then of the sender's; each is
// restarted by its host, and every message reaches the other side's
// application exactly once.
func TestFullStackBSPKill(t *testing.T) {
	dir := t.TempDir()
	a := startFull(t, bspCfg(t, dir, "a", config.ModeProcess, ""), nil)
	b := startFull(t, bspCfg(t, dir, "b", config.ModeProcess, ""), nil)
	nodes := []*fullNode{a, b}
	logOnFailure(t, nodes...)
	conv := []byte("kill")
	mesh(t, nodes, conv)
	for _, victim := range []*fullNode{b, a} {
		done := make(chan []sent)
		var sentSoFar atomic.Int32
		go func() {
			var out []sent
			var prev [][]byte
			for i := range 40 {
				m, err := a.Send(context.Background(), conv, []byte(fmt.Sprintf("message %d", i)), node.SendOptions{Parents: prev})
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the sync layer is restarting
					continue
				}
				out = append(out, sent{id: m.MessageID, author: 0, parents: prev})
				prev = [][]byte{m.MessageID}
				sentSoFar.Add(1)
				time.Sleep(10 * time.Millisecond) // pace the traffic
			}
			done <- out
		}()
		for sentSoFar.Load() < 8 {
			runtime.Gosched()
		}
		restarts := victim.Restarts("sync")
		if err := syscall.Kill(victim.PluginPID("sync"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		want := <-done
		deadline := time.Now().Add(20 * time.Second)
		for victim.Restarts("sync") == restarts {
			if time.Now().After(deadline) {
				t.Fatalf("%s's bsp plugin was not restarted", victim.Name())
			}
			time.Sleep(20 * time.Millisecond)
		}
		waitAll(t, nodes, want, 60*time.Second)
	}
}
