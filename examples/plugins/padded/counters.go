package padded

import "github.com/strata-msg/strata/core/sdk"

// stats are the layer's Health counters, by their Health names.
type stats struct {
	Sent         sdk.Counter `counter:"frames_sent"`
	Received     sdk.Counter `counter:"frames_received"`
	PaddingBytes sdk.Counter `counter:"padding_bytes_sent"`

	DroppedOversize         sdk.Drop `drop:"oversize"`
	DroppedLongConversation sdk.Drop `drop:"conversation_too_long"`
	DroppedUnaddressed      sdk.Drop `drop:"unaddressed"`
	DroppedMalformed        sdk.Drop `drop:"malformed"`
	DroppedWrongProtocol    sdk.Drop `drop:"wrong_protocol"`
	DroppedWrongDirection   sdk.Drop `drop:"wrong_direction"`
	DroppedEmitFailed       sdk.Drop `drop:"emit_failed"`
}
