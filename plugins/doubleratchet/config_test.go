package doubleratchet

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig(`{}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.rotation != defaultRotation || c.retention != defaultRetention || !c.postQuantum || c.limits.MaxSkip != defaultMaxSkip || c.padding != defaultPadding {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = parseConfig(`{"signed_prekey_rotation":"1h","max_skip":5,"skipped_key_ttl":"10m","post_quantum":false}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.rotation != time.Hour || c.limits.MaxSkip != 5 || c.limits.SkippedKeyTTL != 10*time.Minute || c.postQuantum {
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
		_, err := parseConfig(tt.section)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tt.key {
			t.Errorf("%s: %v, want a ConfigError for %q", tt.section, err, tt.key)
		}
	}
}
