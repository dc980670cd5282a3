// Package sdk is what a layer author imports to build a Strata plugin: the
// Go interfaces a layer implements, Serve to run it as a plugin process, and
// the host-side handles (Conn) that run the same implementation out of
// process (Launch) or in process (InProcess).
//
// A plugin binary is a main package of three lines:
//
//	func main() {
//		sdk.Serve(mylayer.New())
//	}
//
// The layer contracts themselves are the protobuf packages under
// core/api/*/v1; their doc comments say what each layer requires from the
// layer below and provides to the layer above.
package sdk

import (
	"context"

	"github.com/hashicorp/go-hclog"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	p2pv1 "github.com/strata-msg/strata/core/api/p2p/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	securev1 "github.com/strata-msg/strata/core/api/secure/v1"
	syncv1 "github.com/strata-msg/strata/core/api/sync/v1"
)

// Layer is the part of the contract every plugin implements, whatever its
// kind. The SDK drives it in this order, whatever the host does (see
// Lifecycle): Describe (any time), Configure once, then Start once, then
// HandleBatch for every input batch, Health at any time after Configure,
// and Stop last, once, and only if Configure succeeded. A layer writes no
// phase machine of its own. Methods other than HandleBatch may be called
// concurrently with HandleBatch.
type Layer interface {
	// Describe returns the plugin's self-description. It does not depend on
	// configuration and is cheap.
	Describe() *commonv1.PluginInfo

	// Configure validates and applies the plugin's config section and opens
	// its storage under req.DataDir. It does no network I/O. A bad value is
	// reported with ConfigError so that the host can name the key. env is
	// valid for the life of the layer.
	Configure(ctx context.Context, req *commonv1.ConfigureRequest, env Env) (*commonv1.ConfigureResponse, error)

	// Start goes live.
	Start(ctx context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error)

	// HandleBatch receives input from the host: DOWN frames from the layer
	// above, UP frames and events from the layer below. Batches arrive one at
	// a time, in order. The layer owns the frames (it may keep them) but not
	// the Batch's slices. Blocking here slows the sender (back-pressure); a
	// layer that does slow work hands it to its own goroutines.
	HandleBatch(ctx context.Context, batch *commonv1.Batch)

	// Health reports liveness and the layer's counters.
	Health(ctx context.Context) *commonv1.HealthResponse

	// Stop ends the layer: flush, close storage, leave the network. After
	// Stop the layer emits nothing.
	Stop(ctx context.Context) error
}

// Env is what the SDK hands a layer at Configure.
type Env struct {
	// Logger is the layer's logger. In a plugin process its output is merged
	// into the host's log under the plugin's name; write nothing to stdout.
	Logger hclog.Logger
	// Out sends frames and events to the host. Once Stop has begun it
	// refuses them (ErrClosed).
	Out Emitter
	// Run ends when Stop begins. A layer bounds the goroutines it starts,
	// and their Emits, by it, so that they are ending when its Stop runs.
	Run context.Context
}

// Emitter sends a layer's output to the host, which routes DOWN frames to
// the layer below, UP frames to the layer above, and events upward.
type Emitter interface {
	// Emit queues frames for the host. It blocks while the outbound queue is
	// full and returns an error when ctx ends or the layer is shutting down.
	// Ownership of the frames passes to the host.
	Emit(ctx context.Context, frames ...*commonv1.Frame) error
	// EmitEvent queues an event for the host, with Emit's blocking rules.
	EmitEvent(ctx context.Context, ev *commonv1.Event) error
}

// P2P is a p2p overlay layer: Layer plus the p2p control API.
type P2P interface {
	Layer
	p2pv1.ControlServer
}

// Privacy is a transport-privacy layer: Layer plus the privacy control API.
type Privacy interface {
	Layer
	privacyv1.ControlServer
}

// Secure is a conversational-security layer: Layer plus its control API.
type Secure interface {
	Layer
	securev1.ControlServer
}

// Sync is a data-sync layer: Layer plus the sync control API. Its
// SendBatch is optional: a layer that can commit several sends at once
// implements [SyncBatcher] too; the SDK answers SendBatch for one that does
// not with codes.Unimplemented, and the host then calls Send for each
// message.
type Sync interface {
	Layer
	SyncControl
}

// SyncControl is the part of strata.sync.v1.Control every sync layer
// serves.
type SyncControl interface {
	SetGroup(context.Context, *syncv1.GroupRequest) (*syncv1.GroupResponse, error)
	Send(context.Context, *syncv1.SendRequest) (*syncv1.SendResponse, error)
	State(context.Context, *syncv1.StateRequest) (*syncv1.StateResponse, error)
	Ack(context.Context, *syncv1.AckRequest) (*syncv1.AckResponse, error)
}

// SyncBatcher is implemented by a sync layer that stores a batch of sends
// with one durable commit (strata.sync.v1.Control.SendBatch: all or none,
// answered once every message is durable).
type SyncBatcher interface {
	SendBatch(context.Context, *syncv1.SendBatchRequest) (*syncv1.SendBatchResponse, error)
}
