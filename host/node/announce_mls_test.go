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
// learns-conversations (mls), a conversation of three made by the member
// whose key sorts highest is announced once, in the conversation itself:
// the member that makes the group (the lowest key) learns the conversation
// from the maker's mls layer's group ask, the third from the Welcome, both
// its name from the announcement; the maker's sync layer holds one message
// in the group and none in its 1:1 conversations, so no 1:1 MLS group is
// formed for it.
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
	// a is the maker, the member whose key sorts highest; c the lowest.
	slices.SortFunc(nodes, func(x, y *fullNode) int { return bytes.Compare(y.Identity(), x.Identity()) })
	a, b, c = nodes[0], nodes[1], nodes[2]
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
	// No 1:1 conversation carries the announcement (the member that makes
	// the group learns the conversation from a's mls layer's ask), so none
	// becomes an MLS group: the announcement goes in the group, once.
	for _, tc := range []struct {
		name  string
		group []byte
		want  uint64
	}{
		{"the team", team, 1},
		{"a's 1:1 with b", conversations.DirectID(a.Identity(), b.Identity()), 0},
		{"a's 1:1 with c", conversations.DirectID(a.Identity(), c.Identity()), 0},
	} {
		st, err := syn.State(ctx, &syncv1.StateRequest{Group: tc.group})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st.GetMessages() != tc.want {
			t.Errorf("a's sync layer holds %d messages in %s, want %d (the announcement goes in the group, once)", st.GetMessages(), tc.name, tc.want)
		}
	}
	if sc, err := c.LayerCounters(ctx, "secure"); err != nil || sc["learned_from_ask"] != 1 {
		t.Errorf("the lowest member's mls layer learned %d conversations from asks (%v)", sc["learned_from_ask"], err)
	}
	hi, err := a.Send(ctx, team, []byte("hello team"), node.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, nodes, []sent{{id: hi.MessageID, author: 0}}, 60*time.Second)
}
