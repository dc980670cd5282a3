package sdk

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// TestQueueKeepsEmissionOrder checks that reading each batch as its frames,
// then its events, gives back the order in which frames and events were
// queued, whatever the interleaving and batch bounds.
func TestQueueKeepsEmissionOrder(t *testing.T) {
	random := func(seed uint64, n int) string {
		r := rand.New(rand.NewPCG(seed, 1))
		var b strings.Builder
		for range n {
			if r.IntN(3) == 0 {
				b.WriteByte('e')
			} else {
				b.WriteByte('f')
			}
		}
		return b.String()
	}
	tests := []struct {
		name      string
		pattern   string // f: frame, e: event
		maxFrames int
	}{
		{"frames only", "fffff", 0},
		{"events only", "eeee", 0},
		{"connect then frames", "effff", 0},
		{"frames then disconnect", "ffffe", 0},
		{"reconnect", "efffeeffe", 0},
		{"alternating", "fefefefe", 0},
		{"small batches", "efffeeffefe", 2},
		{"random", random(1, 500), 0},
		{"random small batches", random(2, 500), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(BatchOptions{MaxFrames: tt.maxFrames})
			ctx := context.Background()
			for i, c := range tt.pattern {
				name := fmt.Sprint(i)
				var err error
				if c == 'f' {
					err = q.Emit(ctx, &commonv1.Frame{Protocol: name})
				} else {
					err = q.EmitEvent(ctx, &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(name)}}})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			batches := 0
			for len(got) < len(tt.pattern) {
				b, err := q.next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				batches++
				if tt.maxFrames > 0 && len(b.GetFrames())+len(b.GetEvents()) > tt.maxFrames {
					t.Fatalf("batch of %d items, bound %d", len(b.GetFrames())+len(b.GetEvents()), tt.maxFrames)
				}
				for _, f := range b.GetFrames() {
					got = append(got, f.GetProtocol())
				}
				for _, e := range b.GetEvents() {
					got = append(got, string(e.GetPeer().GetPeer()))
				}
			}
			for i, g := range got {
				if g != fmt.Sprint(i) {
					t.Fatalf("item %d read as %s; order %v", i, g, got)
				}
			}
			if strings.Count(tt.pattern, "ef") == 0 && tt.maxFrames == 0 && batches != 1 {
				t.Errorf("%d batches for %q, want 1", batches, tt.pattern)
			}
		})
	}
}

// TestQueueBlocksWhenFull: a producer that finds the queue full waits (flow
// control) until the pump takes a batch, then goes on; its context ending
// or the queue closing ends the wait with an error; nothing is dropped.
func TestQueueBlocksWhenFull(t *testing.T) {
	q := newQueue(BatchOptions{QueueLen: 4, MaxFrames: 2})
	ctx := context.Background()
	frames := make([]*commonv1.Frame, 6)
	for i := range frames {
		frames[i] = &commonv1.Frame{Protocol: fmt.Sprint(i)}
	}
	put := make(chan error, 1)
	go func() { put <- q.Emit(ctx, frames...) }()
	select {
	case err := <-put:
		t.Fatalf("Emit of 6 frames into a queue of 4 returned %v without waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	var got []string
	for len(got) < 6 {
		b, err := q.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range b.GetFrames() {
			got = append(got, f.GetProtocol())
		}
	}
	if err := <-put; err != nil {
		t.Fatalf("Emit: %v", err)
	}
	if want := "0 1 2 3 4 5"; strings.Join(got, " ") != want {
		t.Fatalf("drained %v, want %s", got, want)
	}

	// Full again: a cancelled context and a close both end the wait.
	if err := q.Emit(ctx, frames[:4]...); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { put <- q.Emit(cctx, frames[4]) }()
	cancel()
	if err := <-put; !errors.Is(err, context.Canceled) {
		t.Fatalf("Emit with a cancelled context: %v", err)
	}
	go func() { put <- q.Emit(ctx, frames[4]) }()
	q.close()
	if err := <-put; !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit into a closed queue: %v", err)
	}
}
