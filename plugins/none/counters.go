package none

import (
	"sync/atomic"

	"github.com/strata-msg/strata/core/sdk"
)

// counters are the layer's Health counters.
type counters struct {
	Sent               sdk.Counter `counter:"frames_sent"`
	Received           sdk.Counter `counter:"frames_received"`
	DroppedBad         sdk.Drop    `drop:"bad_envelope"`
	DroppedOversize    sdk.Drop    `drop:"oversize"`
	DroppedUnaddressed sdk.Drop    `drop:"unaddressed"`
	WrongDirection     sdk.Drop    `drop:"wrong_direction"`

	// peers is the number of overlay peers connected, a level.
	peers atomic.Int64
	set   *sdk.Counters
}

func newCounters() *counters {
	c := &counters{}
	c.set = sdk.NewCounters(c)
	c.set.Level("peers", func() uint64 { return uint64(max(c.peers.Load(), 0)) })
	return c
}
