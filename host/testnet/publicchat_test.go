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
// by Sphinx packets answered on their SURBs.
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
}
