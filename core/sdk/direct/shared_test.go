package direct

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestPublicChats: Subscribe gives a shared address and the overlay topic
// that carries it; a DOWN frame to the address is a broadcast on the topic
// (no peer); an UP frame on a subscribed topic goes up under the address,
// from its overlay sender; one on a topic not subscribed (or after
// Unsubscribe) and a malformed shared address are dropped and counted.
func TestPublicChats(t *testing.T) {
	ctx := context.Background()
	if _, err := New(Spec{Name: "plain", Version: "0.1.0", Description: "no public chats", Protocol: "plain"}).Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "lobby"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Subscribe on a layer without PublicChats: %v, want Unimplemented", err)
	}
	l := New(Spec{Name: "test", Version: "0.1.0", Description: "a direct layer", Protocol: "test", PublicChats: true})
	out := &sdktest.Recorder{}
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Logger: hclog.NewNullLogger(), Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{BelowAddress: []byte("self")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Subscribe(ctx, &privacyv1.SubscribeRequest{}); err == nil {
		t.Fatal("Subscribe took an empty name")
	}
	resp, err := l.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	topic := PublicTopic("test", "lobby", nil)
	if len(resp.GetOverlayTopics()) != 1 || resp.GetOverlayTopics()[0] != topic || !strings.HasPrefix(topic, "/strata/test/public/1/") {
		t.Fatalf("overlay topics %q, want [%q]", resp.GetOverlayTopics(), topic)
	}
	if PublicTopic("test", "lobby", []byte("k")) == topic || PublicTopic("none", "lobby", nil) == topic || PublicTopic("test", "lobby2", nil) == topic {
		t.Fatal("the topic does not depend on the key, the protocol and the name")
	}
	addr := resp.GetAddress()

	down := func(peer []byte) {
		l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Payload: []byte("hello"), TraceId: 7}}})
	}
	down(addr)
	got := out.Take()
	if len(got) != 1 || len(got[0].GetPeer()) != 0 || got[0].GetProtocol() != topic || got[0].GetTraceId() != 7 {
		t.Fatalf("a post became %v, want one broadcast on %q", got, topic)
	}
	wire := got[0].GetPayload()

	up := func(protocol string) []*commonv1.Frame {
		l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte("sender"), Protocol: protocol, Payload: wire}}})
		return out.Take()
	}
	if got := up(topic); len(got) != 1 || !bytes.Equal(got[0].GetConversation(), addr) || string(got[0].GetPeer()) != "sender" || string(got[0].GetPayload()) != "hello" {
		t.Fatalf("a post from the topic went up as %v", got)
	}
	if got := up(PublicTopic("test", "another", nil)); len(got) != 0 {
		t.Fatal("a post on a topic not subscribed went up")
	}
	down(append(bytes.Clone(addr[:len(sharedPrefix)]), strings.Repeat("x", maxTopic+1)...))
	if got := out.Take(); len(got) != 0 {
		t.Fatal("a malformed shared address was sent to")
	}
	if _, err := l.Unsubscribe(ctx, &privacyv1.UnsubscribeRequest{Address: addr}); err != nil {
		t.Fatal(err)
	}
	if got := up(topic); len(got) != 0 {
		t.Fatal("a post went up after Unsubscribe")
	}
	c := l.Health(ctx).GetCounters()
	if c["shared_sent"] != 1 || c["shared_received"] != 1 || c["dropped_bad_shared"] != 1 || c["dropped_wrong_protocol"] != 2 {
		t.Fatalf("counters %v", c)
	}
}
