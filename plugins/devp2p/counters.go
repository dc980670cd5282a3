package devp2p

import "sync/atomic"

// counters are the layer's monotonic counters, reported by Health. They
// live on the Layer, not the running node, so that they survive Stop.
type counters struct {
	framesSent     atomic.Uint64 // messages written to a peer
	framesReceived atomic.Uint64 // messages read from a peer and queued up
	bytesSent      atomic.Uint64 // frame payload bytes of framesSent
	bytesReceived  atomic.Uint64 // frame payload bytes of framesReceived

	floodSent atomic.Uint64 // DOWN frames without a peer, sent to all peers of the protocol

	droppedOversize        atomic.Uint64 // payloads above max_frame, either way
	droppedBadCode         atomic.Uint64 // DOWN frames whose code is at or above the protocol's message_codes
	droppedBadFrame        atomic.Uint64 // DOWN frames with no code byte, inbound messages that could not be read
	queueFullWaits         atomic.Uint64 // DOWN frames that waited for room in a peer's queue (not a drop)
	peersResetSlow         atomic.Uint64 // peers disconnected for taking no frame for the stall timeout
	droppedSlowPeer        atomic.Uint64 // DOWN frames for a peer disconnected by the stall timeout
	droppedUnknownProtocol atomic.Uint64 // DOWN frames on a protocol not registered at Start
	droppedUnknownPeer     atomic.Uint64 // DOWN frames for a peer not connected on the protocol
	droppedWrongDirection  atomic.Uint64 // frames handed in that are not DOWN
	droppedWriteError      atomic.Uint64 // frames lost because the connection failed
	droppedNotRunning      atomic.Uint64 // DOWN frames handed in before Start or after Stop
	droppedEvents          atomic.Uint64 // peer events that found the inbox full of events
	ignoredEvents          atomic.Uint64 // events handed in (the p2p layer has no layer below)
}

// snapshot returns the counters by their exported names; peers is the
// current number of connected peers.
func (c *counters) snapshot(peers int) map[string]uint64 {
	return map[string]uint64{
		"frames_sent":              c.framesSent.Load(),
		"frames_received":          c.framesReceived.Load(),
		"bytes_sent":               c.bytesSent.Load(),
		"bytes_received":           c.bytesReceived.Load(),
		"flood_sent":               c.floodSent.Load(),
		"dropped_oversize":         c.droppedOversize.Load(),
		"dropped_bad_code":         c.droppedBadCode.Load(),
		"dropped_bad_frame":        c.droppedBadFrame.Load(),
		"queue_full_waits":         c.queueFullWaits.Load(),
		"peers_reset_slow":         c.peersResetSlow.Load(),
		"dropped_slow_peer":        c.droppedSlowPeer.Load(),
		"dropped_unknown_protocol": c.droppedUnknownProtocol.Load(),
		"dropped_unknown_peer":     c.droppedUnknownPeer.Load(),
		"dropped_wrong_direction":  c.droppedWrongDirection.Load(),
		"dropped_write_error":      c.droppedWriteError.Load(),
		"dropped_not_running":      c.droppedNotRunning.Load(),
		"dropped_events":           c.droppedEvents.Load(),
		"ignored_events":           c.ignoredEvents.Load(),
		"peers":                    uint64(peers),
	}
}
