package pipeline

import (
	"context"
	"errors"
	"sync"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// MaxHeld bounds the frames and events a shut door holds.
const MaxHeld = 4096

// ErrLayerDown is returned for frames that found the receiving layer not
// running and its door full, or whose hand ended with the layer's link.
var ErrLayerDown = errors.New("pipeline: the receiving layer is not running")

// ErrStalled is returned for frames that the receiving layer did not take
// within the stall timeout.
var ErrStalled = errors.New("pipeline: the receiving layer took nothing within the stall timeout")

// heldItem is a frame or an event that reached a layer whose door was shut,
// with the boundary it crossed (nil for events).
type heldItem struct {
	b     *Boundary
	dir   Dir
	frame *commonv1.Frame
	event *commonv1.Event
}

// Door is a layer's input: the one place the router hands the layer frames
// and events. It is shut while the layer is not taking traffic (before its
// start has finished, including the host's install of contacts and peers,
// and while a crashed plugin restarts), and then holds what arrives, in
// order, up to MaxHeld. Opening it hands the held items to the layer before
// anything newer. Without it, what the overlay receives while the layer
// above it starts is lost: a peer's whisper Status, sent once per
// connection.
type Door struct {
	r    *Router
	mu   sync.Mutex
	open bool
	in   Inlet
	held []heldItem
}

// admit returns the inlet to hand items to when the door is open. When it
// is shut it holds the items and returns nil, with ErrLayerDown if some did
// not fit (those are dropped and counted).
func (d *Door) admit(items []heldItem) (Inlet, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open {
		return d.in, nil
	}
	room := max(MaxHeld-len(d.held), 0)
	var err error
	for i, it := range items {
		if i >= room {
			if it.b != nil {
				it.b.Drop(DropLayerDown, 1)
			}
			err = ErrLayerDown
			continue
		}
		d.held = append(d.held, it)
	}
	return nil, err
}

// Open opens the door onto in: the held items go to it first, in order.
// It returns once they are handed.
func (d *Door) Open(ctx context.Context, in Inlet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	held := d.held
	d.held = nil
	for len(held) > 0 {
		it := held[0]
		if it.event != nil {
			_ = d.r.emitEvents(ctx, in, []*commonv1.Event{it.event}) // events are advisory
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
		_ = d.r.emit(ctx, it.b, it.dir, in, frames)
		held = held[k:]
	}
	d.open, d.in = true, in
}

// Shut closes the door: from now on it holds what arrives.
func (d *Door) Shut() {
	d.mu.Lock()
	d.open, d.in = false, nil
	d.mu.Unlock()
}

// frames hands frames that crossed boundary b in dir to the layer, or
// holds them while the door is shut.
func (d *Door) frames(ctx context.Context, b *Boundary, dir Dir, frames []*commonv1.Frame) error {
	items := make([]heldItem, len(frames))
	for i, f := range frames {
		items[i] = heldItem{b: b, dir: dir, frame: f}
	}
	in, err := d.admit(items)
	if in == nil {
		return err
	}
	return d.r.emit(ctx, b, dir, in, frames)
}

// events hands events to the layer, or holds them while the door is shut.
// Events are advisory: what does not fit is dropped.
func (d *Door) events(ctx context.Context, events []*commonv1.Event) {
	items := make([]heldItem, len(events))
	for i, ev := range events {
		items[i] = heldItem{event: ev}
	}
	in, _ := d.admit(items)
	if in == nil {
		return
	}
	_ = d.r.emitEvents(ctx, in, events)
}
