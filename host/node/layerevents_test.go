package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/plugins/doubleratchet"
)

// eventfulSecure is doubleratchet with a hand on its output, so that a test
// can send the host what a secure layer that learns conversations from the
// wire (MLS) sends, and a card section of the test's choosing.
type eventfulSecure struct {
	*doubleratchet.Layer
	mu      sync.Mutex
	out     sdk.Emitter
	section []byte
}

func (l *eventfulSecure) Configure(ctx context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	l.mu.Lock()
	l.out = env.Out
	l.mu.Unlock()
	return l.Layer.Configure(ctx, req, env)
}

func (l *eventfulSecure) Bundle(ctx context.Context, req *securev1.BundleRequest) (*securev1.BundleResponse, error) {
	l.mu.Lock()
	section := l.section
	l.mu.Unlock()
	if section != nil {
		return &securev1.BundleResponse{ContactSection: section}, nil
	}
	return l.Layer.Bundle(ctx, req)
}

func (l *eventfulSecure) emit(t *testing.T, ev *commonv1.Event) {
	t.Helper()
	l.mu.Lock()
	out := l.out
	l.mu.Unlock()
	if err := out.EmitEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

const eventsConfig = `
node:
  name: %s
  data_dir: %s
layers:
  p2p:
    plugin: libp2p
    mode: inproc
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
    mode: inproc
  secure:
    plugin: doubleratchet
    mode: inproc
  sync:
    plugin: mvds
    mode: inproc
`

// TestSecureLayerEvents: a secure layer's ConversationLearned is stored as
// the node's conversation (a new one, a change of members, this node
// removed), a malformed one is refused and counted, neither reaches the
// sync layer as an event; a SectionChanged re-signs the card at once, long
// before the next health poll.
func TestSecureLayerEvents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(eventsConfig, "a", filepath.Join(dir, "a"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	sec := &eventfulSecure{Layer: doubleratchet.New()}
	n, err := node.New(cfg, node.Options{
		Catalog:        catalog().Add(func() sdk.Layer { return sec }),
		Logger:         hclog.New(&hclog.LoggerOptions{Name: "a", Level: hclog.Error, Output: os.Stderr}),
		HealthInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(ctx) })

	self := n.Card().IdentityKey
	other := func() []byte {
		k, _, _ := ed25519.GenerateKey(rand.Reader)
		return k
	}
	b, c := other(), other()
	id := []byte("a group the secure layer learned")
	learned := func(members [][]byte, removed bool) *commonv1.Event {
		return &commonv1.Event{Kind: &commonv1.Event_Conversation{Conversation: &commonv1.ConversationLearned{Id: id, Members: members, Removed: removed}}}
	}
	members := func() [][]byte {
		t.Helper()
		convs, err := n.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cv := range convs {
			if bytes.Equal(cv.ID, id) {
				out := make([][]byte, len(cv.Members))
				for i, m := range cv.Members {
					out[i] = m
				}
				return out
			}
		}
		return nil
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stats %v", what, n.LayerEventStats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	has := func(list [][]byte, k []byte) bool {
		for _, m := range list {
			if bytes.Equal(m, k) {
				return true
			}
		}
		return false
	}

	// Joined by a Welcome: the node learns the conversation, with members
	// that are not its contacts.
	sec.emit(t, learned([][]byte{self, b}, false))
	waitFor("the conversation to be stored", func() bool { return len(members()) == 2 })
	// A Commit added c.
	sec.emit(t, learned([][]byte{b, self, c}, false))
	waitFor("the new member", func() bool { m := members(); return len(m) == 3 && has(m, c) })
	// The same membership again changes nothing.
	sec.emit(t, learned([][]byte{self, b, c}, false))
	waitFor("the repeat to be seen", func() bool { return n.LayerEventStats()["conversation_unchanged"] == 1 })
	// Malformed: this node missing without removed, a key of the wrong size.
	sec.emit(t, learned([][]byte{b, c}, false))
	sec.emit(t, learned([][]byte{self, []byte("short")}, false))
	waitFor("the malformed events to be counted", func() bool { return n.LayerEventStats()["conversation_refused_malformed"] == 2 })
	if m := members(); len(m) != 3 {
		t.Fatalf("a malformed event changed the members to %d", len(m))
	}
	// Removed: the node is alone in it, and keeps it.
	sec.emit(t, learned([][]byte{b, c}, true))
	waitFor("the removal", func() bool { m := members(); return len(m) == 1 && has(m, self) })
	// Counted once the other layers have the members too, a moment after
	// the store has them.
	waitFor("three accepted", func() bool { return n.LayerEventStats()["conversation_accepted"] == 3 })

	// A section of the test's making, announced by SectionChanged: the
	// card carries it long before the hourly health poll.
	section := []byte("a new bundle")
	sec.mu.Lock()
	sec.section = section
	sec.mu.Unlock()
	sec.emit(t, &commonv1.Event{Kind: &commonv1.Event_SectionChanged{SectionChanged: &commonv1.SectionChanged{}}})
	waitFor("the card to carry the new section", func() bool {
		s, ok := n.Card().Sections[commonv1.LayerKind_LAYER_KIND_SECURE]
		return ok && bytes.Equal(s.Data, section)
	})
}
