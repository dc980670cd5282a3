package libp2pplugin

import "github.com/strata-msg/strata/core/sdk"

// counters are the layer's monotonic counters, reported by Health. They
// live on the Layer, not the running node, so that they survive Stop.
type counters struct {
	framesSent     sdk.Counter `counter:"frames_sent"`     // frames written to a stream or published
	framesReceived sdk.Counter `counter:"frames_received"` // frames read from a stream or a topic
	bytesSent      sdk.Counter `counter:"bytes_sent"`      // payload bytes of framesSent
	bytesReceived  sdk.Counter `counter:"bytes_received"`  // payload bytes of framesReceived

	broadcastSent     sdk.Counter `counter:"broadcast_sent"`     // frames published on a topic
	broadcastReceived sdk.Counter `counter:"broadcast_received"` // frames delivered from a topic

	streamsOpened sdk.Counter `counter:"streams_opened"` // outbound streams opened
	streamErrors  sdk.Counter `counter:"stream_errors"`  // outbound streams reset after an error

	droppedOversize        sdk.Drop    `drop:"oversize"`            // DOWN payloads above max_frame
	droppedBadFrame        sdk.Drop    `drop:"bad_frame"`           // inbound bytes that are not a valid frame
	queueFullWaits         sdk.Counter `counter:"queue_full_waits"` // DOWN frames that waited for room in their queue (not a drop)
	peersResetSlow         sdk.Counter `counter:"peers_reset_slow"` // peers disconnected for taking no frame for the stall timeout
	droppedSlowPeer        sdk.Drop    `drop:"slow_peer"`           // DOWN frames for a peer that took none for the stall timeout
	droppedUnknownProtocol sdk.Drop    `drop:"unknown_protocol"`    // DOWN frames on a protocol not registered at Start
	droppedWrongDirection  sdk.Drop    `drop:"wrong_direction"`     // frames handed in that are not DOWN
	droppedBadPeer         sdk.Drop    `drop:"bad_peer"`            // DOWN frames whose peer is not a valid peer id, or is this node
	droppedStreamError     sdk.Drop    `drop:"stream_error"`        // DOWN frames lost because no stream could be opened or it failed
	droppedBroadcast       sdk.Drop    `drop:"broadcast"`           // broadcast frames that could not be published
	droppedNotRunning      sdk.Drop    `drop:"not_running"`         // frames lost because the node was stopping (the SDK counts what comes before Start or after Stop under the same name)
	ignoredEvents          sdk.Counter `counter:"ignored_events"`   // events handed in (the p2p layer has no layer below)

	rateWaits         sdk.Counter `counter:"rate_waits"`       // inbound frames after which a peer's reader waited for its token bucket (not a drop)
	inboxFullWaits    sdk.Counter `counter:"inbox_full_waits"` // inbound frames that waited for room in their peer's queue to the host (not a drop)
	droppedRateLimit  sdk.Drop    `drop:"rate_limit"`          // broadcasts from a peer above peer_in_rate
	droppedInboxFull  sdk.Drop    `drop:"inbox_full"`          // broadcasts from a peer whose queue to the host is full
	droppedPeerEvents sdk.Drop    `drop:"events"`              // peer events that found the inbox's event bound reached

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
