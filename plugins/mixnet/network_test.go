package mixnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/mixnet"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// overlay is an in-memory overlay between layers: a DOWN frame for a peer
// id reaches the layer with that id as an UP frame from the sender's id.
type overlay struct {
	mu    sync.Mutex
	nodes map[string]*layerNode
}

type layerNode struct {
	name string
	id   string
	lc   *sdk.Lifecycle
	l    *mixnet.Layer
	dir  string
	log  *sdktest.SyncBuffer
	net  *overlay

	inbox chan *commonv1.Frame

	mu        sync.Mutex
	ups       []*commonv1.Frame
	upAt      []time.Time // when each of ups came
	down      int
	bytesDown int // payload bytes of the DOWN frames (to the overlay)
	bytesUp   int // payload bytes of the frames from the overlay
}

// Emit implements sdk.Emitter: DOWN frames go to their peer at once (from
// a goroutine, as a host's queue would), UP frames are kept.
func (n *layerNode) Emit(_ context.Context, frames ...*commonv1.Frame) error {
	for _, f := range frames {
		if f.GetDirection() == commonv1.Direction_DIRECTION_UP {
			n.mu.Lock()
			n.ups = append(n.ups, f)
			n.upAt = append(n.upAt, time.Now())
			n.mu.Unlock()
			continue
		}
		n.mu.Lock()
		n.down++
		n.bytesDown += len(f.GetPayload())
		n.mu.Unlock()
		n.net.mu.Lock()
		to := n.net.nodes[string(f.GetPeer())]
		n.net.mu.Unlock()
		if to == nil {
			continue
		}
		up := &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte(n.id), Protocol: f.GetProtocol(), Payload: f.GetPayload(), TraceId: 1}
		to.mu.Lock()
		to.bytesUp += len(f.GetPayload())
		to.mu.Unlock()
		select {
		case to.inbox <- up: // in order per link, as an overlay stream keeps it
		default: // a full link drops, as an overlay would
		}
	}
	return nil
}

// EmitEvent implements sdk.Emitter.
func (n *layerNode) EmitEvent(context.Context, *commonv1.Event) error { return nil }

func (n *layerNode) delivered() []*commonv1.Frame {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*commonv1.Frame(nil), n.ups...)
}

// start configures and starts a layer with section as its config.
func (o *overlay) start(t testing.TB, name, id string, section map[string]any) *layerNode {
	t.Helper()
	cfg, err := json.Marshal(section)
	if err != nil {
		t.Fatal(err)
	}
	n := &layerNode{name: name, id: id, l: mixnet.New(), dir: t.TempDir(), log: &sdktest.SyncBuffer{}, net: o, inbox: make(chan *commonv1.Frame, 1<<14)}
	n.lc = sdk.NewLifecycle(n.l)
	ctx := context.Background()
	logger := hclog.New(&hclog.LoggerOptions{Name: name, Output: n.log, Level: hclog.Trace})
	if _, err := n.lc.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: string(cfg), DataDir: n.dir}, sdk.Env{Out: n, Logger: logger}); err != nil {
		t.Fatalf("%s: Configure: %v", name, err)
	}
	o.mu.Lock()
	o.nodes[id] = n
	o.mu.Unlock()
	if _, err := n.lc.Start(ctx, &commonv1.StartRequest{BelowAddress: []byte(id)}); err != nil {
		t.Fatalf("%s: Start: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case f := <-n.inbox:
				n.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{f}})
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); n.lc.Stop(context.Background()) })
	return n
}

// TestNetwork runs a whole network of layers in process — two providers,
// three layers of two mixes, two clients — on the real clock with fast
// rates, and sends a message each way through the layers' frames. The
// recipient's layer sends up one frame per message with the payload, the
// conversation and the sender's address, and acknowledges every fragment
// on its SURB; no relay's log or stored files
// hold the plaintext, and the relays count no drops.
func TestNetwork(t *testing.T) {
	n := newNetwork(t)
	fast := map[string]any{"lambda_p": 20.0, "lambda_l": 5.0, "lambda_d": 5.0, "lambda_m": 2.0, "mu": 50.0, "pull_interval": "100ms"}
	o := &overlay{nodes: map[string]*layerNode{}}
	var relays []*layerNode
	for _, m := range n.relays() {
		relays = append(relays, o.start(t, m.Name, n.peerID(t, m.Name), n.config(relayRole(m), m.Name, fast)))
	}
	alice := o.start(t, "alice", "client-alice", n.config(mixnet.RoleClient, "provider-0", fast))
	bob := o.start(t, "bob", "client-bob", n.config(mixnet.RoleClient, "provider-1", fast))
	ctx := context.Background()
	aAddr, err := alice.l.OwnAddress(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	bAddr, _ := bob.l.OwnAddress(ctx, nil)
	if _, err := loopix.ParseAddress(aAddr.GetAddress()); err != nil {
		t.Fatalf("own address: %v", err)
	}

	toBob := bytes.Repeat([]byte("plaintext-for-bob "), 200) // two packets
	toAlice := []byte("plaintext-for-alice")
	alice.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: bAddr.GetAddress(), Conversation: []byte("c-ab"), Payload: toBob}}})
	bob.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: aAddr.GetAddress(), Conversation: []byte("c-ba"), Payload: toAlice}}})

	deadline := time.Now().Add(20 * time.Second)
	acks := func(n *layerNode) uint64 { return n.l.Health(ctx).GetCounters()["acks_received"] }
	for time.Now().Before(deadline) && (len(bob.delivered()) == 0 || len(alice.delivered()) == 0 || acks(alice) < 2 || acks(bob) < 1) {
		time.Sleep(20 * time.Millisecond)
	}
	if acks(alice) != 2 || acks(bob) != 1 {
		t.Errorf("acknowledgements: alice %d of 2 fragments, bob %d of 1", acks(alice), acks(bob))
	}
	for _, c := range []struct {
		to      *layerNode
		from    []byte
		conv    string
		payload []byte
	}{{bob, aAddr.GetAddress(), "c-ab", toBob}, {alice, bAddr.GetAddress(), "c-ba", toAlice}} {
		got := c.to.delivered()
		if len(got) != 1 {
			t.Fatalf("%s got %d frames up; health %v", c.to.name, len(got), c.to.l.Health(ctx).GetCounters())
		}
		f := got[0]
		if !bytes.Equal(f.GetPayload(), c.payload) || string(f.GetConversation()) != c.conv || !bytes.Equal(f.GetPeer(), c.from) || f.GetTraceId() == 0 {
			t.Errorf("%s got %q conversation %q from %x trace %d", c.to.name, f.GetPayload(), f.GetConversation(), f.GetPeer(), f.GetTraceId())
		}
	}
	for _, r := range relays {
		h := r.l.Health(ctx).GetCounters()
		for k, v := range h {
			// The relays' own loops may be in flight when a layer stops;
			// nothing is dropped while they run.
			if strings.HasPrefix(k, "dropped_") && v != 0 {
				t.Errorf("%s: %s = %d", r.name, k, v)
			}
		}
		if strings.HasPrefix(r.name, "provider") && h["packets_in"] == 0 {
			t.Errorf("%s received no packets", r.name)
		}
	}
	// What the relays log and store: no plaintext, and the recipient's
	// provider stores nothing of the sender's address.
	for _, r := range relays {
		var stored []byte
		filepath.Walk(r.dir, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(path)
				stored = append(stored, b...)
			}
			return nil
		})
		for _, secret := range [][]byte{toBob[:40], toAlice, []byte("c-ab"), []byte("c-ba"), aAddr.GetAddress(), bAddr.GetAddress()} {
			if bytes.Contains(r.log.Bytes(), secret) || bytes.Contains(stored, secret) {
				t.Errorf("%s logs or stores %q", r.name, secret)
			}
		}
	}
}

// TestEpochsAndPKIReload: with 2-second epochs, a client and a mix reload
// the PKI document that the authority (pki/testnet.Publisher) publishes a
// second before each epoch, the mix
// advances and keeps its key chain, and messages keep flowing.
func TestEpochsAndPKIReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 8 seconds of real time")
	}
	n := newNetworkPeriod(t, 2*time.Second)
	fast := map[string]any{"lambda_p": 20.0, "lambda_l": 5.0, "lambda_d": 5.0, "lambda_m": 2.0, "mu": 50.0, "pull_interval": "100ms", "epoch_period": "2s"}
	o := &overlay{nodes: map[string]*layerNode{}}
	var relays []*layerNode
	for _, m := range n.relays() {
		relays = append(relays, o.start(t, m.Name, n.peerID(t, m.Name), n.config(relayRole(m), m.Name, fast)))
	}
	alice := o.start(t, "alice", "client-alice", n.config(mixnet.RoleClient, "provider-0", fast))
	bob := o.start(t, "bob", "client-bob", n.config(mixnet.RoleClient, "provider-1", fast))
	ctx := context.Background()
	bAddr, _ := bob.l.OwnAddress(ctx, nil)
	epochs, _ := pki.NewEpochs(2*time.Second, time.Time{}, nil)
	n.runAuthority(t, epochs, time.Second)
	for i := range 4 {
		payload := []byte(fmt.Sprintf("round %d", i))
		alice.lc.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: bAddr.GetAddress(), Payload: payload}}})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && len(bob.delivered()) <= i {
			time.Sleep(20 * time.Millisecond)
		}
		if got := bob.delivered(); len(got) <= i || !bytes.Equal(got[i].GetPayload(), payload) {
			t.Fatalf("round %d not delivered; alice %v", i, alice.l.Health(ctx).GetCounters())
		}
		time.Sleep(time.Second)
	}
	if h := alice.l.Health(ctx).GetCounters(); h["pki_reloads"] == 0 {
		t.Errorf("alice never reloaded the document: %v", h)
	}
	for _, r := range relays {
		h := r.l.Health(ctx).GetCounters()
		if h["pki_reloads"] == 0 || h["epoch_rotations"] == 0 || h["keychain_errors"] != 0 {
			t.Errorf("%s: reloads %d, rotations %d, key chain errors %d", r.name, h["pki_reloads"], h["epoch_rotations"], h["keychain_errors"])
		}
	}
}
