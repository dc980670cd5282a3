package compare

import (
	"math"
	"testing"
	"time"
)

func TestLatencyAndTimeline(t *testing.T) {
	var ls []time.Duration
	for i := 1; i <= 100; i++ {
		ls = append(ls, time.Duration(i)*time.Millisecond)
	}
	l := latencyOf(ls)
	if l.P50 != 50*time.Millisecond || l.P95 != 95*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Fatalf("latency %+v", l)
	}
	if len(l.CDF) != 101 || l.CDF[0] != time.Millisecond || l.CDF[100] != 100*time.Millisecond {
		t.Fatalf("CDF ends %v %v", l.CDF[0], l.CDF[100])
	}
	if got := latencyOf(nil); got.CDF != nil || got.P50 != 0 {
		t.Fatalf("empty latency %+v", got)
	}
	pts := timeline([]time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond}, []time.Duration{2500 * time.Millisecond}, time.Second)
	want := []TimelinePoint{{At: time.Second, Sent: 2}, {At: 2 * time.Second, Sent: 1}, {At: 3 * time.Second, Delivered: 1}}
	if len(pts) != len(want) {
		t.Fatalf("timeline %+v", pts)
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Fatalf("timeline %+v, want %+v", pts, want)
		}
	}
	if got := boundaryOrder([]string{"sync|app", "p2p|privacy", "secure|sync", "privacy|secure"}); got[0] != "p2p|privacy" || got[3] != "sync|app" || got[1] != "privacy|secure" {
		t.Fatalf("boundary order %v", got)
	}
}

// TestSendRates: the achieved rate counts accepted sends over the
// measured window, stretched when the last send was late; a run below
// 95% of the offered rate is overloaded.
func TestSendRates(t *testing.T) {
	for _, tt := range []struct {
		planned, sent    int
		window, last     time.Duration
		offered, achieve float64
		overloaded       bool
	}{
		{100, 100, 10 * time.Second, 9900 * time.Millisecond, 10, 10, false},
		{100, 100, 10 * time.Second, 10200 * time.Millisecond, 10, 100 / 10.2, false},
		{100, 100, 10 * time.Second, 20 * time.Second, 10, 5, true},
		{100, 60, 10 * time.Second, 10 * time.Second, 10, 6, true},
		{0, 0, 10 * time.Second, 0, 0, 0, false},
	} {
		o, a, over := sendRates(tt.planned, tt.sent, tt.window, tt.last)
		if math.Abs(o-tt.offered) > 1e-9 || math.Abs(a-tt.achieve) > 1e-9 || over != tt.overloaded {
			t.Errorf("sendRates(%d, %d, %v, %v) = %v, %v, %v; want %v, %v, %v", tt.planned, tt.sent, tt.window, tt.last, o, a, over, tt.offered, tt.achieve, tt.overloaded)
		}
	}
}
