package sdk_test

import (
	"strings"
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

type kitCounters struct {
	Sent     sdk.Counter `counter:"frames_sent"`
	oversize sdk.Drop    `drop:"oversize"` // unexported fields work too
	untagged sdk.Counter
}

func TestCounters(t *testing.T) {
	var c kitCounters
	set := sdk.NewCounters(&c)
	byReason := set.Drop("bad_frame", nil)
	peers := uint64(3)
	set.Level("peers", func() uint64 { return peers })
	c.Sent.Add(2)
	c.oversize.Inc()
	byReason.Inc()
	c.untagged.Inc()
	got := set.Snapshot()
	want := map[string]uint64{"frames_sent": 2, "dropped_oversize": 1, "dropped_bad_frame": 1, "peers": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if n := strings.Join(set.Names(), ","); n != "frames_sent,dropped_oversize,dropped_bad_frame,peers" {
		t.Fatalf("names %s", n)
	}
}

func TestCounterNamingRule(t *testing.T) {
	type dropAsCounter struct {
		X sdk.Counter `counter:"dropped_x"`
	}
	type badName struct {
		X sdk.Counter `counter:"Frames"`
	}
	type wrongType struct {
		X sdk.Counter `drop:"x"`
	}
	type twice struct {
		X sdk.Counter `counter:"x"`
		Y sdk.Counter `counter:"x"`
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"a counter named as a drop", func() { sdk.NewCounters(&dropAsCounter{}) }},
		{"not snake case", func() { sdk.NewCounters(&badName{}) }},
		{"a drop tag on a Counter", func() { sdk.NewCounters(&wrongType{}) }},
		{"a name twice", func() { sdk.NewCounters(&twice{}) }},
		{"a reason with the prefix", func() { sdk.NewCounters(nil).Drop("dropped_x", nil) }},
		{"a level named as a drop", func() { sdk.NewCounters(nil).Level("dropped_x", nil) }},
		{"an empty reason", func() { sdk.NewCounters(nil).Drop("", nil) }},
		{"not a pointer", func() { sdk.NewCounters(kitCounters{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("accepted")
				}
			}()
			tt.f()
		})
	}
	for _, ok := range []string{"frames_sent", "peers", "p2p_bytes"} {
		if err := sdk.CheckCounterName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "_x", "x_", "9x", "x-y", "dropped"} {
		if sdk.CheckCounterName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
