package pki

import (
	"fmt"
	"math"
	"time"
)

// DefaultEpochPeriod is the epoch length unless configured otherwise:
// Katzenpost's 20 minutes. Sphinx keys, replay caches and PKI documents
// all change at epoch boundaries.
const DefaultEpochPeriod = 20 * time.Minute

// DefaultGenesisUnix is the start of epoch 0 unless configured otherwise,
// in Unix seconds: 2017-06-01 00:00 UTC, Katzenpost's epoch origin.
const DefaultGenesisUnix = 1496275200

// Epochs numbers time in fixed periods from a genesis instant: epoch n
// covers [Genesis + n·Period, Genesis + (n+1)·Period). Instants before
// the genesis belong to epoch 0. The clock is injected (Now), so tests
// run on a manual one; an Epochs value is safe for concurrent use if Now
// is.
type Epochs struct {
	period  time.Duration
	genesis time.Time
	now     func() time.Time
}

// NewEpochs returns epoch arithmetic for period (DefaultEpochPeriod if
// zero) from genesis (DefaultGenesisUnix if zero) on the clock now (time.Now
// if nil). A period under one millisecond is refused.
func NewEpochs(period time.Duration, genesis time.Time, now func() time.Time) (*Epochs, error) {
	if period == 0 {
		period = DefaultEpochPeriod
	}
	if period < time.Millisecond {
		return nil, fmt.Errorf("%w: epoch period %v is under 1ms", ErrConfig, period)
	}
	if genesis.IsZero() {
		genesis = time.Unix(DefaultGenesisUnix, 0).UTC()
	}
	if now == nil {
		now = time.Now
	}
	return &Epochs{period: period, genesis: genesis, now: now}, nil
}

// Period returns the epoch length.
func (e *Epochs) Period() time.Duration { return e.period }

// Genesis returns the start of epoch 0.
func (e *Epochs) Genesis() time.Time { return e.genesis }

// At returns the epoch that t falls in (0 for instants before genesis).
func (e *Epochs) At(t time.Time) uint64 {
	d := t.Sub(e.genesis)
	if d < 0 {
		return 0
	}
	return uint64(d / e.period)
}

// Start returns the instant epoch begins. Epochs more than about 292
// years after genesis (beyond what a time.Duration spans) saturate at the
// last representable one; At never returns them.
func (e *Epochs) Start(epoch uint64) time.Time {
	if limit := uint64(math.MaxInt64 / int64(e.period)); epoch > limit {
		epoch = limit
	}
	return e.genesis.Add(time.Duration(epoch) * e.period)
}

// Current returns the epoch the clock is in now.
func (e *Epochs) Current() uint64 { return e.At(e.now()) }

// Next returns the epoch after the current one.
func (e *Epochs) Next() uint64 { return e.Current() + 1 }

// Previous returns the epoch before the current one, or 0 in epoch 0.
func (e *Epochs) Previous() uint64 {
	c := e.Current()
	if c == 0 {
		return 0
	}
	return c - 1
}

// Now returns the current epoch, how long ago it began and how long
// remains until the next one, all read from one clock sample.
func (e *Epochs) Now() (epoch uint64, elapsed, remaining time.Duration) {
	t := e.now()
	epoch = e.At(t)
	start := e.Start(epoch)
	elapsed = t.Sub(start)
	if elapsed < 0 { // before genesis
		elapsed = 0
	}
	remaining = e.Start(epoch + 1).Sub(t)
	return epoch, elapsed, remaining
}

// UntilNext returns the time left until the next epoch begins.
func (e *Epochs) UntilNext() time.Duration {
	_, _, r := e.Now()
	return r
}
