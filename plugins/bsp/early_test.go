package bsp

import (
	"context"
	"testing"

	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestDeliveredBeforeCommit: a receive hands its deliveries up before it
// commits, so that they travel while the fsync runs. What a crash at that
// moment leaves on disk (the database files copied from inside the
// hand-over) does not hold the message, and a node opened from it, which
// owes no ack of it, delivers it again when its author sends it again.
func TestDeliveredBeforeCommit(t *testing.T) {
	tn := newNet(t, testCfg(), "a", "b")
	id := tn.send("a", "early")
	out, _, _, _ := tn.nodes["a"].n.flush(tn.clk.ms())
	if len(out) != 1 {
		t.Fatalf("a flushed %d frames, want 1", len(out))
	}
	frame := out[0].payload
	b := tn.nodes["b"]
	image := t.TempDir()
	var early []delivery
	ds, err := b.n.receive(context.Background(), []inbound{{group: testGroup, from: key("a"), payload: frame}}, func(ds []delivery) {
		early = append(early, ds...)
		sdktest.CrashImage(t, b.dir, image)
	})
	if err != nil || len(ds) != 1 || ds[0].id != id || len(early) != 1 || early[0].id != id {
		t.Fatalf("receive: %d delivered, %d handed up early, error %v; want the message once each", len(ds), len(early), err)
	}

	// The crash image, as a node of its own: the message is not there.
	n, err := openNode(context.Background(), image, key("b"), tn.cfg, newCounters(), nil, tn.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if err := n.setGroup(context.Background(), testGroup, tn.members()); err != nil {
		t.Fatal(err)
	}
	if g := n.groups[string(testGroup)]; g.msgs[id] != nil {
		t.Fatal("the crash image holds the message: the hand-over came after the commit")
	}
	if len(n.unackedDeliveries()) != 0 {
		t.Fatal("the crash image holds an unacknowledged delivery")
	}
	again, err := n.receive(context.Background(), []inbound{{group: testGroup, from: key("a"), payload: frame}}, nil)
	if err != nil || len(again) != 1 || again[0].id != id {
		t.Fatalf("the frame sent again: %d delivered, error %v", len(again), err)
	}
}
