package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/plugins/bsp"
)

// lyingBSP is a bsp layer whose UP frames go through a forger.
type lyingBSP struct {
	*bsp.Layer
	fg *forger
}

func (l lyingBSP) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	env.Out = lyingEmitter{env.Out, l.fg}
	return l.Layer.Configure(ctx, req, env)
}

// TestFullStackBSPRejectsRefused: the validator hook end to end. b's sync
// layer (bsp) delivers one of m's messages as a's; b's host refuses it
// (dropped_forged_author) and says so in its Ack (AckRequest.rejected),
// and b's bsp takes the verdict (host_rejected): the message is invalid
// there, so b never passes it on. m's genuine messages still arrive.
func TestFullStackBSPRejectsRefused(t *testing.T) {
	dir := t.TempDir()
	fg := &forger{}
	inA, inB, inM := newInbox(), newInbox(), newInbox()
	a := startWith(t, bspCfg(t, dir, "a", config.ModeInProc, ""), catalog(), inA)
	b := startWith(t, bspCfg(t, dir, "b", config.ModeInProc, ""), catalog().Add(func() sdk.Layer { return lyingBSP{bsp.New(), fg} }), inB)
	m := startWith(t, bspCfg(t, dir, "m", config.ModeInProc, ""), catalog(), inM)
	introduce(t, 2, a, b, m)
	ctx := context.Background()
	team := []byte("team")
	for _, n := range []*node.Node{a, b, m} {
		if err := n.SetConversation(ctx, team, []ed25519.PublicKey{a.Identity(), b.Identity(), m.Identity()}); err != nil {
			t.Fatal(err)
		}
	}
	fg.set(func(f *commonv1.Frame) {
		if bytes.Equal(f.GetPeer(), m.Identity()) && bytes.Contains(f.GetPayload(), []byte("as a:")) {
			f.Peer = a.Identity()
		}
	})
	if _, err := m.Send(ctx, team, []byte("as a: pay m 100 coins"), node.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStat(t, b, "dropped_forged_author", 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := b.LayerCounters(ctx, "sync")
		if err != nil {
			t.Fatal(err)
		}
		if c["host_rejected"] == 1 && c["invalid"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's bsp counters after its host refused a message: host_rejected %d, invalid %d", c["host_rejected"], c["invalid"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := m.Send(ctx, team, []byte("genuine from m"), node.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	got := inB.waitFor(1, 30*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0].From, m.Identity()) || string(got[0].Payload) != "genuine from m" {
		t.Fatalf("b delivered %+v", got)
	}
	if got := inA.waitFor(2, 30*time.Second); len(got) != 2 {
		t.Fatalf("a delivered %d of m's messages, want both", len(got))
	}
}
