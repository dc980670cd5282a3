package mixnet_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// TestNetworkReplies: alice's layer is configured anonymous with four
// reply SURBs per message. Bob's layer hands its message up from a reply
// address, not alice's address, and bob's answer to that address travels
// on alice's SURBs and reaches alice as from bob. Alice's address appears
// nowhere at bob: not in the frames up, not in his log or data directory.
func TestNetworkReplies(t *testing.T) {
	n := newNetwork(t)
	fast := map[string]any{"lambda_p": 20.0, "lambda_l": 5.0, "lambda_d": 5.0, "lambda_m": 2.0, "mu": 50.0, "pull_interval": "100ms"}
	o := &overlay{nodes: map[string]*layerNode{}}
	for _, m := range n.relays() {
		o.start(t, m.Name, n.peerID(t, m.Name), n.config(relayRole(m), m.Name, fast))
	}
	anon := map[string]any{"anonymous": true, "reply_surbs": 4}
	for k, v := range fast {
		anon[k] = v
	}
	alice := o.start(t, "alice", "client-alice", n.config(mixnet.RoleClient, "provider-0", anon))
	bob := o.start(t, "bob", "client-bob", n.config(mixnet.RoleClient, "provider-1", fast))
	ctx := context.Background()
	aAddr, _ := alice.l.OwnAddress(ctx, nil)
	bAddr, _ := bob.l.OwnAddress(ctx, nil)

	question := []byte("an anonymous question")
	alice.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: bAddr.GetAddress(), Conversation: []byte("c"), Payload: question}}})
	wait := func(n *layerNode, count int) []*commonv1.Frame {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && len(n.delivered()) < count {
			time.Sleep(20 * time.Millisecond)
		}
		got := n.delivered()
		if len(got) < count {
			t.Fatalf("%s got %d frames up, want %d; health %v", n.name, len(got), count, n.l.Health(ctx).GetCounters())
		}
		return got
	}
	q := wait(bob, 1)[0]
	if !bytes.Equal(q.GetPayload(), question) {
		t.Fatalf("bob got %q", q.GetPayload())
	}
	if _, err := loopix.ParseReplyAddress(q.GetPeer()); err != nil {
		t.Fatalf("bob's frame is from %x, not a reply address: %v", q.GetPeer(), err)
	}

	answer := bytes.Repeat([]byte("an answer on the SURBs "), 100) // two packets
	bob.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: q.GetPeer(), Conversation: []byte("c"), Payload: answer}}})
	a := wait(alice, 1)[0]
	if !bytes.Equal(a.GetPayload(), answer) || !bytes.Equal(a.GetPeer(), bAddr.GetAddress()) || string(a.GetConversation()) != "c" {
		t.Fatalf("alice got %d bytes from %x in %q", len(a.GetPayload()), a.GetPeer(), a.GetConversation())
	}
	hb := bob.l.Health(ctx).GetCounters()
	if hb["replies_sent"] != 2 || hb["reply_surbs_received"] != 4 {
		t.Fatalf("bob: %v", hb)
	}
	if ha := alice.l.Health(ctx).GetCounters(); ha["replies_received"] != 2 {
		t.Fatalf("alice: %v", ha)
	}
	// Nothing at bob names alice.
	for _, f := range bob.delivered() {
		if bytes.Contains(f.GetPeer(), aAddr.GetAddress()) || bytes.Contains(f.GetPayload(), aAddr.GetAddress()) {
			t.Fatal("a frame up at bob names alice's address")
		}
	}
	if bytes.Contains(bob.log.Bytes(), aAddr.GetAddress()) || bytes.Contains(dirBytes(bob.dir), aAddr.GetAddress()) {
		t.Fatal("bob logs or stores alice's address")
	}
}

// dirBytes returns the contents of every file under dir, concatenated.
func dirBytes(dir string) []byte {
	var out []byte
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			out = append(out, b...)
		}
		return nil
	})
	return out
}
