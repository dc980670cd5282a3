package p2pkit

import "time"

// Bucket is a token bucket of bytes: it fills at Rate bytes per second up
// to Burst. It is a pure state machine: time enters only as the now of each
// call, so tests drive it with made-up instants. A Bucket is not safe for
// concurrent use; the Inbox guards its buckets with its lock.
//
// Take lets the bucket go into debt, so that a frame larger than Burst
// passes too: its taker then waits until the debt is repaid. That is the
// shape of back-pressure at a reader: read a frame, take its size, and
// read nothing more from that peer until the bucket is out of debt.
type Bucket struct {
	rate, burst float64
	tokens      float64   // may be negative: debt
	last        time.Time // when tokens was last brought up to date
}

// NewBucket returns a full bucket. rate 0 is no limit: Take never asks to
// wait and TryTake never refuses.
func NewBucket(rate, burst int, now time.Time) Bucket {
	return Bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: now}
}

// refill brings the tokens up to now. A clock that goes back adds nothing.
func (b *Bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// Take takes n bytes at now and returns how long the taker should wait
// before taking more: zero while the bucket held n, else the time until
// the debt is repaid.
func (b *Bucket) Take(now time.Time, n int) time.Duration {
	if b.rate == 0 {
		return 0
	}
	b.refill(now)
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// TryTake takes n bytes at now if the bucket holds them, and reports
// whether it did; a refused take leaves the bucket as it was. It is the
// policer's form, for traffic that may be dropped. n larger than the burst
// is taken from a full bucket, into debt.
func (b *Bucket) TryTake(now time.Time, n int) bool {
	if b.rate == 0 {
		return true
	}
	b.refill(now)
	if b.tokens < min(float64(n), b.burst) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// Full reports whether the bucket is full at now: a bucket that is full
// holds no state worth keeping, and may be forgotten and made anew.
func (b *Bucket) Full(now time.Time) bool {
	if b.rate == 0 {
		return true
	}
	b.refill(now)
	return b.tokens >= b.burst
}
