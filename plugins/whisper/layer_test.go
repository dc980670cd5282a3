package whisper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

var testTopic = wire.TopicType{0xaa, 0xbb, 0xcc, 0xdd}

func TestStatusOnConnect(t *testing.T) {
	l, c := newTestLayer(t, nil)
	connect(l, "p1")
	fs := framesTo(emitted(t, l, c), "p1", wire.StatusCode)
	if len(fs) != 1 {
		t.Fatalf("got %d status frames", len(fs))
	}
	if got := fs[0].GetPayload()[1:]; !bytes.Equal(got, encodeStatus(0.2, nil, false)) {
		t.Fatalf("status %x", got)
	}
	if fs[0].GetProtocol() != "shh" {
		t.Fatalf("protocol %q", fs[0].GetProtocol())
	}
}

func TestPoolDedupAndExpiry(t *testing.T) {
	l, c := newTestLayer(t, nil)
	handshake(l, 0.2, nil, "p1", "p2")
	emitted(t, l, c)
	e := symEnvelope(t, testTopic, 0.2, []byte("hello"))
	feed(l, upFrame("p1", wire.MessagesCode, messages(e)))
	if n := counter(l, "envelopes_received"); n != 1 {
		t.Fatalf("received %d", n)
	}
	if n := len(framesTo(emitted(t, l, c), "p2", wire.MessagesCode)); n != 1 {
		t.Fatalf("forwarded %d packets to p2", n)
	}
	feed(l, upFrame("p2", wire.MessagesCode, messages(e)), upFrame("p1", wire.MessagesCode, messages(e)))
	if n := counter(l, "dropped_duplicate"); n != 2 {
		t.Fatalf("duplicates %d", n)
	}
	if n := counter(l, "peers_penalised"); n != 0 {
		t.Fatalf("duplicate penalised")
	}
	if fs := emitted(t, l, c); len(fs) != 0 {
		t.Fatalf("duplicate forwarded: %v", fs)
	}
	if n := counter(l, "pool_size"); n != 1 {
		t.Fatalf("pool %d", n)
	}
	l.mu.Lock()
	l.now = func() time.Time { return time.Now().Add(time.Minute) }
	l.mu.Unlock()
	if n := counter(l, "pool_size"); n != 0 {
		t.Fatalf("pool %d after expiry", n)
	}
	// Now expired by less than 20 s... the original is 60-50=10 s past expiry: silently dropped.
	feed(l, upFrame("p1", wire.MessagesCode, messages(e)))
	if n := counter(l, "dropped_expired"); n != 1 {
		t.Fatalf("expired %d", n)
	}
	if n := counter(l, "peers_penalised"); n != 0 {
		t.Fatal("recently expired envelope penalised")
	}
}

func TestForwardRules(t *testing.T) {
	l, c := newTestLayer(t, nil)
	other := wire.TopicToBloom(wire.TopicType{1, 2, 3, 0})
	handshake(l, 0.2, nil, "from", "full")
	handshake(l, 0.2, other, "wrongbloom")
	handshake(l, 0.2, wire.TopicToBloom(testTopic), "rightbloom")
	handshake(l, 1000, nil, "highpow")
	emitted(t, l, c)
	e := symEnvelope(t, testTopic, 0.2, []byte("x"))
	feed(l, upFrame("from", wire.MessagesCode, messages(e)))
	fs := emitted(t, l, c)
	for peer, want := range map[string]int{"from": 0, "full": 1, "wrongbloom": 0, "rightbloom": 1, "highpow": 0} {
		if got := len(framesTo(fs, peer, wire.MessagesCode)); got != want {
			t.Errorf("%s: %d packets, want %d", peer, got, want)
		}
	}
	got, err := decodeMessages(framesTo(fs, "full", wire.MessagesCode)[0].GetPayload()[1:])
	if err != nil || len(got) != 1 || got[0].Hash() != e.Hash() {
		t.Fatalf("forwarded %v %v", got, err)
	}
	// A code-2 update lowers highpow's requirement; the next envelope goes there.
	feed(l, upFrame("highpow", wire.PowRequirementCode, encodePoWRequirement(0)))
	e2 := symEnvelope(t, testTopic, 0.2, []byte("y"))
	feed(l, upFrame("from", wire.MessagesCode, messages(e2)))
	if n := len(framesTo(emitted(t, l, c), "highpow", wire.MessagesCode)); n != 1 {
		t.Fatalf("after code 2: %d packets", n)
	}
	// A code-3 update moves rightbloom away from the topic.
	feed(l, upFrame("rightbloom", wire.BloomFilterExCode, encodeBloom(other)))
	e3 := symEnvelope(t, testTopic, 0.2, []byte("z"))
	feed(l, upFrame("from", wire.MessagesCode, messages(e3)))
	if n := len(framesTo(emitted(t, l, c), "rightbloom", wire.MessagesCode)); n != 0 {
		t.Fatalf("after code 3: %d packets", n)
	}
}

func TestRateLimit(t *testing.T) {
	l, _ := newTestLayer(t, map[string]any{"rate_limit_packets": 3})
	now := time.Now()
	fixClock(l, &now)
	handshake(l, 0.2, nil, "p") // status uses one token
	for range 5 {
		feed(l, upFrame("p", wire.MessagesCode, []byte{0xc0}))
	}
	if n := counter(l, "dropped_rate_limited"); n != 3 {
		t.Fatalf("rate limited %d, want 3", n)
	}
	now = now.Add(time.Second)
	feed(l, upFrame("p", wire.MessagesCode, []byte{0xc0}))
	if n := counter(l, "dropped_rate_limited"); n != 3 {
		t.Fatalf("bucket did not refill: %d", n)
	}

	lb, _ := newTestLayer(t, map[string]any{"rate_limit_bytes": 4000, "max_message_size": 2048})
	handshake(lb, 0.2, nil, "p")
	big := make([]byte, 1900)
	for range 3 {
		feed(lb, upFrame("p", 99, big))
	}
	if n := counter(lb, "dropped_rate_limited"); n == 0 {
		t.Fatal("byte limit not applied")
	}
}

func TestPenalties(t *testing.T) {
	cases := []struct {
		name   string
		frames func(t *testing.T) []*commonv1.Frame
		reason string
	}{
		{"low pow", func(t *testing.T) []*commonv1.Frame {
			e := symEnvelope(t, testTopic, 0, []byte("cheap"))
			return []*commonv1.Frame{upFrame("p", wire.MessagesCode, messages(e))}
		}, "dropped_low_pow"},
		{"malformed messages", func(*testing.T) []*commonv1.Frame {
			return []*commonv1.Frame{upFrame("p", wire.MessagesCode, []byte{0xc3, 0x01, 0x02, 0x03})}
		}, "dropped_malformed"},
		{"bad pow requirement", func(*testing.T) []*commonv1.Frame {
			return []*commonv1.Frame{upFrame("p", wire.PowRequirementCode, []byte{0xc0})}
		}, "dropped_malformed"},
		{"bad bloom", func(*testing.T) []*commonv1.Frame {
			return []*commonv1.Frame{upFrame("p", wire.BloomFilterExCode, encodeBloom(make([]byte, 3)))}
		}, "dropped_malformed"},
		{"future", func(t *testing.T) []*commonv1.Frame {
			e := symEnvelope(t, testTopic, 0, []byte("later"))
			e.Expiry += 3600
			if err := e.Mine(context.Background(), 0.2); err != nil {
				t.Fatal(err)
			}
			return []*commonv1.Frame{upFrame("p", wire.MessagesCode, messages(e))}
		}, "dropped_future"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, out := newTestLayer(t, map[string]any{"min_pow": 0.5})
			handshake(l, 0.2, nil, "p", "q")
			feed(l, c.frames(t)...)
			if n := counter(l, c.reason); n != 1 {
				t.Fatalf("%s = %d", c.reason, n)
			}
			if n := counter(l, "peers_penalised"); n != 1 {
				t.Fatalf("peers_penalised = %d", n)
			}
			emitted(t, l, out)
			good := symEnvelope(t, testTopic, 0.5, []byte("good"))
			feed(l, upFrame("p", wire.MessagesCode, messages(good)))
			if n := counter(l, "dropped_banned_peer"); n != 1 {
				t.Fatalf("banned peer still accepted (%d)", n)
			}
			if fs := framesTo(emitted(t, l, out), "q", wire.MessagesCode); len(fs) != 0 {
				t.Fatal("forwarded from a banned peer")
			}
			// After the overlay reports the peer gone and back, it starts afresh.
			l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("p"), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
			handshake(l, 0.2, nil, "p")
			feed(l, upFrame("p", wire.MessagesCode, messages(good)))
			if n := counter(l, "envelopes_received"); n != 1 {
				t.Fatalf("received %d after reconnect", n)
			}
		})
	}
}

func TestHandshakeRequired(t *testing.T) {
	// A packet before the peer's Status is dropped, not taken, and the
	// peer is not banned: its Status may still come (it may be talking to
	// an earlier instance of this layer over a connection that outlived
	// it). A Status then completes the handshake.
	l, c := newTestLayer(t, nil)
	connect(l, "p")
	emitted(t, l, c)
	feed(l, upFrame("p", wire.MessagesCode, []byte{0xc0}))
	if counter(l, "dropped_before_status") != 1 || counter(l, "peers_penalised") != 0 || counter(l, "envelopes_received") != 0 {
		t.Fatalf("code 1 before status: %v", l.Health(context.Background()).GetCounters())
	}
	feed(l, upFrame("p", wire.StatusCode, encodeStatus(0.2, nil, false)))
	if !l.peers["p"].gotStatus || l.peers["p"].banned {
		t.Fatal("a Status after a dropped packet did not complete the handshake")
	}
	if fs := framesTo(emitted(t, l, c), "p", wire.StatusCode); len(fs) != 0 {
		t.Fatalf("answered a first Status with %d Statuses; ours went at connect", len(fs))
	}
	// A peer whose packets keep coming without a Status is sent ours
	// again, at most once per statusRefresh.
	lr, cr := newTestLayer(t, nil)
	now := time.Now()
	lr.mu.Lock()
	lr.now = func() time.Time { return now }
	lr.mu.Unlock()
	connect(lr, "p")
	emitted(t, lr, cr)
	feed(lr, upFrame("p", wire.MessagesCode, []byte{0xc0}))
	if fs := framesTo(emitted(t, lr, cr), "p", wire.StatusCode); len(fs) != 0 {
		t.Fatal("sent a Status again right after connect")
	}
	now = now.Add(statusRefresh)
	feed(lr, upFrame("p", wire.MessagesCode, []byte{0xc0}), upFrame("p", wire.MessagesCode, []byte{0xc0}))
	if fs := framesTo(emitted(t, lr, cr), "p", wire.StatusCode); len(fs) != 1 {
		t.Fatalf("sent %d Statuses to a peer that sends packets without one, want 1", len(fs))
	}

	l2, _ := newTestLayer(t, map[string]any{"light": true})
	connect(l2, "p")
	feed(l2, upFrame("p", wire.StatusCode, encodeStatus(0.2, nil, true)))
	if counter(l2, "dropped_handshake") != 1 {
		t.Fatal("light to light accepted")
	}
	l3, _ := newTestLayer(t, nil)
	handshake(l3, 0.2, nil, "p")
	feed(l3, upFrame("p", 55, nil), upFrame("p", wire.P2PMessageCode, []byte{1}))
	if counter(l3, "ignored_code") != 2 || counter(l3, "peers_penalised") != 0 {
		t.Fatalf("ignored packets: %v", l3.Health(context.Background()).GetCounters())
	}
}

// TestStatusRefresh: a second Status on one connection means the peer's
// layer restarted and lost the handshake. It is answered with our Status,
// at most once per statusRefresh (two such peers cannot trade Statuses
// forever), and its new requirements are taken; but its known set stays
// and it is not handed the pool again: that happens once per connection,
// and a reconnect is a new one.
func TestStatusRefresh(t *testing.T) {
	l, c := newTestLayer(t, nil)
	now := time.Now()
	fixClock(l, &now)
	handshake(l, 0.2, nil, "p")
	emitted(t, l, c)
	feed(l, upFrame("p", wire.MessagesCode, messages(symEnvelope(t, testTopic, 0.2, []byte("pooled")))))
	if counter(l, "envelopes_received") != 1 {
		t.Fatalf("%v", l.Health(context.Background()).GetCounters())
	}
	emitted(t, l, c)

	feed(l, upFrame("p", wire.StatusCode, encodeStatus(0.1, nil, false)))
	out := emitted(t, l, c)
	if fs := framesTo(out, "p", wire.StatusCode); len(fs) != 1 {
		t.Fatalf("answered a repeated Status with %d Statuses, want 1", len(fs))
	}
	if fs := framesTo(out, "p", wire.MessagesCode); len(fs) != 0 {
		t.Fatalf("a repeated Status drew %d batches of the pool, want none", len(fs))
	}
	if p := l.peers["p"]; p.pow != 0.1 || knownBy(l, p) != 1 || counter(l, "status_refreshed") != 1 {
		t.Fatalf("refresh: pow %v, %d known, %v", p.pow, knownBy(l, p), l.Health(context.Background()).GetCounters())
	}
	now = now.Add(statusRefresh / 2)
	feed(l, upFrame("p", wire.StatusCode, encodeStatus(0.1, nil, false)))
	if fs := framesTo(emitted(t, l, c), "p", wire.StatusCode); len(fs) != 0 {
		t.Fatalf("answered a Status %v after the last answer", statusRefresh/2)
	}
	now = now.Add(statusRefresh)
	feed(l, upFrame("p", wire.StatusCode, encodeStatus(0.1, nil, false)))
	out = emitted(t, l, c)
	if fs := framesTo(out, "p", wire.StatusCode); len(fs) != 1 {
		t.Fatalf("did not answer a Status %v after the last answer", statusRefresh)
	}
	if fs := framesTo(out, "p", wire.MessagesCode); len(fs) != 0 {
		t.Fatalf("an answered repeated Status drew %d batches of the pool, want none", len(fs))
	}
	// A new connection is a new peer: its handshake hands it the pool.
	l.HandleBatch(context.Background(), &commonv1.Batch{Events: []*commonv1.Event{{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte("p"), State: commonv1.PeerState_PEER_STATE_DISCONNECTED}}}}})
	handshake(l, 0.1, nil, "p")
	if fs := framesTo(emitted(t, l, c), "p", wire.MessagesCode); len(fs) != 1 {
		t.Fatalf("a reconnected peer got %d batches of the pool, want 1", len(fs))
	}
}

func TestDownFrames(t *testing.T) {
	l, c := newTestLayer(t, nil)
	handshake(l, 0.2, nil, "p")
	emitted(t, l, c)
	k := mustKey(t)
	feed(l,
		&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: []byte("junk"), Payload: []byte("x")},
		&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: encodeContact(&k.PublicKey), Payload: make([]byte, MaxPayload+1)},
		&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: encodeContact(&k.PublicKey), TraceId: 7, Payload: []byte("ok")},
	)
	if counter(l, "dropped_bad_address") != 1 || counter(l, "dropped_too_large") != 1 {
		t.Fatalf("%v", l.Health(context.Background()).GetCounters())
	}
	waitFor(t, "the post", func() bool { return counter(l, "envelopes_posted") == 1 })
	fs := framesTo(emitted(t, l, c), "p", wire.MessagesCode)
	if len(fs) != 1 || fs[0].GetTraceId() != 7 {
		t.Fatalf("posted frames %v", fs)
	}
	envs, err := decodeMessages(fs[0].GetPayload()[1:])
	if err != nil || len(envs) != 1 {
		t.Fatal(err)
	}
	e := envs[0]
	if e.TTL != 50 || e.Topic != PartitionedTopic(&k.PublicKey) || e.PoW() < 0.2 {
		t.Fatalf("envelope ttl %d topic %s pow %v", e.TTL, e.Topic, e.PoW())
	}
	m, err := wire.OpenAsymmetric(e, k)
	if err != nil || !m.Src.Equal(&l.key.PublicKey) {
		t.Fatalf("open: %v", err)
	}
	if conv, payload, err := decodeInner(m.Flags, m.Payload); err != nil || len(conv) != 0 || string(payload) != "ok" {
		t.Fatalf("inner %q %q %v", conv, payload, err)
	}
}

func TestLightBloom(t *testing.T) {
	l, c := newTestLayer(t, map[string]any{"light": true})
	handshake(l, 0.2, nil, "p")
	st := framesTo(emitted(t, l, c), "p", wire.StatusCode)
	s, err := decodeStatus(st[0].GetPayload()[1:])
	if err != nil || !s.Light || !bytes.Equal(s.Bloom, wire.TopicToBloom(l.ownTopic)) {
		t.Fatalf("light status %+v %v", s, err)
	}
	if _, err := l.Subscribe(context.Background(), &privacyv1.SubscribeRequest{Name: "chat"}); err != nil {
		t.Fatal(err)
	}
	fs := framesTo(emitted(t, l, c), "p", wire.BloomFilterExCode)
	if len(fs) != 1 {
		t.Fatalf("%d bloom updates", len(fs))
	}
	b, _ := decodeBloom(fs[0].GetPayload()[1:])
	if !wire.BloomFilterMatch(b, wire.TopicToBloom(NameTopic("chat"))) {
		t.Fatal("bloom lacks the subscription")
	}
	if err := l.SetMinPoW(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if fs := framesTo(emitted(t, l, c), "p", wire.PowRequirementCode); len(fs) != 1 || !bytes.Equal(fs[0].GetPayload()[1:], encodePoWRequirement(2)) {
		t.Fatalf("pow update %v", fs)
	}
	// An envelope on a topic outside the bloom is refused (geth step 6).
	e := symEnvelope(t, wire.TopicType{9, 9, 9, 9}, 0.2, []byte("x"))
	if wire.BloomFilterMatch(b, e.Bloom()) {
		t.Skip("topic collides with the bloom")
	}
	l.mu.Lock()
	l.bloomChanged = time.Time{} // tolerance over
	l.mu.Unlock()
	feed(l, upFrame("p", wire.MessagesCode, messages(e)))
	if counter(l, "dropped_bloom") != 1 {
		t.Fatal("envelope outside the bloom accepted")
	}
}

func TestAddressRoundTrip(t *testing.T) {
	k := mustKey(t)
	a := encodeContact(&k.PublicKey)
	d, err := decodeAddress(a)
	if err != nil || d.kind != addrKindContact || !d.pub.Equal(&k.PublicKey) || d.topic != PartitionedTopic(&k.PublicKey) {
		t.Fatalf("%+v %v", d, err)
	}
	key, _ := wire.SymKeyFromPassword("status")
	s := encodeShared(NameTopic("status"), key)
	d, err = decodeAddress(s)
	if err != nil || d.kind != addrKindShared || d.topic.String() != "0xcd423760" || !bytes.Equal(d.symKey, key) {
		t.Fatalf("%+v %v", d, err)
	}
	bad := map[string][]byte{
		"empty":        nil,
		"short":        {1},
		"version 2":    append([]byte{2}, a[1:]...),
		"kind 3":       append([]byte{1, 3}, a[2:]...),
		"truncated":    a[:len(a)-1],
		"long":         append(append([]byte(nil), a...), 0),
		"wrong topic":  append(append([]byte(nil), a[:len(a)-1]...), a[len(a)-1]^1),
		"off curve":    append(append([]byte{1, 1, 4}, bytes.Repeat([]byte{1}, 64)...), a[len(a)-4:]...),
		"zero key":     encodeShared(NameTopic("x"), make([]byte, 32)),
		"shared short": s[:len(s)-1],
	}
	for name, b := range bad {
		if _, err := decodeAddress(b); !errors.Is(err, ErrBadAddress) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPartitionedTopic(t *testing.T) {
	// The rule is Status's: Keccak256("contact-discovery-" + decimal(X mod 5000))[:4].
	k := mustKey(t)
	raw := crypto.FromECDSAPub(&k.PublicKey)
	x := new(bigInt).SetBytes(raw[1:33])
	x.Mod(x, bigFive)
	want := wire.BytesToTopic(crypto.Keccak256([]byte("contact-discovery-" + x.String())))
	if got := PartitionedTopic(&k.PublicKey); got != want {
		t.Fatalf("%s want %s", got, want)
	}
	if got := NameTopic("status").String(); got != "0xcd423760" {
		t.Fatalf("public chat topic %s", got)
	}
}

func TestKeyPersists(t *testing.T) {
	dir := t.TempDir()
	var addrs [][]byte
	for range 2 {
		l := New()
		if _, err := l.Configure(context.Background(), &commonv1.ConfigureRequest{DataDir: dir}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
			t.Fatal(err)
		}
		r, err := l.OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, r.GetAddress())
	}
	if !bytes.Equal(addrs[0], addrs[1]) {
		t.Fatal("key not persisted")
	}
}

func TestConfigErrors(t *testing.T) {
	for key, v := range map[string]any{
		"min_pow": -1, "max_message_size": 10, "ttl": "1.5s", "pow_target": 0.1,
		"pow_time": "0s", "rate_limit_packets": -1, "rate_limit_bytes": -3, "nonsense": 1,
	} {
		js, _ := json.Marshal(map[string]any{key: v})
		_, err := New().Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(js)}, sdk.Env{})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%s=%v: %v", key, v, err)
		}
	}
}
