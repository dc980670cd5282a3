package mvds

import (
	"errors"

	"github.com/strata-msg/strata/core/sdk"
)

// reason is why something from the network was dropped. Each reason is a
// Health counter named "dropped_" + its name.
type reason int

// The drop reasons.
const (
	// dropUnknownGroup: a frame whose conversation is no group of ours.
	dropUnknownGroup reason = iota
	// dropNonMember: a frame from a peer that is not another member.
	dropNonMember
	// dropOversize: a frame above max_frame, or a body or payload above
	// its limit.
	dropOversize
	// dropMalformed: bytes that are not a Payload (or a Payload with no
	// record), or a Message or Body that does not decode or is invalid.
	dropMalformed
	// dropTooManyIDs: a payload section above max_ids.
	dropTooManyIDs
	// dropBadID: an id that is not 32 bytes.
	dropBadID
	// dropWrongGroup: a Message whose group_id is not the frame's group.
	dropWrongGroup
	// dropVersion: a Body of a version this node does not speak.
	dropVersion
	// dropNonMemberAuthor: a message whose author is not a member.
	dropNonMemberAuthor
	// dropTooManyParents: a message naming more than max_parents parents.
	dropTooManyParents
	// dropPendingFull: a message with a missing parent while the group
	// already holds max_pending such messages; it is not acknowledged.
	dropPendingFull
	// dropPendingExpired: a message that waited pending_expiry (or an
	// ephemeral one that waited ephemeral_window) for a parent.
	dropPendingExpired
	// dropOfferFlood: an offer of an unknown id from a member that already
	// has max_requests outstanding requests.
	dropOfferFlood
	// dropUnknownAck: an ack of a message this node does not hold.
	dropUnknownAck
	// dropUnknownRequest: a request for a message this node does not hold.
	dropUnknownRequest
	// dropUnrequested: with accept_unsolicited false, a message whose id
	// matches no outstanding request.
	dropUnrequested
	// dropStale: an ephemeral message whose timestamp is more than
	// ephemeral_window from this node's clock.
	dropStale
	// dropRelayed: with relay false, a message that does not come from
	// its author.
	dropRelayed
	// dropNotRunning: input after a storage failure (the SDK counts what
	// arrives before Start or after Stop under the same name).
	dropNotRunning
	// dropWrongDirection: a frame that is neither UP nor DOWN.
	dropWrongDirection
	// dropDownFrame: a DOWN frame from above; messages enter through Send.
	dropDownFrame
	// dropWireMode: in the bound wire mode, a spec message (one of
	// Payload.messages that is not a Body of Strata before the spec wire):
	// its metadata is not covered by its id.
	dropWireMode

	numReasons
)

// String returns the reason's counter name without the "dropped_" prefix.
func (r reason) String() string {
	switch r {
	case dropUnknownGroup:
		return "unknown_group"
	case dropNonMember:
		return "non_member"
	case dropOversize:
		return "oversize"
	case dropMalformed:
		return "malformed"
	case dropTooManyIDs:
		return "too_many_ids"
	case dropBadID:
		return "bad_id"
	case dropWrongGroup:
		return "wrong_group"
	case dropVersion:
		return "version"
	case dropNonMemberAuthor:
		return "non_member_author"
	case dropTooManyParents:
		return "too_many_parents"
	case dropPendingFull:
		return "pending_full"
	case dropPendingExpired:
		return "pending_expired"
	case dropOfferFlood:
		return "offer_flood"
	case dropUnknownAck:
		return "unknown_ack"
	case dropUnknownRequest:
		return "unknown_request"
	case dropUnrequested:
		return "unrequested"
	case dropStale:
		return "stale"
	case dropRelayed:
		return "relayed"
	case dropNotRunning:
		return "not_running"
	case dropWrongDirection:
		return "wrong_direction"
	case dropDownFrame:
		return "down_frame"
	case dropWireMode:
		return "wire_mode"
	}
	return "unknown"
}

// reasonOf maps a decoding error to its drop reason.
func reasonOf(err error) reason {
	switch {
	case errors.Is(err, errTooManyIDs):
		return dropTooManyIDs
	case errors.Is(err, errBadID):
		return dropBadID
	case errors.Is(err, errVersion):
		return dropVersion
	case errors.Is(err, errTooManyParents):
		return dropTooManyParents
	case errors.Is(err, errOversize):
		return dropOversize
	case errors.Is(err, errWireMode):
		return dropWireMode
	}
	return dropMalformed
}

// counters are the layer's Health counters. They only grow, and are atomic
// so that Health never waits for a batch or an epoch in progress.
type counters struct {
	sent              sdk.Counter `counter:"sent"`                  // messages sent for the first time, to one member
	retransmissions   sdk.Counter `counter:"retransmissions"`       // records (message, offer, request) sent again
	delivered         sdk.Counter `counter:"delivered"`             // UP frames of first deliveries
	acks              sdk.Counter `counter:"acks"`                  // ack entries received
	offers            sdk.Counter `counter:"offers"`                // offer entries received
	requests          sdk.Counter `counter:"requests"`              // request entries received
	messages          sdk.Counter `counter:"messages_received"`     // message entries received
	duplicates        sdk.Counter `counter:"duplicates"`            // messages received that were already here
	acksSent          sdk.Counter `counter:"acks_sent"`             // ack entries sent
	offersSent        sdk.Counter `counter:"offers_sent"`           // offer entries sent
	requestsSent      sdk.Counter `counter:"requests_sent"`         // request entries sent
	relayed           sdk.Counter `counter:"relayed"`               // received messages offered on to other members
	abandoned         sdk.Counter `counter:"abandoned"`             // records given up after max_send_count
	onlineResets      sdk.Counter `counter:"online_resets"`         // records made due early by online_reset
	requestsCapped    sdk.Counter `counter:"requests_capped"`       // missing parents not requested from a member at max_requests
	payloadsSent      sdk.Counter `counter:"payloads_sent"`         // DOWN frames
	bytesSent         sdk.Counter `counter:"bytes_sent"`            // payload bytes of those frames
	payloadsIn        sdk.Counter `counter:"payloads_received"`     // valid payloads received
	bytesIn           sdk.Counter `counter:"bytes_received"`        // payload bytes of those
	redelivered       sdk.Counter `counter:"redelivered"`           // UP frames of unacknowledged deliveries emitted again at a Start
	hostAcks          sdk.Counter `counter:"host_acks"`             // deliveries the host acknowledged (Ack)
	hostAcksIgnored   sdk.Counter `counter:"host_acks_ignored"`     // ids in Ack calls that acknowledged nothing
	sendCommits       sdk.Counter `counter:"send_commits"`          // commits of Send and SendBatch calls (group commit: one for all that gathered)
	receiveCommits    sdk.Counter `counter:"receive_commits"`       // commits of received payloads (at most 64 payloads each)
	eagerPayloads     sdk.Counter `counter:"eager_payloads"`        // DOWN frames sent by an eager flush, between epochs (counted in payloads_sent too)
	multicastPayloads sdk.Counter `counter:"multicast_payloads"`    // DOWN frames for every member of a group at once (counted in eager_payloads too)
	groupRetransmits  sdk.Counter `counter:"group_retransmissions"` // messages sent again in a payload for every member (group_retransmit)
	dropped           [numReasons]sdk.Counter

	set *sdk.Counters
}

// newCounters builds the set; each drop reason is a counter named
// "dropped_" + the reason's name.
func newCounters() *counters {
	c := &counters{}
	c.set = sdk.NewCounters(c)
	for r := range numReasons {
		c.set.Drop(r.String(), &c.dropped[r])
	}
	return c
}

// drop counts one thing dropped for r.
func (c *counters) drop(r reason) { c.dropped[r].Inc() }
