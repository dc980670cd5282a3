package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
)

// TestSlowHistoryDoesNotStallRouting: on the full stack (in process), b's
// history writes wait at a shut gate, as on a disk that has stalled. The
// messages a sends still cross b's whole stack up to the application's
// boundary (the routing goroutines do not wait for the disk); none is
// acknowledged to b's sync layer or handed to the application before it is
// written. When the gate opens, every one is written, delivered once and
// acknowledged. Then b closes while writes wait at the gate again: what it
// took but did not write was not acknowledged, and b's sync layer delivers
// it again when b starts anew, so it is not lost.
func TestSlowHistoryDoesNotStallRouting(t *testing.T) {
	dir := t.TempDir()
	a := startFull(t, fullCfg(t, dir, "a", config.ModeInProc, ""), nil)
	bCfg := fullCfg(t, dir, "b", config.ModeInProc, "")
	got := map[string]int{}
	start := func() (*fullNode, *node.HistoryGate) {
		f := &fullNode{cfg: bCfg, got: got}
		n, err := node.New(bCfg, node.Options{
			Catalog:        catalog(),
			Logger:         hclog.New(&hclog.LoggerOptions{Name: "b", Level: hclog.Error, Output: os.Stderr}),
			Deliver:        f.deliver,
			HealthInterval: 500 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		gate := node.GateHistory(n)
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(context.Background()) })
		f.Node = n
		return f, gate
	}
	b, gate := start()
	nodes := []*fullNode{a, b}
	logOnFailure(t, a, b)
	conv := []byte("slow disk")
	mesh(t, nodes, conv)
	ctx := context.Background()
	top := func(n *fullNode) uint64 { return n.Boundaries()[3].FramesUp } // sync|app
	counter := func(n *fullNode, name string) uint64 {
		c, err := n.LayerCounters(ctx, "sync")
		if err != nil {
			t.Fatal(err)
		}
		return c[name]
	}
	sendAll := func(k int, prefix string) []sent {
		var out []sent
		for i := range k {
			m, err := a.Send(ctx, conv, []byte(fmt.Sprintf("%s %d", prefix, i)), node.SendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sent{id: m.MessageID, author: 0})
		}
		return out
	}
	waitUp := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for top(b) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d messages crossed b's top boundary while its disk stalled: routing waits for the disk", top(b), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// a's announcement of the conversation is a host message that b
	// acknowledges without writing it: let it be done first.
	deadline := time.Now().Add(30 * time.Second)
	taken := func() uint64 { st := b.AnnouncementStats(); return st["accepted"] + st["unchanged"] }
	for taken() == 0 || counter(b, "host_acks") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b did not take a's announcement: %v", b.AnnouncementStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	acked := counter(b, "host_acks")

	const n = 60
	before := top(b)
	waiting := gate.Shut()
	want := sendAll(n, "while the disk stalls")
	<-waiting // a write waits at the gate
	waitUp(before + n)
	if c := b.count(); c != 0 {
		t.Fatalf("b handed %d messages to the application before writing them", c)
	}
	if c := counter(b, "host_acks"); c != acked {
		t.Fatalf("b acknowledged %d messages before writing them", c-acked)
	}
	gate.Open()
	waitAll(t, nodes, want, 30*time.Second)
	deadline = time.Now().Add(30 * time.Second)
	for counter(b, "host_acks") < acked+n {
		if time.Now().After(deadline) {
			t.Fatalf("b acknowledged %d of %d written messages", counter(b, "host_acks")-acked, n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Taken but not written when b stops: delivered again at its restart.
	before = top(b)
	waiting = gate.Shut()
	more := sendAll(10, "when b stops")
	<-waiting
	waitUp(before + 10)
	b.Close(ctx) // its writes wait at the gate until Close gives up on them
	b2, _ := start()
	nodes[1] = b2
	waitAll(t, nodes, append(want, more...), 60*time.Second)
}
