package mvds

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

// TestDueBoundsKeepTheSchedule runs the same lossy network twice, once as
// the layer runs (epochs skip members whose bound says nothing is due)
// and once with every bound forgotten before each epoch (every member's
// records read, as before dueBounds): every payload must leave at the
// same epoch with the same bytes, and everything must arrive. The cases
// cover what lowers a bound: new messages (addState), retransmissions
// (updateState), answers to requests (answerRequest, interactive mode)
// and a member heard from after a long silence (resetPeer).
func TestDueBoundsKeepTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		name        string
		interactive bool
		members     int
		loss        float64
		silence     int // epochs in which one member hears nothing
	}{
		{name: "pair", members: 2, loss: 0.3},
		{name: "group", members: 4, loss: 0.3},
		{name: "interactive", interactive: true, members: 3, loss: 0.3},
		{name: "silence", members: 3, loss: 0.1, silence: 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(forget bool) ([]sentPayload, int) {
				cfg, err := sdk.LoadConfig[Config](fmt.Sprintf(`{"backoff_base": 2, "backoff_max": 16, "mode": %q}`, modeFor(tc.interactive)))
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for i := range tc.members {
					names = append(names, fmt.Sprint("n", i))
				}
				nt := newTNet(t, cfg, names...)
				nt.keep = true
				loss := lossy(7, tc.loss)
				quiet := nt.nodes[len(nt.nodes)-1]
				nt.drop = func(from, to *tnode, p []byte) bool {
					if to == quiet && nt.steps >= 5 && nt.steps < 5+tc.silence {
						return true
					}
					return loss(from, to, p)
				}
				var want []ID
				for epoch := range 150 {
					if epoch < 30 && epoch%3 == 0 {
						want = append(want, nt.nodes[epoch%len(nt.nodes)].send(fmt.Sprint("m", epoch)))
						nt.flush()
					}
					if forget {
						for _, n := range nt.nodes {
							n.n.st.due.forget()
						}
					}
					nt.step()
				}
				for _, n := range nt.nodes {
					for _, id := range want {
						if !n.delivered(id) && !n.sentHere(id) {
							t.Errorf("forget=%v: %s never got %s", forget, n.name, id)
						}
					}
				}
				return nt.sent, len(want)
			}
			got, n := run(false)
			want, _ := run(true)
			if len(got) != len(want) {
				t.Fatalf("%d payloads with bounds, %d reading every member (%d messages)", len(got), len(want), n)
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.step != w.step || g.from != w.from || g.to != w.to || !bytes.Equal(g.raw, w.raw) {
					t.Fatalf("payload %d: epoch %d %s->%s (%d bytes) with bounds, epoch %d %s->%s (%d bytes) reading every member",
						i, g.step, g.from, g.to, len(g.raw), w.step, w.from, w.to, len(w.raw))
				}
			}
			if len(got) == 0 {
				t.Fatal("nothing was sent")
			}
		})
	}
}
