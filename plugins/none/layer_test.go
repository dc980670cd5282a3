package none_test

import (
	"context"
	"fmt"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/none"
)

// TestMaxPayloadIsEnforced: the limit enforced is the configured
// max_payload, above the default as well as below it, while the declared
// limit (PluginInfo.max_payload) stays the default's.
func TestMaxPayloadIsEnforced(t *testing.T) {
	tests := []struct {
		name       string
		maxPayload int
		payload    int
		sent       bool
	}{
		{"above the default, within the limit", 2 << 20, 3 << 19, true},
		{"below the default, over the limit", 1 << 10, 2 << 10, false},
		{"at the limit", 1 << 10, 1 << 10, true},
		{"unset: the default", 0, none.DefaultMaxPayload, true},
		{"unset: over the default", 0, none.DefaultMaxPayload + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, out := none.New(), &sdktest.Recorder{}
			cfg := "{}"
			if tt.maxPayload > 0 {
				cfg = fmt.Sprintf(`{"max_payload": %d}`, tt.maxPayload)
			}
			lc := sdk.NewLifecycle(l)
			ctx := context.Background()
			if _, err := lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: cfg}, sdk.Env{Out: out}); err != nil {
				t.Fatalf("Configure(%s): %v", cfg, err)
			}
			if _, err := lc.Start(ctx, &commonv1.StartRequest{BelowAddress: []byte("self")}); err != nil {
				t.Fatal(err)
			}
			if got := l.Describe().GetMaxPayload(); got != none.DefaultMaxPayload {
				t.Fatalf("declared max_payload = %d, want the default %d whatever the config", got, none.DefaultMaxPayload)
			}
			lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{
				Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte("peer"), Conversation: []byte("c"), Payload: make([]byte, tt.payload),
			}}})
			got := out.Take()
			c := lc.Health(ctx).GetCounters()
			if tt.sent {
				if len(got) != 1 || len(got[0].GetPayload()) < tt.payload || c["frames_sent"] != 1 {
					t.Fatalf("a %d-byte payload with max_payload %d: emitted %d frames, frames_sent %d; want it sent", tt.payload, tt.maxPayload, len(got), c["frames_sent"])
				}
				return
			}
			if len(got) != 0 || c["dropped_oversize"] != 1 || c["frames_sent"] != 0 {
				t.Fatalf("a %d-byte payload with max_payload %d: emitted %d frames, dropped_oversize %d, frames_sent %d; want it dropped and counted", tt.payload, tt.maxPayload, len(got), c["dropped_oversize"], c["frames_sent"])
			}
		})
	}
}
