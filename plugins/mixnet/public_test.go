package mixnet_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/plugins/mixnet"
)

// TestNetworkPublicChat: three clients on two providers subscribe to one
// public chat through the privacy control API and get the same shared
// address; a DOWN frame to it from one reaches the other two as an UP
// frame whose conversation is the shared address and whose peer is the
// sender's address, and not the sender itself. A group frame (a
// conversation id, a shared address derived with a key) goes up with its
// conversation. A relay has no shared addresses, and no relay stores or
// logs the plaintext.
func TestNetworkPublicChat(t *testing.T) {
	n := newNetwork(t)
	// Less cover than TestNetwork's: three clients on a loaded CI machine.
	fast := map[string]any{"lambda_p": 20.0, "lambda_l": 1.0, "lambda_d": 1.0, "lambda_m": 0.5, "mu": 50.0, "pull_interval": "200ms", "ack_timeout": "5s"}
	o := &overlay{nodes: map[string]*layerNode{}}
	var relays []*layerNode
	for _, m := range n.relays() {
		relays = append(relays, o.start(t, m.Name, n.peerID(t, m.Name), n.config(relayRole(m), m.Name, fast)))
	}
	alice := o.start(t, "alice", "client-alice", n.config(mixnet.RoleClient, "provider-0", fast))
	bob := o.start(t, "bob", "client-bob", n.config(mixnet.RoleClient, "provider-1", fast))
	carol := o.start(t, "carol", "client-carol", n.config(mixnet.RoleClient, "provider-0", fast))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := relays[0].l.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "x"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a relay's Subscribe: %v", err)
	}
	var addr []byte
	for _, c := range []*layerNode{alice, bob, carol} {
		resp, err := c.l.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "#strata"})
		if err != nil {
			t.Fatal(err)
		}
		if addr != nil && !bytes.Equal(resp.GetAddress(), addr) {
			t.Fatal("two clients derived different shared addresses for one name")
		}
		addr = resp.GetAddress()
	}
	group, err := alice.l.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "strata-group-1", Key: []byte("group key")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*layerNode{bob, carol} {
		if _, err := c.l.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "strata-group-1", Key: []byte("group key")}); err != nil {
			t.Fatal(err)
		}
	}
	aAddr, _ := alice.l.OwnAddress(ctx, nil)
	post := bytes.Repeat([]byte("public-plaintext "), 150) // two packets
	groupMsg := []byte("group-plaintext")
	alice.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{
		{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: addr, Payload: post},
		{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: group.GetAddress(), Conversation: []byte("conv-g"), Payload: groupMsg},
	}})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && (len(bob.delivered()) < 2 || len(carol.delivered()) < 2) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything more would show
	for _, c := range []*layerNode{bob, carol} {
		got := c.delivered()
		if len(got) != 2 {
			t.Fatalf("%s got %d frames up, want 2; health %v", c.name, len(got), c.l.Health(ctx).GetCounters())
		}
		for _, f := range got {
			if !bytes.Equal(f.GetPeer(), aAddr.GetAddress()) {
				t.Errorf("%s: an UP frame from %x, not alice", c.name, f.GetPeer())
			}
			switch {
			case bytes.Equal(f.GetPayload(), post):
				if !bytes.Equal(f.GetConversation(), addr) {
					t.Errorf("%s: the public post's conversation is %x, not the shared address", c.name, f.GetConversation())
				}
			case bytes.Equal(f.GetPayload(), groupMsg):
				if string(f.GetConversation()) != "conv-g" {
					t.Errorf("%s: the group frame's conversation is %q", c.name, f.GetConversation())
				}
			default:
				t.Errorf("%s got %q", c.name, f.GetPayload())
			}
		}
	}
	if got := alice.delivered(); len(got) != 0 {
		t.Errorf("alice got %d frames up (her own posts?)", len(got))
	}
	if _, err := carol.l.Unsubscribe(ctx, &privacyv1.UnsubscribeRequest{Address: addr}); err != nil {
		t.Errorf("Unsubscribe: %v", err)
	}
	if _, err := carol.l.Unsubscribe(ctx, &privacyv1.UnsubscribeRequest{Address: []byte("x")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Unsubscribe of a bad address: %v", err)
	}
	for _, r := range relays {
		var stored []byte
		filepath.Walk(r.dir, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(path)
				stored = append(stored, b...)
			}
			return nil
		})
		for _, secret := range [][]byte{post[:40], groupMsg, []byte("conv-g"), aAddr.GetAddress(), []byte("#strata")} {
			if bytes.Contains(r.log.Bytes(), secret) || bytes.Contains(stored, secret) {
				t.Errorf("%s logs or stores %q", r.name, secret)
			}
		}
	}
}
