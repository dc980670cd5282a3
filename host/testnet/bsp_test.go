package testnet_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/testnet"
)

// TestBSPHostKill runs three clients on configs/libp2p-none-dr-bsp.yaml
// and kills with SIGKILL, during traffic from n0, first the host of the
// receiver n1 (its plugins go with it) and then the host of the sender
// n0; each is started again. Every message whose Send returned reaches
// n1 and n2 exactly once.
func TestBSPHostKill(t *testing.T) {
	if testing.Short() {
		t.Skip("short: kills and restarts whole nodes")
	}
	ctx := context.Background()
	n := startNet(t, testnet.Options{Stack: stackFile(t, "libp2p-none-dr-bsp.yaml"), Nodes: 3, Relays: testnet.AutoRelays})
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1, n2 := n.Member("n0"), n.Member("n1"), n.Member("n2")
	room := []byte("bsp room")
	conversation(t, ctx, room, n.Clients()...)
	var mu sync.Mutex
	var sent []string
	for round, victim := range []*testnet.Member{n1, n0} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 30 {
				p := fmt.Sprintf("round %d message %d", round, i)
				if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: room, Payload: []byte(p)}); err == nil {
					mu.Lock()
					sent = append(sent, p)
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		time.Sleep(150 * time.Millisecond) // a few messages out
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := victim.Start(ctx); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	mu.Lock()
	want := append([]string(nil), sent...)
	mu.Unlock()
	if len(want) < 30 {
		t.Fatalf("only %d sends succeeded", len(want))
	}
	for _, m := range []*testnet.Member{n1, n2} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			hist, err := m.Client().History(ctx, &appv1.HistoryRequest{Conversation: room})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, h := range hist.GetMessages() {
				count[string(h.GetPayload())]++
			}
			missing := 0
			for _, p := range want {
				switch count[p] {
				case 0:
					missing++
				case 1:
				default:
					t.Fatalf("%s: %q %d times in the history", m.Name, p, count[p])
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages missing\n%s", m.Name, missing, len(want), m.LogTail(40))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestBSPWhisperRelay runs configs/devp2p-whisper-dr-bsp.yaml: two
// clients and the relay the testnet adds; a message goes through.
func TestBSPWhisperRelay(t *testing.T) {
	ctx := context.Background()
	n := startNet(t, testnet.Options{Stack: stackFile(t, "devp2p-whisper-dr-bsp.yaml"), Nodes: 2, Relays: testnet.AutoRelays})
	if err := n.IntroduceAll(ctx); err != nil {
		t.Fatal(err)
	}
	n0, n1 := n.Member("n0"), n.Member("n1")
	conv := []byte("whispered over bsp")
	conversation(t, ctx, conv, n0, n1)
	if _, err := n0.Client().Send(ctx, &appv1.SendRequest{Conversation: conv, Payload: []byte("psst")}); err != nil {
		t.Fatal(err)
	}
	awaitAll(t, ctx, conv, "psst", n1)
}
