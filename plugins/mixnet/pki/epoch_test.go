package pki_test

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/pki"
)

// manualClock is a clock that moves only when told.
type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time { return c.t }

func TestEpochs(t *testing.T) {
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	period := 20 * time.Minute
	for _, tt := range []struct {
		name               string
		at                 time.Time
		cur, next, prev    uint64
		elapsed, remaining time.Duration
	}{
		{"genesis", genesis, 0, 1, 0, 0, period},
		{"before genesis", genesis.Add(-time.Hour), 0, 1, 0, 0, time.Hour + period},
		{"inside epoch 0", genesis.Add(5 * time.Minute), 0, 1, 0, 5 * time.Minute, 15 * time.Minute},
		{"last ns of epoch 0", genesis.Add(period - 1), 0, 1, 0, period - 1, 1},
		{"boundary", genesis.Add(period), 1, 2, 0, 0, period},
		{"a day later", genesis.Add(24*time.Hour + time.Minute), 72, 73, 71, time.Minute, period - time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := &manualClock{t: tt.at}
			e, err := pki.NewEpochs(period, genesis, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Current(); got != tt.cur {
				t.Errorf("Current = %d, want %d", got, tt.cur)
			}
			if got := e.Next(); got != tt.next {
				t.Errorf("Next = %d, want %d", got, tt.next)
			}
			if got := e.Previous(); got != tt.prev {
				t.Errorf("Previous = %d, want %d", got, tt.prev)
			}
			ep, el, rem := e.Now()
			if ep != tt.cur || el != tt.elapsed || rem != tt.remaining {
				t.Errorf("Now = %d, %v, %v; want %d, %v, %v", ep, el, rem, tt.cur, tt.elapsed, tt.remaining)
			}
			if got := e.UntilNext(); got != tt.remaining {
				t.Errorf("UntilNext = %v, want %v", got, tt.remaining)
			}
			if tt.at.After(genesis) || tt.at.Equal(genesis) {
				if s := e.Start(tt.cur); s.After(tt.at) || !e.Start(tt.cur+1).After(tt.at) {
					t.Errorf("Start(%d) = %v does not contain %v", tt.cur, s, tt.at)
				}
			}
		})
	}
}

func TestEpochsDefaultsAndBounds(t *testing.T) {
	genesis := time.Date(2017, time.June, 1, 0, 0, 0, 0, time.UTC)
	clk := &manualClock{t: genesis.Add(3*pki.DefaultEpochPeriod + time.Second)}
	e, err := pki.NewEpochs(0, time.Time{}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Period() != 20*time.Minute || !e.Genesis().Equal(genesis) || e.Current() != 3 {
		t.Fatalf("defaults: period %v genesis %v epoch %d", e.Period(), e.Genesis(), e.Current())
	}
	clk.t = clk.t.Add(pki.DefaultEpochPeriod)
	if e.Current() != 4 {
		t.Fatalf("after advancing the clock one period: epoch %d, want 4", e.Current())
	}
	if _, err := pki.NewEpochs(time.Microsecond, time.Time{}, nil); !errors.Is(err, pki.ErrConfig) {
		t.Fatalf("1µs period: %v, want ErrConfig", err)
	}
	// A huge epoch saturates instead of wrapping around to the past.
	if s := e.Start(1 << 62); s.Before(e.Start(1 << 20)) {
		t.Fatalf("Start(2^62) = %v is before Start(2^20)", s)
	}
}
