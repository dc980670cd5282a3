package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/doubleratchet"
	"github.com/strata-msg/strata/plugins/mvds"
	"github.com/strata-msg/strata/plugins/whisper"
)

// A forger stands for a layer below the host that lies about the messages
// it delivers, as a member relaying through mvds can make it do: mvds
// names a relayed message's author in a field nothing authenticates. It
// rewrites the UP frames the wrapped layer emits; the host must refuse what
// the rewrite forged, whatever layer lies.
type forger struct {
	mu      sync.Mutex
	rewrite func(f *commonv1.Frame)
}

func (fg *forger) set(rewrite func(f *commonv1.Frame)) {
	fg.mu.Lock()
	fg.rewrite = rewrite
	fg.mu.Unlock()
}

func (fg *forger) apply(f *commonv1.Frame) {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if fg.rewrite != nil && f.GetDirection() == commonv1.Direction_DIRECTION_UP {
		fg.rewrite(f)
	}
}

// lyingEmitter passes a layer's output through its forger.
type lyingEmitter struct {
	sdk.Emitter
	fg *forger
}

func (e lyingEmitter) Emit(ctx context.Context, frames ...*commonv1.Frame) error {
	for _, f := range frames {
		e.fg.apply(f)
	}
	return e.Emitter.Emit(ctx, frames...)
}

type lyingSync struct {
	*mvds.Layer
	fg *forger
}

func (l lyingSync) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	env.Out = lyingEmitter{env.Out, l.fg}
	return l.Layer.Configure(ctx, req, env)
}

type lyingSecure struct {
	*doubleratchet.Layer
	fg *forger
}

func (l lyingSecure) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	env.Out = lyingEmitter{env.Out, l.fg}
	return l.Layer.Configure(ctx, req, env)
}

type lyingPrivacy struct {
	*whisper.Layer
	fg *forger
}

func (l lyingPrivacy) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	env.Out = lyingEmitter{env.Out, l.fg}
	return l.Layer.Configure(ctx, req, env)
}

// lyingCatalog is catalog() with the layer of kind lying through fg.
func lyingCatalog(kind commonv1.LayerKind, fg *forger) plugins.Catalog {
	c := catalog()
	switch kind {
	case commonv1.LayerKind_LAYER_KIND_SYNC:
		c.Add(func() sdk.Layer { return lyingSync{mvds.New(), fg} })
	case commonv1.LayerKind_LAYER_KIND_SECURE:
		c.Add(func() sdk.Layer { return lyingSecure{doubleratchet.New(), fg} })
	case commonv1.LayerKind_LAYER_KIND_PRIVACY:
		c.Add(func() sdk.Layer { return lyingPrivacy{whisper.New(), fg} })
	}
	return c
}

// startWith starts a node from cfg with a catalog of its own, delivering
// into in.
func startWith(t *testing.T, cfg *config.Config, cat plugins.Catalog, in *inbox) *node.Node {
	t.Helper()
	n, err := node.New(cfg, node.Options{
		Catalog:        cat,
		Logger:         hclog.New(&hclog.LoggerOptions{Name: cfg.Node.Name, Level: hclog.Error, Output: os.Stderr}),
		Deliver:        in.deliver,
		HealthInterval: 500 * time.Millisecond,
		PruneInterval:  100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// introduce makes every node a contact of every other and waits until
// each is connected to want peers.
func introduce(t *testing.T, want int, nodes ...*node.Node) {
	t.Helper()
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
		waitPeers(t, x, want)
	}
}

// waitStat waits until the node's MessageStats counter reaches want.
func waitStat(t *testing.T, n *node.Node, counter string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.MessageStats()[counter] < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %d, want %d; stats %v", n.Name(), counter, n.MessageStats()[counter], want, n.MessageStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// payloads returns the payloads of a conversation's history on n.
func payloads(t *testing.T, n *node.Node, conv []byte) []string {
	t.Helper()
	hist, err := n.History(context.Background(), conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range hist {
		out = append(out, string(m.Payload))
	}
	return out
}

// TestForgedAuthorRefused: three members a, b and m of two conversations.
// b's layer below the host delivers m's messages as a's (what a member
// relaying through mvds can do: the relayed author is not authenticated),
// or with a's old message put in their place: b's host refuses every one
// and counts it, keeps none in its history and hands none to the
// application, while genuine messages, relayed or not, arrive with their
// authors. On the full stack the liar is the sync layer (mvds, relaying
// on, the default); on a stack without one, the secure layer
// (doubleratchet) carries and checks the same envelope.
func TestForgedAuthorRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		liar   commonv1.LayerKind
	}{
		{"mvds", fullConfig, commonv1.LayerKind_LAYER_KIND_SYNC},
		{"doubleratchet", clientConfig, commonv1.LayerKind_LAYER_KIND_SECURE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := func(name string) *config.Config {
				args := []any{name, filepath.Join(dir, name), pluginDir, config.ModeInProc, ""}
				if tc.liar == commonv1.LayerKind_LAYER_KIND_SECURE {
					args = []any{name, filepath.Join(dir, name), pluginDir, config.ModeInProc, config.ModeInProc, config.ModeInProc}
				}
				return writeConfig(t, dir, name, fmt.Sprintf(tc.config, args...))
			}
			fg := &forger{}
			inA, inB, inM := newInbox(), newInbox(), newInbox()
			a := startWith(t, cfg("a"), catalog(), inA)
			b := startWith(t, cfg("b"), lyingCatalog(tc.liar, fg), inB)
			m := startWith(t, cfg("m"), catalog(), inM)
			introduce(t, 2, a, b, m)
			ctx := context.Background()
			team, other := []byte("team"), []byte("other")
			for _, n := range []*node.Node{a, b, m} {
				for _, conv := range [][]byte{team, other} {
					if err := n.SetConversation(ctx, conv, []ed25519.PublicKey{a.Identity(), b.Identity(), m.Identity()}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// b's liar keeps a copy of what a signed in team.
			var kept []byte
			var keptMu sync.Mutex
			fg.set(func(f *commonv1.Frame) {
				keptMu.Lock()
				defer keptMu.Unlock()
				if bytes.Equal(f.GetPeer(), a.Identity()) && bytes.Equal(f.GetConversation(), team) && kept == nil {
					kept = bytes.Clone(f.GetPayload())
				}
				if !bytes.Equal(f.GetPeer(), m.Identity()) {
					return
				}
				switch p := f.GetPayload(); {
				case bytes.Contains(p, []byte("as a:")):
					f.Peer = a.Identity() // m's message, delivered as a's
				case bytes.Contains(p, []byte("replay:")):
					f.Peer, f.Payload = a.Identity(), bytes.Clone(kept) // a's old message, in m's place
				}
			})
			send := func(from *node.Node, conv []byte, text string) {
				t.Helper()
				if _, err := from.Send(ctx, conv, []byte(text), node.SendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			send(a, team, "hello from a")
			if got := inB.waitFor(1, 30*time.Second); len(got) != 1 || !bytes.Equal(got[0].From, a.Identity()) {
				t.Fatalf("b's first delivery: %+v", got)
			}

			send(m, team, "as a: pay m 100 coins")
			waitStat(t, b, "dropped_forged_author", 1)
			send(m, other, "replay: into another conversation")
			waitStat(t, b, "dropped_wrong_conversation", 1)
			send(m, team, "replay: into the same conversation")
			if tc.liar == commonv1.LayerKind_LAYER_KIND_SYNC {
				// mvds names it anew; its envelope is in the history.
				// Without a sync layer a message is named by its envelope,
				// so the replay is the same message again: not delivered
				// twice (checked below), and not counted.
				waitStat(t, b, "dropped_replayed", 1)
			}

			// Genuine messages still arrive, with their authors.
			send(m, team, "genuine from m")
			send(a, other, "genuine from a")
			got := inB.waitFor(3, 30*time.Second)
			if len(got) != 3 {
				t.Fatalf("b delivered %d messages, want 3", len(got))
			}
			for _, d := range got {
				want := a.Identity()
				if strings.Contains(string(d.Payload), "from m") {
					want = m.Identity()
				}
				if !bytes.Equal(d.From, want) || strings.Contains(string(d.Payload), "as a") {
					t.Fatalf("b delivered %q from %s", d.Payload, d.FromName)
				}
			}
			if p := payloads(t, b, team); !slices.Equal(p, []string{"hello from a", "genuine from m"}) {
				t.Fatalf("b's history of team: %q", p)
			}
			if p := payloads(t, b, other); !slices.Equal(p, []string{"genuine from a"}) {
				t.Fatalf("b's history of other: %q", p)
			}
			st := b.MessageStats()
			if st["dropped_forged_author"] != 1 || st["dropped_wrong_conversation"] != 1 || st["dropped_not_member"] != 0 || st["dropped_malformed"] != 0 {
				t.Fatalf("b's message stats %v", st)
			}
			for _, n := range []*node.Node{a, m} {
				if st := n.MessageStats(); st["dropped_forged_author"]+st["dropped_wrong_conversation"]+st["dropped_replayed"]+st["dropped_malformed"] != 0 {
					t.Fatalf("%s refused genuine messages: %v", n.Name(), st)
				}
			}
		})
	}
}

// publicConfig is a devp2p+whisper client stack for the public chat tests,
// with a public section.
const publicConfig = `
node:
  name: %[1]s
  data_dir: %[2]s
  dial_contacts: false
%[5]s
plugins:
  dir: %[3]s
layers:
  p2p:
    plugin: devp2p
    mode: %[4]s
    config:
      listen: "127.0.0.1:0"
  privacy:
    plugin: whisper
    mode: %[4]s
  secure:
    plugin: doubleratchet
    mode: %[4]s
api:
  listen: "off"
%[6]s`

// TestPublicChatBounded: p0 and p1 (not contacts of each other, connected
// as peers) join a public chat. p1 keeps at most 3 of its messages
// (public.max_messages_per_chat), the newest, each with p0, who signed
// it, as its author though p0 is no contact; a message whose signature a
// lying privacy layer broke is refused and counted; and the periodic prune
// removes the messages older than public.retention.
func TestPublicChatBounded(t *testing.T) {
	dir := t.TempDir()
	fg := &forger{}
	start := func(name, peers, public string, cat plugins.Catalog, in *inbox) *node.Node {
		text := fmt.Sprintf(publicConfig, name, filepath.Join(dir, name), pluginDir, config.ModeInProc, peers, public)
		return startWith(t, writeConfig(t, dir, name, text), cat, in)
	}
	in1 := newInbox()
	p1 := start("p1", "", "public:\n  max_messages_per_chat: 3\n  retention: 8s\n", lyingCatalog(commonv1.LayerKind_LAYER_KIND_PRIVACY, fg), in1)
	p0 := start("p0", fmt.Sprintf("  peers: [%q]", p1.CardText()), "", catalog(), newInbox())
	waitPeers(t, p1, 1)
	ctx := context.Background()
	var chat []byte
	for _, n := range []*node.Node{p0, p1} {
		c, err := n.JoinPublicChat(ctx, "bounded")
		if err != nil {
			t.Fatal(err)
		}
		chat = c.ID
	}
	fg.set(func(f *commonv1.Frame) {
		if i := bytes.Index(f.GetPayload(), []byte("tampered")); i >= 0 {
			f.Payload = bytes.Clone(f.GetPayload())
			f.Payload[i] = 'T' // what p0 signed no more
		}
	})
	if _, err := p0.Send(ctx, chat, []byte("tampered on the way"), node.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStat(t, p1, "dropped_forged_author", 1)
	for i := range 5 {
		if _, err := p0.Send(ctx, chat, []byte(fmt.Sprintf("message %d", i)), node.SendOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := in1.waitFor(i+1, 30*time.Second); len(got) != i+1 {
			t.Fatalf("p1 delivered %d of %d", len(got), i+1)
		}
	}
	if st := p1.MessageStats(); st["evicted_public"] != 2 || st["dropped_forged_author"] != 1 {
		t.Fatalf("p1's message stats %v, want 2 evicted and 1 forged", st)
	}
	hist, err := p1.History(ctx, chat, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range hist {
		texts = append(texts, string(m.Payload))
		if !bytes.Equal(m.Author, p0.Identity()) || p1.ContactName(m.Author) != "" {
			t.Fatalf("author %x (contact name %q), want p0's key, no contact", m.Author, p1.ContactName(m.Author))
		}
	}
	if !slices.Equal(texts, []string{"message 2", "message 3", "message 4"}) {
		t.Fatalf("p1 keeps %q, want the newest three", texts)
	}
	// The prune, every 100 ms here, removes them once 8 s old.
	waitStat(t, p1, "pruned_public", 3)
	if hist, err := p1.History(ctx, chat, 0, 0); err != nil || len(hist) != 0 {
		t.Fatalf("after the retention p1 keeps %d messages, %v", len(hist), err)
	}
	// p0's own history has its defaults: all six.
	if own, err := p0.History(ctx, chat, 0, 0); err != nil || len(own) != 6 {
		t.Fatalf("p0 keeps %d of its 6, %v", len(own), err)
	}
}
