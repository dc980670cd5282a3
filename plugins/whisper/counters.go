package whisper

import (
	"fmt"
	"strings"

	"github.com/strata-msg/strata/core/sdk"
)

// counterNames are the layer's Health counters besides the levels (peers,
// pool_size, outbox_frames). Names starting with dropped_ are drops (the
// reasons of penalise among them).
var counterNames = []string{
	"envelopes_received", "envelopes_forwarded", "envelopes_posted", "envelopes_opened",
	"not_for_us", "peers_penalised", "ignored_code", "status_refreshed",
	"dropped_malformed", "dropped_low_pow", "dropped_expired", "dropped_future", "dropped_too_large",
	"dropped_duplicate", "dropped_rate_limited", "dropped_undecryptable", "dropped_bloom",
	"dropped_handshake", "dropped_banned_peer", "dropped_wrong_protocol",
	"dropped_bad_address", "dropped_bad_inner", "dropped_pow_timeout", "dropped_wrong_direction",
	"dropped_before_status", "dropped_emit_failed", "dropped_out_rate_limited",
}

// counters are the layer's Health counters, atomic so that counting needs
// no lock and Health never waits for a batch in progress.
type counters struct {
	set    *sdk.Counters
	byName map[string]*sdk.Counter
	// The two counted once per envelope, looked up once here rather than
	// by name every time.
	received, forwarded *sdk.Counter
}

func newCounters() *counters {
	c := &counters{set: sdk.NewCounters(nil), byName: map[string]*sdk.Counter{}}
	for _, name := range counterNames {
		if reason, ok := strings.CutPrefix(name, sdk.DroppedPrefix); ok {
			c.byName[name] = c.set.Drop(reason, nil)
		} else {
			c.byName[name] = c.set.Counter(name, nil)
		}
	}
	c.received, c.forwarded = c.byName["envelopes_received"], c.byName["envelopes_forwarded"]
	return c
}

// add adds n to the counter name, one of counterNames.
func (c *counters) add(name string, n uint64) {
	ctr, ok := c.byName[name]
	if !ok {
		panic(fmt.Sprintf("whisper: counter %q is not in counterNames", name))
	}
	ctr.Add(n)
}
