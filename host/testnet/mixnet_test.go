package testnet_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/testnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestMixnet runs each mixnet stack as `strata testnet` would: the testnet
// builds a mixnet of 3 layers × 2 mixes and 2 providers, each a `strata
// run` relay, and two clients on different providers; a message goes each
// way through the API and arrives (so through a provider, three mixes and
// the other provider, and a pull); every relay's log and data directory
// is searched (inspectRelays): no plaintext, no client's identity key or
// address, and a client's mailbox id only at its own provider. Close
// leaves no process. Without
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
	inspectRelays(t, n, [][]byte{[]byte("through the mixnet"), []byte("and back")})

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

// inspectRelays reads what every relay process logged and stored (its
// log file and its whole data directory, as a kill -9 would leave them)
// and checks that no relay holds a plaintext, a client's identity key or
// whole mixnet address, or (raw or hex) the mailbox id of a client other
// than its own provider's clients — so no relay holds anything of both
// endpoints of a conversation, and no mix anything of either.
func inspectRelays(t *testing.T, n *testnet.Net, plaintexts [][]byte) {
	t.Helper()
	type client struct {
		name     string
		provider string
		identity []byte
		address  []byte
	}
	var clients []client
	for i, c := range n.Clients() {
		card, err := contacts.DecodeText(c.Card())
		if err != nil {
			t.Fatalf("%s's card: %v", c.Name, err)
		}
		sec, ok := card.Sections[commonv1.LayerKind_LAYER_KIND_PRIVACY]
		if !ok || len(sec.Data) != loopix.AddressLength {
			t.Fatalf("%s's card has no mixnet address", c.Name)
		}
		clients = append(clients, client{c.Name, fmt.Sprintf("provider-%d", i%2), c.Identity(), sec.Data})
	}
	for _, r := range n.Relays() {
		var held []byte
		if b, err := os.ReadFile(r.LogPath()); err == nil {
			held = append(held, b...)
		}
		filepath.Walk(r.Dir, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(path)
				held = append(held, b...)
			}
			return nil
		})
		holds := func(b []byte) bool {
			return bytes.Contains(held, b) || bytes.Contains(held, []byte(hex.EncodeToString(b)))
		}
		for _, p := range plaintexts {
			if bytes.Contains(held, p) {
				t.Errorf("%s logs or stores the plaintext %q", r.Name, p)
			}
		}
		for _, c := range clients {
			if holds(c.identity) || holds(c.address) {
				t.Errorf("%s logs or stores %s's identity key or mixnet address", r.Name, c.name)
			}
			// The mailbox id: only at the client's own provider.
			mailbox := c.address[1+32 : 1+64]
			switch {
			case r.Name != c.provider && holds(mailbox):
				t.Errorf("%s logs or stores the mailbox id of %s, a client of %s", r.Name, c.name, c.provider)
			case r.Name == c.provider && !holds(mailbox):
				// The search can see: the provider's mailbox database
				// names its client's mailbox.
				t.Errorf("%s does not store the mailbox id of its client %s: the search sees nothing", r.Name, c.name)
			}
		}
	}
}
