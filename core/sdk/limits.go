package sdk

import (
	"math"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// What the host accepts from a plugin process. A plugin is code the host
// did not write; these bounds keep one that is broken or hostile from
// making the host allocate without limit or pass on frames no layer
// agreed to take.
const (
	// MaxUndeclaredPayload is the largest frame payload the host accepts
	// from a plugin where no declared max_payload applies: 16 MiB, the
	// largest frame limit any shipped layer can be configured to.
	MaxUndeclaredPayload = 16 << 20
	// MaxFrameHeader bounds the routing header of a frame a plugin emits:
	// conversation, peer, protocol and message id together, in bytes.
	MaxFrameHeader = 8 << 10
	// MaxEventBytes bounds one event a plugin emits, encoded: room for a
	// ConversationLearned naming a conversation's largest membership (1,024
	// identity keys of 32 bytes) with its id.
	MaxEventBytes = 48 << 10
	// maxUnaryRecvBytes bounds every answer of a plugin other than its
	// data stream: Describe, Configure, Start, Health, Stop and the typed
	// control calls.
	maxUnaryRecvBytes = 16 << 20
	// itemWireOverhead is what one frame or event adds to a batch beyond
	// its payload and header: field tags, lengths, trace id, hints.
	itemWireOverhead = 64
	// defaultBatchBytes is BatchOptions.MaxBytes's default; plugins built
	// with an SDK that does not read EnvBatchBytes batch within it.
	defaultBatchBytes = 1 << 20
)

// FrameLimits bound the frames a plugin process emits, checked by the host
// as each batch arrives (see LaunchConfig.Refused).
type FrameLimits struct {
	// UpPayload is the largest payload of an UP frame. 0 means the
	// max_payload the plugin declares in Describe: what a layer delivers
	// upward is what its peer accepted from above, so it cannot be larger
	// (MaxUndeclaredPayload when the plugin declares none).
	UpPayload uint32
	// DownPayload is the largest payload of a DOWN frame: the max_payload
	// that the layer below declares, which only the host knows. 0 means
	// MaxUndeclaredPayload.
	DownPayload uint32
}

// The reasons of a Refusal.
const (
	// RefusedPayload: a frame's payload is larger than the limit of its
	// direction.
	RefusedPayload = "oversize_payload"
	// RefusedHeader: a frame's routing header is larger than
	// MaxFrameHeader.
	RefusedHeader = "oversize_header"
	// RefusedEvent: an event is larger than MaxEventBytes.
	RefusedEvent = "oversize_event"
	// RefusedTooMany: the batch carried more frames and events than the
	// host's BatchOptions.MaxFrames, which the plugin was told; the ones
	// beyond it are dropped.
	RefusedTooMany = "too_many_frames"
)

// Refusal reports frames or events of one batch that the host dropped on
// receipt because they break the limits of the plugin that emitted them.
type Refusal struct {
	// Reason is one of the Refused* constants.
	Reason string
	// Direction is the direction of the dropped frames; unspecified for
	// events and for frames with no direction.
	Direction commonv1.Direction
	// Frames and Events count what was dropped.
	Frames, Events int
}

// recvLimits are a remote layer's limits, resolved.
type recvLimits struct {
	up, down  int
	maxItems  int
	streamMax int // bytes of one batch message
	refused   func(Refusal)
}

func newRecvLimits(lim FrameLimits, declared uint32, batch BatchOptions, refused func(Refusal)) *recvLimits {
	up := lim.UpPayload
	if up == 0 {
		up = declared
	}
	if up == 0 {
		up = MaxUndeclaredPayload
	}
	down := lim.DownPayload
	if down == 0 {
		down = MaxUndeclaredPayload
	}
	batch = batch.withDefaults()
	r := &recvLimits{up: int(up), down: int(down), maxItems: batch.MaxFrames, refused: refused}
	r.streamMax = streamRecvLimit(batch, max(r.up, r.down))
	return r
}

// streamRecvLimit is the largest batch a plugin can legitimately send: the
// SDK fills a batch up to MaxFrames items and, past MaxBytes of payload,
// adds no further frame, so its payloads total at most MaxBytes plus one
// frame (and never more than MaxFrames largest frames); each item adds at
// most its header and a few bytes of framing.
func streamRecvLimit(batch BatchOptions, payload int) int {
	n := int64(batch.MaxFrames)
	p := int64(payload)
	payloads := min(n*p, int64(max(batch.MaxBytes, defaultBatchBytes))+p)
	total := payloads + n*(MaxFrameHeader+itemWireOverhead) + 1024
	return int(min(total, math.MaxInt32))
}

// admit drops from b, in place, what breaks the limits, and reports it.
// The common case, a batch within every limit, allocates nothing.
func (r *recvLimits) admit(b *commonv1.Batch) {
	if len(b.Frames)+len(b.Events) <= r.maxItems && r.clean(b) {
		return
	}
	var out []Refusal
	note := func(reason string, dir commonv1.Direction, frames, events int) {
		for i := range out {
			if out[i].Reason == reason && out[i].Direction == dir {
				out[i].Frames += frames
				out[i].Events += events
				return
			}
		}
		out = append(out, Refusal{Reason: reason, Direction: dir, Frames: frames, Events: events})
	}
	// A batch is read as its frames, then its events: the items beyond
	// maxItems in that order are the ones dropped.
	eventRoom := max(r.maxItems-len(b.Frames), 0)
	keep := b.Frames[:0]
	for i, f := range b.Frames {
		switch {
		case i >= r.maxItems:
			note(RefusedTooMany, f.GetDirection(), 1, 0)
		case r.header(f) > MaxFrameHeader:
			note(RefusedHeader, f.GetDirection(), 1, 0)
		case len(f.GetPayload()) > r.payloadLimit(f):
			note(RefusedPayload, f.GetDirection(), 1, 0)
		default:
			keep = append(keep, f)
		}
	}
	clear(b.Frames[len(keep):])
	b.Frames = keep
	evs := b.Events[:0]
	for i, ev := range b.Events {
		switch {
		case i >= eventRoom:
			note(RefusedTooMany, commonv1.Direction_DIRECTION_UNSPECIFIED, 0, 1)
		case proto.Size(ev) > MaxEventBytes:
			note(RefusedEvent, commonv1.Direction_DIRECTION_UNSPECIFIED, 0, 1)
		default:
			evs = append(evs, ev)
		}
	}
	clear(b.Events[len(evs):])
	b.Events = evs
	if r.refused != nil {
		for _, rf := range out {
			r.refused(rf)
		}
	}
}

// clean reports whether every frame and event of b is within its limits.
func (r *recvLimits) clean(b *commonv1.Batch) bool {
	for _, f := range b.Frames {
		if r.header(f) > MaxFrameHeader || len(f.GetPayload()) > r.payloadLimit(f) {
			return false
		}
	}
	for _, ev := range b.Events {
		if proto.Size(ev) > MaxEventBytes {
			return false
		}
	}
	return true
}

func (r *recvLimits) header(f *commonv1.Frame) int {
	return len(f.GetConversation()) + len(f.GetPeer()) + len(f.GetProtocol()) + len(f.GetMessageId())
}

// payloadLimit is the limit of f's direction. A frame with no direction is
// left to the router, which drops and counts it.
func (r *recvLimits) payloadLimit(f *commonv1.Frame) int {
	switch f.GetDirection() {
	case commonv1.Direction_DIRECTION_UP:
		return r.up
	case commonv1.Direction_DIRECTION_DOWN:
		return r.down
	}
	return math.MaxInt
}
