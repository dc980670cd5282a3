package doubleratchet

import "sync/atomic"

// Names of the Health counters other than dropped_<reason>.
const (
	cSealed          = "sealed"
	cOpened          = "opened"
	cContacts        = "contacts"
	cSessions        = "sessions"
	cConversations   = "conversations"
	cOneTime         = "one_time_prekeys"
	cOneTimeKEM      = "one_time_kem_prekeys"
	cStartedX3DH     = "sessions_started_x3dh"
	cStartedPQXDH    = "sessions_started_pqxdh"
	cAccepted        = "sessions_accepted"
	cRequestsSent    = "bundle_requests_sent"
	cBundlesSent     = "bundles_sent"
	cBundlesReceived = "bundles_received"
)

// counters are the layer's Health counters, fixed at construction so that
// reading them needs no lock: Health never waits for a batch in progress.
type counters struct {
	m map[string]*atomic.Uint64
}

func newCounters() counters {
	c := counters{m: map[string]*atomic.Uint64{}}
	for _, name := range []string{
		cSealed, cOpened, cContacts, cSessions, cConversations, cOneTime, cOneTimeKEM,
		cStartedX3DH, cStartedPQXDH, cAccepted, cRequestsSent, cBundlesSent, cBundlesReceived,
	} {
		c.m[name] = new(atomic.Uint64)
	}
	for _, r := range dropReasons {
		c.m["dropped_"+r] = new(atomic.Uint64)
	}
	return c
}

// add adds to a counter.
func (c counters) add(name string, n uint64) { c.m[name].Add(n) }

// set sets a level.
func (c counters) set(name string, v uint64) { c.m[name].Store(v) }

// drop counts a dropped frame under its reason.
func (c counters) drop(err error) { c.m["dropped_"+dropReason(err)].Add(1) }

func (c counters) snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v.Load()
	}
	return out
}
