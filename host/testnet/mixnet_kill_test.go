package testnet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestMixnetKillDuringTraffic runs the libp2p mixnet stack (mvds above
// the mixnet) as `strata testnet` does, with messages going both ways
// every 300 ms, and kills with -9, while they flow, a mix of the middle
// layer, then each provider in turn, starting each again a second later
// on its data (key chain, replay state, mailboxes) and port: every
// message arrives, since what the killed relays held is sent again —
// fragments on their missing acknowledgements, messages by mvds. Then
// the recipient goes offline, a message is stored at its provider, and it
// gets the message when it comes back and pulls. Not in -short: about
// 60 s.
func TestMixnetKillDuringTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("kills three relays during traffic through 10 hosts: not in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	n := startNet(t, testnet.Options{Stack: stackFile(t, "libp2p-mixnet-dr-mvds.yaml"), Nodes: 2, Relays: testnet.AutoRelays})
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1 := n.Member("n0"), n.Member("n1")
	conv := []byte("killed relays")
	conversation(t, ctx, conv, n0, n1)

	type want struct {
		to      *testnet.Member
		payload string
	}
	var sent []want
	kills := map[int]string{8: "mix-1-0", 18: "provider-1", 28: "provider-0"}
	var killed []*testnet.Member
	for i := range 40 {
		from, to := n0, n1
		if i%2 == 1 {
			from, to = n1, n0
		}
		p := fmt.Sprintf("message %d from %s", i, from.Name)
		if _, err := from.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, want{to, p})
		if name, ok := kills[i]; ok {
			m := n.Member(name)
			if err := m.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = append(killed, m)
		}
		if i%10 == 1 && len(killed) > 0 {
			// A second (three sends) after each kill: start it again.
			for _, m := range killed {
				if err := m.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			killed = nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, m := range killed {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	for _, w := range sent {
		if _, err := awaitFor(ctx, w.to, conv, w.payload, restartWait); err != nil {
			t.Fatalf("%v\n%s's log:\n%s", err, w.to.Name, w.to.LogTail(40))
		}
	}
	t.Logf("%d messages, a mix and both providers killed with -9 among them: all delivered, the last %v after the sending ended", len(sent), time.Since(began).Round(time.Millisecond))

	// The recipient offline: n1 stops, n0 writes, provider-1 keeps the
	// message's packets in n1's mailbox, and n1 pulls them when it is
	// back.
	stored := privacyCounters(t, ctx, n.Member("provider-1"))["mailbox_stored"]
	if err := n1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("while you were away")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if now := privacyCounters(t, ctx, n.Member("provider-1"))["mailbox_stored"]; now <= stored {
		t.Fatalf("provider-1 stored nothing for the offline n1 (%d before, %d after)", stored, now)
	}
	if err := n1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitFor(ctx, n1, conv, "while you were away", restartWait); err != nil {
		t.Fatalf("%v\n%s's log:\n%s", err, n1.Name, n1.LogTail(40))
	}
	for _, c := range n.Clients() {
		pc := privacyCounters(t, ctx, c)
		t.Logf("%s: fragments sent again %d, given up %d, acks %d", c.Name, pc["fragments_retransmitted"], pc["dropped_unacked"], pc["acks_received"])
	}
}
