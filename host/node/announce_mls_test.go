package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"slices"
	"testing"
	"time"

	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
)

// TestAnnounceInGroupOnMLS: on a stack whose secure layer provides
// learns-conversations (mls), a conversation of three is announced once in
// the conversation itself and, in a 1:1 conversation, only to the member
// that makes the group (the lowest key): the members learn the group from
// the Welcome and its name from the announcement, and the announcer's sync
// layer holds one message in the group and none in the other 1:1
// conversations.
func TestAnnounceInGroupOnMLS(t *testing.T) {
	if testing.Short() {
		t.Skip("three mls stacks forming a group; runs without -short")
	}
	dir := t.TempDir()
	a, b, c := startMLS(t, dir, "a", ""), startMLS(t, dir, "b", ""), startMLS(t, dir, "c", "")
	nodes := []*fullNode{a, b, c}
	logOnFailure(t, nodes...)
	ctx := context.Background()
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				if _, err := x.AddContact(ctx, y.CardText()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, x := range nodes {
		waitPeers(t, x.Node, 2)
	}
	team := []byte("the team's id")
	if err := a.SetConversation(ctx, team, []ed25519.PublicKey{b.Identity(), c.Identity()}, node.WithName("the team")); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*fullNode{b, c} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			convs, err := x.Conversations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(convs, func(cv *conversations.Conversation) bool { return bytes.Equal(cv.ID, team) })
			if i >= 0 && convs[i].Name == "the team" {
				if len(convs[i].Members) != 3 {
					t.Fatalf("%s has the team with %d members, want 3", x.Name(), len(convs[i].Members))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never got the team with its name; announcement stats %v", x.Name(), x.AnnouncementStats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	conn, err := a.Control("sync")
	if err != nil {
		t.Fatal(err)
	}
	syn := syncv1.NewControlClient(conn.Control())
	// Only the member whose key sorts lowest, which makes the group, is
	// told in a 1:1 conversation (unless it is a itself).
	lowest := slices.MinFunc([]ed25519.PublicKey{a.Identity(), b.Identity(), c.Identity()}, func(x, y ed25519.PublicKey) int { return bytes.Compare(x, y) })
	oneToOne := func(m ed25519.PublicKey) uint64 {
		if bytes.Equal(m, lowest) {
			return 1
		}
		return 0
	}
	for _, tc := range []struct {
		name  string
		group []byte
		want  uint64
	}{
		{"the team", team, 1},
		{"a's 1:1 with b", conversations.DirectID(a.Identity(), b.Identity()), oneToOne(b.Identity())},
		{"a's 1:1 with c", conversations.DirectID(a.Identity(), c.Identity()), oneToOne(c.Identity())},
	} {
		st, err := syn.State(ctx, &syncv1.StateRequest{Group: tc.group})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st.GetMessages() != tc.want {
			t.Errorf("a's sync layer holds %d messages in %s, want %d (the announcement goes in the group, once)", st.GetMessages(), tc.name, tc.want)
		}
	}
	hi, err := a.Send(ctx, team, []byte("hello team"), node.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, nodes, []sent{{id: hi.MessageID, author: 0}}, 60*time.Second)
}
