package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/host/config"
	"github.com/strata-msg/strata/host/node"
	"github.com/strata-msg/strata/plugins/doubleratchet/wirepb"
)

const clientConfig = `
node:
  name: %s
  data_dir: %s
  role: client
plugins:
  dir: %s
  restart:
    initial: 50ms
    max: 1s
layers:
  p2p:
    plugin: libp2p
    mode: %s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
  privacy:
    plugin: none
    mode: %s
  secure:
    plugin: doubleratchet
    mode: %s
`

// wireTap keeps copies of the frames crossing one boundary of a node.
type wireTap struct {
	boundary string
	mu       sync.Mutex
	frames   []*commonv1.Frame
}

func (w *wireTap) tap(boundary string, f *commonv1.Frame) {
	if boundary != w.boundary {
		return
	}
	w.mu.Lock()
	w.frames = append(w.frames, proto.CloneOf(f))
	w.mu.Unlock()
}

func (w *wireTap) all() []*commonv1.Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*commonv1.Frame(nil), w.frames...)
}

// startClient starts a libp2p+none+doubleratchet node whose taps see the
// p2p boundary and the boundary above the secure layer's output.
func startClient(t *testing.T, name, mode, dir string) (testNode, *wireTap, *wireTap) {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(clientConfig, name, filepath.Join(dir, name), pluginDir, mode, mode, mode)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	wire := &wireTap{boundary: "p2p|privacy"}
	sealed := &wireTap{boundary: "privacy|secure"}
	in := newInbox()
	n, err := node.New(cfg, node.Options{
		Catalog: catalog(),
		Logger:  hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: os.Stderr}),
		Deliver: in.deliver,
		Tap: func(b string, f *commonv1.Frame) {
			wire.tap(b, f)
			sealed.tap(b, f)
		},
		HealthInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return testNode{n, in}, wire, sealed
}

// TestSecureStackEndToEnd runs two hosts on libp2p+none+doubleratchet:
// they exchange 1:1 and group messages both ways, every message arrives
// once and intact, and no byte on the p2p boundary shows a plaintext, the
// conversation id, or a counter that steps from one message to the next.
// Out of process, the secure plugin of one node is then killed with
// SIGKILL mid-conversation; the host restarts it, gives it its contacts
// again, and the conversation goes on in the same sessions.
func TestSecureStackEndToEnd(t *testing.T) {
	for _, mode := range []string{config.ModeProcess, config.ModeInProc} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			a, wireA, sealedA := startClient(t, "a", mode, dir)
			b, _, _ := startClient(t, "b", mode, dir)
			ctx := context.Background()
			if _, err := a.AddContact(ctx, b.CardText()); err != nil {
				t.Fatal(err)
			}
			if _, err := b.AddContact(ctx, a.CardText()); err != nil {
				t.Fatal(err)
			}
			waitPeers(t, a.Node, 1)
			waitPeers(t, b.Node, 1)
			conv := []byte("a-conversation-id-that-must-not-show")
			converse(t, conv, a, b)
			const rounds = 40
			var sentA [][]byte
			for i := range rounds {
				// Bursts of up to three each way, so that DH ratchet steps
				// interleave with runs in one chain.
				for j := range 1 + i%3 {
					p := []byte(fmt.Sprintf("plaintext from a, round %d.%d", i, j))
					sentA = append(sentA, p)
					if _, err := a.Send(ctx, conv, p, node.SendOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if got := b.inbox.waitFor(len(sentA), 20*time.Second); len(got) != len(sentA) {
					t.Fatalf("b received %d of %d", len(got), len(sentA))
				}
				p := []byte(fmt.Sprintf("plaintext from b, round %d", i))
				if _, err := b.Send(ctx, conv, p, node.SendOptions{}); err != nil {
					t.Fatal(err)
				}
				if got := a.inbox.waitFor(i+1, 20*time.Second); len(got) != i+1 {
					t.Fatalf("a received %d of %d", len(got), i+1)
				}
			}
			for i, d := range b.inbox.waitFor(len(sentA), time.Second) {
				if !bytes.Equal(d.Payload, sentA[i]) || !bytes.Equal(d.From, a.Identity()) || !bytes.Equal(d.Conversation, conv) {
					t.Fatalf("b's message %d: %q from %x in %q", i, d.Payload, d.From, d.Conversation)
				}
			}

			// A group: the host gives the conversation to the secure layer,
			// which fans a send without a recipient out to the members.
			group := []byte("group")
			for _, n := range []testNode{a, b} {
				if err := n.SetConversation(ctx, group, []ed25519.PublicKey{a.Identity(), b.Identity()}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Send(ctx, group, []byte("to the group"), node.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			got := b.inbox.waitFor(len(sentA)+1, 20*time.Second)
			if last := got[len(got)-1]; string(last.Payload) != "to the group" || string(last.Conversation) != "group" {
				t.Fatalf("group message arrived as %q in %q", last.Payload, last.Conversation)
			}

			checkWire(t, wireA.all(), sealedA.all(), append(sentA, conv))

			if mode != config.ModeProcess {
				return
			}
			// kill -9 of b's secure plugin mid-conversation.
			pid := b.PluginPID("secure")
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for b.Restarts("secure") == 0 || !b.Running() {
				if time.Now().After(deadline) {
					t.Fatal("the secure plugin was not restarted")
				}
				time.Sleep(20 * time.Millisecond)
			}
			before := len(b.inbox.waitFor(0, 0))
			for i := range 5 {
				if _, err := a.Send(ctx, conv, []byte(fmt.Sprintf("after the kill %d", i)), node.SendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if got := b.inbox.waitFor(before+5, 20*time.Second); len(got) != before+5 {
				t.Fatalf("after the restart b received %d of 5", len(got)-before)
			}
			if _, err := b.Send(ctx, conv, []byte("b is back"), node.SendOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := a.inbox.waitFor(rounds+1, 20*time.Second); string(got[len(got)-1].Payload) != "b is back" {
				t.Fatal("a did not hear from b after the restart")
			}
			c, err := b.LayerCounters(ctx, "secure")
			if err != nil {
				t.Fatal(err)
			}
			if c["sessions_accepted"] != 0 {
				t.Fatalf("the restarted layer accepted %d new sessions; the old one should have survived", c["sessions_accepted"])
			}
		})
	}
}

// checkWire looks at what a node sent: below the privacy layer no payload
// contains any secret, and in the secure layer's own envelopes no 4-byte
// field at a fixed offset counts up by one from each message to the next
// (a cleartext message number), and no header byte is the same in all of
// them (a cleartext ratchet key or version).
func checkWire(t *testing.T, wire, sealed []*commonv1.Frame, secrets [][]byte) {
	t.Helper()
	var down int
	for _, f := range wire {
		if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
			continue
		}
		down++
		for _, s := range secrets {
			if bytes.Contains(f.GetPayload(), s) {
				t.Fatalf("a payload on the p2p boundary contains %q", s)
			}
		}
	}
	if down < 40 {
		t.Fatalf("only %d frames went down the p2p boundary", down)
	}
	var headers [][]byte
	var payloads [][]byte
	for _, f := range sealed {
		if f.GetDirection() != commonv1.Direction_DIRECTION_DOWN {
			continue
		}
		env := &wirepb.Envelope{}
		if err := proto.Unmarshal(f.GetPayload(), env); err != nil {
			t.Fatal(err)
		}
		if m := env.GetMessage(); m != nil {
			headers = append(headers, m.GetHeader())
			payloads = append(payloads, f.GetPayload())
		}
	}
	if len(headers) < 20 {
		t.Fatalf("only %d ratchet messages", len(headers))
	}
	for off := 0; off+4 <= len(headers[0]); off++ {
		counting, constant := true, true
		for i := 1; i < len(headers); i++ {
			if binary.BigEndian.Uint32(headers[i][off:])-binary.BigEndian.Uint32(headers[i-1][off:]) != 1 &&
				binary.LittleEndian.Uint32(headers[i][off:])-binary.LittleEndian.Uint32(headers[i-1][off:]) != 1 {
				counting = false
			}
			if headers[i][off] != headers[0][off] {
				constant = false
			}
		}
		if counting || constant {
			t.Fatalf("header offset %d is a counter (%v) or constant (%v) across %d messages", off, counting, constant, len(headers))
		}
	}
	// Nor in the whole envelope, for messages of one length.
	for off := 0; off+4 <= len(payloads[0]); off++ {
		counting := true
		n := 0
		for i := 1; i < len(payloads); i++ {
			if len(payloads[i]) != len(payloads[0]) || len(payloads[i-1]) != len(payloads[0]) {
				continue
			}
			n++
			if binary.BigEndian.Uint32(payloads[i][off:])-binary.BigEndian.Uint32(payloads[i-1][off:]) != 1 {
				counting = false
			}
		}
		if counting && n > 5 {
			t.Fatalf("envelope offset %d counts up across %d messages", off, n)
		}
	}
}
