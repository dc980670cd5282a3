package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/api"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/host/plugins"
	"github.com/strata-msg/strata/plugins/doubleratchet"
	libp2pplugin "github.com/strata-msg/strata/plugins/libp2p"
	"github.com/strata-msg/strata/plugins/mvds"
	"github.com/strata-msg/strata/plugins/none"
)

// nodeConfig is a client on libp2p + none + doubleratchet + mvds, every
// layer in process, on loopback, with test-sized mvds timings.
const nodeConfig = `
node:
  name: %[1]s
  data_dir: %[2]s
plugins:
  dir: %[3]s
layers:
  p2p:
    plugin: libp2p
    mode: inproc
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
      mdns: false
      dht: "off"
  privacy:
    plugin: none
    mode: inproc
  secure:
    plugin: doubleratchet
    mode: inproc
  sync:
    plugin: mvds
    mode: inproc
    config:
      epoch: 50ms
      backoff_max: 8
api:
  listen: "off"
log:
  level: error
`

// startNode starts a node named name in dir and serves its messaging API
// on a Unix socket, as strata run does; it returns the node and a client
// of its API, dialled as the CLI dials it.
func startNode(t *testing.T, dir, name string) (*node.Node, appv1.MessagingClient) {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(nodeConfig, name, filepath.Join(dir, name), filepath.Join(dir, "plugins"))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	cat := plugins.Catalog{}.
		Add(func() sdk.Layer { return libp2pplugin.New() }).
		Add(func() sdk.Layer { return none.New() }).
		Add(func() sdk.Layer { return doubleratchet.New() }).
		Add(func() sdk.Layer { return mvds.New() })
	n, err := node.New(cfg, node.Options{Catalog: cat,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error, Output: os.Stderr})})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	sock := filepath.Join(cfg.Node.DataDir, "host", "api.sock")
	srv, err := api.Listen(n, "unix", sock, api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn, err := api.Dial("unix:"+sock, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return n, appv1.NewMessagingClient(conn)
}

// apiPeer is a chat client of a node written against the API directly:
// the other side of the conversation with the UI.
type apiPeer struct {
	t      *testing.T
	c      appv1.MessagingClient
	self   ed25519.PublicKey
	tls    map[string]*chat.Timeline
	cursor uint64
	// last is the id of the last message the peer sent, per conversation:
	// the parent of its next one there, as the UI does it.
	last map[string][]byte
}

// sync feeds the peer's timelines everything new in its node's history.
func (p *apiPeer) sync() {
	for {
		resp, err := p.c.History(p.t.Context(), &appv1.HistoryRequest{After: p.cursor})
		if err != nil {
			p.t.Fatal(err)
		}
		if len(resp.GetMessages()) == 0 {
			return
		}
		for _, m := range resp.GetMessages() {
			p.cursor = m.GetCursor()
			in := chat.FromAPI(m)
			if m.GetOutgoing() {
				in.Author = p.self
			}
			_, _ = p.timeline(m.GetConversation()).Add(in)
		}
	}
}

func (p *apiPeer) timeline(conv []byte) *chat.Timeline {
	tl := p.tls[string(conv)]
	if tl == nil {
		tl = chat.NewTimeline(conv, p.self, "")
		p.tls[string(conv)] = tl
	}
	return tl
}

// send sends a chat payload written now.
func (p *apiPeer) send(conv []byte, ct chatv1.ChatType, body *chatv1.ChatPayload) {
	p.t.Helper()
	body.Version, body.ChatId, body.ChatType = chat.Version, conv, ct
	body.Clock, body.Timestamp = p.timeline(conv).Next(time.Now())
	b, err := chat.Encode(body)
	if err != nil {
		p.t.Fatal(err)
	}
	req := &appv1.SendRequest{Conversation: conv, Payload: b}
	if last := p.last[string(conv)]; last != nil {
		req.Parents = [][]byte{last}
	}
	resp, err := p.c.Send(p.t.Context(), req)
	if err != nil {
		p.t.Fatal(err)
	}
	p.last[string(conv)] = resp.GetMessageId()
}

// waitFor syncs until cond holds.
func (p *apiPeer) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.sync(); !cond(); p.sync() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// entry returns the entry of conv with text, or nil.
func (p *apiPeer) entry(conv []byte, text string) *chat.Entry {
	for _, e := range p.timeline(conv).Entries() {
		if e.Text == text {
			return e
		}
	}
	return nil
}

// TestUIWithNodes: the UI on alice's node, over the API's Unix socket,
// and bob on his node through the API; two nodes on loopback (libp2p,
// none, doubleratchet, mvds, in process). Alice writes, bob sees it and
// answers, alice's open chat sends bob a read receipt and shows bob's;
// alice's /group reaches bob's node, bob joins and writes in the group.
func TestUIWithNodes(t *testing.T) {
	dir := t.TempDir()
	aliceNode, aliceAPI := startNode(t, dir, "alice")
	bobNode, bobAPI := startNode(t, dir, "bob")
	if _, err := aliceAPI.AddContact(t.Context(), &appv1.AddContactRequest{Card: bobNode.CardText()}); err != nil {
		t.Fatal(err)
	}
	if _, err := bobAPI.AddContact(t.Context(), &appv1.AddContactRequest{Card: aliceNode.CardText()}); err != nil {
		t.Fatal(err)
	}
	dm := conversations.DirectID(aliceNode.Identity(), bobNode.Identity())
	bob := &apiPeer{t: t, c: bobAPI, self: bobNode.Identity(), tls: map[string]*chat.Timeline{}, last: map[string][]byte{}}
	if _, err := bobAPI.SetConversation(t.Context(), &appv1.SetConversationRequest{Id: dm, Members: [][]byte{aliceNode.Identity()}}); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if t.Failed() {
			for name, c := range map[string]appv1.MessagingClient{"alice": aliceAPI, "bob": bobAPI} {
				if st, err := c.Stats(context.Background(), &appv1.StatsRequest{}); err == nil {
					t.Logf("%s's node refused: %v", name, st.GetMessages())
				}
			}
		}
	})
	u := startUI(t, APIBackend{C: aliceAPI}, time.Now)
	u.waitFor("> bob")
	u.enter("hello bob")
	u.waitFor("alice: hello bob  ✓")
	bob.waitFor("alice's message", func() bool { return bob.entry(dm, "hello bob") != nil })
	if e := bob.entry(dm, "hello bob"); !bytes.Equal(e.Author, aliceNode.Identity()) {
		t.Fatalf("bob sees hello bob by %x", e.Author)
	}
	bob.send(dm, oneToOne, textPayload("hello alice"))
	u.waitFor("bob: hello alice")
	// Alice's chat with bob is open: her client says she read it.
	bob.waitFor("alice's read receipt", func() bool {
		e := bob.entry(dm, "hello alice")
		return e != nil && e.ReadBy[string(aliceNode.Identity())]
	})
	ids := bob.timeline(dm).MarkRead(bob.entry(dm, "hello bob").ID)
	bob.send(dm, oneToOne, receiptPayloads(chatv1.ReceiptType_RECEIPT_TYPE_READ, ids)[0])
	u.waitFor("alice: hello bob  ✓✓ read")

	// A group: alice's node announces it to bob's, whose client joins.
	u.enter("/group friends bob")
	u.waitFor("> friends (group)", "created the group friends, 1 member invited")
	var group []byte
	bob.waitFor("the group's create event", func() bool {
		for id, tl := range bob.tls {
			if tl.Group().State().Created {
				group = []byte(id)
				return true
			}
		}
		return false
	})
	bob.send(group, private, membershipPayload(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, bob.self, ""))
	// Bob writes once alice's node has his join: a node checks a group
	// message's author against the events it has stored, and one that
	// arrives in the same batch as the join it needs is refused
	// (dropped_chat_not_member), parents or not.
	u.waitFor("* bob joined")
	bob.send(group, private, textPayload("hi group"))
	v := u.waitFor("* bob joined", "bob: hi group")
	if !strings.Contains(v, "friends · private group · 2 members · you are an admin") {
		t.Errorf("alice's view of the group:\n%s", v)
	}
	// The UI's next message in the group names its create event as its
	// parent, so that every member's sync layer takes them in order.
	u.enter("welcome")
	bob.waitFor("alice's welcome", func() bool { return bob.entry(group, "welcome") != nil })
	hist, err := aliceAPI.History(t.Context(), &appv1.HistoryRequest{Conversation: group})
	if err != nil {
		t.Fatal(err)
	}
	var create []byte
	found := false
	for _, m := range hist.GetMessages() {
		if !m.GetOutgoing() {
			continue
		}
		if create == nil {
			create = m.GetMessageId() // alice's first message there
		}
		if e := bob.timeline(group).Entry(m.GetMessageId()); e != nil && e.Text == "welcome" {
			found = true
			if len(m.GetParents()) != 1 || !bytes.Equal(m.GetParents()[0], create) {
				t.Errorf("alice's welcome has parents %x, want the create event %x", m.GetParents(), create)
			}
		}
	}
	if !found {
		t.Error("alice's welcome is not in her node's history")
	}
}
