package compare

import (
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
