package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// recordLink is an sdk.Link that records what it is given, in order.
type recordLink struct {
	mu  sync.Mutex
	got []string
}

func (l *recordLink) Emit(_ context.Context, fs ...*commonv1.Frame) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range fs {
		l.got = append(l.got, "f"+f.GetProtocol())
	}
	return nil
}

func (l *recordLink) EmitEvent(_ context.Context, ev *commonv1.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, "e"+string(ev.GetPeer().GetPeer()))
	return nil
}

func (l *recordLink) Done() <-chan struct{} { return nil }
func (l *recordLink) Err() error            { return nil }
func (l *recordLink) Close() error          { return nil }

// TestGateHoldsInOrder: a shut gate holds frames and events in the order
// they came, drops and counts what does not fit, and on opening hands the
// held items over, in order, before anything newer.
func TestGateHoldsInOrder(t *testing.T) {
	n := &Node{opts: Options{RouteTimeout: time.Second}}
	b := &boundary{name: "p2p|privacy"}
	var g gate
	frame := func(i int) []heldItem {
		return []heldItem{{b: b, dir: up, frame: &commonv1.Frame{Protocol: fmt.Sprint(i)}}}
	}
	event := func(i int) []heldItem {
		return []heldItem{{event: &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(fmt.Sprint(i))}}}}}
	}
	for i, items := range [][]heldItem{event(0), frame(1), frame(2), event(3), frame(4)} {
		if l, held := g.admit(items); l != nil || !held {
			t.Fatalf("item %d: shut gate gave link %v, held %v", i, l, held)
		}
	}
	// Fill the gate to its bound: the excess is dropped and counted.
	filler := make([]heldItem, maxHeld-5+2)
	for i := range filler {
		filler[i] = heldItem{b: b, dir: up, frame: &commonv1.Frame{Protocol: "x"}}
	}
	if _, held := g.admit(filler); held {
		t.Fatal("an overflowing admit reported every item held")
	}
	if d := b.dropped[DropLayerDown].Load(); d != 2 {
		t.Fatalf("dropped %d, want 2", d)
	}
	link := &recordLink{}
	g.openTo(context.Background(), n, link)
	if l, held := g.admit(frame(5)); l != link || !held {
		t.Fatal("an open gate did not give its link")
	}
	_ = link.Emit(context.Background(), frame(5)[0].frame)
	want := []string{"e0", "f1", "f2", "e3", "f4"}
	if len(link.got) != maxHeld+1 {
		t.Fatalf("link got %d items, want %d", len(link.got), maxHeld+1)
	}
	for i, w := range want {
		if link.got[i] != w {
			t.Fatalf("item %d is %s, want %s (%v)", i, link.got[i], w, link.got[:len(want)])
		}
	}
	if last := link.got[len(link.got)-1]; last != "f5" {
		t.Fatalf("the newer frame came as %s, not last", last)
	}
	if c := b.frames[up].Load(); c != maxHeld-2 { // all held but the two events
		t.Fatalf("counted %d frames up, want %d", c, maxHeld-2)
	}
	g.shut()
	if l, _ := g.admit(frame(6)); l != nil {
		t.Fatal("a shut gate gave its link")
	}
}
