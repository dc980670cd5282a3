package padded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// started returns a configured and started layer whose output goes to the
// returned recorder. configJSON is the config section.
func started(t *testing.T, configJSON string) (*Layer, *sdktest.Recorder) {
	t.Helper()
	l, out := New(), &sdktest.Recorder{}
	if _, err := sdk.NewLifecycle(l).Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: configJSON}, sdk.Env{Out: out}); err != nil {
		t.Fatalf("Configure(%s): %v", configJSON, err)
	}
	if _, err := l.Start(context.Background(), &commonv1.StartRequest{BelowAddress: []byte("overlay-self")}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return l, out
}

func counter(t *testing.T, l *Layer, name string) uint64 {
	t.Helper()
	c := l.Health(context.Background()).GetCounters()
	v, ok := c[name]
	if !ok {
		t.Fatalf("Health has no counter %q (has %v)", name, c)
	}
	return v
}

func down(peer, conversation, payload []byte) *commonv1.Frame {
	return &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Peer: peer, Conversation: conversation, Payload: payload}
}

// TestWireLengthIsAlwaysABucket sends every payload length around every
// bucket boundary, and a sweep between them, through the layer and checks
// that each frame on the wire is exactly one bucket long and that exactly
// the messages too large for the largest bucket are dropped.
func TestWireLengthIsAlwaysABucket(t *testing.T) {
	for _, list := range [][]string{defaultBuckets(), {"16", "100", "1000"}, {"4096"}} {
		t.Run(fmt.Sprint(list), func(t *testing.T) {
			cfg, err := json.Marshal(Config{Buckets: list})
			if err != nil {
				t.Fatal(err)
			}
			l, out := started(t, string(cfg))
			bs := mustBuckets(t, list...)
			sizes := map[int]bool{0: true}
			for _, b := range bs {
				for d := -8; d <= 8; d++ {
					sizes[max(b+d, 0)] = true
				}
			}
			for n := 0; n <= bs.largest()+64; n += 1 + n/16 {
				sizes[n] = true
			}
			var wantSent, wantDropped uint64
			for n := range sizes {
				for _, conv := range [][]byte{nil, []byte("conversation-id")} {
					payload := bytes.Repeat([]byte{0xA5}, n)
					l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down([]byte("peer"), conv, payload)}})
					got := out.Take()
					if unpaddedLen(len(conv), n) > bs.largest() {
						wantDropped++
						if len(got) != 0 {
							t.Fatalf("payload %d with conversation %d: sent %d frames, want it dropped", n, len(conv), len(got))
						}
						continue
					}
					wantSent++
					if len(got) != 1 {
						t.Fatalf("payload %d: emitted %d frames, want 1", n, len(got))
					}
					wire := got[0].GetPayload()
					if !slices.Contains(bs, len(wire)) {
						t.Fatalf("payload %d with conversation %d: wire length %d is not a bucket of %v", n, len(conv), len(wire), bs)
					}
					if want, _ := bs.fit(unpaddedLen(len(conv), n)); len(wire) != want {
						t.Fatalf("payload %d: wire length %d, want the smallest fitting bucket %d", n, len(wire), want)
					}
				}
			}
			if got := counter(t, l, "frames_sent"); got != wantSent {
				t.Errorf("frames_sent = %d, want %d", got, wantSent)
			}
			if got := counter(t, l, "dropped_oversize"); got != wantDropped {
				t.Errorf("dropped_oversize = %d, want %d", got, wantDropped)
			}
			if wantDropped == 0 {
				t.Error("the sweep never crossed the largest bucket")
			}
		})
	}
}

func TestDownAndUp(t *testing.T) {
	a, outA := started(t, "")
	b, outB := started(t, "")
	frame := down([]byte("overlay-b"), []byte("conv"), []byte("hello"))
	frame.TraceId = 42
	frame.Hints = &commonv1.Hints{Priority: 3}
	a.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{frame}})
	sent := outA.Take()
	if len(sent) != 1 {
		t.Fatalf("a emitted %d frames, want 1", len(sent))
	}
	s := sent[0]
	if s.GetDirection() != commonv1.Direction_DIRECTION_DOWN || !bytes.Equal(s.GetPeer(), []byte("overlay-b")) ||
		s.GetProtocol() != ProtocolName || s.GetTraceId() != 42 || s.GetHints().GetPriority() != 3 {
		t.Fatalf("a emitted %v, want a DOWN frame to overlay-b on %q with trace id and hints kept", s, ProtocolName)
	}
	if len(s.GetPayload()) != 256 {
		t.Fatalf("wire length %d, want the smallest default bucket 256", len(s.GetPayload()))
	}
	if len(s.GetConversation()) != 0 {
		t.Fatalf("the conversation id travels in the clear as %q; it belongs inside the padding", s.GetConversation())
	}

	b.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{{
		Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte("overlay-a"), Protocol: ProtocolName, TraceId: 7, Payload: s.GetPayload(),
	}}})
	recv := outB.Take()
	if len(recv) != 1 {
		t.Fatalf("b emitted %d frames, want 1", len(recv))
	}
	r := recv[0]
	if r.GetDirection() != commonv1.Direction_DIRECTION_UP || !bytes.Equal(r.GetPeer(), []byte("overlay-a")) ||
		!bytes.Equal(r.GetConversation(), []byte("conv")) || !bytes.Equal(r.GetPayload(), []byte("hello")) || r.GetTraceId() != 7 {
		t.Fatalf("b emitted %v, want UP from overlay-a, conversation conv, payload hello, trace id 7", r)
	}
	if got := counter(t, b, "frames_received"); got != 1 {
		t.Fatalf("frames_received = %d, want 1", got)
	}
	if got := counter(t, a, "padding_bytes_sent"); got != uint64(256-unpaddedLen(4, 5)) {
		t.Fatalf("padding_bytes_sent = %d, want %d", got, 256-unpaddedLen(4, 5))
	}
}

func TestDropsAreCounted(t *testing.T) {
	good, err := appendMessage(nil, nil, []byte("ok"), 256)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] = 1
	tests := []struct {
		name    string
		frame   *commonv1.Frame
		counter string
	}{
		{"unaddressed", down(nil, nil, []byte("x")), "dropped_unaddressed"},
		{"oversize", down([]byte("p"), nil, make([]byte, defaultLargestBucket)), "dropped_oversize"},
		{"conversation too long", down([]byte("p"), make([]byte, maxConversation+1), nil), "dropped_conversation_too_long"},
		{"wrong protocol", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte("p"), Protocol: "direct", Payload: good}, "dropped_wrong_protocol"},
		{"nonzero padding", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte("p"), Protocol: ProtocolName, Payload: bad}, "dropped_malformed"},
		{"empty", &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Peer: []byte("p"), Protocol: ProtocolName}, "dropped_malformed"},
		{"unspecified direction", &commonv1.Frame{Peer: []byte("p"), Payload: good}, "dropped_wrong_direction"},
		{"out-of-range direction", &commonv1.Frame{Direction: 9, Peer: []byte("p"), Payload: good}, "dropped_wrong_direction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, out := started(t, "")
			l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{tt.frame}})
			if got := out.Take(); len(got) != 0 {
				t.Fatalf("emitted %v, want the frame dropped", got)
			}
			if got := counter(t, l, tt.counter); got != 1 {
				t.Fatalf("%s = %d, want 1", tt.counter, got)
			}
			if got := counter(t, l, "frames_sent") + counter(t, l, "frames_received"); got != 0 {
				t.Fatalf("frames_sent + frames_received = %d, want 0", got)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    buckets
		wantKey string // non-empty: a ConfigError naming this key
	}{
		{"defaults when absent", `{}`, buckets{256, 1024, 4096, 16384, 65536}, ""},
		{"defaults when empty", ``, buckets{256, 1024, 4096, 16384, 65536}, ""},
		{"custom", `{"buckets": ["64", "512"]}`, buckets{64, 512}, ""},
		{"spaces are trimmed", `{"buckets": [" 64", "512 "]}`, buckets{64, 512}, ""},
		{"smallest and largest allowed", `{"buckets": ["16", "1048576"]}`, buckets{16, 1 << 20}, ""},
		{"empty list", `{"buckets": []}`, nil, "buckets"},
		{"not a number", `{"buckets": ["256", "1k"]}`, nil, "buckets"},
		{"negative", `{"buckets": ["-256"]}`, nil, "buckets"},
		{"too small", `{"buckets": ["15"]}`, nil, "buckets"},
		{"too large", `{"buckets": ["1048577"]}`, nil, "buckets"},
		{"descending", `{"buckets": ["1024", "256"]}`, nil, "buckets"},
		{"repeated", `{"buckets": ["256", "256"]}`, nil, "buckets"},
		{"numbers instead of strings", `{"buckets": [256]}`, nil, "buckets"},
		{"unknown key", `{"bucket": ["256"]}`, nil, "bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New()
			resp, err := sdk.NewLifecycle(l).Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: tt.json}, sdk.Env{Out: &sdktest.Recorder{}})
			if tt.wantKey != "" {
				var ce *sdk.ConfigError
				if !errors.As(err, &ce) || ce.Key != tt.wantKey {
					t.Fatalf("Configure(%s) = %v, want a ConfigError for key %q", tt.json, err, tt.wantKey)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure(%s): %v", tt.json, err)
			}
			if !slices.Equal(l.codec.buckets, tt.want) {
				t.Fatalf("buckets %v, want %v", l.codec.buckets, tt.want)
			}
			if p := resp.GetProtocols(); len(p) != 1 || p[0].GetName() != ProtocolName || p[0].GetVersion() != ProtocolVersion {
				t.Fatalf("Configure asks for protocols %v, want only %s/%d", p, ProtocolName, ProtocolVersion)
			}
		})
	}
}

// TestSchema checks the config as the host sees it: the schema's defaults
// decode, and a comma-separated string (from an environment variable or
// --set) is accepted as a list.
func TestSchema(t *testing.T) {
	fields := New().Describe().GetConfig()
	for _, tt := range []struct {
		name    string
		section map[string]any
		want    buckets
	}{
		{"defaults", map[string]any{}, buckets{256, 1024, 4096, 16384, 65536}},
		{"list", map[string]any{"buckets": []any{"128", "2048"}}, buckets{128, 2048}},
		{"comma-separated", map[string]any{"buckets": "128,2048"}, buckets{128, 2048}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checked, err := sdk.ApplySchema(fields, tt.section)
			if err != nil {
				t.Fatalf("ApplySchema: %v", err)
			}
			js, err := json.Marshal(checked)
			if err != nil {
				t.Fatal(err)
			}
			l := New()
			if _, err := sdk.NewLifecycle(l).Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: string(js)}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
				t.Fatalf("Configure(%s): %v", js, err)
			}
			if !slices.Equal(l.codec.buckets, tt.want) {
				t.Fatalf("buckets %v, want %v", l.codec.buckets, tt.want)
			}
		})
	}
	// The schema has string lists only, so a YAML list of bare numbers is
	// refused before Configure; docs/plugins/padded.md says to quote them.
	var ce *sdk.ConfigError
	if _, err := sdk.ApplySchema(fields, map[string]any{"buckets": []any{256, 1024}}); !errors.As(err, &ce) || ce.Key != "buckets" {
		t.Fatalf("ApplySchema with bare numbers: %v, want a ConfigError for key buckets", err)
	}
}

func TestDescribe(t *testing.T) {
	info := New().Describe()
	if info.GetKind() != commonv1.LayerKind_LAYER_KIND_PRIVACY || info.GetName() != "padded" || info.GetVersion() != "0.1.0" {
		t.Fatalf("Describe = %v, want privacy layer padded 0.1.0", info)
	}
	if !slices.Equal(info.GetRequires(), []string{"unicast"}) {
		t.Fatalf("requires %v, want [unicast]", info.GetRequires())
	}
	def := mustBuckets(t, defaultBuckets()...)
	if def.largest() != defaultLargestBucket {
		t.Fatalf("defaultLargestBucket = %d, but the default list ends with %d", defaultLargestBucket, def.largest())
	}
	mp := int(info.GetMaxPayload())
	if unpaddedLen(0, mp) > defaultLargestBucket || unpaddedLen(0, mp+1) <= defaultLargestBucket {
		t.Fatalf("max_payload %d is not the largest payload that fits %d bytes", mp, defaultLargestBucket)
	}
}

func TestLifecycle(t *testing.T) {
	l := New()
	lc := sdk.NewLifecycle(l) // the SDK's lifecycle, as Serve and InProcess run it
	if _, err := l.OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("OwnAddress before Start: %v, want FailedPrecondition", err)
	}
	if h := lc.Health(context.Background()); h.GetServing() {
		t.Fatal("serving before Start")
	}
	if _, err := lc.Configure(context.Background(), &commonv1.ConfigureRequest{}, sdk.Env{Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Start(context.Background(), &commonv1.StartRequest{}); err == nil {
		t.Fatal("Start without a below address succeeded")
	}
	resp, err := lc.Start(context.Background(), &commonv1.StartRequest{BelowAddress: []byte("overlay-id")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.GetContactSection(), []byte("overlay-id")) || !bytes.Equal(resp.GetLocalAddress(), []byte("overlay-id")) {
		t.Fatalf("Start = %v, want the overlay id as address and contact section", resp)
	}
	own, err := l.OwnAddress(context.Background(), &privacyv1.OwnAddressRequest{})
	if err != nil || !bytes.Equal(own.GetAddress(), []byte("overlay-id")) {
		t.Fatalf("OwnAddress = %v, %v; want overlay-id", own, err)
	}
	if !lc.Health(context.Background()).GetServing() {
		t.Fatal("not serving after Start")
	}
	if err := lc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := lc.Health(context.Background()); h.GetServing() || h.GetDetail() != "stopped" {
		t.Fatalf("Health after Stop = %v, want not serving, detail stopped", h)
	}
}

func TestNoSharedAddresses(t *testing.T) {
	l, _ := started(t, "")
	if _, err := l.Subscribe(context.Background(), &privacyv1.SubscribeRequest{Name: "public"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Subscribe: %v, want Unimplemented", err)
	}
	if _, err := l.Unsubscribe(context.Background(), &privacyv1.UnsubscribeRequest{Address: []byte("x")}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Unsubscribe: %v, want Unimplemented", err)
	}
}

// TestHandleBatchNotRunning: a batch the layer cannot take (here, after
// Stop, with no Configure) is dropped and counted, by the SDK.
func TestHandleBatchNotRunning(t *testing.T) {
	lc := sdk.NewLifecycle(New())
	if err := lc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	lc.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{down([]byte("p"), nil, []byte("x"))}})
	if got := lc.Health(context.Background()).GetCounters()[sdk.NotRunningCounter]; got != 1 {
		t.Fatalf("%s = %d, want 1", sdk.NotRunningCounter, got)
	}
}

// TestLargerBucketsLiftTheLimit: the declared max_payload is that of the
// default buckets, but the real limit is the configured largest bucket, as
// docs/plugins/padded.md says: a payload over the declared limit is sent
// when a bucket holds it, and one too large for every bucket is dropped.
func TestLargerBucketsLiftTheLimit(t *testing.T) {
	l, out := started(t, `{"buckets": ["256", "1048576"]}`)
	declared := int(l.Describe().GetMaxPayload())
	big := maxPayload(maxMessage)
	if big <= declared {
		t.Fatalf("the largest payload of a 1 MiB bucket (%d) is not over the declared limit %d", big, declared)
	}
	l.HandleBatch(context.Background(), &commonv1.Batch{Frames: []*commonv1.Frame{
		down([]byte("p"), nil, make([]byte, declared+1)),
		down([]byte("p"), nil, make([]byte, big)),
		down([]byte("p"), nil, make([]byte, big+1)),
	}})
	got := out.Take()
	if len(got) != 2 || len(got[0].GetPayload()) != maxMessage || len(got[1].GetPayload()) != maxMessage {
		t.Fatalf("sent %d frames, want the two that fit, each %d bytes on the wire", len(got), maxMessage)
	}
	if n := counter(t, l, "dropped_oversize"); n != 1 {
		t.Fatalf("dropped_oversize = %d, want 1", n)
	}
}
