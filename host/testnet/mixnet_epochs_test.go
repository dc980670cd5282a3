package testnet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestMixnetEpochs runs the libp2p mixnet stack as `strata testnet` does,
// with 3-second epochs: the testnet's authority publishes each next
// epoch's document half an epoch ahead, and while messages go both ways
// every ~600 ms across at least four epoch boundaries, every node takes
// up each document (pki_reloads), every relay rotates its keys and replay
// state (epoch_rotations) without a key chain error, and every message
// arrives. Not in -short: about 25 s.
func TestMixnetEpochs(t *testing.T) {
	if testing.Short() {
		t.Skip("crosses four 3-second epochs through 10 hosts: not in -short")
	}
	const period = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	n := startNet(t, testnet.Options{
		Stack: stackFile(t, "libp2p-mixnet-dr-mvds.yaml"), Nodes: 2, Relays: testnet.AutoRelays,
		Mixnet: testnet.MixnetOptions{EpochPeriod: period},
	})
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1 := n.Member("n0"), n.Member("n1")
	conv := []byte("epochs")
	conversation(t, ctx, conv, n0, n1)

	// Senders in both directions; every payload must arrive.
	type want struct {
		to      *testnet.Member
		payload string
	}
	var sent []want
	began := time.Now()
	for i := 0; time.Since(began) < 4*period+period/2; i++ {
		from, to := n0, n1
		if i%2 == 1 {
			from, to = n1, n0
		}
		p := fmt.Sprintf("message %d from %s", i, from.Name)
		if _, err := from.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, want{to, p})
		time.Sleep(600 * time.Millisecond)
	}
	for _, w := range sent {
		if _, err := awaitFor(ctx, w.to, conv, w.payload, 30*time.Second); err != nil {
			t.Fatalf("%v\n%s's log:\n%s", err, w.to.Name, w.to.LogTail(40))
		}
	}
	t.Logf("%d messages across %v of 3-second epochs, all delivered", len(sent), time.Since(began).Round(time.Millisecond))

	// The counters come from the hosts' health checks (every 2 s).
	time.Sleep(2500 * time.Millisecond)
	for _, m := range append(n.Relays(), n.Clients()...) {
		c := privacyCounters(t, ctx, m)
		if c["pki_reloads"] < 3 {
			t.Errorf("%s took up %d documents; want at least 3: %v", m.Name, c["pki_reloads"], c)
		}
		if m.Role == testnet.RoleRelay && (c["epoch_rotations"] < 3 || c["keychain_errors"] != 0 || c["dropped_undecryptable"] != 0) {
			t.Errorf("%s: %d rotations, %d key chain errors, %d undecryptable packets", m.Name, c["epoch_rotations"], c["keychain_errors"], c["dropped_undecryptable"])
		}
	}
	log, err := os.ReadFile(filepath.Join(n.Dir(), "mixnet", "authority.log"))
	if err != nil || strings.Count(string(log), "published the document of epoch") < 5 {
		t.Fatalf("authority.log: %v\n%s", err, log)
	}
}
