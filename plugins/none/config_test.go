package none

import (
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

// TestConfigDefaults checks the schema's default against the constant
// that Describe's max_payload also uses.
func TestConfigDefaults(t *testing.T) {
	cfg, err := sdk.ConfigDefaults[Config]()
	if err != nil || cfg.MaxPayload != DefaultMaxPayload {
		t.Fatalf("defaults %+v, %v; want max_payload %d", cfg, err, DefaultMaxPayload)
	}
	if _, err := sdk.LoadConfig[Config](`{"max_payload": 0}`); err == nil {
		t.Fatal("max_payload 0 accepted")
	}
}
