package sdk_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestLargeFrameCrosses sends a frame above gRPC's default 4 MiB receive
// limit across the process boundary and back: the SDK raises the limit on
// both sides, so only a layer's own limit refuses large frames.
func TestLargeFrameCrosses(t *testing.T) {
	_, link, got := started(t, sdktest.OutOfProcess, `{}`)
	big := bytes.Repeat([]byte{0x5a}, 5<<20)
	if err := link.Emit(context.Background(), &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Payload: big}); err != nil {
		t.Fatal(err)
	}
	if f := got.Next(t, 20*time.Second, "the 5 MiB frame to come back", nil); !bytes.Equal(f.GetPayload(), big) {
		t.Fatalf("a %d-byte frame came back as %d bytes", len(big), len(f.GetPayload()))
	}
}
