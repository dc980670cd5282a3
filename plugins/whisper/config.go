package whisper

import (
	"fmt"
	"math"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/whisper/wire"
)

// Defaults that other code names; the tags of Config are the schema, and
// TestConfigDefaults holds these (and wire's) to them.
const (
	DefaultTTL     = wire.DefaultTTL * time.Second
	DefaultPoWTime = 2 * time.Second
)

// Config is the layer's config section; its tags are the schema.
// max_message_size's lower bound is 2*payloadOverhead, its upper bound
// wire.MaxMessageSize; TestConfigDefaults holds the defaults to wire's.
type Config struct {
	MinPoW           float64       `json:"min_pow" default:"0.2" min:"0" max:"1e6" desc:"minimum PoW of accepted envelopes, advertised to peers"`
	MaxMessageSize   int64         `json:"max_message_size" default:"1048576" min:"2048" max:"10485760" desc:"largest accepted packet/envelope, in bytes"`
	TTL              time.Duration `json:"ttl" default:"50s" min:"1s" max:"24h" desc:"time to live of posted envelopes (whole seconds)"`
	PoWTarget        *float64      `json:"pow_target" min:"0" max:"1e6" desc:"PoW target of the envelopes this node posts; must be at least min_pow (default: min_pow)"`
	PoWTime          time.Duration `json:"pow_time" default:"2s" min:"1ms" max:"1m" desc:"longest time spent mining one posted envelope"`
	RateLimitPackets int64         `json:"rate_limit_packets" default:"200" min:"0" max:"1073741824" desc:"packets per second accepted from one peer (0: unlimited)"`
	RateLimitBytes   int64         `json:"rate_limit_bytes" default:"8388608" min:"0" max:"1099511627776" desc:"bytes per second accepted from one peer (0: unlimited)"`
	PeerOutRate      int64         `json:"peer_out_rate" default:"8388608" min:"0" max:"1099511627776" desc:"envelope bytes per second sent to one peer, past peer_out_burst; the rest is dropped for that peer (0: unlimited)"`
	PeerOutBurst     int64         `json:"peer_out_burst" default:"8388608" min:"2048" max:"1099511627776" desc:"envelope bytes one peer may be sent at once before peer_out_rate applies (at least max_message_size is used)"`
	Light            bool          `json:"light" desc:"light node: advertise a bloom of this node's own topics and refuse envelopes outside it"`
}

// Validate checks what the tags cannot; sdk.LoadConfig calls it.
func (c Config) Validate() error {
	if c.TTL%time.Second != 0 {
		return &sdk.ConfigError{Key: "ttl", Problem: fmt.Sprintf("is %v", c.TTL), Fix: "use whole seconds between 1s and 24h"}
	}
	if c.PoWTarget != nil && *c.PoWTarget < c.MinPoW {
		return &sdk.ConfigError{Key: "pow_target", Problem: fmt.Sprintf("%v is below min_pow %v", *c.PoWTarget, c.MinPoW), Fix: "peers with the same min_pow would refuse this node's envelopes; raise it or leave it unset"}
	}
	return nil
}

// maxSize is max_message_size as the wire code has it.
func (c Config) maxSize() uint32 { return uint32(c.MaxMessageSize) }

// ttl is the TTL of posted envelopes in seconds.
func (c Config) ttl() uint32 { return uint32(c.TTL / time.Second) }

// powTarget is the PoW posted envelopes are mined to.
func (c Config) powTarget() float64 {
	if c.PoWTarget == nil {
		return c.MinPoW
	}
	return *c.PoWTarget
}

// ratePackets and rateBytes are the per-peer rate limits; 0 is unlimited.
func (c Config) ratePackets() float64 { return float64(c.RateLimitPackets) }
func (c Config) rateBytes() float64   { return float64(c.RateLimitBytes) }

// outRate and outBurst are the per-peer outbound byte bucket's; rate 0 is
// unlimited. The burst is at least one largest envelope, which could
// never be sent otherwise.
func (c Config) outRate() float64 { return float64(c.PeerOutRate) }
func (c Config) outBurst() float64 {
	return math.Max(float64(c.PeerOutBurst), float64(c.maxSize()))
}

// bucket is a token bucket; rate 0 means unlimited.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate, burst float64) bucket {
	return bucket{rate: rate, burst: burst, tokens: burst}
}

// full reports whether the bucket holds its burst at now, as a new one.
func (b *bucket) full(now time.Time) bool {
	return b.rate <= 0 || b.tokens+math.Max(now.Sub(b.last).Seconds(), 0)*b.rate >= b.burst
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
