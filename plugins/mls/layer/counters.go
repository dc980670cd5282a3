package layer

import "github.com/strata-msg/strata/core/sdk"

// counters are the layer's Health counters (sdk.Counters): totals counted
// without a lock, so that Health never waits for a batch in progress.
type counters struct {
	Sealed             sdk.Counter `counter:"sealed"`
	Opened             sdk.Counter `counter:"opened"`
	CommitsMade        sdk.Counter `counter:"commits_made"`
	CommitsApplied     sdk.Counter `counter:"commits_applied"`
	WelcomesSent       sdk.Counter `counter:"welcomes_sent"`
	WelcomesJoined     sdk.Counter `counter:"welcomes_joined"`
	WelcomesForOthers  sdk.Counter `counter:"welcomes_for_others"`
	Retransmitted      sdk.Counter `counter:"retransmitted"`
	RetransmitGaveUp   sdk.Counter `counter:"retransmit_gave_up"`
	StatusSent         sdk.Counter `counter:"status_sent"`
	StatusReceived     sdk.Counter `counter:"status_received"`
	Duplicates         sdk.Counter `counter:"duplicates"`
	ForksDetected      sdk.Counter `counter:"forks_detected"`
	ForksResolved      sdk.Counter `counter:"forks_resolved"`
	ForksUnresolved    sdk.Counter `counter:"forks_unresolved"`
	BranchOpened       sdk.Counter `counter:"opened_in_losing_branch"`
	Rollbacks          sdk.Counter `counter:"rollbacks"`
	Takeovers          sdk.Counter `counter:"takeovers"`
	KeyPackagesUsed    sdk.Counter `counter:"keypackages_used"`
	HeldDown           sdk.Counter `counter:"held_down"`
	HeldDuplicates     sdk.Counter `counter:"held_duplicates"`
	HeldUp             sdk.Counter `counter:"held_up"`
	ReleasedDown       sdk.Counter `counter:"released_down"`
	ReleasedUp         sdk.Counter `counter:"released_up"`
	NoKeyPackage       sdk.Counter `counter:"add_waiting_for_keypackage"`
	KeyPackagesOffered sdk.Counter `counter:"keypackages_offered"`
	OffersTaken        sdk.Counter `counter:"keypackage_offers_taken"`
	Recovered          sdk.Counter `counter:"opened_after_fork"`
	LeafUpdates        sdk.Counter `counter:"leaf_updates"`
	DBCommits          sdk.Counter `counter:"db_commits"`
	LazyNeeded         sdk.Counter `counter:"lazy_groups_needed"`
	AsksSent           sdk.Counter `counter:"group_asks_sent"`
	AsksReceived       sdk.Counter `counter:"group_asks_received"`
	LearnedFromAsk     sdk.Counter `counter:"learned_from_ask"`

	all   *sdk.Counters
	drops map[string]*sdk.Counter
}

func newCounters() *counters {
	c := &counters{drops: map[string]*sdk.Counter{}}
	c.all = sdk.NewCounters(c)
	for _, r := range dropReasons {
		c.drops[r] = c.all.Drop(r, nil)
	}
	return c
}

// drop counts a dropped frame under its reason.
func (c *counters) drop(err error) { c.drops[dropReason(err)].Inc() }
