package node

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
)

// fakeSyncClient is a sync layer's control client that counts calls; with
// batch false it answers SendBatch Unimplemented, and failAt > 0 makes
// that Send call fail.
type fakeSyncClient struct {
	syncv1.ControlClient
	batch          bool
	failAt         int
	batches, sends int
}

func (c *fakeSyncClient) SendBatch(_ context.Context, req *syncv1.SendBatchRequest, _ ...grpc.CallOption) (*syncv1.SendBatchResponse, error) {
	c.batches++
	if !c.batch {
		return nil, status.Error(codes.Unimplemented, "no SendBatch")
	}
	resp := &syncv1.SendBatchResponse{}
	for _, m := range req.GetMessages() {
		resp.Results = append(resp.Results, &syncv1.SendResponse{MessageId: append([]byte("id:"), m.GetPayload()...)})
	}
	return resp, nil
}

func (c *fakeSyncClient) Send(_ context.Context, req *syncv1.SendRequest, _ ...grpc.CallOption) (*syncv1.SendResponse, error) {
	c.sends++
	if c.sends == c.failAt {
		return nil, status.Error(codes.FailedPrecondition, "refused")
	}
	return &syncv1.SendResponse{MessageId: append([]byte("id:"), req.GetPayload()...)}, nil
}

// TestSendRequests: a layer with SendBatch gets one call per batch; one
// without it answers Unimplemented once and from then on gets one Send per
// message, in order; a Send that fails stops the batch and says how many
// went before it.
func TestSendRequests(t *testing.T) {
	reqs := func(n int) []*syncv1.SendRequest {
		var out []*syncv1.SendRequest
		for i := range n {
			out = append(out, &syncv1.SendRequest{Payload: fmt.Appendf(nil, "m%d", i)})
		}
		return out
	}
	ctx := context.Background()

	a := &syncAdapter{s: &slot{key: "sync"}}
	batcher := &fakeSyncClient{batch: true}
	ids, err := a.sendRequests(ctx, batcher, reqs(3))
	if err != nil || len(ids) != 3 || string(ids[2]) != "id:m2" {
		t.Fatalf("with SendBatch: %q, %v", ids, err)
	}
	if batcher.batches != 1 || batcher.sends != 0 {
		t.Fatalf("with SendBatch: %d SendBatch and %d Send calls, want 1 and 0", batcher.batches, batcher.sends)
	}

	a = &syncAdapter{s: &slot{key: "sync"}}
	old := &fakeSyncClient{}
	for round := range 2 {
		ids, err := a.sendRequests(ctx, old, reqs(3))
		if err != nil || len(ids) != 3 || string(ids[0]) != "id:m0" || string(ids[2]) != "id:m2" {
			t.Fatalf("round %d without SendBatch: %q, %v", round, ids, err)
		}
	}
	if old.batches != 1 || old.sends != 6 {
		t.Fatalf("without SendBatch: %d SendBatch and %d Send calls, want 1 (then remembered) and 6", old.batches, old.sends)
	}

	old.failAt = old.sends + 2
	if _, err := a.sendRequests(ctx, old, reqs(3)); err == nil || status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a refused Send: %v, want the layer's FailedPrecondition", err)
	} else if want := "message 1 of the batch (the 1 before it were sent)"; !strings.Contains(err.Error(), want) {
		t.Fatalf("a refused Send: %q does not say %q", err, want)
	}
}
