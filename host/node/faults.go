package node

import (
	"context"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/faults"
)

// faultStage is the stage that injects the faults the config asks for:
// one injector per boundary and direction the boundary's spec applies to.
// A boundary is named in the config by its lower layer. The injector hands
// on what survives, now or later.
func (n *Node) faultStage() pipeline.Stage {
	return func(b *pipeline.Boundary, dir pipeline.Dir, next pipeline.Handler) pipeline.Handler {
		spec, ok := n.cfg.Faults.Boundaries[n.slots[b.Index].key]
		if !ok || !spec.Active() || !spec.Applies(dir == pipeline.Down) {
			return next
		}
		inj := faults.New(spec, n.cfg.Faults.Seed, fmt.Sprintf("%s/%s", b.Name, dir), func(fs []*commonv1.Frame) {
			_ = next.Handle(n.ctx, fs)
		})
		n.faults[b.Index] = append(n.faults[b.Index], inj)
		b.Report("faults", func() map[string]uint64 { return faultStats(n.faults[b.Index]) })
		return pipeline.HandlerFunc(func(_ context.Context, frames []*commonv1.Frame) error {
			inj.Apply(frames)
			return nil
		})
	}
}

// faultStats sums what a boundary's injectors did, both directions.
func faultStats(injs []*faults.Injector) map[string]uint64 {
	out := map[string]uint64{}
	for _, inj := range injs {
		st := inj.Stats()
		out["dropped"] += st.Dropped + st.DroppedAtClose
		out["duplicated"] += st.Duplicated
		out["delayed"] += st.Delayed
		out["reordered"] += st.Reordered
	}
	return out
}
