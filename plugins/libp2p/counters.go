package libp2pplugin

import "sync/atomic"

// counters are the layer's monotonic counters, reported by Health. They
// live on the Layer, not the running node, so that they survive Stop.
type counters struct {
	framesSent     atomic.Uint64 // frames written to a stream or published
	framesReceived atomic.Uint64 // frames read from a stream or a topic
	bytesSent      atomic.Uint64 // payload bytes of framesSent
	bytesReceived  atomic.Uint64 // payload bytes of framesReceived

	broadcastSent     atomic.Uint64 // frames published on a topic
	broadcastReceived atomic.Uint64 // frames delivered from a topic

	streamsOpened atomic.Uint64 // outbound streams opened
	streamErrors  atomic.Uint64 // outbound streams reset after an error

	droppedOversize        atomic.Uint64 // DOWN payloads above max_frame
	droppedBadFrame        atomic.Uint64 // inbound bytes that are not a valid frame
	queueFullWaits         atomic.Uint64 // DOWN frames that waited for room in their queue (not a drop)
	peersResetSlow         atomic.Uint64 // peers disconnected for taking no frame for the stall timeout
	droppedSlowPeer        atomic.Uint64 // DOWN frames for a peer that took none for the stall timeout
	droppedUnknownProtocol atomic.Uint64 // DOWN frames on a protocol not registered at Start
	droppedWrongDirection  atomic.Uint64 // frames handed in that are not DOWN
	droppedBadPeer         atomic.Uint64 // DOWN frames whose peer is not a valid peer id, or is this node
	droppedStreamError     atomic.Uint64 // DOWN frames lost because no stream could be opened or it failed
	droppedBroadcast       atomic.Uint64 // broadcast frames that could not be published
	droppedNotRunning      atomic.Uint64 // DOWN frames handed in before Start or after Stop
	ignoredEvents          atomic.Uint64 // events handed in (the p2p layer has no layer below)
}

// snapshot returns the counters by their exported names. peers is the
// current number of connected peers.
func (c *counters) snapshot(peers int) map[string]uint64 {
	return map[string]uint64{
		"frames_sent":              c.framesSent.Load(),
		"frames_received":          c.framesReceived.Load(),
		"bytes_sent":               c.bytesSent.Load(),
		"bytes_received":           c.bytesReceived.Load(),
		"broadcast_sent":           c.broadcastSent.Load(),
		"broadcast_received":       c.broadcastReceived.Load(),
		"streams_opened":           c.streamsOpened.Load(),
		"stream_errors":            c.streamErrors.Load(),
		"dropped_oversize":         c.droppedOversize.Load(),
		"dropped_bad_frame":        c.droppedBadFrame.Load(),
		"queue_full_waits":         c.queueFullWaits.Load(),
		"peers_reset_slow":         c.peersResetSlow.Load(),
		"dropped_slow_peer":        c.droppedSlowPeer.Load(),
		"dropped_unknown_protocol": c.droppedUnknownProtocol.Load(),
		"dropped_wrong_direction":  c.droppedWrongDirection.Load(),
		"dropped_bad_peer":         c.droppedBadPeer.Load(),
		"dropped_stream_error":     c.droppedStreamError.Load(),
		"dropped_broadcast":        c.droppedBroadcast.Load(),
		"dropped_not_running":      c.droppedNotRunning.Load(),
		"ignored_events":           c.ignoredEvents.Load(),
		"peers":                    uint64(peers),
	}
}
