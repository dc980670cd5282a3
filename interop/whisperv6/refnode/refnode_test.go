package refnode

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/ethereum/go-ethereum/whisper/whisperv6"
)

var binPath string

// TestMain builds cmd/refnode once (or uses $REFNODE_BIN).
func TestMain(m *testing.M) {
	binPath = os.Getenv("REFNODE_BIN")
	dir := ""
	if binPath == "" {
		var err error
		dir, err = os.MkdirTemp("", "refnode-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binPath = filepath.Join(dir, "refnode")
		build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", binPath, "../cmd/refnode")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building refnode:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func start(t *testing.T, ctx context.Context) *Client {
	t.Helper()
	c, err := Start(ctx, binPath, "-verbosity", "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pair starts two nodes, b dials a, and waits for both whisper handshakes.
func pair(t *testing.T, ctx context.Context) (a, b *Client, ai, bi *Info) {
	t.Helper()
	a, b = start(t, ctx), start(t, ctx)
	var err error
	if ai, err = a.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if bi, err = b.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ai.Enode, "enode://") || !strings.Contains(ai.Enode, "@127.0.0.1:") {
		t.Fatalf("enode %q", ai.Enode)
	}
	if err := b.AddPeer(ctx, ai.Enode); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.WaitPeers(wctx, 1); err != nil {
		t.Fatalf("a: whisper peer: %v", err)
	}
	if _, err := b.WaitPeers(wctx, 1); err != nil {
		t.Fatalf("b: whisper peer: %v", err)
	}
	return
}

func topicHex(name string) string { return hex.EncodeToString(crypto.Keccak256([]byte(name))[:4]) }

func TestPeeringStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, ai, bi := pair(t, ctx)
	ps, _ := a.Peers(ctx)
	if len(ps) != 1 || ps[0].ID != bi.NodeID || ps[0].PoW != 0.2 || ps[0].Bloom != "" || ps[0].Caps[0] != "shh/6" {
		t.Fatalf("a's view of b: %+v", ps)
	}
	// Announced PoW requirement and bloom reach the peer.
	if err := a.SetMinPoW(ctx, 3.5, false); err != nil {
		t.Fatal(err)
	}
	bloom := hex.EncodeToString(whisperv6.TopicToBloom(whisperv6.BytesToTopic([]byte{1, 2, 3, 0})))
	if err := a.SetBloom(ctx, bloom); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, err := b.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0].ID == ai.NodeID && ps[0].PoW == 3.5 && ps[0].Bloom == bloom {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's view of a: %+v", ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := a.Stats(ctx)
	if err != nil || st["min_pow"].(float64) != 3.5 {
		t.Fatalf("stats %v %v", st, err)
	}
}

func TestSymmetricBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, _, _ := pair(t, ctx)
	pw := "strata-interop"
	akey, keyHex, err := a.NewSymKey(ctx, &pw)
	if err != nil {
		t.Fatal(err)
	}
	bkey, err := b.AddSymKey(ctx, keyHex)
	if err != nil {
		t.Fatal(err)
	}
	topic := topicHex(pw)
	af, err := a.Subscribe(ctx, SubscribeParams{Topics: []string{topic}, SymKeyID: akey})
	if err != nil {
		t.Fatal(err)
	}
	bf, err := b.Subscribe(ctx, SubscribeParams{Topics: []string{topic}, SymKeyID: bkey})
	if err != nil {
		t.Fatal(err)
	}
	signer, signerPub, err := b.NewKeyPair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// b -> a, signed.
	payload := hex.EncodeToString([]byte("hello from b"))
	res, err := b.Post(ctx, PostParams{Topic: topic, Payload: payload, SymKeyID: bkey, SignWithKeyID: signer, TTL: 30})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.WaitMessage(ctx, af, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Payload != payload || ev.SignerPub != signerPub || ev.Hash != res.Hash || ev.Topic != topic || ev.PoW < 0.2 {
		t.Fatalf("a got %+v, posted %+v", ev, res)
	}
	// a -> b, unsigned, with explicit padding.
	payload2 := hex.EncodeToString([]byte("hello from a"))
	pad := hex.EncodeToString(make([]byte, 7))
	if _, err := a.Post(ctx, PostParams{Topic: topic, Payload: payload2, Padding: &pad, SymKeyID: akey}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := b.WaitMessage(ctx, bf, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Hash == res.Hash { // b's own message, delivered locally
			continue
		}
		if ev.Payload != payload2 || ev.SignerPub != "" || ev.Padding != pad {
			t.Fatalf("b got %+v", ev)
		}
		break
	}
}

func TestAsymmetric(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, _, _ := pair(t, ctx)
	// a's identity from a fixed key, so add_private_key is covered too.
	priv := crypto.Keccak256([]byte("refnode-test-recipient"))
	aid, apub, err := a.AddPrivateKey(ctx, hex.EncodeToString(priv))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := crypto.ToECDSA(priv)
	if apub != hex.EncodeToString(crypto.FromECDSAPub(&k.PublicKey)) {
		t.Fatalf("pub key mismatch")
	}
	topic := topicHex("asym")
	af, err := a.Subscribe(ctx, SubscribeParams{Topics: []string{topic}, PrivateKeyID: aid})
	if err != nil {
		t.Fatal(err)
	}
	signer, signerPub, err := b.NewKeyPair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, sign := range []string{"", signer} {
		payload := hex.EncodeToString([]byte(fmt.Sprintf("asym %d", i)))
		if _, err := b.Post(ctx, PostParams{Topic: topic, Payload: payload, PubKey: apub, SignWithKeyID: sign}); err != nil {
			t.Fatal(err)
		}
		ev, err := a.WaitMessage(ctx, af, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if sign != "" {
			want = signerPub
		}
		if ev.Payload != payload || ev.SignerPub != want || ev.RecipientPub != apub {
			t.Fatalf("message %d: %+v", i, ev)
		}
	}
}

func TestLowPoWNotDelivered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, _, _ := pair(t, ctx)
	key := crypto.Keccak256([]byte("low-pow-key"))
	akey, err := a.AddSymKey(ctx, hex.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	topic := topicHex("low-pow")
	af, err := a.Subscribe(ctx, SubscribeParams{Topics: []string{topic}, SymKeyID: akey})
	if err != nil {
		t.Fatal(err)
	}
	// Build an unsealed envelope with geth's own code (PoW 0 = no sealing).
	tb, _ := hex.DecodeString(topic)
	p := &whisperv6.MessageParams{TTL: 3000, KeySym: key, Topic: whisperv6.BytesToTopic(tb), Payload: []byte("too cheap")}
	m, err := whisperv6.NewSentMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	env, err := m.Wrap(p)
	if err != nil {
		t.Fatal(err)
	}
	for env.PoW() >= 0.01 { // astronomically unlikely; keep it well below 0.2
		env = &whisperv6.Envelope{Expiry: env.Expiry, TTL: env.TTL, Topic: env.Topic, Data: env.Data, Nonce: env.Nonce + 1}
	}
	raw, _ := rlp.EncodeToBytes(env)
	rawHex := hex.EncodeToString(raw)
	// Locally, geth's add() refuses it.
	if _, err := b.PostRaw(ctx, rawHex, "local", ""); err == nil || !strings.Contains(err.Error(), "PoW") {
		t.Fatalf("local injection: err = %v, want a PoW refusal", err)
	}
	// Sent verbatim to a: not delivered, and a drops b.
	if _, err := b.PostRaw(ctx, rawHex, "peers", ""); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	var other []Event
	if ev, err := a.WaitMessage(wctx, af, &other); err == nil {
		t.Fatalf("low-PoW envelope delivered: %+v", ev)
	}
	dropped := false
	for _, ev := range other {
		if ev.Event == "peer" && ev.Type == "drop" {
			dropped = true
		}
	}
	if !dropped {
		t.Errorf("expected a to drop b after an invalid envelope; events %+v", other)
	}
	st, _ := a.Stats(ctx)
	if st["envelopes_pooled"].(float64) != 0 {
		t.Errorf("a pooled the envelope: %v", st)
	}
}
