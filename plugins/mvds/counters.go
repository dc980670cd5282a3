package mvds

import (
	"errors"
	"sync/atomic"
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
	// dropNotRunning: input before Start, after Stop or after a storage
	// failure.
	dropNotRunning
	// dropWrongDirection: a frame that is neither UP nor DOWN.
	dropWrongDirection
	// dropBadSend: a DOWN frame from above that Send refuses.
	dropBadSend

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
	case dropBadSend:
		return "bad_send"
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
	}
	return dropMalformed
}

// counters are the layer's Health counters. They only grow, and are atomic
// so that Health never waits for a batch or an epoch in progress.
type counters struct {
	sent            atomic.Uint64 // messages sent for the first time, to one member
	retransmissions atomic.Uint64 // records (message, offer, request) sent again
	delivered       atomic.Uint64 // UP frames of first deliveries
	acks            atomic.Uint64 // ack entries received
	offers          atomic.Uint64 // offer entries received
	requests        atomic.Uint64 // request entries received
	messages        atomic.Uint64 // message entries received
	duplicates      atomic.Uint64 // messages received that were already here
	acksSent        atomic.Uint64 // ack entries sent
	offersSent      atomic.Uint64 // offer entries sent
	requestsSent    atomic.Uint64 // request entries sent
	relayed         atomic.Uint64 // received messages offered on to other members
	abandoned       atomic.Uint64 // records given up after max_send_count
	onlineResets    atomic.Uint64 // records made due early by online_reset
	requestsCapped  atomic.Uint64 // missing parents not requested from a member at max_requests
	payloadsSent    atomic.Uint64 // DOWN frames
	bytesSent       atomic.Uint64 // payload bytes of those frames
	payloadsIn      atomic.Uint64 // valid payloads received
	bytesIn         atomic.Uint64 // payload bytes of those
	sentDown        atomic.Uint64 // DOWN frames from above accepted as Send
	redelivered     atomic.Uint64 // UP frames of unacknowledged deliveries emitted again at a Start
	hostAcks        atomic.Uint64 // deliveries the host acknowledged (Ack)
	hostAcksIgnored atomic.Uint64 // ids in Ack calls that acknowledged nothing
	dropped         [numReasons]atomic.Uint64
}

// drop counts one thing dropped for r.
func (c *counters) drop(r reason) { c.dropped[r].Add(1) }

// snapshot returns the counters by their Health names.
func (c *counters) snapshot() map[string]uint64 {
	m := map[string]uint64{
		"sent":              c.sent.Load(),
		"retransmissions":   c.retransmissions.Load(),
		"delivered":         c.delivered.Load(),
		"acks":              c.acks.Load(),
		"offers":            c.offers.Load(),
		"requests":          c.requests.Load(),
		"messages_received": c.messages.Load(),
		"duplicates":        c.duplicates.Load(),
		"acks_sent":         c.acksSent.Load(),
		"offers_sent":       c.offersSent.Load(),
		"requests_sent":     c.requestsSent.Load(),
		"relayed":           c.relayed.Load(),
		"abandoned":         c.abandoned.Load(),
		"online_resets":     c.onlineResets.Load(),
		"requests_capped":   c.requestsCapped.Load(),
		"payloads_sent":     c.payloadsSent.Load(),
		"bytes_sent":        c.bytesSent.Load(),
		"payloads_received": c.payloadsIn.Load(),
		"bytes_received":    c.bytesIn.Load(),
		"sent_down":         c.sentDown.Load(),
		"redelivered":       c.redelivered.Load(),
		"host_acks":         c.hostAcks.Load(),
		"host_acks_ignored": c.hostAcksIgnored.Load(),
	}
	for r := range numReasons {
		m["dropped_"+r.String()] = c.dropped[r].Load()
	}
	return m
}
