package sdktest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/internal/echolayer"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestStackRoutesAndCounts: frames sent into a one-layer stack of the echo
// layer come back up to the app with their trace ids, in order; the input
// observer sees each one, and the boundary counts both directions.
func TestStackRoutesAndCounts(t *testing.T) {
	var (
		app   sdktest.Recorder
		mu    sync.Mutex
		seen  int
		count = 100
	)
	open := sdktest.Open(sdktest.InProcess, commonv1.LayerKind_LAYER_KIND_PRIVACY, func() sdk.Layer { return echolayer.New() }, "")
	st := sdktest.NewStack(t, sdktest.StackConfig{
		Layers: []sdktest.StackLayer{{Name: "echo", Open: open}},
		App:    app.Keep,
		Input: func(layer string, f *commonv1.Frame, ev *commonv1.Event) {
			mu.Lock()
			defer mu.Unlock()
			if layer == "echo" && f != nil {
				seen++
			}
		},
	})
	ctx := context.Background()
	for i := range count {
		if err := st.Send(ctx, &commonv1.Frame{TraceId: uint64(1000 + i), Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		f := app.Next(t, 10*time.Second, fmt.Sprintf("frame %d at the app", i), nil)
		if f.GetTraceId() != uint64(1000+i) || string(f.GetPayload()) != fmt.Sprint(i) {
			t.Fatalf("frame %d came back as trace %d payload %q", i, f.GetTraceId(), f.GetPayload())
		}
	}
	if extra := app.Take(); len(extra) != 0 {
		t.Fatalf("%d frames more than were sent reached the app", len(extra))
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != count {
		t.Errorf("the observer saw %d frames handed to the layer, want %d", seen, count)
	}
	b := st.Router().Boundary(0)
	if b.Frames(pipeline.Down) != uint64(count) || b.Frames(pipeline.Up) != uint64(count) {
		t.Errorf("boundary counted %d down, %d up; want %d each", b.Frames(pipeline.Down), b.Frames(pipeline.Up), count)
	}
}
