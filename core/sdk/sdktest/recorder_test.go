package sdktest_test

import (
	"context"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestRecorderTryNext: TryNext returns nil when nothing it accepts arrives
// in time, leaves the frames it skips, and returns a frame that arrives
// while it waits; TryNextEvent does the same for events.
func TestRecorderTryNext(t *testing.T) {
	var r sdktest.Recorder
	ctx := context.Background()
	up := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP}
	down := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN}
	isDown := func(f *commonv1.Frame) bool { return f.GetDirection() == commonv1.Direction_DIRECTION_DOWN }

	if f := r.TryNext(0, nil); f != nil {
		t.Fatalf("TryNext on an empty recorder = %v, want nil", f)
	}
	_ = r.Emit(ctx, up)
	if f := r.TryNext(10*time.Millisecond, isDown); f != nil {
		t.Fatalf("TryNext(down) with only an UP frame kept = %v, want nil", f)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		_ = r.Emit(ctx, down)
	}()
	if f := r.TryNext(10*time.Second, isDown); f != down {
		t.Fatalf("TryNext(down) = %v, want the DOWN frame emitted while it waited", f)
	}
	if got := r.Take(); len(got) != 1 || got[0] != up {
		t.Fatalf("kept %v, want the skipped UP frame only", got)
	}

	ev := &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("p")}}}
	if e := r.TryNextEvent(0, nil); e != nil {
		t.Fatalf("TryNextEvent on no events = %v, want nil", e)
	}
	_ = r.EmitEvent(ctx, ev)
	if e := r.TryNextEvent(0, nil); e != ev {
		t.Fatalf("TryNextEvent = %v, want the kept event", e)
	}
}
