package layer

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

// TestConfig checks the defaults and that each bad value is a ConfigError
// naming its key and a fix.
func TestConfig(t *testing.T) {
	if err := sdk.CheckConfig[Config](); err != nil {
		t.Fatal(err)
	}
	def, err := sdk.LoadConfig[Config]("")
	if err != nil {
		t.Fatal(err)
	}
	if def.CipherSuite != 1 || def.KeyPackages != 5 || def.SettleWindow.String() != "10s" || def.PastEpochs != 2 || def.UpdateInterval.String() != "24h0m0s" {
		t.Fatalf("defaults %+v", def)
	}
	for _, tc := range []struct {
		section, key string
	}{
		{`{"cipher_suite": 9}`, "cipher_suite"},
		{`{"cipher_suite": 0}`, "cipher_suite"},
		{`{"key_packages": 0}`, "key_packages"},
		{`{"settle_window": "1m", "branch_retention": "10s"}`, "branch_retention"},
		{`{"retransmit_initial": "10s", "retransmit_max": "1s"}`, "retransmit_max"},
		{`{"padding": -1}`, "padding"},
		{`{"update_interval": "-1s"}`, "update_interval"},
		{`{"setle_window": "1s"}`, "setle_window"},
	} {
		_, err := sdk.LoadConfig[Config](tc.section)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a ConfigError", tc.section, err)
			continue
		}
		if !strings.Contains(ce.Key, tc.key) || ce.Fix == "" && ce.Problem == "" {
			t.Errorf("%s: ConfigError %+v, want key %s with a fix", tc.section, ce, tc.key)
		}
	}
	for _, id := range []int{1, 3} {
		if _, err := sdk.LoadConfig[Config](`{"cipher_suite": ` + string(rune('0'+id)) + `}`); err != nil {
			t.Errorf("suite %d: %v", id, err)
		}
	}
}
