package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
)

// tapped is a node whose frames at the boundary above its privacy layer
// and whose deliveries are recorded.
type tapped struct {
	*node.Node
	mu    sync.Mutex
	down  []*commonv1.Frame // DOWN frames handed to the privacy layer
	up    []*commonv1.Frame // UP frames the privacy layer handed up
	got   []node.Delivery
	above string // the privacy layer's boundary, "privacy|<upper>"
}

func startTapped(t *testing.T, cfg *config.Config, above string) *tapped {
	t.Helper()
	x := &tapped{above: above}
	n, err := node.New(cfg, node.Options{
		Catalog: catalog(),
		Logger:  hclog.New(&hclog.LoggerOptions{Name: cfg.Node.Name, Level: hclog.Error, Output: os.Stderr}),
		Deliver: func(d node.Delivery) {
			x.mu.Lock()
			x.got = append(x.got, d)
			x.mu.Unlock()
		},
		Tap: func(boundary string, f *commonv1.Frame) {
			if boundary != x.above {
				return
			}
			x.mu.Lock()
			defer x.mu.Unlock()
			if f.GetDirection() == commonv1.Direction_DIRECTION_DOWN {
				x.down = append(x.down, f)
			} else {
				x.up = append(x.up, f)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	x.Node = n
	return x
}

// delivered waits for the delivery of a message with this payload (a
// message that came through whisper on top is named by its envelope) and
// returns it.
func (x *tapped) delivered(t *testing.T, payload []byte) node.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		x.mu.Lock()
		for _, d := range x.got {
			if bytes.Equal(d.Payload, payload) {
				x.mu.Unlock()
				return d
			}
		}
		x.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	for _, layer := range []string{"p2p", "privacy", "secure", "sync"} {
		if c, err := x.LayerCounters(context.Background(), layer); err == nil {
			t.Logf("%s %s: %v", x.Name(), layer, nonZero(c))
		}
	}
	for _, b := range x.Boundaries() {
		t.Logf("%s boundary %+v", x.Name(), b)
	}
	t.Fatalf("%s: message %q not delivered", x.Name(), payload)
	return node.Delivery{}
}

// conversations returns the conversations of the frames recorded so far.
func (x *tapped) conversations(down bool) [][]byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	fs := x.up
	if down {
		fs = x.down
	}
	var out [][]byte
	for _, f := range fs {
		out = append(out, f.GetConversation())
	}
	return out
}

// TestDevp2pWhisperConversationFlag: the whisper layer sets bit 7
// of a message's flags byte (and puts a length-prefixed conversation id in
// front of the payload, which a stock Status client would take for part of
// the message) exactly when a DOWN frame names a conversation. On the
// shipped whisper stacks (configs/*whisper*.yaml: devp2p or libp2p +
// whisper + doubleratchet + mvds, and the relays, where whisper is the top)
// no 1:1 or public-chat message hands whisper a frame with a conversation,
// so the bit stays clear; the receiver still files a 1:1 message under the
// conversations.DirectID of the two, and a public chat's under the chat. A
// group on a relay's stack is the one case that sets it (the control).
func TestDevp2pWhisperConversationFlag(t *testing.T) {
	stacks := []struct {
		name, text, above string
		group             bool
	}{
		{"relay", relayConfigEth, "privacy|app", true},
		{"dr-mvds", ethConfig, "privacy|secure", false},
	}
	for _, st := range stacks {
		t.Run(st.name, func(t *testing.T) {
			dir := t.TempDir()
			var nodes []*tapped
			for i := range 2 {
				name := fmt.Sprintf("%s%d", st.name, i)
				var text string
				if st.group {
					text = fmt.Sprintf(st.text, filepath.Join(dir, name), pluginDir)
					text = strings.Replace(text, "  name: relay", "  name: "+name, 1)
					text = strings.ReplaceAll(text, "mode: process", "mode: "+config.ModeInProc)
				} else {
					text = fmt.Sprintf(st.text, name, filepath.Join(dir, name), pluginDir, config.ModeInProc, "")
				}
				nodes = append(nodes, startTapped(t, writeConfig(t, dir, name, text), st.above))
			}
			a, b := nodes[0], nodes[1]
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
				waitPeers(t, x.Node, 1)
			}

			// 1:1.
			dm := conversations.DirectID(a.Identity(), b.Identity())
			if err := a.SetConversation(ctx, dm, []ed25519.PublicKey{b.Identity()}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Send(ctx, dm, []byte("one to one"), node.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			if d := b.delivered(t, []byte("one to one")); !bytes.Equal(d.Conversation, dm) || !bytes.Equal(d.From, a.Identity()) {
				t.Fatalf("1:1 message delivered in %x from %x, want the DirectID %x from %x", d.Conversation, d.From, dm, a.Identity())
			}

			// Public chat.
			for _, x := range nodes {
				if _, err := x.JoinPublicChat(ctx, "strata-flag-test"); err != nil {
					t.Fatal(err)
				}
			}
			pc := conversations.PublicChatID("strata-flag-test")
			if _, err := a.Send(ctx, pc, []byte("public"), node.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			if d := b.delivered(t, []byte("public")); !bytes.Equal(d.Conversation, pc) {
				t.Fatalf("public chat message delivered in %x, want %x", d.Conversation, pc)
			}

			for _, c := range a.conversations(true) {
				if len(c) > 0 {
					t.Errorf("%s handed whisper a DOWN frame in conversation %q: whisper sets bit 7 for it", a.Name(), c)
				}
			}
			for _, x := range nodes {
				for _, c := range x.conversations(false) {
					// Whisper names the shared address of a public chat's
					// message; anything else came from a bit-7 prefix.
					if len(c) > 0 && !bytes.HasPrefix(c, []byte{1, 2}) {
						t.Errorf("%s: whisper handed up a conversation %q from a bit-7 prefix", x.Name(), c)
					}
				}
			}
			if len(a.conversations(true)) == 0 || len(b.conversations(false)) == 0 {
				t.Fatal("the tap saw no frames at the privacy boundary")
			}

			if !st.group {
				return
			}
			// The control: a group on a relay's stack carries its id behind
			// bit 7, and it comes back up from whisper.
			team := []byte("team")
			for _, x := range nodes {
				if err := x.SetConversation(ctx, team, []ed25519.PublicKey{a.Identity(), b.Identity()}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Send(ctx, team, []byte("group"), node.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			b.delivered(t, []byte("group"))
			found := false
			for _, c := range b.conversations(false) {
				found = found || bytes.Equal(c, team)
			}
			if !found {
				t.Error("a group message on a relay's stack did not come up from whisper with its conversation")
			}
		})
	}
}
