package node

import (
	"github.com/strata-msg/strata/host/faults"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// injectFaults builds the fault injectors the config asks for: one per
// boundary and direction the boundary's spec applies to. A boundary is
// named in the config by its lower layer.
func (n *Node) injectFaults() {
	for k, s := range n.slots {
		spec, ok := n.cfg.Faults.Boundaries[s.key]
		if !ok || !spec.Active() {
			continue
		}
		b := n.bounds[k]
		if spec.Applies(true) {
			b.faults[down] = faults.New(spec, n.cfg.Faults.Seed, b.name+"/down", func(fs []*commonv1.Frame) {
				n.hand(n.ctx, b, down, k, fs)
			})
		}
		if spec.Applies(false) {
			top := k == len(n.slots)-1
			b.faults[up] = faults.New(spec, n.cfg.Faults.Seed, b.name+"/up", func(fs []*commonv1.Frame) {
				if top {
					n.deliverApp(fs)
				} else {
					n.hand(n.ctx, b, up, k+1, fs)
				}
			})
		}
	}
}

// closeFaults stops the boundary's injectors; frames they hold are dropped.
func (b *boundary) closeFaults() {
	for _, inj := range b.faults {
		if inj != nil {
			inj.Close()
		}
	}
}

// faultStats sums what the boundary's injectors did, both directions.
func (b *boundary) faultStats() map[string]uint64 {
	out := map[string]uint64{}
	for _, inj := range b.faults {
		if inj == nil {
			continue
		}
		st := inj.Stats()
		out["dropped"] += st.Dropped + st.DroppedAtClose
		out["duplicated"] += st.Duplicated
		out["delayed"] += st.Delayed
		out["reordered"] += st.Reordered
	}
	return out
}
