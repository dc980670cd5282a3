package whisper

import (
	"testing"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// TestConfigDefaults holds the schema's tags to wire's constants.
func TestConfigDefaults(t *testing.T) {
	c, err := sdk.ConfigDefaults[Config]()
	if err != nil {
		t.Fatal(err)
	}
	if c.MinPoW != wire.DefaultMinimumPoW || c.maxSize() != wire.DefaultMaxMessageSize || c.TTL != DefaultTTL ||
		c.PoWTime != DefaultPoWTime || c.powTarget() != c.MinPoW || c.Light {
		t.Fatalf("defaults %+v", c)
	}
	for _, f := range sdk.ConfigFields[Config]() {
		if f.GetName() == "max_message_size" && (f.GetMin() != 2*payloadOverhead || f.GetMax() != float64(wire.MaxMessageSize)) {
			t.Fatalf("max_message_size bounds %v..%v", f.GetMin(), f.GetMax())
		}
	}
}
