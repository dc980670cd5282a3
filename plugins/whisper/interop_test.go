package whisper_test

// Live interoperability test: our devp2p + whisper layers against a
// go-ethereum v1.9.20 whisperv6 node (interop/whisperv6/cmd/refnode, a
// separate module run as a process; see interop/whisperv6/README.md).

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/plugins/whisper"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

const (
	interopChat = "strata-interop"
	// PoW requirements: distinct on each side so that every check can tell
	// whose value it sees.
	refMinPoW  = 0.15 // refnode -minpow (below geth's 0.2 tolerance quirk, so enforced)
	ourMinPoW  = 0.25 // our min_pow (and pow_target) at start
	ourMinPoW2 = 0.3  // our SetMinPoW in check 2
	refPostPoW = 0.5  // what the refnode mines its posts to (above ours)
)

// refnodeBinary builds cmd/refnode (or takes $STRATA_WHISPER_REFNODE).
func refnodeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRATA_WHISPER_REFNODE"); p != "" {
		return p
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: cannot build the geth v1.9.20 refnode")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(root, "interop", "whisperv6")
	if _, err := os.Stat(filepath.Join(mod, "go.mod")); err != nil {
		t.Fatalf("refnode module not found at %s: %v", mod, err)
	}
	out := filepath.Join(t.TempDir(), "refnode")
	cmd := exec.Command("go", "build", "-C", mod, "-ldflags=-checklinkname=0", "-o", out, "./cmd/refnode")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building refnode: %v\n%s", err, b)
	}
	return out
}

// within polls cond every 50 ms until it holds or d passes.
func within(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inner is the whisper payload of a frame with no conversation: the
// payload itself, byte for byte (docs/plugins/whisper.md), so that geth and
// Status clients see what was sent.
func inner(payload []byte) []byte { return payload }

func contactAddress(pub []byte) []byte {
	k, err := crypto.UnmarshalPubkey(pub)
	if err != nil {
		panic(err)
	}
	topic := whisper.PartitionedTopic(k)
	return append(append([]byte{1, 1}, pub...), topic[:]...)
}

// rawPacket is a code-1 shh packet of envelopes, as a DOWN frame for
// devp2p: 0x01 | RLP list of envelopes.
func rawPacket(peer []byte, envs ...*wire.Envelope) *commonv1.Frame {
	list := make([]rlp.RawValue, len(envs))
	for i, e := range envs {
		list[i] = e.Encode()
	}
	b, err := rlp.EncodeToBytes(list)
	if err != nil {
		panic(err)
	}
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Protocol: "shh", Payload: append([]byte{wire.MessagesCode}, b...)}
}

// symEnv builds an envelope for the chat key with the given sent time and
// PoW target (0: not sealed, nonce 0).
func symEnv(t *testing.T, key []byte, topic wire.TopicType, payload []byte, sent time.Time, ttl uint32, pow float64) *wire.Envelope {
	t.Helper()
	p := &wire.MessageParams{TTL: ttl, KeySym: key, Topic: topic, Payload: payload, PoW: pow, WorkTime: 5}
	m, err := wire.NewSentMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Wrap(p, sent)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// lowPoW returns a copy of e with a nonce giving PoW below limit.
func lowPoW(t *testing.T, e *wire.Envelope, limit float64) *wire.Envelope {
	t.Helper()
	c := *e
	for c.Nonce = 0; c.Nonce < 1000; c.Nonce++ {
		if c.PoW() < limit {
			return &c
		}
	}
	t.Fatal("no low-PoW nonce found")
	return nil
}

func TestInteropGethWhisperV6(t *testing.T) {
	bin := refnodeBinary(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	ref, err := startRefnode(ctx, bin, "-listen", "127.0.0.1:0", "-minpow", fmt.Sprint(refMinPoW), "-verbosity", "3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ref.close()
		if t.Failed() {
			t.Logf("refnode stderr:\n%s", ref.stderr.String())
		}
	})
	info, err := ref.info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refID, err := hex.DecodeString(info.NodeID)
	if err != nil || len(refID) != 32 {
		t.Fatalf("refnode node id %q: %v", info.NodeID, err)
	}

	h := newInteropHost(t, map[string]any{"min_pow": ourMinPoW, "pow_time": "5s"})
	ourID := hex.EncodeToString(h.p2pStart.GetLocalAddress())
	ourAddr := h.shhStart.GetLocalAddress() // 01 01 | pub(65) | topic(4)
	if len(ourAddr) != 71 || ourAddr[0] != 1 || ourAddr[1] != 1 {
		t.Fatalf("our whisper address %x is not a contact address", ourAddr)
	}
	ourPub, ourTopic := ourAddr[2:67], wire.BytesToTopic(ourAddr[67:])

	// The contact section plugins/devp2p expects (contact.go): a PeerInfo
	// with the 32-byte node id and the enode URL as display id and address.
	contact, err := proto.Marshal(&p2pv1.PeerInfo{Id: refID, DisplayId: info.Enode, Addresses: []string{info.Enode}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
	// Not persistent: once geth drops us (check 5) we are not redialed.
	_, err = h.p2p.Connect(cctx, &p2pv1.ConnectRequest{ContactSection: contact})
	ccancel()
	if err != nil {
		t.Fatalf("devp2p Connect to refnode: %v", err)
	}

	waitRefPeer := func(t *testing.T, cond func(p *refPeer) bool) *refPeer {
		t.Helper()
		var last *refPeer
		ok := within(10*time.Second, func() bool {
			p, err := ref.peer(ctx, ourID)
			if err != nil {
				t.Fatalf("refnode peers: %v", err)
			}
			last = p
			return p != nil && cond(p)
		})
		if !ok {
			t.Fatalf("refnode's view of our node did not reach the expected state; last: %+v", last)
		}
		return last
	}
	// waitSniff waits for an shh UP frame of the given code from the
	// refnode, handled by our whisper layer after index from.
	waitSniff := func(t *testing.T, from int, code byte, match func(body []byte) bool) []byte {
		t.Helper()
		var got []byte
		if !within(10*time.Second, func() bool {
			for _, f := range h.sniffedSince(from) {
				pl := f.GetPayload()
				if bytes.Equal(f.GetPeer(), refID) && len(pl) > 0 && pl[0] == code && match(pl[1:]) {
					got = pl[1:]
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no code-%d packet from the refnode reached our whisper layer", code)
		}
		return got
	}
	// expectApp waits for an UP frame carrying payload; nothing else may
	// arrive before it.
	expectApp := func(t *testing.T, payload []byte) *commonv1.Frame {
		t.Helper()
		select {
		case f := <-h.app:
			if !bytes.Equal(f.GetPayload(), payload) {
				t.Fatalf("delivered payload %x, want %x", f.GetPayload(), payload)
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("payload %x not delivered; counters %v", payload, h.counters())
			return nil
		}
	}
	expectNoApp := func(t *testing.T, d time.Duration) {
		t.Helper()
		select {
		case f := <-h.app:
			t.Fatalf("unexpected delivery %x", f.GetPayload())
		case <-time.After(d):
		}
	}
	// waitRefMessage waits for a message event on filter with the payload.
	waitRefMessage := func(t *testing.T, from int, filter string, payload []byte) refEvent {
		t.Helper()
		want := hex.EncodeToString(payload)
		var got refEvent
		if !within(10*time.Second, func() bool {
			for _, ev := range ref.eventsSince(from) {
				if ev.Event == "message" && ev.Filter == filter && ev.Payload == want {
					got = ev
					return true
				}
			}
			return false
		}) {
			t.Fatalf("refnode did not open payload %s on filter %s; events %+v", want, filter, ref.eventsSince(from))
		}
		return got
	}

	t.Run("1_capability_handshake", func(t *testing.T) {
		p := waitRefPeer(t, func(p *refPeer) bool { return p.Whisper })
		hasShh := false
		for _, c := range p.Caps {
			hasShh = hasShh || c == "shh/6"
		}
		if !hasShh {
			t.Errorf("refnode lists our caps as %v, want shh/6 among them", p.Caps)
		}
		if p.PoW != ourMinPoW {
			t.Errorf("refnode saw our Status PoW %v, want %v", p.PoW, ourMinPoW)
		}
		if p.Bloom != "" || p.Light {
			t.Errorf("refnode saw our Status bloom %q light %v, want a full node (empty bloom)", p.Bloom, p.Light)
		}
		// geth's Status, as our whisper layer received it: [6, pow bits, bloom, light].
		body := waitSniff(t, 0, wire.StatusCode, func([]byte) bool { return true })
		var st struct {
			Version uint64
			PoW     uint64
			Bloom   []byte
			Light   bool
		}
		if err := rlp.DecodeBytes(body, &st); err != nil {
			t.Fatalf("geth Status %x: %v", body, err)
		}
		if st.Version != 6 || math.Float64frombits(st.PoW) != info.MinPoW || math.Float64frombits(st.PoW) != refMinPoW {
			t.Errorf("geth Status version %d PoW %v, want 6 and %v (info says %v)", st.Version, math.Float64frombits(st.PoW), refMinPoW, info.MinPoW)
		}
		c := h.counters()
		if c["peers"] < 1 {
			t.Errorf("our whisper Health peers = %d, want ≥ 1", c["peers"])
		}
		if c["dropped_handshake"] != 0 || c["peers_penalised"] != 0 {
			t.Errorf("handshake problems on our side: %v", c)
		}
	})

	// A shared address of our own to post to in check 2 (only our node has
	// its key; the refnode relays nothing back).
	powAddr, err := h.shh.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: "strata-interop-pow"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("2_pow_requirement_exchange", func(t *testing.T) {
		// geth → us. Our layer has no accessor for a peer's requirement,
		// so the check is on the wire (the code-2 packet reached our layer)
		// and behavioural: an envelope we post below X is not forwarded.
		const x = 1000.0
		from := h.sniffCount()
		if err := ref.call(ctx, "set_min_pow", map[string]any{"pow": x}, nil); err != nil {
			t.Fatal(err)
		}
		waitSniff(t, from, wire.PowRequirementCode, func(b []byte) bool {
			var v uint64
			return rlp.DecodeBytes(b, &v) == nil && math.Float64frombits(v) == x
		})
		p0 := waitRefPeer(t, func(*refPeer) bool { return true })
		c0 := h.counters()
		if err := h.down(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: powAddr.GetAddress(), Payload: []byte("below X")}); err != nil {
			t.Fatal(err)
		}
		if !within(10*time.Second, func() bool { return h.counters()["envelopes_posted"] > c0["envelopes_posted"] }) {
			t.Fatalf("our post was not sealed: %v", h.counters())
		}
		time.Sleep(700 * time.Millisecond)
		if c := h.counters(); c["envelopes_forwarded"] != c0["envelopes_forwarded"] {
			t.Errorf("envelope below the refnode's requirement %v was forwarded (%d → %d)", x, c0["envelopes_forwarded"], c["envelopes_forwarded"])
		}
		if p, _ := ref.peer(ctx, ourID); p == nil || p.Envelopes != p0.Envelopes {
			t.Errorf("refnode received envelopes from us despite its requirement: %+v → %+v", p0, p)
		}
		// Back to refMinPoW: the next post is forwarded (positive control).
		from = h.sniffCount()
		if err := ref.call(ctx, "set_min_pow", map[string]any{"pow": refMinPoW}, nil); err != nil {
			t.Fatal(err)
		}
		waitSniff(t, from, wire.PowRequirementCode, func(b []byte) bool {
			var v uint64
			return rlp.DecodeBytes(b, &v) == nil && math.Float64frombits(v) == refMinPoW
		})
		c1 := h.counters()
		if err := h.down(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: powAddr.GetAddress(), Payload: []byte("above requirement")}); err != nil {
			t.Fatal(err)
		}
		if !within(10*time.Second, func() bool { return h.counters()["envelopes_forwarded"] > c1["envelopes_forwarded"] }) {
			t.Errorf("after the requirement dropped back to %v our post was not forwarded: %v", refMinPoW, h.counters())
		}
		waitRefPeer(t, func(p *refPeer) bool { return p.Envelopes > p0.Envelopes })

		// us → geth: SetMinPoW(Y) goes out as code 2.
		if err := h.shh.SetMinPoW(ctx, ourMinPoW2); err != nil {
			t.Fatal(err)
		}
		p := waitRefPeer(t, func(p *refPeer) bool { return p.PoW == ourMinPoW2 })
		if p.Packets["2"] < 1 {
			t.Errorf("refnode counted no code-2 packet from us: %v", p.Packets)
		}
	})

	// Public chat, both sides. Topic rule: Keccak256(name)[:4] (Status's
	// public-chat rule; docs/plugins/whisper.md); key: geth's PBKDF2 of the
	// name (AddSymKeyFromPassword).
	chatTopic := wire.BytesToTopic(crypto.Keccak256([]byte(interopChat)))
	var chatKey []byte
	var chatFilter string

	t.Run("3_symmetric_public_chat", func(t *testing.T) {
		sub, err := h.shh.Subscribe(ctx, &privacyv1.SubscribeRequest{Name: interopChat})
		if err != nil {
			t.Fatal(err)
		}
		addr := sub.GetAddress()
		if whisper.NameTopic(interopChat) != chatTopic || !bytes.Equal(addr[2:6], chatTopic[:]) {
			t.Fatalf("our public-chat topic %x / address topic %x, want Keccak256(name)[:4] = %x", whisper.NameTopic(interopChat), addr[2:6], chatTopic)
		}
		var r struct {
			KeyID string `json:"key_id"`
			Key   string `json:"key"`
		}
		if err := ref.call(ctx, "new_sym_key", map[string]any{"password": interopChat}, &r); err != nil {
			t.Fatal(err)
		}
		chatKey = addr[6:]
		if hex.EncodeToString(chatKey) != r.Key {
			t.Fatalf("symmetric key from password: ours %x, geth %s", chatKey, r.Key)
		}
		var f struct {
			Filter string `json:"filter"`
		}
		if err := ref.call(ctx, "subscribe", map[string]any{"topics": []string{hex.EncodeToString(chatTopic[:])}, "sym_key_id": r.KeyID}, &f); err != nil {
			t.Fatal(err)
		}
		chatFilter = f.Filter

		// ours → geth
		mark := ref.eventCount()
		msg := []byte("hello geth from strata")
		if err := h.down(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: addr, Payload: msg}); err != nil {
			t.Fatal(err)
		}
		// geth sees exactly our payload.
		ev := waitRefMessage(t, mark, chatFilter, msg)
		if ev.SignerPub != hex.EncodeToString(ourPub) {
			t.Errorf("geth reports signer %q, want our whisper key %x", ev.SignerPub, ourPub)
		}
		if ev.Topic != hex.EncodeToString(chatTopic[:]) {
			t.Errorf("geth reports topic %s, want %x", ev.Topic, chatTopic)
		}

		// geth → ours
		msg2 := []byte("hello strata from geth")
		if err := ref.call(ctx, "post", map[string]any{"topic": hex.EncodeToString(chatTopic[:]), "sym_key_id": r.KeyID, "payload": hex.EncodeToString(inner(msg2)), "pow_target": refPostPoW}, nil); err != nil {
			t.Fatal(err)
		}
		got := expectApp(t, msg2)
		if len(got.GetPeer()) != 0 {
			t.Errorf("unsigned geth message delivered with peer %x, want empty", got.GetPeer())
		}

		// A frame with a conversation carries it in front of the payload,
		// marked by a flags bit geth leaves unused: geth still opens the
		// message and sees the prefix; our layer gives the conversation
		// back.
		mark = ref.eventCount()
		conv := []byte("a conversation")
		if err := h.down(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: addr, Conversation: conv, Payload: msg}); err != nil {
			t.Fatal(err)
		}
		waitRefMessage(t, mark, chatFilter, append(append([]byte{byte(len(conv))}, conv...), msg...))
		expectNoApp(t, 300*time.Millisecond)
	})

	t.Run("4_asymmetric", func(t *testing.T) {
		var kp struct {
			KeyID  string `json:"key_id"`
			PubKey string `json:"pub_key"`
		}
		if err := ref.call(ctx, "new_key_pair", nil, &kp); err != nil {
			t.Fatal(err)
		}
		refPub, err := hex.DecodeString(kp.PubKey)
		if err != nil {
			t.Fatal(err)
		}
		refAddr := contactAddress(refPub)
		refTopic := refAddr[67:]
		var f struct {
			Filter string `json:"filter"`
		}
		if err := ref.call(ctx, "subscribe", map[string]any{"topics": []string{hex.EncodeToString(refTopic)}, "private_key_id": kp.KeyID}, &f); err != nil {
			t.Fatal(err)
		}

		// geth → ours: to our public key on our partitioned topic, signed.
		msg := []byte("asymmetric geth to strata")
		if err := ref.call(ctx, "post", map[string]any{"topic": hex.EncodeToString(ourTopic[:]), "pub_key": hex.EncodeToString(ourPub), "sign_with_key_id": kp.KeyID, "payload": hex.EncodeToString(inner(msg)), "pow_target": refPostPoW}, nil); err != nil {
			t.Fatal(err)
		}
		got := expectApp(t, msg)
		if !bytes.Equal(got.GetPeer(), refAddr) {
			t.Errorf("delivered from %x, want the signer's contact address %x", got.GetPeer(), refAddr)
		}

		// ours → geth: a DOWN frame to the refnode key's contact address.
		mark := ref.eventCount()
		msg2 := []byte("asymmetric strata to geth")
		if err := h.down(ctx, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: refAddr, Payload: msg2}); err != nil {
			t.Fatal(err)
		}
		ev := waitRefMessage(t, mark, f.Filter, inner(msg2))
		if ev.SignerPub != hex.EncodeToString(ourPub) {
			t.Errorf("geth reports signer %q, want %x", ev.SignerPub, ourPub)
		}
		if ev.RecipientPub != kp.PubKey {
			t.Errorf("geth reports recipient %q, want %s", ev.RecipientPub, kp.PubKey)
		}
	})

	// TTL 0 as geth v1.9.20 handles it (whisper.go add, envelope.go
	// calculatePoW): sent = Expiry, so an envelope that expires in the
	// current second is neither future-dated nor expired, and its PoW
	// divides by TTL 0: +Inf, above every requirement. geth accepts it
	// (pools, delivers, keeps the peer) and so do we. Each side sends one to
	// the other, and each is also checked by the side that sent it: geth's
	// add() (post_raw to:"local") for geth's, our Validate for ours.
	t.Run("5_zero_ttl", func(t *testing.T) {
		if chatFilter == "" {
			t.Skip("needs the public chat of check 3")
		}
		// zeroTTL is a chat message expiring in the current second, built
		// early in a second so that it is still live where it arrives.
		zeroTTL := func(payload []byte) *wire.Envelope {
			now := time.Now()
			if ns := now.Nanosecond(); ns > 200e6 {
				time.Sleep(time.Duration(1e9-ns) + 10*time.Millisecond)
				now = time.Now()
			}
			e := symEnv(t, chatKey, chatTopic, inner(payload), now, 50, 0)
			e.TTL, e.Expiry = 0, uint32(now.Unix())
			if !math.IsInf(e.PoW(), 1) {
				t.Fatalf("TTL-0 envelope has PoW %v, want +Inf", e.PoW())
			}
			return e
		}

		// geth → ours, and the same envelope through geth's own add().
		msg := []byte("ttl 0 from geth")
		e := zeroTTL(msg)
		c0 := h.counters()
		mark := ref.eventCount()
		if err := ref.call(ctx, "post_raw", map[string]any{"envelope_rlp": hex.EncodeToString(e.Encode()), "to": "peers"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := ref.call(ctx, "post_raw", map[string]any{"envelope_rlp": hex.EncodeToString(e.Encode()), "to": "local"}, nil); err != nil {
			t.Fatalf("geth's add() refused the TTL-0 envelope: %v", err)
		}
		expectApp(t, msg)
		waitRefMessage(t, mark, chatFilter, msg)
		if c := h.counters(); c["peers_penalised"] != c0["peers_penalised"] || c["envelopes_received"] != c0["envelopes_received"]+1 || c["dropped_malformed"] != c0["dropped_malformed"] {
			t.Errorf("TTL-0 envelope from geth: penalised %d→%d received %d→%d dropped_malformed %d→%d, want unchanged, +1, unchanged",
				c0["peers_penalised"], c["peers_penalised"], c0["envelopes_received"], c["envelopes_received"], c0["dropped_malformed"], c["dropped_malformed"])
		}

		// ours → geth, and the same envelope through our own check.
		msg2 := []byte("ttl 0 from strata")
		e2 := zeroTTL(msg2)
		p0 := waitRefPeer(t, func(*refPeer) bool { return true })
		mark = ref.eventCount()
		if err := h.raw(ctx, rawPacket(refID, e2)); err != nil {
			t.Fatal(err)
		}
		if err := e2.Validate(time.Now(), wire.DefaultMaxMessageSize, ourMinPoW2); err != nil {
			t.Errorf("our check refuses the TTL-0 envelope geth is sent: %v", err)
		}
		waitRefMessage(t, mark, chatFilter, msg2)
		waitRefPeer(t, func(p *refPeer) bool { return p.Envelopes > p0.Envelopes })
		for _, ev := range ref.eventsSince(mark) {
			if ev.Event == "peer" && ev.Type == "drop" {
				t.Errorf("geth dropped a peer after our TTL-0 envelope: %+v", ev)
			}
		}
	})

	t.Run("6_refusals", func(t *testing.T) {
		if chatKey == nil {
			t.Skip("needs the public chat of check 3")
		}
		// geth → ours, injected verbatim (post_raw to:"peers").
		t.Run("ours_refuses", func(t *testing.T) {
			now := time.Now()
			// Expired 5 s ago (< 20 s): dropped silently by both geth and us.
			expired := symEnv(t, chatKey, chatTopic, inner([]byte("expired from geth")), now.Add(-15*time.Second), 10, refPostPoW)
			c0 := h.counters()
			if err := ref.call(ctx, "post_raw", map[string]any{"envelope_rlp": hex.EncodeToString(expired.Encode()), "to": "peers"}, nil); err != nil {
				t.Fatal(err)
			}
			if !within(10*time.Second, func() bool { return h.counters()["dropped_expired"] > c0["dropped_expired"] }) {
				t.Fatalf("expired envelope not counted as dropped_expired: %v", h.counters())
			}
			expectNoApp(t, 200*time.Millisecond)
			if c := h.counters(); c["peers_penalised"] != c0["peers_penalised"] || c["envelopes_opened"] != c0["envelopes_opened"] {
				t.Errorf("recently expired envelope: penalised %d→%d opened %d→%d, want unchanged", c0["peers_penalised"], c["peers_penalised"], c0["envelopes_opened"], c["envelopes_opened"])
			}
			// Low PoW (below both our requirements, old and new): dropped and
			// the sender penalised (geth would disconnect it).
			low := lowPoW(t, symEnv(t, chatKey, chatTopic, inner([]byte("low pow from geth")), time.Now(), 50, 0), refMinPoW)
			c1 := h.counters()
			if err := ref.call(ctx, "post_raw", map[string]any{"envelope_rlp": hex.EncodeToString(low.Encode()), "to": "peers"}, nil); err != nil {
				t.Fatal(err)
			}
			if !within(10*time.Second, func() bool { return h.counters()["dropped_low_pow"] > c1["dropped_low_pow"] }) {
				t.Fatalf("low-PoW envelope (PoW %v) not counted as dropped_low_pow: %v", low.PoW(), h.counters())
			}
			expectNoApp(t, 200*time.Millisecond)
			if c := h.counters(); c["peers_penalised"] != c1["peers_penalised"]+1 || c["envelopes_opened"] != c1["envelopes_opened"] {
				t.Errorf("low-PoW envelope: penalised %d→%d opened %d→%d, want +1 and unchanged", c1["peers_penalised"], c["peers_penalised"], c1["envelopes_opened"], c["envelopes_opened"])
			}
		})

		// ours → geth: raw code-1 packets straight through devp2p. geth
		// v1.9.20's add(): an envelope expired less than 2×SyncAllowance
		// (20 s) ago is dropped silently (no error, peer kept); an envelope
		// below MinPow and MinPowTolerance returns "envelope with low PoW
		// received", after which runMessageLoop returns "invalid envelope"
		// and the peer is disconnected (DiscSubprotocolError).
		t.Run("geth_refuses", func(t *testing.T) {
			if chatFilter == "" {
				t.Skip("needs the refnode's chat filter of check 3")
			}
			p0 := waitRefPeer(t, func(*refPeer) bool { return true })
			st0 := map[string]any{}
			if err := ref.call(ctx, "stats", nil, &st0); err != nil {
				t.Fatal(err)
			}
			mark := ref.eventCount()
			expired := symEnv(t, chatKey, chatTopic, inner([]byte("expired from strata")), time.Now().Add(-15*time.Second), 10, ourMinPoW2)
			if err := h.raw(ctx, rawPacket(refID, expired)); err != nil {
				t.Fatal(err)
			}
			waitRefPeer(t, func(p *refPeer) bool { return p.Packets["1"] > p0.Packets["1"] })
			time.Sleep(300 * time.Millisecond) // past geth's 20 ms filter poll
			st1 := map[string]any{}
			if err := ref.call(ctx, "stats", nil, &st1); err != nil {
				t.Fatal(err)
			}
			if st1["delivered"] != st0["delivered"] || st1["envelopes_pooled"] != st0["envelopes_pooled"] {
				t.Errorf("geth accepted our expired envelope: stats %v → %v", st0, st1)
			}
			for _, ev := range ref.eventsSince(mark) {
				if ev.Event == "message" || (ev.Event == "peer" && ev.Type == "drop") {
					t.Errorf("after an expired envelope geth emitted %+v; want a silent drop", ev)
				}
			}
			if p, _ := ref.peer(ctx, ourID); p == nil {
				t.Errorf("geth dropped us for a recently expired envelope")
			}

			mark = ref.eventCount()
			low := lowPoW(t, symEnv(t, chatKey, chatTopic, inner([]byte("low pow from strata")), time.Now(), 50, 0), refMinPoW)
			if err := h.raw(ctx, rawPacket(refID, low)); err != nil {
				t.Fatal(err)
			}
			var drop refEvent
			if !within(10*time.Second, func() bool {
				for _, ev := range ref.eventsSince(mark) {
					if ev.Event == "peer" && ev.Type == "drop" && ev.Peer == ourID {
						drop = ev
						return true
					}
				}
				return false
			}) {
				t.Fatalf("geth did not drop us after a low-PoW envelope (PoW %v); events %+v", low.PoW(), ref.eventsSince(mark))
			}
			t.Logf("geth dropped us: %q", drop.Error)
			for _, ev := range ref.eventsSince(mark) {
				if ev.Event == "message" {
					t.Errorf("geth delivered %+v from a low-PoW envelope", ev)
				}
			}
			// Our devp2p reports the disconnect, and whisper forgets the peer.
			if !within(10*time.Second, func() bool {
				for _, ev := range h.peerEvents() {
					if bytes.Equal(ev.GetPeer(), refID) && ev.GetState() == commonv1.PeerState_PEER_STATE_DISCONNECTED {
						return true
					}
				}
				return false
			}) {
				t.Errorf("our devp2p reported no DISCONNECTED event for the refnode")
			}
			if !within(5*time.Second, func() bool { return h.counters()["peers"] == 0 }) {
				t.Errorf("our whisper layer still has %d peers", h.counters()["peers"])
			}
		})
	})

	if d := time.Since(began); d > 60*time.Second {
		t.Errorf("interop test took %v, above its 60 s budget", d)
	} else {
		t.Logf("interop checks took %v", d.Round(time.Millisecond))
	}
}
