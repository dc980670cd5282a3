package loopix

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// SafetyCap bounds an exponential sample at this many times its mean: the
// (1 − 1e-12) quantile, as Katzenpost's common.SafetyCap, so that one
// unlucky draw cannot stall a stream for hours.
const SafetyCap = 27.631021115928547 // −ln(1e-12)

// rng draws the engines' random choices from an injected io.Reader
// (crypto/rand in production, a seeded stream in tests).
type rng struct {
	r   io.Reader
	buf [8]byte
}

// uint64 returns 8 random bytes as an integer.
func (g *rng) uint64() (uint64, error) {
	if _, err := io.ReadFull(g.r, g.buf[:]); err != nil {
		return 0, fmt.Errorf("loopix: read randomness: %w", err)
	}
	return binary.LittleEndian.Uint64(g.buf[:]), nil
}

// float returns a uniform number in (0, 1].
func (g *rng) float() (float64, error) {
	v, err := g.uint64()
	if err != nil {
		return 0, err
	}
	return (float64(v>>11) + 1) / (1 << 53), nil
}

// intn returns a uniform integer in [0, n), n > 0, without modulo bias.
func (g *rng) intn(n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("loopix: intn(%d)", n)
	}
	bound := uint64(n)
	limit := math.MaxUint64 - math.MaxUint64%bound
	for {
		v, err := g.uint64()
		if err != nil {
			return 0, err
		}
		if v < limit {
			return int(v % bound), nil
		}
	}
}

// exp returns an Exp(rate) sample (mean 1/rate seconds), capped at
// SafetyCap means. rate must be positive.
func (g *rng) exp(ratePerSecond float64) (time.Duration, error) {
	u, err := g.float()
	if err != nil {
		return 0, err
	}
	x := math.Min(-math.Log(u), SafetyCap)
	return time.Duration(x / ratePerSecond * float64(time.Second)), nil
}
