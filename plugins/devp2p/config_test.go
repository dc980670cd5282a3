package devp2p

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"

	"github.com/strata-msg/strata/core/sdk"
)

// testURL is a valid enode URL of a fresh key.
func testURL(t testing.TB, port int) string {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return enode.NewV4(&k.PublicKey, []byte{127, 0, 0, 1}, port, port).URLv4()
}

func TestConfigDefaults(t *testing.T) {
	c, err := sdk.LoadConfig[Config]("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || c.MaxPeers != 25 || c.Discovery != discOff || c.nat != nil ||
		c.netRestrict != nil || c.MaxFrame != defaultMaxFrame || c.Queue != 1024 || !c.StickyPort ||
		c.PeerOutBytes != 4<<20 || c.PeerInRate != 16<<20 || c.PeerInBurst != 4<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	url := testURL(t, 30303)
	c, err = sdk.LoadConfig[Config](`{"static":["` + url + `","` + url + `"],"discovery":"both","bootstrap":["` + url + `"],"nat":"extip:192.0.2.1","net_restrict":["127.0.0.0/8","10.0.0.0/8"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.static) != 1 || len(c.bootstrap) != 1 || c.nat == nil || c.netRestrict == nil {
		t.Fatalf("parsed: %+v", c)
	}
}

func TestConfigMistakes(t *testing.T) {
	url := testURL(t, 30303)
	noPort := strings.Replace(url, ":30303", "", 1)
	cases := []struct {
		json, key string
	}{
		{`{"listen":"127.0.0.1"}`, "listen"},
		{`{"listen":"localhost:0"}`, "listen"},
		{`{"listen":"127.0.0.1:70000"}`, "listen"},
		{`{"listen":"127.0.0.1:x"}`, "listen"},
		{`{"max_peers":0}`, "max_peers"},
		{`{"max_peers":"many"}`, "max_peers"},
		{`{"static":["/ip4/127.0.0.1/tcp/1"]}`, "static"},
		{`{"static":["enode://abcd@127.0.0.1:1"]}`, "static"},
		{`{"static":["` + noPort + `"]}`, "static"},
		{`{"bootstrap":["` + url + `"]}`, "bootstrap"},
		{`{"discovery":"v4","bootstrap":["nonsense"]}`, "bootstrap"},
		{`{"discovery":"v6"}`, "discovery"},
		{`{"nat":"magic"}`, "nat"},
		{`{"nat":"extip:not-an-ip"}`, "nat"},
		{`{"net_restrict":["10.0.0.0"]}`, "net_restrict"},
		{`{"net_restrict":["10.0.0.0/8,127.0.0.0/8"]}`, "net_restrict"},
		{`{"max_frame":0}`, "max_frame"},
		{`{"max_frame":16777216}`, "max_frame"},
		{`{"queue":0}`, "queue"},
		{`{"peer_out_bytes":1024}`, "peer_out_bytes"},
		{`{"peer_in_rate":-1}`, "peer_in_rate"},
		{`{"peer_in_burst":0}`, "peer_in_burst"},
		{`{"sticky_port":"yes"}`, "sticky_port"},
		{`{"no_such_key":1}`, "no_such_key"},
	}
	for _, c := range cases {
		_, err := sdk.LoadConfig[Config](c.json)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want a ConfigError", c.json, err)
			continue
		}
		if !strings.Contains(ce.Key, c.key) {
			t.Errorf("%s: error names key %q, want %q (%v)", c.json, ce.Key, c.key, err)
		}
	}
}

// TestSchemaMatchesDefaults checks that the schema's defaults are the ones
// parseConfig applies.
func TestSchemaMatchesDefaults(t *testing.T) {
	section, err := sdk.ApplySchema(sdk.ConfigFields[Config](), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sdk.ConfigFields[Config]() {
		if _, ok := section[f.GetName()]; !ok && f.GetDefaultJson() != "" {
			t.Errorf("schema default of %s not applied", f.GetName())
		}
	}
}
