package testnet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestPublicChatSecondStack: a public chat on the mission's second stack,
// configs/libp2p-mixnet-mls-bsp.yaml, as strata processes over a built
// mixnet (3 layers × 2 mixes, 2 providers). Three clients join it through
// the messaging API's JoinPublicChat (the mixnet derives one shared
// mailbox at one provider from the name), each posts a message, and every
// message reaches every member once, through the shared mailbox, pulled
// by Sphinx packets answered on their SURBs. Without -short (10 s more):
// then a group of the three, whose group frames the hosts send to the
// group's shared address, read from its shared mailbox by every member.
func TestPublicChatSecondStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	n := startNet(t, testnet.Options{Stack: stackFile(t, "libp2p-mixnet-mls-bsp.yaml"), Relays: testnet.AutoRelays, Nodes: 3})
	t.Logf("%d clients and %d relays started in %v", len(n.Clients()), len(n.Relays()), time.Since(began).Round(time.Millisecond))
	clients := n.Clients()
	var id []byte
	for _, m := range clients {
		c, err := m.Client().JoinPublicChat(ctx, &appv1.JoinPublicChatRequest{Name: "strata-lobby"})
		if err != nil {
			t.Fatalf("%s: JoinPublicChat: %v\n%s", m.Name, err, m.LogTail(30))
		}
		if id != nil && string(c.GetId()) != string(id) {
			t.Fatalf("%s: the chat's conversation id differs", m.Name)
		}
		id = c.GetId()
	}
	h := &roomHistory{room: id}
	began = time.Now()
	for _, m := range clients {
		h.send(t, ctx, m, fmt.Sprintf("hello lobby from %s", m.Name))
	}
	h.awaitEveryone(t, ctx, clients, 3*time.Minute)
	t.Logf("public chat of %d: every message everywhere in %v", len(clients), time.Since(began).Round(time.Millisecond))
	if testing.Short() {
		return
	}

	// A group of three on the same stack: the hosts subscribe to the
	// group's shared address (the mixnet provides "shared"), and its group
	// frames go through one shared mailbox instead of a copy per member.
	room := []byte("a group through a shared mailbox")
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	conversation(t, ctx, room, clients...)
	g := &roomHistory{room: room}
	for _, m := range clients {
		g.send(t, ctx, m, fmt.Sprintf("hello group from %s", m.Name))
	}
	g.awaitEveryone(t, ctx, clients, 3*time.Minute)
	// The members' layers read the group's posts from its shared mailbox
	// (bsp may have brought them by another path first: its copies to
	// each member; the host keeps one).
	for _, m := range clients {
		deadline := time.Now().Add(time.Minute)
		for {
			c := privacyCounters(t, ctx, m)
			ok := c["shared_subscribed"] == 2 && c["shared_posts_sent"] > 0 && c["shared_delivered"] >= 4
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the group's posts were not read from its shared mailbox: %v", m.Name, nonZero(c))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}
