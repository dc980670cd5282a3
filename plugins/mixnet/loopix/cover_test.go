package loopix_test

import (
	"math"
	"testing"
	"time"

	"github.com/strata-msg/strata/plugins/mixnet/loopix"
)

// coverWindows runs one client (no network behind its provider: only its
// link is observed) for windows one-second windows and returns the number
// of packet frames it sent in each. If sending, its send queue is kept
// non-empty, so that every λP slot carries a real fragment.
func coverWindows(t *testing.T, seed uint64, rates loopix.Rates, windows int, sending bool) (counts []float64, real uint64) {
	t.Helper()
	s := newSim(t, simOptions{seed: seed, rates: rates})
	for _, n := range s.nodes {
		n.offline = true // the relays: frames to them vanish
	}
	_, c := s.addClient("observed", "provider-0")
	_, peer := s.addClient("peer", "provider-1")
	s.nodes["peer"].offline = true
	start := s.now
	for w := range windows {
		if sending {
			for c.Queued() < 4 {
				if err := c.Send(peer.Address(), &loopix.Message{Payload: message("busy", 400)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.runUntil(start.Add(time.Duration(w+1)*time.Second), func() bool { return false })
	}
	counts = make([]float64, windows)
	for _, l := range s.links {
		if l.from != "observed" || l.kind != loopix.FramePacket {
			continue
		}
		if w := int(l.at.Sub(start) / time.Second); w >= 0 && w < windows {
			counts[w]++
		}
	}
	return counts, c.Counters().RealSent.Load()
}

// welch returns the two-sided p-value of Welch's t-test for equal means,
// with the normal approximation of the t distribution (the samples have
// hundreds of windows each).
func welch(a, b []float64) (t, p float64) {
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	variance := func(x []float64, m float64) float64 {
		s := 0.0
		for _, v := range x {
			s += (v - m) * (v - m)
		}
		return s / float64(len(x)-1)
	}
	ma, mb := mean(a), mean(b)
	se := math.Sqrt(variance(a, ma)/float64(len(a)) + variance(b, mb)/float64(len(b)))
	t = (ma - mb) / se
	return t, math.Erfc(math.Abs(t) / math.Sqrt2)
}

// TestCoverTrafficHidesSending: an observer of one client's link counts
// its packets per one-second window while the client is idle and while it
// sends as fast as λP lets it. With cover traffic on, the two samples have
// the same rate: Welch's test does not reject equal means at α = 0.01
// (fixed seeds, so the outcome is reproducible). The same test does
// reject when the busy client's λP is twice the idle one's, so it
// can see a difference of that size with these windows.
func TestCoverTrafficHidesSending(t *testing.T) {
	const alpha = 0.01
	windows := 400
	if testing.Short() {
		windows = 100
	}
	rates := defaultRates() // λP 1, λL 0.5, λD 0.5 per second
	idle, realIdle := coverWindows(t, 10, rates, windows, false)
	busy, realBusy := coverWindows(t, 11, rates, windows, true)
	if realIdle != 0 || realBusy < uint64(windows)/2 {
		t.Fatalf("real packets: %d idle, %d busy; want 0 and about %d", realIdle, realBusy, windows)
	}
	tt, p := welch(idle, busy)
	t.Logf("idle vs busy over %d windows: t = %.3f, p = %.3f", windows, tt, p)
	if p < alpha {
		t.Errorf("an observer tells sending from idle: p = %.4f < %v", p, alpha)
	}

	faster := rates
	faster.LambdaP *= 2
	louder, _ := coverWindows(t, 11, faster, windows, true)
	tt, p = welch(idle, louder)
	t.Logf("control, λP ×2: t = %.3f, p = %.2g", tt, p)
	if p >= alpha {
		t.Errorf("the test does not see a doubled λP: p = %.4f", p)
	}
}

// TestPullAnswersLookAlike: whether the mailbox is empty or holds more
// than a pull returns, every pull is answered with the same number of
// frames of the same size (4 in the simulation), so an observer of the
// client's link learns nothing from the answers.
func TestPullAnswersLookAlike(t *testing.T) {
	s := newSim(t, simOptions{seed: 17, rates: loopix.Rates{LambdaP: 4, Mu: 10}})
	_, ca := s.addClient("alice", "provider-0")
	_, cb := s.addClient("bob", "provider-1")
	s.run(3 * time.Second)
	s.nodes["bob"].offline = true
	for i := range 6 { // more than one pull's worth
		if err := ca.Send(cb.Address(), &loopix.Message{Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.run(30 * time.Second)
	s.nodes["bob"].offline = false
	s.run(20 * time.Second)
	answers := map[time.Time][]int{} // pull answers by the instant they were sent
	for _, l := range s.links {
		if l.from == "provider-1" && l.to == "bob" {
			answers[l.at] = append(answers[l.at], l.size)
		}
	}
	if cb.Counters().EntriesIn.Load() < 6 || len(answers) < 5 {
		t.Fatalf("bob took %d entries in %d pulls", cb.Counters().EntriesIn.Load(), len(answers))
	}
	var size int
	for at, sizes := range answers {
		if len(sizes) != 4 {
			t.Fatalf("the pull answered at %v has %d frames", at, len(sizes))
		}
		for _, n := range sizes {
			if size == 0 {
				size = n
			}
			if n != size {
				t.Fatalf("pull answer frames of %d and %d bytes", size, n)
			}
		}
	}
}
