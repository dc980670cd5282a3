package mvds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSoak runs five members over a network that loses 30% of payloads
// and partitions a random member now and then, while every member sends
// messages whose parents are random messages it already has (from any
// author), and members restart or crash at random. Two members' hosts
// acknowledge their deliveries late, every other round or so, so that
// restarts deliver again what they had not acknowledged. Throughout,
// nothing is delivered twice in one run, again once acknowledged, or
// before its parents (checked as deliveries happen), and each restart
// delivers again exactly the unacknowledged deliveries, in order; at the
// end every member has every message and nothing is unacknowledged.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: runs without -short")
	}
	for _, interactive := range []bool{false, true} {
		t.Run(fmt.Sprintf("interactive=%v", interactive), func(t *testing.T) {
			cfg := testSettings()
			cfg.Mode = modeFor(interactive)
			cfg.Durability = DurabilityNormal
			names := []string{"a", "b", "c", "d", "e"}
			nt := newTNet(t, cfg, names...)
			nt.node("b").manualAck, nt.node("d").manualAck = true, true
			rng := rand.New(rand.NewPCG(2026, 12))
			loss := lossy(7, 0.3)
			var cut *tnode // the member cut off from the others, if any
			nt.drop = func(from, to *tnode, p []byte) bool {
				return from == cut || to == cut || loss(from, to, p)
			}
			parents := map[ID][]ID{}
			all := map[ID]bool{}
			checked := map[*tnode]int{}
			check := func() {
				for _, n := range nt.nodes {
					for _, d := range n.order[checked[n]:] {
						for _, p := range parents[d.id] {
							if !n.delivered(p) && !n.sentHere(p) {
								t.Fatalf("%s delivered %s before its parent %s", n.name, d.id, p)
							}
						}
					}
					checked[n] = len(n.order)
				}
			}
			const rounds = 1500
			for round := range rounds {
				for _, n := range nt.nodes {
					if rng.IntN(3) != 0 {
						continue
					}
					var ps []ID
					have := append(append([]ID(nil), n.sent...), n.deliveredPersistent()...)
					for range rng.IntN(4) {
						if len(have) == 0 {
							break
						}
						p := have[rng.IntN(len(have))]
						if !containsID(ps, p) {
							ps = append(ps, p)
						}
					}
					id := n.send(fmt.Sprintf("%s#%d", n.name, round), ps...)
					parents[id], all[id] = ps, true
				}
				for _, n := range nt.nodes {
					if n.manualAck && rng.IntN(2) == 0 {
						n.ack(n.unacked()...)
					}
				}
				reopen := func(n *tnode, how func()) {
					want := n.unacked()
					how()
					if !slices.Equal(n.redelivered, want) {
						t.Fatalf("%s redelivered %d messages, want the %d unacknowledged in order", n.name, len(n.redelivered), len(want))
					}
				}
				switch r := rng.IntN(100); {
				case r < 2:
					n := nt.nodes[rng.IntN(len(nt.nodes))]
					reopen(n, n.restart)
				case r < 4:
					n := nt.nodes[rng.IntN(len(nt.nodes))]
					reopen(n, n.crash)
				case r < 5:
					cut = nt.nodes[rng.IntN(len(nt.nodes))]
				case r < 10:
					cut = nil
				}
				nt.step()
				check()
			}
			cut = nil
			nt.run(5000, func() bool {
				check()
				for _, n := range nt.nodes {
					n.ack(n.unacked()...)
				}
				for _, n := range nt.nodes {
					if n.state().unacknowledged != 0 {
						return false
					}
					for id := range all {
						if !n.delivered(id) && !n.sentHere(id) {
							return false
						}
					}
				}
				return true
			})
			for _, n := range nt.nodes {
				if got := n.n.health().unacked; got != 0 {
					t.Errorf("%s: %d unacknowledged deliveries at the end", n.name, got)
				}
			}
			t.Logf("%d messages; %d epochs; redelivered at b %d, at d %d", len(all), nt.steps, nt.node("b").redeliveredTotal, nt.node("d").redeliveredTotal)
		})
	}
}
