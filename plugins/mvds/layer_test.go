package mvds

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

// TestSchemaCoversConfig: every key of the config struct is in the schema
// and the other way round, and the schema's defaults are the defaults.
func TestSchemaCoversConfig(t *testing.T) {
	var keys []string
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		keys = append(keys, typ.Field(i).Tag.Get("json"))
	}
	var names []string
	for _, f := range sdk.ConfigFields[Config]() {
		names = append(names, f.GetName())
		if f.GetDescription() == "" {
			t.Errorf("key %s has no description", f.GetName())
		}
	}
	slices.Sort(keys)
	slices.Sort(names)
	if !slices.Equal(keys, names) {
		t.Fatalf("config keys %v, schema keys %v", keys, names)
	}
	filled, err := sdk.ApplySchema(sdk.ConfigFields[Config](), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(filled)
	if err != nil {
		t.Fatal(err)
	}
	fromSchema, err := sdk.LoadConfig[Config](string(js))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := sdk.LoadConfig[Config]("")
	if err != nil {
		t.Fatal(err)
	}
	if fromSchema != empty {
		t.Fatalf("the schema's defaults give %+v, an empty section %+v", fromSchema, empty)
	}
	if empty.Epoch != DefaultEpoch || empty.interactive() || !empty.Relay || empty.Durability != DurabilityFull || empty.Wire != WireSpec || empty.bound() {
		t.Fatalf("defaults %+v", empty)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ json, key string }{
		{`{"epoch": "0s"}`, "epoch"},
		{`{"epoch": "soon"}`, "epoch"},
		{`{"mode": "fast"}`, "mode"},
		{`{"wire": "signed"}`, "wire"},
		{`{"backoff_base": 8, "backoff_max": 4}`, "backoff_max"},
		{`{"backoff_base": 3, "ack_delay": 3}`, "ack_delay"},
		{`{"ack_delay": 0}`, "ack_delay"},
		{`{"backoff_base": 0}`, "backoff_base"},
		{`{"max_frame": 1000}`, "max_frame"},
		{`{"max_parents": 257}`, "max_parents"},
		{`{"max_ids": "many"}`, "max_ids"},
		{`{"pending_expiry": "1ms"}`, "pending_expiry"},
		{`{"durability": "maybe"}`, "durability"},
		{`{"no_such_key": 1}`, "no_such_key"},
	} {
		t.Run(tc.json, func(t *testing.T) {
			_, err := sdk.LoadConfig[Config](tc.json)
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("parseConfig: %v, want a ConfigError for %q", err, tc.key)
			}
		})
	}
}

func startLayer(t *testing.T, id []byte) *managed {
	t.Helper()
	l := manage(New())
	ctx := context.Background()
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{ConfigJson: `{"epoch": "1m"}`, DataDir: t.TempDir(), NodeIdentity: id}, sdk.Env{Logger: hclog.NewNullLogger(), Out: &sdktest.Recorder{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return l
}

func TestLayerLifecycle(t *testing.T) {
	l := manage(New())
	ctx := context.Background()
	if h := l.Health(ctx); h.GetServing() || h.GetDetail() != "not configured" {
		t.Fatalf("before Configure: %v", h)
	}
	if _, err := l.Start(ctx, &commonv1.StartRequest{}); err == nil {
		t.Fatal("Start before Configure succeeded")
	}
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{DataDir: t.TempDir(), NodeIdentity: []byte{1}}, sdk.Env{Logger: hclog.NewNullLogger(), Out: &sdktest.Recorder{}}); err == nil {
		t.Fatal("a 1-byte identity was accepted")
	}
	if _, err := l.Configure(ctx, &commonv1.ConfigureRequest{}, sdk.Env{Logger: hclog.NewNullLogger(), Out: &sdktest.Recorder{}}); err == nil {
		t.Fatal("no data dir was accepted")
	}
	l = startLayer(t, identity("a"))
	if h := l.Health(ctx); !h.GetServing() {
		t.Fatalf("after Start: %v", h)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
	if h := l.Health(ctx); h.GetServing() || h.GetDetail() != "stopped" {
		t.Fatalf("after Stop: %v", h)
	}
	if _, err := l.State(ctx, &syncv1.StateRequest{Group: testGroupID}); err == nil {
		t.Fatal("State after Stop succeeded")
	}
}

// TestLayerRefusesDownFrames: the application's messages enter through
// Send only (sync.v1); a DOWN frame from above is dropped and counted, and
// stores nothing.
func TestLayerRefusesDownFrames(t *testing.T) {
	a := identity("a")
	l := startLayer(t, a)
	ctx := context.Background()
	if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: [][]byte{a, identity("b")}}); err != nil {
		t.Fatal(err)
	}
	l.HandleBatch(ctx, &commonv1.Batch{Frames: []*commonv1.Frame{
		{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: testGroupID, Payload: []byte("from above")},
		{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: testGroupID, Payload: []byte("typing"), Hints: &commonv1.Hints{Ephemeral: true}},
		{Direction: commonv1.Direction_DIRECTION_UNSPECIFIED},
	}})
	st, err := l.State(ctx, &syncv1.StateRequest{Group: testGroupID})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetMessages() != 0 {
		t.Fatalf("State %v, want nothing stored from DOWN frames", st)
	}
	c := l.Health(ctx).GetCounters()
	for name, want := range map[string]uint64{"dropped_down_frame": 2, "dropped_wrong_direction": 1} {
		if c[name] != want {
			t.Errorf("%s = %d, want %d", name, c[name], want)
		}
	}
	var names []string
	for name := range c {
		names = append(names, name)
	}
	for _, want := range []string{"sent", "delivered", "retransmissions", "acks", "offers", "requests", "pending", "groups"} {
		if !slices.Contains(names, want) {
			t.Errorf("Health has no counter %s; it has %s", want, strings.Join(names, ", "))
		}
	}
}

// TestReceiveChunks: a batch of many payloads is taken in transactions
// of at most receiveChunk, so that a control call waits for one of them.
func TestReceiveChunks(t *testing.T) {
	a := identity("a")
	l := startLayer(t, a)
	ctx := context.Background()
	if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: [][]byte{a, identity("b")}}); err != nil {
		t.Fatal(err)
	}
	var frames []*commonv1.Frame
	for range 2*receiveChunk + 1 {
		frames = append(frames, &commonv1.Frame{Direction: commonv1.Direction_DIRECTION_UP, Conversation: testGroupID, Peer: identity("b"), Payload: []byte("not a payload")})
	}
	l.HandleBatch(ctx, &commonv1.Batch{Frames: frames})
	c := l.Health(ctx).GetCounters()
	if c["receive_commits"] != 3 || c["dropped_malformed"] != uint64(len(frames)) {
		t.Fatalf("receive_commits %d, dropped_malformed %d: want 3 and %d", c["receive_commits"], c["dropped_malformed"], len(frames))
	}
}

func TestControlErrors(t *testing.T) {
	l := startLayer(t, identity("a"))
	ctx := context.Background()
	if _, err := l.Send(ctx, &syncv1.SendRequest{Group: []byte("nope"), Payload: []byte("x")}); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("Send to an unknown group: %v, want NotFound", err)
	}
	if _, err := l.SetGroup(ctx, &syncv1.GroupRequest{Id: testGroupID, Members: [][]byte{identity("b")}}); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("SetGroup without the node: %v, want InvalidArgument", err)
	}
	if _, err := l.State(ctx, &syncv1.StateRequest{Group: []byte("nope")}); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("State of an unknown group: %v, want NotFound", err)
	}
}

// TestConfigDefaults holds the exported defaults to the schema's tags.
func TestConfigDefaults(t *testing.T) {
	c, err := sdk.ConfigDefaults[Config]()
	if err != nil || c.Epoch != DefaultEpoch || c.Mode != DefaultMode || c.Durability != DefaultDurability || c.Wire != DefaultWire {
		t.Fatalf("defaults %+v, %v", c, err)
	}
}
