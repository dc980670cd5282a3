package bsp

import (
	"errors"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// counters are the layer's Health counters; they only grow.
type counters struct {
	sent                 sdk.Counter `counter:"sent"`                  // MESSAGE records sent for the first time to one member
	retransmissions      sdk.Counter `counter:"retransmissions"`       // MESSAGE and OFFER records sent again
	delivered            sdk.Counter `counter:"delivered"`             // UP frames of first deliveries
	redelivered          sdk.Counter `counter:"redelivered"`           // UP frames of unacknowledged deliveries emitted again at a Start
	acks                 sdk.Counter `counter:"acks"`                  // ack entries received
	offers               sdk.Counter `counter:"offers"`                // offer entries received
	requests             sdk.Counter `counter:"requests"`              // request entries received
	messages             sdk.Counter `counter:"messages_received"`     // MESSAGE records received
	duplicates           sdk.Counter `counter:"duplicates"`            // messages received that were already here
	invalid              sdk.Counter `counter:"invalid"`               // messages found invalid, directly or through a dependency
	acksSent             sdk.Counter `counter:"acks_sent"`             // ack entries sent (once for a frame for the whole group)
	offersSent           sdk.Counter `counter:"offers_sent"`           // offer entries sent (likewise)
	requestsSent         sdk.Counter `counter:"requests_sent"`         // request entries sent for offered ids
	repairsSent          sdk.Counter `counter:"repair_requests"`       // request entries sent for missing dependencies (gap repair)
	repaired             sdk.Counter `counter:"repaired"`              // missing dependencies that arrived after a repair request
	lazyHeld             sdk.Counter `counter:"lazy_held"`             // flushes that held a member's acks and relayed offers back for other records (batch_relays)
	answersDelayed       sdk.Counter `counter:"answers_delayed"`       // repair requests answered after a random delay (answer_backoff)
	answersSuppressed    sdk.Counter `counter:"answers_suppressed"`    // delayed answers not sent: the requester acked the message meanwhile
	compacted            sdk.Counter `counter:"compacted"`             // messages that left the sync state, acknowledged by every member
	forgotten            sdk.Counter `counter:"forgotten"`             // compacted ids forgotten after the history window
	beyondHistory        sdk.Counter `counter:"beyond_history"`        // missing dependencies given up on as older than the history window
	onlineResets         sdk.Counter `counter:"online_resets"`         // records made due at once because their member was heard again
	skipped              sdk.Counter `counter:"records_skipped"`       // records of unknown types, skipped
	framesSent           sdk.Counter `counter:"frames_sent"`           // DOWN frames (a frame for the whole group counts once)
	multicast            sdk.Counter `counter:"multicast_payloads"`    // DOWN frames for the whole group (no peer; multicast)
	groupRetransmissions sdk.Counter `counter:"group_retransmissions"` // messages sent again to the whole group (group_retransmit)
	groupAckFrames       sdk.Counter `counter:"group_ack_payloads"`    // of those, frames that carry the acks owed to members (group_acks)
	bytesSent            sdk.Counter `counter:"bytes_sent"`            // payload bytes of those frames
	framesIn             sdk.Counter `counter:"frames_received"`       // UP frames from members
	bytesIn              sdk.Counter `counter:"bytes_received"`        // payload bytes of those
	hostAcks             sdk.Counter `counter:"host_acks"`             // deliveries the host acknowledged (Ack)
	hostAcksIgnored      sdk.Counter `counter:"host_acks_ignored"`     // ids in Ack calls that acknowledged nothing
	hostRejected         sdk.Counter `counter:"host_rejected"`         // deliveries the host rejected (Ack's rejected): invalid, with their dependants
	hostDeferred         sdk.Counter `counter:"host_deferred"`         // deliveries the host deferred until named dependencies (Ack's deferred)
	commits              sdk.Counter `counter:"commits"`               // store transactions (group commit: one per batch of concurrent changes)

	unknownGroup  sdk.Drop `drop:"unknown_group"`   // a frame whose conversation is no group of ours
	nonMember     sdk.Drop `drop:"non_member"`      // a frame from a peer that is not another member
	version       sdk.Drop `drop:"version"`         // a record of a protocol version other than 0: the rest of the frame is abandoned
	oversize      sdk.Drop `drop:"oversize"`        // a frame above max_frame or a record above the limits
	malformed     sdk.Drop `drop:"malformed"`       // a record that does not decode: the rest of the frame is abandoned
	wrongGroup    sdk.Drop `drop:"wrong_group"`     // a MESSAGE of another group than its frame's
	unknownAck    sdk.Drop `drop:"unknown_ack"`     // acked ids this node does not hold
	unknownReq    sdk.Drop `drop:"unknown_request"` // requested ids this node does not hold, or holds undelivered
	offerFlood    sdk.Drop `drop:"offer_flood"`     // offered ids beyond max_offered per member
	pendingFull   sdk.Drop `drop:"pending_full"`    // messages with a missing dependency beyond max_pending
	ephemeralFull sdk.Drop `drop:"ephemeral_full"`  // ephemeral messages beyond maxEphemeralSeen in one window
	tooOld        sdk.Drop `drop:"too_old"`         // messages older than the history window
	notRunning    sdk.Drop `drop:"not_running"`     // input after a storage failure
	downFrame     sdk.Drop `drop:"down_frame"`      // a DOWN frame from above; messages enter through Send
	wrongDir      sdk.Drop `drop:"wrong_direction"` // a frame that is neither UP nor DOWN

	set *sdk.Counters
}

func newCounters() *counters {
	c := &counters{}
	c.set = sdk.NewCounters(c)
	return c
}

// readError counts a record stream error by its kind.
func (c *counters) readError(err error) {
	switch {
	case errors.Is(err, wire.ErrVersion):
		c.version.Inc()
	case errors.Is(err, wire.ErrTooLarge):
		c.oversize.Inc()
	default:
		c.malformed.Inc()
	}
}
