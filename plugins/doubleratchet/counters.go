package doubleratchet

import "github.com/strata-msg/strata/core/sdk"

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

// counters are the layer's Health counters (sdk.Counters), fixed at
// construction so that counting needs no lock: Health never waits for a
// batch in progress.
type counters struct {
	all *sdk.Counters
	m   map[string]*sdk.Counter
}

func newCounters() counters {
	c := counters{all: sdk.NewCounters(nil), m: map[string]*sdk.Counter{}}
	for _, name := range []string{
		cSealed, cOpened, cContacts, cSessions, cConversations, cOneTime, cOneTimeKEM,
		cStartedX3DH, cStartedPQXDH, cAccepted, cRequestsSent, cBundlesSent, cBundlesReceived,
		cGroupSealed, cGroupOpened, cGroupPending, cGroupOwn, cDistributionsSent, cDistributionsRecv, cChainsStarted,
		cKeyRequestsSent, cKeyRequestsRecv,
	} {
		c.m[name] = c.all.Counter(name, nil)
	}
	for _, r := range dropReasons {
		c.m[sdk.DroppedPrefix+r] = c.all.Drop(r, nil)
	}
	return c
}

// add adds to a counter.
func (c counters) add(name string, n uint64) { c.m[name].Add(n) }

// set sets a level.
func (c counters) set(name string, v uint64) { c.m[name].Store(v) }

// drop counts a dropped frame under its reason.
func (c counters) drop(err error) { c.m[sdk.DroppedPrefix+dropReason(err)].Inc() }

func (c counters) snapshot() map[string]uint64 { return c.all.Snapshot() }
