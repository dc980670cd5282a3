package testnet_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestMixnet runs each mixnet stack as `strata testnet` would: the testnet
// builds a mixnet of 3 layers × 2 mixes and 2 providers, each a `strata
// run` relay, and two clients on different providers; a message goes each
// way through the API and arrives (so through a provider, three mixes and
// the other provider, and a pull), and Close leaves no process. Without
// -short, a mix and a provider are then killed with -9 and started again,
// and a message still arrives; and the testnet starts again on its
// directory, with the same mixnet. Each stack starts 10 hosts and 34
// processes (about 8 s on two cores; 15 s for libp2p and 45 s for devp2p
// without -short); -short runs the libp2p one only, without the restarts.
func TestMixnet(t *testing.T) {
	for _, stack := range []string{"libp2p-mixnet-dr-mvds.yaml", "devp2p-mixnet-dr-mvds.yaml"} {
		t.Run(strings.TrimSuffix(stack, "-mixnet-dr-mvds.yaml"), func(t *testing.T) {
			if testing.Short() && strings.HasPrefix(stack, "devp2p") {
				t.Skip("the devp2p mixnet: not in -short")
			}
			testMixnet(t, stack)
		})
	}
}

// restartWait bounds a message's way after relays restarted. devp2p
// (go-ethereum's dialer) redials a static peer only once its dial history
// entry expires, 35 s after the last dial, so a devp2p mixnet is whole
// again about half a minute after a relay restarts; libp2p redials within
// a second or two.
const restartWait = 80 * time.Second

func testMixnet(t *testing.T, stack string) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	began := time.Now()
	n := startNet(t, testnet.Options{Stack: stackFile(t, stack), Nodes: 2, Relays: testnet.AutoRelays})
	t.Logf("started in %v", time.Since(began).Round(time.Millisecond))

	want := []string{"mix-0-0", "mix-0-1", "mix-1-0", "mix-1-1", "mix-2-0", "mix-2-1", "provider-0", "provider-1"}
	var names []string
	for _, r := range n.Relays() {
		names = append(names, r.Name)
		st, err := r.Client().Stats(ctx, &appv1.StatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Role != testnet.RoleRelay || st.GetRole() != "relay" || len(st.GetLayers()) != 2 {
			t.Fatalf("%s: role %s, %d layers; want a relay with p2p and privacy", r.Name, st.GetRole(), len(st.GetLayers()))
		}
	}
	if len(names) != len(want) {
		t.Fatalf("relays %v; want %v", names, want)
	}
	for _, w := range want {
		if n.Member(w) == nil {
			t.Fatalf("no relay %s among %v", w, names)
		}
	}
	// The clients are spread over the providers.
	for i, c := range n.Clients() {
		b, err := os.ReadFile(c.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if want := "provider: provider-" + string(rune('0'+i)); !bytes.Contains(b, []byte(want)) {
			t.Fatalf("%s's config has no %q:\n%s", c.Name, want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(n.Dir(), "mixnet", "document.pkidoc")); err != nil {
		t.Fatal(err)
	}

	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1 := n.Member("n0"), n.Member("n1")
	conv := []byte("mixed")
	conversation(t, ctx, conv, n0, n1)
	began = time.Now()
	if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("through the mixnet")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, conv, "through the mixnet", n1)
	t.Logf("n0 → n1 in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	if _, err := n1.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("and back")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, conv, "and back", n0)
	t.Logf("n1 → n0 in %v", time.Since(began).Round(time.Millisecond))

	// The packets went through every relay: each mix and provider
	// forwarded packets (the clients' and its own loops), each provider
	// stored mailbox entries, and each client sent real packets and got a
	// message. The counters come from the hosts' health checks (every 2 s).
	checks := map[string][]string{"n0": {"real_sent", "messages_delivered"}, "n1": {"real_sent", "messages_delivered"}}
	for _, w := range want {
		checks[w] = []string{"packets_forwarded"}
		if strings.HasPrefix(w, "provider") {
			checks[w] = append(checks[w], "mailbox_stored", "pulls")
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for name, keys := range checks {
		for {
			c := privacyCounters(t, ctx, n.Member(name))
			var missing []string
			for _, k := range keys {
				if c[k] == 0 {
					missing = append(missing, k)
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's privacy layer counts no %v: %v", name, missing, c)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("provider-0's counters: %v", privacyCounters(t, ctx, n.Member("provider-0")))

	if !testing.Short() {
		// A mix and n1's provider killed with -9 and started again on
		// their data (key chain, replay store, mailboxes) and ports: the
		// others redial them, and a message gets through.
		for _, name := range []string{"mix-1-0", "provider-1"} {
			m := n.Member(name)
			if err := m.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		began = time.Now()
		if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("after the restarts")}); err != nil {
			t.Fatal(err)
		}
		if _, err := awaitFor(ctx, n1, conv, "after the restarts", restartWait); err != nil {
			t.Fatalf("%v\n%s's log:\n%s", err, n1.Name, n1.LogTail(40))
		}
		t.Logf("n0 → n1 after a mix and a provider restarted: %v", time.Since(began).Round(time.Millisecond))
	}

	pids := allPIDs(n)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := running(pids); len(left) > 0 {
		t.Fatalf("after Close, processes still run: %v", left)
	}
	if testing.Short() {
		return
	}

	// The same directory again: the same mixnet, and the clients' history.
	n = startNet(t, testnet.Options{Stack: stackFile(t, stack), Nodes: 2, Relays: testnet.AutoRelays, Dir: n.Dir()})
	n0, n1 = n.Member("n0"), n.Member("n1")
	if _, err := n1.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, conv, "again", n0)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// privacyCounters returns the counters of m's privacy layer.
func privacyCounters(t *testing.T, ctx context.Context, m *testnet.Member) map[string]uint64 {
	t.Helper()
	st, err := m.Client().Stats(ctx, &appv1.StatsRequest{})
	if err != nil {
		t.Fatalf("%s: Stats: %v", m.Name, err)
	}
	for _, l := range st.GetLayers() {
		if l.GetLayer() == "privacy" {
			return l.GetCounters()
		}
	}
	t.Fatalf("%s has no privacy layer", m.Name)
	return nil
}
