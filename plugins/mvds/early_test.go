package mvds

import (
	"context"
	"testing"

	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestDeliveredBeforeCommit: a receive hands its deliveries up before its
// transaction commits, so that they travel while the fsync runs. What a
// crash at that moment leaves on disk (the database files copied from
// inside the hand-over) holds neither the message nor an acknowledgement
// of it, and no ack can have left for the author (a tick needs the node's
// lock, which the receive holds): the author sends the message again, and
// the node restarted from that image delivers it again. The host stores
// what it takes under the message id, so it takes it once.
func TestDeliveredBeforeCommit(t *testing.T) {
	a := newTNode(t, "a", testSettings(), newClock())
	b := identity("b")
	a.setGroup(a.id, b)
	m, id := messageFrom(t, testGroupID, b, 1, "m", false)
	payload := encode(t, &wirepb.Payload{Messages: []*wirepb.Message{m}})

	image := newTNode(t, "a", testSettings(), a.clk)
	if err := image.n.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var early []delivery
	ds, err := a.n.receive(context.Background(), []inbound{{group: testGroupID, from: b, payload: payload}}, func(ds []delivery) {
		early = append(early, ds...)
		sdktest.CrashImage(t, a.dir, image.dir)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(early) != 1 || early[0].id != id || len(ds) != 1 || ds[0].id != id {
		t.Fatalf("handed up early %d and returned %d deliveries, want the message once each", len(early), len(ds))
	}
	if a.state().messages != 1 {
		t.Fatal("the message is not stored once the receive returned")
	}

	image.reopen()
	if image.state().messages != 0 {
		t.Fatal("the crash image holds the message: the hand-over came after the commit")
	}
	if len(image.unacked()) != 0 {
		t.Fatalf("the crash image holds %d unacknowledged deliveries", len(image.unacked()))
	}
	if out := image.tick(); len(out) != 0 {
		t.Fatalf("the restarted node sent %d payloads before it had the message again", len(out))
	}
	image.receive(b, payload)
	if !image.delivered(id) {
		t.Fatal("the message the author sent again was not delivered after the restart")
	}
}
