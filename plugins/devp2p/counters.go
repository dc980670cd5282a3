package devp2p

import "github.com/strata-msg/strata/core/sdk"

// counters are the layer's monotonic counters, reported by Health. They
// live on the Layer, not the running node, so that they survive Stop.
type counters struct {
	framesSent     sdk.Counter `counter:"frames_sent"`     // messages written to a peer
	framesReceived sdk.Counter `counter:"frames_received"` // messages read from a peer and queued up
	bytesSent      sdk.Counter `counter:"bytes_sent"`      // frame payload bytes of framesSent
	bytesReceived  sdk.Counter `counter:"bytes_received"`  // frame payload bytes of framesReceived

	floodSent sdk.Counter `counter:"flood_sent"` // DOWN frames without a peer, sent to all peers of the protocol

	droppedOversize        sdk.Drop    `drop:"oversize"`            // payloads above max_frame, either way
	droppedBadCode         sdk.Drop    `drop:"bad_code"`            // DOWN frames whose code is at or above the protocol's message_codes
	droppedBadFrame        sdk.Drop    `drop:"bad_frame"`           // DOWN frames with no code byte, inbound messages that could not be read
	queueFullWaits         sdk.Counter `counter:"queue_full_waits"` // DOWN frames that waited for room in a peer's queue (not a drop)
	peersResetSlow         sdk.Counter `counter:"peers_reset_slow"` // peers disconnected for taking no frame for the stall timeout
	droppedSlowPeer        sdk.Drop    `drop:"slow_peer"`           // DOWN frames for a peer disconnected by the stall timeout
	droppedUnknownProtocol sdk.Drop    `drop:"unknown_protocol"`    // DOWN frames on a protocol not registered at Start
	droppedUnknownPeer     sdk.Drop    `drop:"unknown_peer"`        // DOWN frames for a peer not connected on the protocol
	droppedWrongDirection  sdk.Drop    `drop:"wrong_direction"`     // frames handed in that are not DOWN
	droppedWriteError      sdk.Drop    `drop:"write_error"`         // frames lost because the connection failed
	droppedNotRunning      sdk.Drop    `drop:"not_running"`         // frames lost because the node was stopping (the SDK counts what comes before Start or after Stop under the same name)
	droppedEvents          sdk.Drop    `drop:"events"`              // peer events that found the inbox's event bound reached
	ignoredEvents          sdk.Counter `counter:"ignored_events"`   // events handed in (the p2p layer has no layer below)

	peersResetOversize sdk.Counter `counter:"peers_reset_oversize"` // peers disconnected for sending a message above max_frame (also in dropped_oversize)
	rateWaits          sdk.Counter `counter:"rate_waits"`           // inbound messages after which a peer's reader waited for its token bucket (not a drop)
	inboxFullWaits     sdk.Counter `counter:"inbox_full_waits"`     // inbound messages that waited for room in their peer's queue to the host (not a drop)

	// set is built from the tags above by New.
	set *sdk.Counters
}

// snapshot returns the counters by their Health names; peers is the
// current number of connected peers and outBytes the payload bytes queued
// for them.
func (c *counters) snapshot(peers, outBytes int) map[string]uint64 {
	m := c.set.Snapshot()
	m["peers"] = uint64(peers)
	m["out_queued_bytes"] = uint64(outBytes)
	return m
}
