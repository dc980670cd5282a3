package testnet_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestSecondStack runs the mission's second stack,
// configs/libp2p-mixnet-mls-bsp.yaml, as `strata testnet` does: every
// layer a plugin process, a Loopix mixnet of 3 layers × 2 mixes and 2
// providers, the group an MLS group that the hosts' SetConversation makes
// (one Commit and Welcomes through the mixnet), BSP above it. Every member
// sends and every message reaches every other member exactly once.
//
// Without -short: a group of five with loss, duplication and reordering
// between the privacy and secure layers of every client; a member offline
// (its host stopped) while the others write, then back and caught up; and
// each plugin process of one member (p2p, privacy, secure, sync) killed
// with SIGKILL in turn during traffic to and from it, each restarted by
// its host. -short: a group of three on a clean network, one message each.
func TestSecondStack(t *testing.T) {
	members := 3
	opts := testnet.Options{Stack: stackFile(t, "libp2p-mixnet-mls-bsp.yaml"), Relays: testnet.AutoRelays}
	if !testing.Short() {
		members = 5
		opts.Faults = map[string]any{"seed": 19, "privacy": map[string]any{"drop": 0.15, "duplicate": 0.05, "reorder": 4}}
	}
	opts.Nodes = members
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	n := startNet(t, opts)
	t.Logf("%d clients and %d relays started in %v", len(n.Clients()), len(n.Relays()), time.Since(began).Round(time.Millisecond))
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	clients := n.Clients()
	room := []byte("the second stack")
	conversation(t, ctx, room, clients...)

	h := &roomHistory{room: room}
	began = time.Now()
	for _, m := range clients {
		h.send(t, ctx, m, fmt.Sprintf("hello from %s", m.Name))
	}
	h.awaitEveryone(t, ctx, clients, 3*time.Minute)
	t.Logf("group of %d: every first message everywhere in %v", members, time.Since(began).Round(time.Millisecond))
	if testing.Short() {
		return
	}

	// Offline: the last member's host stops; the others write; it comes
	// back and catches up, and what it writes then reaches everyone.
	away := clients[len(clients)-1]
	if err := away.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range clients[:len(clients)-1] {
		for i := range 2 {
			h.send(t, ctx, m, fmt.Sprintf("%s, while %s is away, %d", m.Name, away.Name, i))
		}
	}
	h.awaitEveryone(t, ctx, clients[:len(clients)-1], 3*time.Minute)
	began = time.Now()
	if err := away.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.send(t, ctx, away, away.Name+" is back")
	h.awaitEveryone(t, ctx, clients, 4*time.Minute)
	t.Logf("%s back and caught up in %v", away.Name, time.Since(began).Round(time.Millisecond))

	// Each plugin of n1 killed with -9 during traffic from n0 and n1; a
	// Send that returned is a message that must arrive, once.
	n0, n1 := n.Member("n0"), n.Member("n1")
	for _, plugin := range []string{"libp2p", "mixnet", "mls", "bsp"} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 6 {
				h.trySend(ctx, n0, fmt.Sprintf("n0 while n1's %s restarts, %d", plugin, i))
				h.trySend(ctx, n1, fmt.Sprintf("n1 while its %s restarts, %d", plugin, i))
				time.Sleep(300 * time.Millisecond)
			}
		}()
		time.Sleep(500 * time.Millisecond)
		pid := pluginPID(t, n1, plugin)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill n1's %s (pid %d): %v", plugin, pid, err)
		}
		<-done
		awaitRestarted(t, n1, plugin, pid)
	}
	began = time.Now()
	h.awaitEveryone(t, ctx, clients, 5*time.Minute)
	t.Logf("after n1's four plugins were killed, every message everywhere in %v", time.Since(began).Round(time.Millisecond))
}

// roomHistory is what the members of one conversation sent, by author.
type roomHistory struct {
	room []byte
	mu   sync.Mutex
	sent map[string]string // payload → author
}

// send sends payload from m and fails the test if Send fails.
func (h *roomHistory) send(t *testing.T, ctx context.Context, m *testnet.Member, payload string) {
	t.Helper()
	if !h.trySend(ctx, m, payload) {
		t.Fatalf("%s could not send %q\n%s", m.Name, payload, m.LogTail(30))
	}
}

// trySend sends payload from m and records it if Send returned: a message
// the node acknowledged.
func (h *roomHistory) trySend(ctx context.Context, m *testnet.Member, payload string) bool {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.Client().Send(sctx, &appv1.SendRequest{Conversation: h.room, Payload: []byte(payload)}); err != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sent == nil {
		h.sent = map[string]string{}
	}
	h.sent[payload] = m.Name
	return true
}

// awaitEveryone waits until every member's history holds every message
// sent so far exactly once, and fails on a repeat or when d passes.
func (h *roomHistory) awaitEveryone(t *testing.T, ctx context.Context, ms []*testnet.Member, d time.Duration) {
	t.Helper()
	h.mu.Lock()
	want := make(map[string]string, len(h.sent))
	for p, a := range h.sent {
		want[p] = a
	}
	h.mu.Unlock()
	deadline := time.Now().Add(d)
	for _, m := range ms {
		for {
			hist, err := m.Client().History(ctx, &appv1.HistoryRequest{Conversation: h.room})
			var missing []string
			if err == nil {
				count := map[string]int{}
				for _, msg := range hist.GetMessages() {
					count[string(msg.GetPayload())]++
				}
				for p := range want {
					switch count[p] {
					case 0:
						missing = append(missing, p)
					case 1:
					default:
						t.Fatalf("%s has %q %d times", m.Name, p, count[p])
					}
				}
			}
			if err == nil && len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				slices.Sort(missing)
				for _, o := range ms {
					if st, err := o.Client().Stats(ctx, &appv1.StatsRequest{}); err == nil {
						for _, l := range st.GetLayers() {
							t.Logf("%s %s: %v", o.Name, l.GetLayer(), nonZero(l.GetCounters()))
						}
					}
				}
				t.Fatalf("%s: %d of %d messages missing: %q; history error %v\n%s", m.Name, len(missing), len(want), missing, err, m.LogTail(40))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// pluginPID is the process id of m's plugin process strata-plugin-<name>.
func pluginPID(t *testing.T, m *testnet.Member, name string) int {
	t.Helper()
	for _, pid := range m.PIDs()[1:] {
		if isPlugin(pid, name) {
			return pid
		}
	}
	t.Fatalf("%s runs no strata-plugin-%s among %v", m.Name, name, m.PIDs())
	return 0
}

func isPlugin(pid int, name string) bool {
	cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmd, []byte{0})
	return filepath.Base(string(argv0)) == "strata-plugin-"+name
}

// awaitRestarted waits until m's host runs strata-plugin-<name> again, in a
// process other than old.
func awaitRestarted(t *testing.T, m *testnet.Member, name string, old int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, pid := range m.PIDs()[1:] {
			if pid != old && isPlugin(pid, name) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s's host did not start strata-plugin-%s again\n%s", m.Name, name, strings.TrimSpace(m.LogTail(30)))
}

// nonZero is counters without its zeros, for a failure's report.
func nonZero(counters map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range counters {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
