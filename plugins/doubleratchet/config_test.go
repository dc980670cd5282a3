package doubleratchet

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

func TestParseConfig(t *testing.T) {
	c, err := sdk.LoadConfig[Config](`{}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.SignedPreKeyRotation != 7*24*time.Hour || c.SignedPreKeyRetention != 30*24*time.Hour || !c.PostQuantum || c.limits.MaxSkip != 1000 || c.Padding != 32 || c.OneTimePreKeys != 100 {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = sdk.LoadConfig[Config](`{"signed_prekey_rotation":"1h","max_skip":5,"skipped_key_ttl":"10m","post_quantum":false}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.SignedPreKeyRotation != time.Hour || c.limits.MaxSkip != 5 || c.limits.SkippedKeyTTL != 10*time.Minute || c.PostQuantum {
		t.Fatalf("values: %+v", c)
	}
	for _, tt := range []struct{ section, key string }{
		{`{"signed_prekey_rotation":"soon"}`, "signed_prekey_rotation"},
		{`{"signed_prekey_rotation":"1ms"}`, "signed_prekey_rotation"},
		{`{"signed_prekey_retention":"-1h"}`, "signed_prekey_retention"},
		{`{"skipped_key_ttl":"0s"}`, "skipped_key_ttl"},
		{`{"one_time_prekeys":-1}`, "one_time_prekeys"},
		{`{"one_time_kem_prekeys":1001}`, "one_time_kem_prekeys"},
		{`{"max_skip":0}`, "max_skip"},
		{`{"max_skipped_keys":100001}`, "max_skipped_keys"},
		{`{"padding":5000}`, "padding"},
		{`{"bogus":1}`, "bogus"},
	} {
		_, err := sdk.LoadConfig[Config](tt.section)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tt.key {
			t.Errorf("%s: %v, want a ConfigError for %q", tt.section, err, tt.key)
		}
	}
}
