package node

import (
	"context"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// maxHeld bounds the frames and events a gate holds for a layer that is
// not taking traffic yet.
const maxHeld = 4096

// heldItem is a frame or an event that reached a layer before it took
// traffic, with the boundary it crossed (nil for events).
type heldItem struct {
	b     *boundary
	dir   int
	frame *commonv1.Frame
	event *commonv1.Event
}

// gate is the door through which the router hands a layer its input. It is
// shut while the layer is not taking traffic (before its start has
// finished, including the host's install of contacts and peers, and while
// a crashed plugin restarts) and then holds what arrives, in order, up to
// maxHeld. Opening it hands the held items to the layer before anything
// newer. Without it, what the overlay receives while the layer above it
// starts is lost: a peer's whisper Status, sent once per connection.
type gate struct {
	mu   sync.Mutex
	open bool
	link sdk.Link
	held []heldItem
}

// admit returns the link to hand frames or an event to when the gate is
// open. When it is shut it holds the items and returns nil, and reports
// whether all of them fit; what does not fit is dropped and counted as the
// layer being down.
func (g *gate) admit(items []heldItem) (sdk.Link, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return g.link, true
	}
	room := max(maxHeld-len(g.held), 0)
	for i, it := range items {
		if i >= room {
			if it.b != nil {
				it.b.dropped[DropLayerDown].Add(1)
			}
			continue
		}
		g.held = append(g.held, it)
	}
	return nil, len(items) <= room
}

// openTo opens the gate onto link: the held items go to it first, in
// order, through n.handTo for frames. It returns once they are handed.
func (g *gate) openTo(ctx context.Context, n *Node, link sdk.Link) {
	g.mu.Lock()
	defer g.mu.Unlock()
	held := g.held
	g.held = nil
	for len(held) > 0 {
		it := held[0]
		if it.event != nil {
			tctx, cancel := context.WithTimeout(ctx, n.opts.RouteTimeout)
			_ = link.EmitEvent(tctx, it.event) // events are advisory
			cancel()
			held = held[1:]
			continue
		}
		// A run of frames across one boundary goes in one call.
		k := 1
		for k < len(held) && held[k].event == nil && held[k].b == it.b && held[k].dir == it.dir {
			k++
		}
		frames := make([]*commonv1.Frame, k)
		for i := range k {
			frames[i] = held[i].frame
		}
		n.handTo(ctx, it.b, it.dir, link, frames)
		held = held[k:]
	}
	g.open, g.link = true, link
}

// shut closes the gate: from now on it holds what arrives.
func (g *gate) shut() {
	g.mu.Lock()
	g.open, g.link = false, nil
	g.mu.Unlock()
}
