package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
)

// TestFullStackSendBatch sends through SendBatch and through concurrent
// Sends on libp2p+none+doubleratchet+mvds with every plugin a process:
// every message reaches the other member once, in the history of both,
// and a batch with a mistake in it sends nothing.
func TestFullStackSendBatch(t *testing.T) {
	dir := t.TempDir()
	nodes := []*fullNode{
		startFull(t, fullCfg(t, dir, "a", config.ModeProcess, ""), nil),
		startFull(t, fullCfg(t, dir, "b", config.ModeProcess, ""), nil),
	}
	logOnFailure(t, nodes...)
	conv := []byte("batch pair")
	mesh(t, nodes, conv)
	ctx := context.Background()

	var want []sent
	// Batches, the second with a message whose parent is the first
	// batch's last.
	for b := range 3 {
		batch := make([]node.Outgoing, 50)
		for i := range batch {
			batch[i] = node.Outgoing{Conversation: conv, Payload: fmt.Appendf(nil, "batch %d message %d", b, i)}
		}
		var parents [][]byte
		if b == 1 {
			parents = [][]byte{want[len(want)-1].id}
			batch[0].Options.Parents = parents
		}
		msgs, err := nodes[0].SendBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != len(batch) {
			t.Fatalf("SendBatch returned %d messages for %d", len(msgs), len(batch))
		}
		for i, m := range msgs {
			if m.Cursor == 0 || len(m.MessageID) == 0 {
				t.Fatalf("message %d of batch %d: cursor %d, id %x: not recorded", i, b, m.Cursor, m.MessageID)
			}
			s := sent{id: m.MessageID, author: 0}
			if i == 0 {
				s.parents = parents
			}
			want = append(want, s)
		}
	}
	// Concurrent Sends from the other node share the history's writes.
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				m, err := nodes[1].Send(ctx, conv, fmt.Appendf(nil, "sender %d message %d", g, i), node.SendOptions{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want = append(want, sent{id: m.MessageID, author: 1})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A mistake anywhere in a batch refuses all of it.
	bad := []node.Outgoing{
		{Conversation: conv, Payload: []byte("fine")},
		{Conversation: []byte("no such conversation"), Payload: []byte("lost")},
	}
	if _, err := nodes[0].SendBatch(ctx, bad); !errors.Is(err, node.ErrUnknownConversation) {
		t.Fatalf("a batch with an unknown conversation: %v, want ErrUnknownConversation", err)
	}
	tooMany := make([]node.Outgoing, node.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = node.Outgoing{Conversation: conv, Payload: []byte("x")}
	}
	if _, err := nodes[0].SendBatch(ctx, tooMany); err == nil {
		t.Fatalf("a batch of %d messages was taken", len(tooMany))
	}

	waitAll(t, nodes, want, 60*time.Second)
	for _, n := range nodes {
		hist, err := n.History(ctx, nil, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hist {
			if string(m.Payload) == "fine" {
				t.Fatalf("%s: a message of a refused batch is in the history", n.Name())
			}
		}
	}
}
