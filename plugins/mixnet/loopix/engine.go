package loopix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/replay"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Rates are the Loopix traffic parameters, per second: the mean time
// between two events of a stream is 1/rate seconds. A zero rate turns
// its stream off (λP and μ must be positive).
type Rates struct {
	// LambdaP is the client's payload stream: a queued fragment, else drop
	// cover.
	LambdaP float64
	// LambdaL is the client's loop cover stream.
	LambdaL float64
	// LambdaD is the client's drop cover stream.
	LambdaD float64
	// LambdaM is a relay's own loop stream.
	LambdaM float64
	// Mu is the rate of the per-hop delays senders draw (mean 1/μ s).
	Mu float64
}

// RatesOf returns the rates a PKI document publishes.
func RatesOf(p *pki.Params) Rates {
	return Rates{LambdaP: p.LambdaPPerSecond, LambdaL: p.LambdaLPerSecond, LambdaD: p.LambdaDPerSecond, LambdaM: p.LambdaMPerSecond, Mu: p.MuPerSecond}
}

// Check reports whether the rates are usable.
func (r Rates) Check() error {
	for _, v := range []float64{r.LambdaP, r.LambdaL, r.LambdaD, r.LambdaM, r.Mu} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("loopix: rate %v is not a finite non-negative number", v)
		}
	}
	if r.LambdaP == 0 || r.Mu == 0 {
		return errors.New("loopix: λP and μ must be positive")
	}
	return nil
}

// Common is the configuration every role shares.
type Common struct {
	// Geometry is the network's Sphinx geometry; its NrHops must be at
	// least the document's layers + 2.
	Geometry *sphinx.Geometry
	// Epochs is the network's epoch clock (its own clock is not read: the
	// engines use the instants they are given).
	Epochs *pki.Epochs
	// Rand supplies every random choice and key (crypto/rand in
	// production, a seeded stream in tests).
	Rand io.Reader
	// Rates are the traffic parameters.
	Rates Rates
}

func (c *Common) check(dir *Directory) error {
	if c.Geometry == nil || c.Epochs == nil || c.Rand == nil || dir == nil {
		return errors.New("loopix: geometry, epochs, randomness and directory are required")
	}
	if err := c.Geometry.Validate(); err != nil {
		return fmt.Errorf("loopix: %w", err)
	}
	if c.Geometry.NrHops < len(dir.Layers)+2 {
		return fmt.Errorf("loopix: geometry of %d hops for %d layers and two providers", c.Geometry.NrHops, len(dir.Layers))
	}
	if c.Geometry.UserForwardPayloadLength < SealOverhead+fragmentHeaderLength+1 {
		return fmt.Errorf("loopix: user payload of %d bytes is too small", c.Geometry.UserForwardPayloadLength)
	}
	return c.Rates.Check()
}

// Output is a link frame to send to an overlay peer now.
type Output struct {
	To    PeerID
	Frame []byte
}

// Ready is what an engine has for its caller after the inputs so far:
// frames to send (in order) and, at a client, the messages received. The
// engines have already written what they must (mailboxes, replay tags)
// through their Mailboxes and ReplayFilter before they put anything here.
type Ready struct {
	Out       []Output
	Delivered []*Message
}

// ReplayFilter is a relay's per-epoch replay tag store; *replay.Store is
// one. SeenBatch tests and sets the tags in order (a tag twice in checks
// is new at most once), makes the new ones durable before it returns, and
// appends one verdict per check to dst; a packet whose verdict is seen or
// has an error is dropped. A mix passes it the tags of the packets that
// arrived together, so that they share one commit.
type ReplayFilter interface {
	SeenBatch(ctx context.Context, checks []replay.Check, dst []replay.Verdict) []replay.Verdict
	Rotate(ctx context.Context, current uint64) error
}

// Counters are the engines' Health counters (a role uses some of them).
// They are atomic: a caller may read them while the engine runs.
type Counters struct {
	PacketsIn      sdk.Counter `counter:"packets_in"`
	PacketsOut     sdk.Counter `counter:"packets_out"`
	Forwarded      sdk.Counter `counter:"packets_forwarded"`
	QueueDelayMs   sdk.Counter `counter:"queue_delay_ms_total"`
	QueueLength    sdk.Counter `counter:"queue_length"`
	RealSent       sdk.Counter `counter:"real_sent"`
	DropCoverSent  sdk.Counter `counter:"drop_cover_sent"`
	LoopsSent      sdk.Counter `counter:"loops_sent"`
	LoopsReturned  sdk.Counter `counter:"loops_returned"`
	CoverDiscarded sdk.Counter `counter:"cover_discarded"`
	Stored         sdk.Counter `counter:"mailbox_stored"`
	Pulls          sdk.Counter `counter:"pulls"`
	EntriesOut     sdk.Counter `counter:"mailbox_entries_sent"`
	DummiesOut     sdk.Counter `counter:"mailbox_dummies_sent"`
	EntriesIn      sdk.Counter `counter:"mailbox_entries_received"`
	MailboxResyncs sdk.Counter `counter:"mailbox_resyncs"`
	Delivered      sdk.Counter `counter:"messages_delivered"`
	Queued         sdk.Counter `counter:"messages_queued"`
	EpochRotations sdk.Counter `counter:"epoch_rotations"`
	// ReplayBatches counts the batches of replay tags a relay checked,
	// one commit each: packets_in over it is the mean batch.
	ReplayBatches sdk.Counter `counter:"replay_batches"`
	// MailboxBatches counts the mailbox transactions a provider made to
	// store the entries of a batch, one commit each: mailbox_stored over
	// it is the mean batch.
	MailboxBatches sdk.Counter `counter:"mailbox_batches"`
	AcksSent       sdk.Counter `counter:"acks_sent"`
	AcksReceived   sdk.Counter `counter:"acks_received"`
	Retransmitted  sdk.Counter `counter:"fragments_retransmitted"`
	RepliesSent    sdk.Counter `counter:"replies_sent"`
	RepliesIn      sdk.Counter `counter:"replies_received"`
	ReplySURBsIn   sdk.Counter `counter:"reply_surbs_received"`

	SharedStored     sdk.Counter `counter:"shared_stored"`
	SharedPulls      sdk.Counter `counter:"shared_pulls"`
	UnknownShared    sdk.Counter `counter:"shared_pulls_unknown"` // of those, of a mailbox nobody posted to (answered with dummies)
	SharedEntriesOut sdk.Counter `counter:"shared_entries_sent"`
	SharedDummiesOut sdk.Counter `counter:"shared_dummies_sent"`
	SharedPostsSent  sdk.Counter `counter:"shared_posts_sent"`
	SharedPullsSent  sdk.Counter `counter:"shared_pulls_sent"`
	SharedEntriesIn  sdk.Counter `counter:"shared_entries_received"`
	SharedDummiesIn  sdk.Counter `counter:"shared_dummies_received"`
	SharedGaps       sdk.Counter `counter:"shared_gaps"`
	SharedDelivered  sdk.Counter `counter:"shared_delivered"`
	SharedSubscribed sdk.Counter `counter:"shared_subscribed"`

	Malformed          sdk.Drop `drop:"malformed"`
	UnknownPeer        sdk.Drop `drop:"unknown_peer"`
	Undecryptable      sdk.Drop `drop:"undecryptable"`
	Replayed           sdk.Drop `drop:"replayed"`
	ReplayError        sdk.Drop `drop:"replay_error"`
	BadCommands        sdk.Drop `drop:"bad_commands"`
	UnknownNextHop     sdk.Drop `drop:"unknown_next_hop"`
	QueueFull          sdk.Drop `drop:"queue_full"`
	DelayTooLong       sdk.Drop `drop:"delay_too_long"`
	RateLimited        sdk.Drop `drop:"rate_limited"`
	UnknownRecipient   sdk.Drop `drop:"unknown_recipient"`
	MailboxFull        sdk.Drop `drop:"mailbox_full"`
	TooManyClients     sdk.Drop `drop:"too_many_clients"`
	MailboxError       sdk.Drop `drop:"mailbox_error"`
	UnexpectedFrame    sdk.Drop `drop:"unexpected_frame"`
	NoRoute            sdk.Drop `drop:"no_route"`
	SendQueueFull      sdk.Drop `drop:"send_queue_full"`
	BadFragment        sdk.Drop `drop:"bad_fragment"`
	DuplicateEntry     sdk.Drop `drop:"duplicate_entry"`
	ReassemblyGivenUp  sdk.Drop `drop:"reassembly_given_up"`
	Oversize           sdk.Drop `drop:"oversize"`
	RandomnessFailures sdk.Drop `drop:"randomness_failure"`
	Unacked            sdk.Drop `drop:"unacked"`
	UnknownSURB        sdk.Drop `drop:"unknown_surb"`
	BadSURB            sdk.Drop `drop:"bad_surb"`
	NoReplySURBs       sdk.Drop `drop:"no_reply_surbs"`
	ReplySURBsExpired  sdk.Drop `drop:"reply_surbs_expired"`
	Late               sdk.Drop `drop:"late"`

	BadShared             sdk.Drop `drop:"bad_shared"`
	TooManyShared         sdk.Drop `drop:"too_many_shared"`
	SharedEvicted         sdk.Drop `drop:"shared_evicted"`
	SharedPullRateLimited sdk.Drop `drop:"shared_pull_rate"`
	TooManyChannels       sdk.Drop `drop:"too_many_channels"`
}
