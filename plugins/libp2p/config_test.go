package libp2pplugin

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/core/sdk/sdktest"
)

func TestDescribe(t *testing.T) {
	info := New().Describe()
	if info.GetKind() != commonv1.LayerKind_LAYER_KIND_P2P || info.GetName() != "libp2p" || info.GetVersion() != "0.1.0" {
		t.Errorf("Describe = %v %q %q", info.GetKind(), info.GetName(), info.GetVersion())
	}
	if info.GetMaxPayload() != 1<<20 {
		t.Errorf("MaxPayload = %d, want %d", info.GetMaxPayload(), 1<<20)
	}
	for _, c := range []string{"unicast", "broadcast", "named-protocols", "peer-events"} {
		if !slices.Contains(info.GetProvides(), c) {
			t.Errorf("Provides %v lacks %q", info.GetProvides(), c)
		}
	}
	var keys []string
	for _, f := range info.GetConfig() {
		keys = append(keys, f.GetName())
	}
	want := []string{"listen", "bootstrap", "security", "mdns", "dht", "conn_low", "conn_high", "max_frame", "queue", "peer_out_bytes", "peer_in_rate", "peer_in_burst", "resource_limits", "gossipsub", "sticky_ports"}
	if !slices.Equal(keys, want) {
		t.Errorf("config keys = %v, want %v", keys, want)
	}
}

// TestSchemaDefaultsMatch checks that the defaults the host fills in from
// the schema give the same config as an empty section.
func TestSchemaDefaultsMatch(t *testing.T) {
	filled, err := sdk.ApplySchema(sdk.ConfigFields[Config](), map[string]any{})
	if err != nil {
		t.Fatalf("ApplySchema: %v", err)
	}
	b, err := json.Marshal(filled)
	if err != nil {
		t.Fatal(err)
	}
	fromSchema, err := sdk.LoadConfig[Config](string(b))
	if err != nil {
		t.Fatalf("sdk.LoadConfig[Config](schema defaults): %v", err)
	}
	fromEmpty, err := sdk.LoadConfig[Config]("")
	if err != nil {
		t.Fatalf("sdk.LoadConfig[Config](empty): %v", err)
	}
	if !reflect.DeepEqual(fromSchema, fromEmpty) {
		t.Errorf("schema defaults give %+v, empty section gives %+v", fromSchema, fromEmpty)
	}
	if len(fromEmpty.listen) != 2 || fromEmpty.DHT != dhtOff || fromEmpty.MaxFrame != 1<<20 || fromEmpty.Queue != 1024 ||
		fromEmpty.ConnLow != 32 || fromEmpty.ConnHigh != 64 || !fromEmpty.GossipSub || fromEmpty.MDNS ||
		!slices.Equal(fromEmpty.security, []string{"noise", "tls"}) || fromEmpty.ResourceLimits != limitsDefault ||
		fromEmpty.PeerOutBytes != 4<<20 || fromEmpty.PeerInRate != 16<<20 || fromEmpty.PeerInBurst != 4<<20 {
		t.Errorf("defaults = %+v", fromEmpty)
	}
}

func TestParseConfig(t *testing.T) {
	const (
		idA = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
		idB = "12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"
	)
	c, err := sdk.LoadConfig[Config](`{
		"listen": ["/ip6/::1/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"],
		"bootstrap": ["/ip4/192.0.2.1/tcp/4001/p2p/` + idA + `", "/dns4/b.example/tcp/1/p2p/` + idB + `", "/ip4/192.0.2.1/udp/4001/quic-v1/p2p/` + idA + `"],
		"security": ["TLS", "noise"],
		"dht": "server",
		"conn_low": 0, "conn_high": 1,
		"max_frame": 16777216, "queue": 1,
		"resource_limits": "infinite",
		"gossipsub": false, "mdns": true
	}`)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if len(c.listen) != 2 || c.listen[0].String() != "/ip6/::1/tcp/4001" {
		t.Errorf("listen = %v", c.listen)
	}
	if len(c.bootstrap) != 2 || c.bootstrap[0].ID.String() != idA || len(c.bootstrap[0].Addrs) != 2 || c.bootstrap[1].ID.String() != idB {
		t.Errorf("bootstrap = %v, want %s with 2 addresses then %s", c.bootstrap, idA, idB)
	}
	if !slices.Equal(c.security, []string{"tls", "noise"}) {
		t.Errorf("security = %v, want [tls noise]", c.security)
	}
	if c.DHT != dhtServer || c.ConnLow != 0 || c.ConnHigh != 1 || c.MaxFrame != 16<<20 || c.Queue != 1 ||
		c.ResourceLimits != limitsInfinite || c.GossipSub || !c.MDNS {
		t.Errorf("config = %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		wantKey string
	}{
		{"unknown key", `{"listne": []}`, "listne"},
		{"listen not a multiaddr", `{"listen": ["not-a-multiaddr"]}`, "listen"},
		{"listen without transport", `{"listen": ["/ip4/127.0.0.1/udp/0"]}`, "listen"},
		{"listen on a name", `{"listen": ["/dns4/localhost/tcp/0"]}`, "listen"},
		{"listen with peer id", `{"listen": ["/ip4/127.0.0.1/tcp/0/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"]}`, "listen"},
		{"listen of wrong type", `{"listen": "/ip4/127.0.0.1/tcp/0"}`, "listen"},
		{"bootstrap without peer id", `{"bootstrap": ["/ip4/127.0.0.1/tcp/4001"]}`, "bootstrap"},
		{"bootstrap without address", `{"bootstrap": ["/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"]}`, "bootstrap"},
		{"bootstrap bad peer id", `{"bootstrap": ["/ip4/127.0.0.1/tcp/1/p2p/nope"]}`, "bootstrap"},
		{"security unknown", `{"security": ["ssl"]}`, "security"},
		{"security empty", `{"security": []}`, "security"},
		{"security repeated", `{"security": ["noise", "noise"]}`, "security"},
		{"dht bogus", `{"dht": "bogus"}`, "dht"},
		{"resource_limits bogus", `{"resource_limits": "none"}`, "resource_limits"},
		{"max_frame zero", `{"max_frame": 0}`, "max_frame"},
		{"max_frame too large", `{"max_frame": 16777217}`, "max_frame"},
		{"max_frame not a number", `{"max_frame": "big"}`, "max_frame"},
		{"queue zero", `{"queue": 0}`, "queue"},
		{"conn_high zero", `{"conn_high": 0}`, "conn_high"},
		{"conn_low above conn_high", `{"conn_low": 10, "conn_high": 5}`, "conn_low"},
		{"gossipsub not a bool", `{"gossipsub": "maybe"}`, "gossipsub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sdk.LoadConfig[Config](tt.config)
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("sdk.LoadConfig[Config](%s) = %v, want a *sdk.ConfigError", tt.config, err)
			}
			if ce.Key != tt.wantKey {
				t.Errorf("key = %q, want %q (error: %v)", ce.Key, tt.wantKey, ce)
			}

			// Configure reports the same error, before touching the data directory.
			dir := t.TempDir()
			_, err = New().Configure(context.Background(), &commonv1.ConfigureRequest{ConfigJson: tt.config, DataDir: dir}, sdk.Env{Out: &sdktest.Recorder{}})
			if !errors.As(err, &ce) || ce.Key != tt.wantKey {
				t.Errorf("Configure = %v, want a *sdk.ConfigError for %q", err, tt.wantKey)
			}
		})
	}
}
