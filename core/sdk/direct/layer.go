// Package direct is the skeleton of a direct-addressing privacy layer, the
// shape of the stock `none` layer: a node's privacy address is its overlay
// peer id, a DOWN frame addressed to it goes to that overlay peer on one
// overlay protocol, and what goes on the wire is the frame's conversation id
// and payload in a Codec's format (by default Envelope, with optional hooks
// that transform the payload). Everything else a privacy layer owes its
// contract is done here: the trace id, hints and sender of every frame,
// OwnAddress, Health counters, dropping and counting what does not fit.
//
// A third-party layer that differs from `none` only in what it does to a
// payload is then a few lines:
//
//	func New() *direct.Layer {
//		return direct.New(direct.Spec{
//			Name: "rot13", Version: "0.1.0", Description: "direct delivery, payload in rot13",
//			Protocol: "rot13",
//			Codec:    direct.Envelope{Seal: rot13, Open: rot13},
//		})
//	}
//
// and its main package is sdk.Serve(New()).
package direct

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// DefaultMaxPayload is the payload limit of a Spec that names none: 1 MiB
// (the libp2p layer's default frame limit) less 512 bytes for the
// envelope, the `none` layer's limit.
const DefaultMaxPayload = 1<<20 - 512

// Codec is a direct layer's wire format: how a conversation id and a
// payload become the payload of one overlay frame, and back.
type Codec interface {
	// Encode appends the message to dst. An error wrapping ErrTooLarge
	// drops the frame as dropped_oversize, any other as
	// dropped_unencodable.
	Encode(dst, conversation, payload []byte) ([]byte, error)
	// Decode parses one message from the overlay. It must not panic on
	// any input; an error drops the frame as dropped_malformed.
	Decode(wire []byte) (conversation, payload []byte, err error)
}

// LimitedCodec is a Codec with a payload limit of its own, such as one read
// from the layer's config: the layer enforces MaxPayload in place of
// Spec.MaxPayload, which stays the declared limit (PluginInfo cannot depend
// on config).
type LimitedCodec interface {
	Codec
	MaxPayload() int
}

// CountingCodec is a Codec with Health counters of its own (such as the
// padding bytes a padding codec sent), which the layer adds to its own.
type CountingCodec interface {
	Codec
	Counters() map[string]uint64
}

// Spec is what makes a direct layer one of its own. Name, Version,
// Description and Protocol are required.
type Spec struct {
	// Name is the implementation name a config uses.
	Name string
	// Version is the implementation's version.
	Version string
	// Description is one line on what the implementation is.
	Description string
	// Protocol is the overlay protocol the layer sends and receives on
	// (version 1, one message code).
	Protocol string
	// Provides are capabilities beyond sdk.CapDirect, which every direct
	// layer provides.
	Provides []string
	// PublicChats makes Subscribe give public chats as broadcast topics of
	// the overlay (see PublicTopic); false refuses Subscribe and
	// Unsubscribe with Unimplemented (the host then says the stack has no
	// public chats).
	PublicChats bool
	// MaxPayload is the largest payload accepted from above, declared in
	// PluginInfo.max_payload; 0 means DefaultMaxPayload. It is also the
	// limit enforced, unless the Codec has one of its own (a LimitedCodec,
	// such as Limit returns for a limit read from the config). A Codec may
	// refuse smaller payloads with ErrTooLarge.
	MaxPayload uint32
	// Config is the layer's config schema (PluginInfo.config), such as
	// sdk.ConfigFields of its config struct; nil means the layer takes no
	// keys.
	Config []*commonv1.ConfigField
	// Codec is the wire format when Configure is nil; nil means
	// Envelope{}.
	Codec Codec
	// Configure, when set, reads the config section
	// (ConfigureRequest.config_json, checked by the host against Config)
	// and returns the Codec for it. A bad value is an *sdk.ConfigError.
	// When nil, a section with any key is refused.
	Configure func(configJSON string, env sdk.Env) (Codec, error)
}

// Layer is a direct privacy layer built from a Spec. The zero value is not
// usable; call New. The SDK runs it in the order of its contract
// (sdk.Lifecycle), so it keeps no phase of its own.
type Layer struct {
	// Embedded so that the layer keeps compiling, answering Unimplemented,
	// if the privacy control API gains methods.
	privacyv1.UnimplementedControlServer

	spec Spec
	c    *counters
	// codec, limit and out are set by Configure, address by Start; the
	// SDK orders these before any other use.
	codec   Codec
	limit   int // the largest payload accepted from above
	out     sdk.Emitter
	address atomic.Pointer[[]byte]

	// topics are the overlay broadcast topics of the shared addresses
	// subscribed (public chats), by topic name.
	mu     sync.Mutex
	topics map[string]bool
}

// counters are the Health counters every direct layer keeps.
type counters struct {
	Sent           sdk.Counter `counter:"frames_sent"`
	Received       sdk.Counter `counter:"frames_received"`
	Oversize       sdk.Drop    `drop:"oversize"`
	Unencodable    sdk.Drop    `drop:"unencodable"`
	Malformed      sdk.Drop    `drop:"malformed"`
	Unaddressed    sdk.Drop    `drop:"unaddressed"`
	WrongProtocol  sdk.Drop    `drop:"wrong_protocol"`
	WrongDirection sdk.Drop    `drop:"wrong_direction"`
	EmitFailed     sdk.Drop    `drop:"emit_failed"`
	BadShared      sdk.Drop    `drop:"bad_shared"`
	SharedSent     sdk.Counter `counter:"shared_sent"`
	SharedReceived sdk.Counter `counter:"shared_received"`

	// peers is the number of overlay peers connected, a level.
	peers atomic.Int64
	set   *sdk.Counters
}

var _ sdk.Privacy = (*Layer)(nil)

// New returns an unconfigured layer of spec. It panics when Name, Version,
// Description or Protocol is empty: that is a bug the layer's first test
// finds.
func New(spec Spec) *Layer {
	if spec.Name == "" || spec.Version == "" || spec.Description == "" || spec.Protocol == "" {
		panic(fmt.Sprintf("direct.New: Spec %q needs Name, Version, Description and Protocol", spec.Name))
	}
	if spec.MaxPayload == 0 {
		spec.MaxPayload = DefaultMaxPayload
	}
	c := &counters{}
	c.set = sdk.NewCounters(c)
	c.set.Level("peers", func() uint64 { return uint64(max(c.peers.Load(), 0)) })
	return &Layer{spec: spec, c: c, topics: map[string]bool{}}
}

// Protocol returns the overlay protocol the layer asks the p2p layer to
// carry.
func (l *Layer) Protocol() *commonv1.Protocol {
	return &commonv1.Protocol{Name: l.spec.Protocol, Version: 1, MessageCodes: 1}
}

// Describe implements sdk.Layer.
func (l *Layer) Describe() *commonv1.PluginInfo {
	return &commonv1.PluginInfo{
		Kind:        commonv1.LayerKind_LAYER_KIND_PRIVACY,
		Name:        l.spec.Name,
		Version:     l.spec.Version,
		Description: l.spec.Description,
		Config:      l.spec.Config,
		Provides:    append([]string{sdk.CapDirect}, l.spec.Provides...),
		Requires:    []string{sdk.CapUnicast},
		MaxPayload:  l.spec.MaxPayload,
	}
}

// Configure implements sdk.Layer: it reads the config section with
// Spec.Configure (or refuses every key when there is none) and declares the
// overlay protocol.
func (l *Layer) Configure(_ context.Context, req *commonv1.ConfigureRequest, env sdk.Env) (*commonv1.ConfigureResponse, error) {
	codec := l.spec.Codec
	if l.spec.Configure != nil {
		var err error
		if codec, err = l.spec.Configure(req.GetConfigJson(), env); err != nil {
			return nil, fmt.Errorf("%s: configure: %w", l.spec.Name, err)
		}
	} else if _, err := sdk.LoadConfig[struct{}](req.GetConfigJson()); err != nil {
		return nil, err
	}
	if codec == nil {
		codec = Envelope{}
	}
	limit := int(l.spec.MaxPayload)
	if c, ok := codec.(LimitedCodec); ok {
		limit = c.MaxPayload()
	}
	l.codec, l.limit, l.out = codec, limit, env.Out
	return &commonv1.ConfigureResponse{Protocols: []*commonv1.Protocol{l.Protocol()}}, nil
}

// Start implements sdk.Layer. The privacy address is the overlay address
// in req.BelowAddress.
func (l *Layer) Start(_ context.Context, req *commonv1.StartRequest) (*commonv1.StartResponse, error) {
	below := req.GetBelowAddress()
	if len(below) == 0 {
		return nil, fmt.Errorf("%s: start: the p2p layer reported no local address", l.spec.Name)
	}
	addr := append([]byte(nil), below...)
	l.address.Store(&addr)
	return &commonv1.StartResponse{LocalAddress: addr, ContactSection: addr, DisplayAddress: l.display(addr)}, nil
}

func (l *Layer) display(addr []byte) string { return fmt.Sprintf("%s:%x", l.spec.Name, addr) }

// HandleBatch implements sdk.Layer. A DOWN frame is encoded and sent to
// the overlay peer its Frame.peer names; an UP frame on the layer's
// protocol is decoded and passed up, from the overlay peer that sent it.
// Both keep their trace id and hints. Peer events are counted only: the
// layer sends to whatever overlay id it is given.
func (l *Layer) HandleBatch(ctx context.Context, b *commonv1.Batch) {
	frames := make([]*commonv1.Frame, 0, len(b.GetFrames()))
	for _, f := range b.GetFrames() {
		var o *commonv1.Frame
		switch f.GetDirection() {
		case commonv1.Direction_DIRECTION_DOWN:
			o = l.down(f)
		case commonv1.Direction_DIRECTION_UP:
			o = l.up(f)
		default:
			l.c.WrongDirection.Inc()
		}
		if o != nil {
			frames = append(frames, o)
		}
	}
	for _, ev := range b.GetEvents() {
		switch ev.GetPeer().GetState() {
		case commonv1.PeerState_PEER_STATE_CONNECTED:
			l.c.peers.Add(1)
		case commonv1.PeerState_PEER_STATE_DISCONNECTED:
			l.c.peers.Add(-1)
		}
	}
	if len(frames) == 0 {
		return
	}
	if err := l.out.Emit(ctx, frames...); err != nil {
		l.c.EmitFailed.Add(uint64(len(frames)))
	}
}

// down encodes a frame from above for the overlay, or returns nil when the
// frame is dropped.
func (l *Layer) down(f *commonv1.Frame) *commonv1.Frame {
	if len(f.GetPeer()) == 0 {
		l.c.Unaddressed.Inc()
		return nil
	}
	topic, shared := l.sharedTopic(f.GetPeer())
	if shared && topic == "" {
		l.c.BadShared.Inc()
		return nil
	}
	if len(f.GetPayload()) > l.limit {
		l.c.Oversize.Inc()
		return nil
	}
	wire, err := l.codec.Encode(make([]byte, 0, len(f.GetPayload())+len(f.GetConversation())+8), f.GetConversation(), f.GetPayload())
	switch {
	case errors.Is(err, ErrTooLarge):
		l.c.Oversize.Inc()
		return nil
	case err != nil:
		l.c.Unencodable.Inc()
		return nil
	}
	if shared {
		// A broadcast on the topic: an empty peer at the p2p boundary.
		l.c.SharedSent.Inc()
		return &commonv1.Frame{
			Direction: commonv1.Direction_DIRECTION_DOWN,
			TraceId:   f.GetTraceId(),
			Protocol:  topic,
			Hints:     f.GetHints(),
			Payload:   wire,
		}
	}
	l.c.Sent.Inc()
	return &commonv1.Frame{
		Direction: commonv1.Direction_DIRECTION_DOWN,
		TraceId:   f.GetTraceId(),
		Peer:      f.GetPeer(),
		Protocol:  l.spec.Protocol,
		Hints:     f.GetHints(),
		Payload:   wire,
	}
}

// up decodes a frame from the overlay for the layer above, or returns nil
// when the frame is dropped.
func (l *Layer) up(f *commonv1.Frame) *commonv1.Frame {
	shared := f.GetProtocol() != l.spec.Protocol && l.subscribed(f.GetProtocol())
	if f.GetProtocol() != l.spec.Protocol && !shared {
		l.c.WrongProtocol.Inc()
		return nil
	}
	conversation, payload, err := l.codec.Decode(f.GetPayload())
	if err != nil {
		l.c.Malformed.Inc()
		return nil
	}
	if shared {
		// A public chat's message goes up under its shared address.
		l.c.SharedReceived.Inc()
		if len(conversation) == 0 {
			conversation = sharedAddress(f.GetProtocol())
		}
	} else {
		l.c.Received.Inc()
	}
	return &commonv1.Frame{
		Direction:    commonv1.Direction_DIRECTION_UP,
		TraceId:      f.GetTraceId(),
		Peer:         f.GetPeer(),
		Conversation: conversation,
		Hints:        f.GetHints(),
		Payload:      payload,
	}
}

// Health implements sdk.Layer: the layer's counters and its codec's.
func (l *Layer) Health(context.Context) *commonv1.HealthResponse {
	counters := l.c.set.Snapshot()
	if c, ok := l.codec.(CountingCodec); ok {
		maps.Copy(counters, c.Counters())
	}
	return &commonv1.HealthResponse{Serving: true, Counters: counters}
}

// Stop implements sdk.Layer. A direct layer holds nothing to release.
func (l *Layer) Stop(context.Context) error { return nil }

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	addr := l.address.Load()
	if addr == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%s: not started", l.spec.Name)
	}
	return &privacyv1.OwnAddressResponse{Address: *addr, DisplayAddress: l.display(*addr)}, nil
}

// Public chats. A direct layer hides nothing, so a shared address (a
// public chat: anyone who knows the name joins) is what the overlay offers
// for it: a broadcast topic named after the layer's protocol and a hash
// of the name (and key), which the host subscribes the p2p layer to
// (SubscribeResponse.overlay_topics) and this layer sends to with an empty
// peer. The address is sharedPrefix followed by the topic. A direct layer
// does not declare sdk.CapShared: a group over it stays pairwise fan-out
// by the layers above, and only public chats use the topics.

// sharedPrefix begins every shared address of a direct layer; no overlay
// peer id (a libp2p multihash, a devp2p node id) is this long and starts
// so.
const sharedPrefix = "\xffstrata-direct-shared:"

// maxTopic bounds the topic a shared address names.
const maxTopic = 256

// PublicTopic is the overlay broadcast topic of the public chat name (with
// key, when not empty) on a direct layer whose overlay protocol is
// protocol: "/strata/<protocol>/public/1/" and 40 hex digits of
// SHA-256("strata-direct-public-v1", name, key), each length-prefixed.
func PublicTopic(protocol, name string, key []byte) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("strata-direct-public-v1"), []byte(name), key} {
		h.Write([]byte{byte(len(part) >> 8), byte(len(part))})
		h.Write(part)
	}
	return "/strata/" + protocol + "/public/1/" + hex.EncodeToString(h.Sum(nil)[:20])
}

func sharedAddress(topic string) []byte { return append([]byte(sharedPrefix), topic...) }

// sharedTopic reports whether peer is a shared address, and its topic
// ("" when the address is malformed).
func (l *Layer) sharedTopic(peer []byte) (topic string, shared bool) {
	if !bytes.HasPrefix(peer, []byte(sharedPrefix)) {
		return "", false
	}
	t := string(peer[len(sharedPrefix):])
	if t == "" || len(t) > maxTopic {
		return "", true
	}
	return t, true
}

func (l *Layer) subscribed(topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topics[topic]
}

// Subscribe implements privacyv1.ControlServer: the shared address of a
// public chat and the overlay topic that carries it.
func (l *Layer) Subscribe(_ context.Context, req *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	if !l.spec.PublicChats {
		return nil, status.Errorf(codes.Unimplemented, "%s: direct delivery without public chats has no shared addresses; send to each member", l.spec.Name)
	}
	if req.GetName() == "" || len(req.GetName()) > 255 || len(req.GetKey()) > 255 {
		return nil, status.Errorf(codes.InvalidArgument, "%s: a shared address needs a name of 1 to 255 bytes and a key of at most 255", l.spec.Name)
	}
	topic := PublicTopic(l.spec.Protocol, req.GetName(), req.GetKey())
	l.mu.Lock()
	l.topics[topic] = true
	l.mu.Unlock()
	return &privacyv1.SubscribeResponse{Address: sharedAddress(topic), OverlayTopics: []string{topic}}, nil
}

// Unsubscribe implements privacyv1.ControlServer: the layer stops taking
// the address's topic (the host leaves the overlay topic).
func (l *Layer) Unsubscribe(_ context.Context, req *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	if !l.spec.PublicChats {
		return nil, status.Errorf(codes.Unimplemented, "%s: direct delivery without public chats has no shared addresses", l.spec.Name)
	}
	topic, shared := l.sharedTopic(req.GetAddress())
	if !shared || topic == "" {
		return nil, status.Errorf(codes.InvalidArgument, "%s: not a shared address of this layer", l.spec.Name)
	}
	l.mu.Lock()
	delete(l.topics, topic)
	l.mu.Unlock()
	return &privacyv1.UnsubscribeResponse{}, nil
}

// Limit returns c refusing, with ErrTooLarge, payloads larger than max
// bytes: the Codec for a layer whose payload limit is a config key. The
// layer enforces max in place of Spec.MaxPayload, which stays the declared
// limit, the one of the default config. It keeps c's counters.
func Limit(c Codec, max int) LimitedCodec { return limited{c, max} }

type limited struct {
	Codec
	max int
}

func (l limited) Encode(dst, conversation, payload []byte) ([]byte, error) {
	if len(payload) > l.max {
		return nil, fmt.Errorf("%w: a %d-byte payload exceeds the limit of %d", ErrTooLarge, len(payload), l.max)
	}
	return l.Codec.Encode(dst, conversation, payload)
}

// MaxPayload implements LimitedCodec.
func (l limited) MaxPayload() int { return l.max }

// Counters implements CountingCodec with the limited codec's counters.
func (l limited) Counters() map[string]uint64 {
	if c, ok := l.Codec.(CountingCodec); ok {
		return c.Counters()
	}
	return nil
}
