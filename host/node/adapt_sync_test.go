package node

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/conversations"
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

// TestAckRequest: every acknowledgement is in message_ids (a layer that
// predates verdicts takes a refusal as an acknowledgement, as before); a
// refusal is also in rejected, with its reason, cut to maxRejectReason
// bytes of valid UTF-8.
func TestAckRequest(t *testing.T) {
	long := strings.Repeat("é", maxRejectReason) // two bytes each
	req := ackRequest([]byte("g"), []ackItem{{id: []byte("taken")}, {id: []byte("forged"), reject: "dropped_forged_author: bad signature"}, {id: []byte("long"), reject: long}})
	if string(req.GetGroup()) != "g" || len(req.GetMessageIds()) != 3 || string(req.GetMessageIds()[1]) != "forged" {
		t.Fatalf("message_ids %q", req.GetMessageIds())
	}
	rs := req.GetRejected()
	if len(rs) != 2 || string(rs[0].GetMessageId()) != "forged" || rs[0].GetReason() != "dropped_forged_author: bad signature" {
		t.Fatalf("rejected %v", rs)
	}
	if r := rs[1].GetReason(); len(r) > maxRejectReason || !strings.HasPrefix(long, r) || len(r) < maxRejectReason-1 {
		t.Fatalf("a long reason cut to %d bytes", len(r))
	}
}

// TestRefusedIsRejected: a message the sync layer delivers that the host
// refuses (here: signed by one member, delivered as another's) is
// acknowledged with a rejection that names the host's reason, so that the
// layer stops passing it on; before the validator hook it was only
// dropped and acknowledged.
func TestRefusedIsRejected(t *testing.T) {
	n, signerNode := signer(t), signer(t)
	n.log = hclog.NewNullLogger()
	n.book = &addressBook{byID: map[string]*contacts.Card{}, byPrivacy: map[string]map[string]bool{}}
	n.acks = newAcker(&syncAdapter{})
	conv := []byte("a group")
	s, err := signerNode.seal(conv, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	claimed := bytes.Repeat([]byte{7}, 32)
	m := &conversations.Message{Conversation: conv, MessageID: []byte("sync id"), Author: claimed, Payload: s.wire}
	n.take(t.Context(), []*inbound{{msgs: []*conversations.Message{m}, top: true}})
	items := n.acks.pending[string(conv)]
	if len(items) != 1 || string(items[0].id) != "sync id" || !strings.HasPrefix(items[0].reject, "dropped_forged_author: ") {
		t.Fatalf("acknowledgements queued: %+v", items)
	}
	if got := n.MessageStats()["dropped_forged_author"]; got != 1 {
		t.Fatalf("dropped_forged_author %d", got)
	}
	req := ackRequest(conv, items)
	if len(req.GetRejected()) != 1 || string(req.GetRejected()[0].GetMessageId()) != "sync id" {
		t.Fatalf("Ack %v", req)
	}
}
