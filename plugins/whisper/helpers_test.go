package whisper

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// emitted returns the frames rec kept since the last call, once l's outbox
// has handed the host everything it queued, so that a test reads the
// frames a call led to as if the layer emitted them at once.
func emitted(t testing.TB, l *Layer, rec *sdktest.Recorder) []*commonv1.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.out.waitIdle(ctx); err != nil {
		t.Fatalf("the outbox did not drain: %v", err)
	}
	return rec.Take()
}

// newTestLayer configures and starts a layer whose output goes to the
// returned Recorder; read it with emitted.
func newTestLayer(t testing.TB, cfg map[string]any) (*Layer, *sdktest.Recorder) {
	t.Helper()
	l := New()
	c := &sdktest.Recorder{}
	js, _ := json.Marshal(cfg)
	if _, err := l.Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(js), DataDir: t.TempDir()}, sdk.Env{Out: c}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(context.Background(), &commonv1.StartRequest{BelowAddress: []byte("me")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return l, c
}

func connect(l *Layer, peers ...string) {
	var evs []*commonv1.Event
	for _, p := range peers {
		evs = append(evs, &commonv1.Event{Kind: &commonv1.Event_Peer{Peer: &commonv1.PeerEvent{Peer: []byte(p), State: commonv1.PeerState_PEER_STATE_CONNECTED}}})
	}
	l.HandleBatch(context.Background(), &commonv1.Batch{Events: evs})
}

func upFrame(from string, code byte, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte(from), Protocol: wire.ProtocolName, Payload: packet(code, payload)}
}

func feed(l *Layer, fs ...*commonv1.Frame) {
	l.HandleBatch(context.Background(), &commonv1.Batch{Frames: fs})
}

// handshake connects peers and feeds each a status with the given PoW and bloom.
func handshake(l *Layer, pow float64, bloom []byte, peers ...string) {
	connect(l, peers...)
	for _, p := range peers {
		feed(l, upFrame(p, wire.StatusCode, encodeStatus(pow, bloom, false)))
	}
}

// fixClock makes l read the time from *now, which the test moves.
func fixClock(l *Layer, now *time.Time) {
	l.mu.Lock()
	l.now = func() time.Time { return *now }
	l.mu.Unlock()
}

func counter(l *Layer, name string) uint64 {
	return l.Health(context.Background()).GetCounters()[name]
}

// symEnvelope builds a symmetric envelope on topic with the given PoW.
func symEnvelope(t testing.TB, topic wire.TopicType, pow float64, payload []byte) *wire.Envelope {
	t.Helper()
	key := make([]byte, 32)
	key[0] = 1
	p := &wire.MessageParams{TTL: 50, KeySym: key, Topic: topic, Payload: payload}
	m, err := wire.NewSentMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Wrap(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Seal(pow, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

func messages(envs ...*wire.Envelope) []byte {
	raws := make([][]byte, len(envs))
	for i, e := range envs {
		raws[i] = e.Encode()
	}
	return encodeMessages(raws)
}

// framesTo returns the DOWN frames for peer with the given code.
func framesTo(fs []*commonv1.Frame, peer string, code byte) []*commonv1.Frame {
	var out []*commonv1.Frame
	for _, f := range fs {
		if f.GetDirection() == commonv1.Direction_DIRECTION_DOWN && string(f.GetPeer()) == peer && len(f.GetPayload()) > 0 && f.GetPayload()[0] == code {
			out = append(out, f)
		}
	}
	return out
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type bigInt = big.Int

var bigFive = big.NewInt(5000)
