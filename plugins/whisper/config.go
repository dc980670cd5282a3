package whisper

import (
	"fmt"
	"math"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Defaults of the config keys.
const (
	DefaultTTL              = wire.DefaultTTL * time.Second
	DefaultPoWTime          = 2 * time.Second
	DefaultRateLimitPackets = 200
	DefaultRateLimitBytes   = 8 << 20
)

// Config is the layer's config section as JSON.
type Config struct {
	MinPoW           float64  `json:"min_pow"`
	MaxMessageSize   int64    `json:"max_message_size"`
	TTL              string   `json:"ttl"`
	PoWTarget        *float64 `json:"pow_target"`
	PoWTime          string   `json:"pow_time"`
	RateLimitPackets int64    `json:"rate_limit_packets"`
	RateLimitBytes   int64    `json:"rate_limit_bytes"`
	Light            bool     `json:"light"`
}

// settings is a checked Config.
type settings struct {
	minPoW      float64
	maxSize     uint32
	ttl         uint32 // seconds
	powTarget   float64
	powTime     time.Duration
	ratePackets float64 // per second, 0 = unlimited
	rateBytes   float64
	light       bool
}

func configFields() []*commonv1.ConfigField {
	powTarget := sdk.Float("pow_target", "PoW target of the envelopes this node posts; must be at least min_pow (default: min_pow)", wire.DefaultMinimumPoW, 0, 1e6)
	powTarget.DefaultJson = "" // absent means min_pow
	return []*commonv1.ConfigField{
		sdk.Float("min_pow", "minimum PoW of accepted envelopes, advertised to peers", wire.DefaultMinimumPoW, 0, 1e6),
		sdk.Int("max_message_size", "largest accepted packet/envelope, in bytes", int64(wire.DefaultMaxMessageSize), 2*payloadOverhead, int64(wire.MaxMessageSize)),
		sdk.Duration("ttl", "time to live of posted envelopes (whole seconds)", DefaultTTL),
		powTarget,
		sdk.Duration("pow_time", "longest time spent mining one posted envelope", DefaultPoWTime),
		sdk.Int("rate_limit_packets", "packets per second accepted from one peer (0: unlimited)", DefaultRateLimitPackets, 0, 1<<30),
		sdk.Int("rate_limit_bytes", "bytes per second accepted from one peer (0: unlimited)", DefaultRateLimitBytes, 0, 1<<40),
		sdk.Bool("light", "light node: advertise a bloom of this node's own topics and refuse envelopes outside it", false),
	}
}

func parseConfig(js string) (settings, error) {
	cfg := Config{
		MinPoW:           wire.DefaultMinimumPoW,
		MaxMessageSize:   int64(wire.DefaultMaxMessageSize),
		TTL:              DefaultTTL.String(),
		PoWTime:          DefaultPoWTime.String(),
		RateLimitPackets: DefaultRateLimitPackets,
		RateLimitBytes:   DefaultRateLimitBytes,
	}
	if err := sdk.DecodeConfig(js, &cfg); err != nil {
		return settings{}, err
	}
	var s settings
	if !validPoW(cfg.MinPoW) {
		return s, &sdk.ConfigError{Key: "min_pow", Problem: fmt.Sprintf("is %v", cfg.MinPoW), Fix: "use a finite, non-negative number"}
	}
	s.minPoW = cfg.MinPoW
	if cfg.MaxMessageSize < 2*payloadOverhead || cfg.MaxMessageSize > int64(wire.MaxMessageSize) {
		return s, &sdk.ConfigError{Key: "max_message_size", Problem: fmt.Sprintf("is %d", cfg.MaxMessageSize), Fix: fmt.Sprintf("use %d..%d", 2*payloadOverhead, wire.MaxMessageSize)}
	}
	s.maxSize = uint32(cfg.MaxMessageSize)
	ttl, err := time.ParseDuration(cfg.TTL)
	if err != nil || ttl < time.Second || ttl > 24*time.Hour || ttl%time.Second != 0 {
		return s, &sdk.ConfigError{Key: "ttl", Problem: fmt.Sprintf("is %q", cfg.TTL), Fix: "use whole seconds between 1s and 24h"}
	}
	s.ttl = uint32(ttl / time.Second)
	s.powTarget = s.minPoW
	if cfg.PoWTarget != nil {
		if !validPoW(*cfg.PoWTarget) || math.IsNaN(*cfg.PoWTarget) {
			return s, &sdk.ConfigError{Key: "pow_target", Problem: fmt.Sprintf("is %v", *cfg.PoWTarget), Fix: "use a finite, non-negative number"}
		}
		if *cfg.PoWTarget < s.minPoW {
			return s, &sdk.ConfigError{Key: "pow_target", Problem: fmt.Sprintf("%v is below min_pow %v", *cfg.PoWTarget, s.minPoW), Fix: "peers with the same min_pow would refuse this node's envelopes; raise it or leave it unset"}
		}
		s.powTarget = *cfg.PoWTarget
	}
	pt, err := time.ParseDuration(cfg.PoWTime)
	if err != nil || pt <= 0 || pt > time.Minute {
		return s, &sdk.ConfigError{Key: "pow_time", Problem: fmt.Sprintf("is %q", cfg.PoWTime), Fix: "use a duration between 1ms and 1m"}
	}
	s.powTime = pt
	if cfg.RateLimitPackets < 0 {
		return s, &sdk.ConfigError{Key: "rate_limit_packets", Problem: "is negative", Fix: "use 0 for unlimited"}
	}
	if cfg.RateLimitBytes < 0 {
		return s, &sdk.ConfigError{Key: "rate_limit_bytes", Problem: "is negative", Fix: "use 0 for unlimited"}
	}
	s.ratePackets, s.rateBytes = float64(cfg.RateLimitPackets), float64(cfg.RateLimitBytes)
	s.light = cfg.Light
	return s, nil
}

// bucket is a token bucket; rate 0 means unlimited.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate, burst float64) bucket {
	return bucket{rate: rate, burst: burst, tokens: burst}
}

func (b *bucket) take(now time.Time, n float64) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		if d := now.Sub(b.last).Seconds(); d > 0 {
			b.tokens = math.Min(b.burst, b.tokens+d*b.rate)
		}
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}
