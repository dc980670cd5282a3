package doubleratchet

import (
	"fmt"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
)

// Defaults and bounds of the config keys; the schema in Describe and
// parseConfig both use them.
const (
	defaultRotation  = 7 * 24 * time.Hour
	defaultRetention = 30 * 24 * time.Hour
	minRotation      = time.Second

	defaultOneTimePreKeys = 100
	maxOneTimePreKeys     = 10_000

	defaultOneTimeKEMPreKeys = 20
	maxOneTimeKEMPreKeys     = 1_000

	defaultMaxSkip        = 1000
	maxMaxSkip            = 100_000
	defaultMaxSkippedKeys = 1000
	maxMaxSkippedKeys     = 100_000
	defaultSkippedKeyTTL  = 30 * 24 * time.Hour

	defaultPadding = 32
	maxPadding     = 4096
)

// configSchema is the config section as declared in Describe.
func configSchema() []*commonv1.ConfigField {
	return []*commonv1.ConfigField{
		sdk.Duration("signed_prekey_rotation", "How often the signed prekey (and the last-resort ML-KEM prekey) is replaced; the contact card is re-signed each time.", defaultRotation),
		sdk.Duration("signed_prekey_retention", "How long a replaced signed prekey is kept for initial messages still in flight; after that they fail (ErrUnknownPreKey).", defaultRetention),
		sdk.Int("one_time_prekeys", "Size of the pool of one-time X25519 prekeys handed to contacts that ask (BundleRequest); refilled when half is used.", defaultOneTimePreKeys, 0, maxOneTimePreKeys),
		sdk.Int("one_time_kem_prekeys", "Size of the pool of one-time ML-KEM-1024 prekeys, as one_time_prekeys.", defaultOneTimeKEMPreKeys, 0, maxOneTimeKEMPreKeys),
		sdk.Bool("post_quantum", "Publish ML-KEM-1024 prekeys and use PQXDH with contacts that publish them too; off: X3DH only.", true),
		sdk.Int("max_skip", "Most message keys one message may skip in a chain (Double Ratchet MAX_SKIP); a header further ahead is refused.", defaultMaxSkip, 1, maxMaxSkip),
		sdk.Int("max_skipped_keys", "Most skipped message keys stored per session; the oldest are deleted first.", defaultMaxSkippedKeys, 1, maxMaxSkippedKeys),
		sdk.Duration("skipped_key_ttl", "How long a skipped message key is kept for a late message before it is deleted.", defaultSkippedKeyTTL),
		sdk.Int("padding", "Plaintexts are padded to a multiple of this many bytes before encryption, to blur their length; 0 turns padding off.", defaultPadding, 0, maxPadding),
	}
}

// configSection is the JSON form of the section.
type configSection struct {
	SignedPreKeyRotation  string `json:"signed_prekey_rotation"`
	SignedPreKeyRetention string `json:"signed_prekey_retention"`
	OneTimePreKeys        int    `json:"one_time_prekeys"`
	OneTimeKEMPreKeys     int    `json:"one_time_kem_prekeys"`
	PostQuantum           bool   `json:"post_quantum"`
	MaxSkip               int    `json:"max_skip"`
	MaxSkippedKeys        int    `json:"max_skipped_keys"`
	SkippedKeyTTL         string `json:"skipped_key_ttl"`
	Padding               int    `json:"padding"`
}

// config is a validated section.
type config struct {
	rotation, retention time.Duration
	oneTime, oneTimeKEM int
	postQuantum         bool
	limits              ratchet.Limits
	padding             int
}

// parseConfig decodes and checks a section; absent keys take their
// defaults. Every problem is a *sdk.ConfigError naming the key.
func parseConfig(configJSON string) (*config, error) {
	s := configSection{
		SignedPreKeyRotation:  defaultRotation.String(),
		SignedPreKeyRetention: defaultRetention.String(),
		OneTimePreKeys:        defaultOneTimePreKeys,
		OneTimeKEMPreKeys:     defaultOneTimeKEMPreKeys,
		PostQuantum:           true,
		MaxSkip:               defaultMaxSkip,
		MaxSkippedKeys:        defaultMaxSkippedKeys,
		SkippedKeyTTL:         defaultSkippedKeyTTL.String(),
		Padding:               defaultPadding,
	}
	if err := sdk.DecodeConfig(configJSON, &s); err != nil {
		return nil, err
	}
	c := &config{
		oneTime:     s.OneTimePreKeys,
		oneTimeKEM:  s.OneTimeKEMPreKeys,
		postQuantum: s.PostQuantum,
		padding:     s.Padding,
		limits:      ratchet.DefaultLimits(),
	}
	var err error
	if c.rotation, err = duration("signed_prekey_rotation", s.SignedPreKeyRotation, minRotation); err != nil {
		return nil, err
	}
	if c.retention, err = duration("signed_prekey_retention", s.SignedPreKeyRetention, 0); err != nil {
		return nil, err
	}
	ttl, err := duration("skipped_key_ttl", s.SkippedKeyTTL, time.Second)
	if err != nil {
		return nil, err
	}
	for _, r := range []struct {
		key    string
		v      int
		lo, hi int
	}{
		{"one_time_prekeys", s.OneTimePreKeys, 0, maxOneTimePreKeys},
		{"one_time_kem_prekeys", s.OneTimeKEMPreKeys, 0, maxOneTimeKEMPreKeys},
		{"max_skip", s.MaxSkip, 1, maxMaxSkip},
		{"max_skipped_keys", s.MaxSkippedKeys, 1, maxMaxSkippedKeys},
		{"padding", s.Padding, 0, maxPadding},
	} {
		if r.v < r.lo || r.v > r.hi {
			return nil, &sdk.ConfigError{Key: r.key, Problem: fmt.Sprintf("is %d", r.v), Fix: fmt.Sprintf("use %d to %d", r.lo, r.hi)}
		}
	}
	c.limits.MaxSkip = s.MaxSkip
	c.limits.MaxSkippedKeys = s.MaxSkippedKeys
	c.limits.SkippedKeyTTL = ttl
	return c, nil
}

// duration parses a duration key and checks its lower bound.
func duration(key, v string, lo time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("%q is not a duration", v), Fix: `write it like "168h" or "30m"`}
	}
	if d < lo {
		return 0, &sdk.ConfigError{Key: key, Problem: fmt.Sprintf("is %v", d), Fix: fmt.Sprintf("use at least %v", lo)}
	}
	return d, nil
}
