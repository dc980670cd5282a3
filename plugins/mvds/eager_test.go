package mvds

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// TestEagerFlush: a flush sends what Send made at once, without an epoch
// (a MESSAGE in batch mode; in interactive mode the OFFER, then the
// receiver's REQUEST and the answer, each by a flush), several sends in
// one payload when they gathered; the next epoch does not send it again,
// and its retransmission, unacked, comes at the epoch it would have come
// without eager.
func TestEagerFlush(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      string
		ephemeral bool
	}{
		{"batch", ModeBatch, false},
		{"interactive", ModeInteractive, false},
		{"ephemeral", ModeBatch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode = tc.mode
			nt := newTNet(t, cfg, "a", "b")
			nt.keep = true
			a, b := nt.node("a"), nt.node("b")
			ids := []ID{a.sendOpt("one", tc.ephemeral), a.sendOpt("two", tc.ephemeral), a.sendOpt("three", tc.ephemeral)}
			epoch := a.n.epoch
			out, more, err := a.n.flush(context.Background())
			if err != nil || more || len(out) != 1 {
				t.Fatalf("flush: %d payloads, more %v, %v; want one payload", len(out), more, err)
			}
			var p wirepb.Payload
			if err := unmarshal.Unmarshal(out[0].payload, &p); err != nil {
				t.Fatal(err)
			}
			if tc.mode == ModeInteractive && !tc.ephemeral {
				if len(p.Offers) != 3 || len(p.Messages) != 0 {
					t.Fatalf("the flush sent %d offers, %d messages; want the 3 offers", len(p.Offers), len(p.Messages))
				}
			} else if len(p.Messages) != 3 {
				t.Fatalf("the flush sent %d messages, want the 3 sent", len(p.Messages))
			}
			if out[0].ephemeral != tc.ephemeral {
				t.Errorf("ephemeral hint %v", out[0].ephemeral)
			}
			if again, _, _ := a.n.flush(context.Background()); len(again) != 0 {
				t.Fatalf("a second flush sent %d payloads", len(again))
			}
			// Hand it over; in interactive mode the request and the answer
			// follow by flushes too.
			b.receive(a.id, out[0].payload)
			nt.flush()
			if a.n.epoch != epoch || b.n.epoch != epoch {
				t.Fatal("an epoch ran")
			}
			for _, id := range ids {
				if !b.delivered(id) {
					t.Fatalf("%s not delivered without an epoch", id)
				}
			}
			if a.counter("eager_payloads") == 0 {
				t.Error("eager_payloads not counted")
			}
			// The next epoch brings b's acks, and nothing new from a.
			nt.step()
			for _, s := range nt.sentAt(nt.steps, "a", "b") {
				if len(s.Messages)+len(s.Offers) > 0 {
					t.Errorf("the epoch sent %d messages and %d offers again", len(s.Messages), len(s.Offers))
				}
			}
			if !tc.ephemeral && a.state().unacknowledged != 0 {
				t.Errorf("%d unacknowledged after the acks", a.state().unacknowledged)
			}
		})
	}
}

// TestEagerSchedule: unacked, a message that a flush sent is retransmitted
// at the same epochs as one that the epoch sent (eager off): the flush
// counts as the transmission of the epoch in which the record was due.
func TestEagerSchedule(t *testing.T) {
	retransmitted := func(eager bool) []int {
		cfg := testSettings()
		cfg.Eager = eager
		nt := newTNet(t, cfg, "a", "b")
		nt.drop = func(from, _ *tnode, _ []byte) bool { return from.name == "b" } // no acks
		a := nt.node("a")
		a.send("lonely")
		if eager {
			if nt.flush() != 1 {
				t.Fatal("the flush sent nothing")
			}
		}
		var epochs []int
		for i := 1; i <= 20; i++ {
			before := a.counter("sent") + a.counter("retransmissions")
			nt.step()
			if a.counter("sent")+a.counter("retransmissions") > before {
				epochs = append(epochs, i)
			}
		}
		return epochs
	}
	eager, epochs := retransmitted(true), retransmitted(false)
	if fmt.Sprint(eager) != fmt.Sprint(epochs[1:]) {
		t.Fatalf("transmissions at epochs %v with eager, %v without (the first of which the flush made)", eager, epochs)
	}
}

// TestEagerLossy: with eager flushes after every Send and every delivery,
// a lossy three-member run delivers everything, in both modes, and a
// crash after a flush whose payload was lost loses nothing.
func TestEagerLossy(t *testing.T) {
	for _, mode := range []string{ModeBatch, ModeInteractive} {
		t.Run(mode, func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode = mode
			nt := newTNet(t, cfg, "a", "b", "c")
			nt.drop = lossy(7, 0.3)
			a := nt.node("a")
			var sent []ID
			for i := range 30 {
				sent = append(sent, a.send(fmt.Sprintf("m%d", i)))
				nt.flush()
				if i%10 == 9 {
					nt.step()
					nt.flush()
				}
			}
			// The last one's flush is lost whole, then a crashes.
			nt.drop = func(*tnode, *tnode, []byte) bool { return true }
			sent = append(sent, a.send("last"))
			nt.flush()
			a.crash()
			nt.drop = lossy(8, 0.3)
			nt.run(2000, func() bool {
				nt.flush()
				for _, n := range nt.nodes[1:] {
					for _, id := range sent {
						if !n.delivered(id) {
							return false
						}
					}
				}
				return true
			})
		})
	}
}

// TestEagerLayer: through the layer with a 10 s epoch, a Send's frame goes
// down before any epoch, carrying the send's trace id; with eager off it
// waits for the epoch.
func TestEagerLayer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		eager bool
	}{
		{"eager", true},
		{"epochs only", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sdktest.Recorder{}
			l := manage(New())
			ctx := context.Background()
			cfg := fmt.Sprintf(`{"epoch": "10s", "eager": %t}`, tc.eager)
			if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg, DataDir: t.TempDir(), NodeIdentity: identity("a")}, sdk.Env{Logger: hclog.NewNullLogger(), Out: rec}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Stop(context.Background()) })
			if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: [][]byte{identity("a"), identity("b")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Send(ctx, &syncv1.SendRequest{Group: testGroupID, Payload: []byte("now"), TraceId: 42}); err != nil {
				t.Fatal(err)
			}
			down := func(f *commonv1.Frame) bool { return f.GetDirection() == commonv1.Direction_DIRECTION_DOWN }
			if !tc.eager {
				if f := rec.TryNext(200*time.Millisecond, down); f != nil {
					t.Fatal("a frame went down before the epoch with eager off")
				}
				return
			}
			f := rec.Next(t, 5*time.Second, "the Send's frame", down)
			nd := l.node.Load()
			nd.mu.Lock()
			epoch := nd.epoch
			nd.mu.Unlock()
			if epoch != 0 {
				t.Fatalf("the frame came after epoch %d", epoch)
			}
			if f.GetTraceId() != 42 || string(f.GetPeer()) != string(identity("b")) {
				t.Errorf("frame with trace id %d to %x", f.GetTraceId(), f.GetPeer())
			}
			if got := l.Health(ctx).GetCounters()["eager_payloads"]; got != 1 {
				t.Errorf("eager_payloads %d", got)
			}
		})
	}
}
