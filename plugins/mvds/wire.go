package mvds

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-msg/strata/plugins/mvds/wirepb"
)

// Sizes and hard limits of the wire format. The configurable limits
// (config.go) live within these.
const (
	// IdentitySize is the length of an identity key (an Ed25519 public key),
	// the form of a member, of Body.author and of Message.author.
	IdentitySize = 32
	// MaxPayload is the largest application payload of one message, in
	// bytes: PluginInfo.max_payload. In a spec message it is the body.
	MaxPayload = 64 << 10
	// MaxGroupID is the longest group id, in bytes.
	MaxGroupID = 255
	// MaxMembers is the most members of one group, this node included.
	MaxMembers = 256
	// MaxParentsLimit is the highest value max_parents may take.
	MaxParentsLimit = 256
	// MaxBody is the largest Message.body of a bound message a node
	// accepts: a payload of MaxPayload bytes with MaxParentsLimit parents,
	// and the rest of Body.
	MaxBody = MaxPayload + MaxParentsLimit*idEntrySize + bodyOverhead
	// MinFrame is the smallest max_frame: room for one message of MaxBody
	// bytes in a group with the longest id (a spec message with as many
	// parents and an author is smaller).
	MinFrame = 80 << 10

	// BodyVersion is the Body format this package speaks.
	BodyVersion = 1

	// idEntrySize is one 32-byte id in a Payload section: a 3-byte tag
	// (field numbers 5001..5003), a 1-byte length and the id. It bounds a
	// parent in Body and in Metadata as well (1-byte tag there).
	idEntrySize = 3 + 1 + len(ID{})
	// bodyOverhead bounds Body's fields other than the payload and the
	// parents: version, author, the payload's tag and length, ephemeral.
	bodyOverhead = 64
)

// The wire modes, the values of the config key wire.
const (
	// WireSpec speaks 2/MVDS and 4/MVDS-META: a message's body is the
	// application's payload, its parents and ephemeral flag are in
	// Message.metadata, which the id does not cover.
	WireSpec = "spec"
	// WireBound is Strata's extension: a message's body is a Body holding
	// the author, the parents, the ephemeral flag and the payload, so that
	// the id covers all of them; it travels in Payload.bound_messages.
	WireBound = "bound"
)

// msgFormat is how a message is encoded, and so what its id covers. The
// values are persisted (messages.format).
type msgFormat int

const (
	// formatBound: a Body in Message.body, in Payload.bound_messages (and,
	// from Strata before the spec wire, in Payload.messages). Every message
	// stored by schema version 2 or earlier is of this format.
	formatBound msgFormat = 0
	// formatSpec: the application's payload in Message.body, parents and
	// ephemeral flag in Message.metadata, in Payload.messages.
	formatSpec msgFormat = 1
)

// Decoding errors. Each maps to one dropped_* counter (see reasonOf).
var (
	errMalformed      = errors.New("mvds: malformed")
	errEmpty          = errors.New("mvds: payload with no records")
	errTooManyIDs     = errors.New("mvds: too many ids in a payload section")
	errBadID          = errors.New("mvds: id is not 32 bytes")
	errVersion        = errors.New("mvds: unknown body version")
	errTooManyParents = errors.New("mvds: too many parents")
	errOversize       = errors.New("mvds: too large")
	errWireMode       = errors.New("mvds: a spec message to a node in the bound wire mode")
)

// unmarshal skips unknown fields, as protobuf rules say, and keeps none of
// them in memory.
var unmarshal = proto.UnmarshalOptions{DiscardUnknown: true}

// decodePayload parses one frame's payload and checks its shape: at least
// one record, at most maxIDs entries in each of the four sections (the
// messages of both formats counting as one), and every id exactly 32
// bytes. Messages are checked later, one by one (see decodeSpec and
// decodeBound), so that one bad message does not cost the rest. It never
// panics.
func decodePayload(b []byte, maxIDs int) (*wirepb.Payload, error) {
	var p wirepb.Payload
	if err := unmarshal.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", errMalformed, err)
	}
	messages := len(p.Messages) + len(p.BoundMessages)
	if len(p.Acks)+len(p.Offers)+len(p.Requests)+messages == 0 {
		return nil, errEmpty
	}
	for _, section := range [][][]byte{p.Acks, p.Offers, p.Requests} {
		if len(section) > maxIDs {
			return nil, fmt.Errorf("%w: %d, at most %d", errTooManyIDs, len(section), maxIDs)
		}
		for _, id := range section {
			if len(id) != len(ID{}) {
				return nil, fmt.Errorf("%w: %d bytes", errBadID, len(id))
			}
		}
	}
	if messages > maxIDs {
		return nil, fmt.Errorf("%w: %d messages, at most %d", errTooManyIDs, messages, maxIDs)
	}
	return &p, nil
}

// content is what the node needs of a message, whatever its format. Its
// slices alias the message it was decoded from.
type content struct {
	format msgFormat
	// author is the author's identity key: from the Body (bound), from
	// Message.author (spec), or nil in a spec message that names none,
	// whose author is the member it came from.
	author    []byte
	parents   []ID
	payload   []byte
	ephemeral bool
}

// decodeSpec checks a message of Payload.messages (2/MVDS with
// 4/MVDS-META): a body (the application's payload) of at most MaxPayload
// bytes, at most maxParents distinct 32-byte parents, and, if it names
// one, a 32-byte author. Any timestamp is valid. It never panics.
func decodeSpec(m *wirepb.Message, maxParents int) (content, error) {
	if len(m.Body) > MaxPayload {
		return content{}, fmt.Errorf("%w: payload of %d bytes, at most %d", errOversize, len(m.Body), MaxPayload)
	}
	c := content{format: formatSpec, payload: m.Body}
	if md := m.Metadata; md != nil {
		if len(md.Parents) > maxParents {
			return content{}, fmt.Errorf("%w: %d, at most %d", errTooManyParents, len(md.Parents), maxParents)
		}
		parents, err := toIDs(md.Parents)
		if err != nil {
			return content{}, err
		}
		c.parents, c.ephemeral = parents, md.Ephemeral
	}
	if len(m.Author) > 0 {
		if len(m.Author) != IdentitySize {
			return content{}, fmt.Errorf("%w: author of %d bytes, want %d", errMalformed, len(m.Author), IdentitySize)
		}
		c.author = m.Author
	}
	return c, nil
}

// decodeBound checks a message of Payload.bound_messages: no metadata and
// no author (its Body holds them), and a valid Body (decodeBody). It never
// panics.
func decodeBound(m *wirepb.Message, maxParents int) (content, error) {
	if m.Metadata != nil || len(m.Author) > 0 {
		return content{}, fmt.Errorf("%w: a bound message with metadata or an author outside its body", errMalformed)
	}
	b, err := decodeBody(m.Body, maxParents)
	if err != nil {
		return content{}, err
	}
	return content{format: formatBound, author: b.author, parents: b.parents, payload: b.payload, ephemeral: b.ephemeral}, nil
}

// body is a decoded Body. Its slices alias the bytes it was decoded from.
type body struct {
	author    []byte
	parents   []ID
	payload   []byte
	ephemeral bool
}

// decodeBody parses a bound message's body and checks it: version 1, a
// 32-byte author, at most maxParents distinct 32-byte parents, a payload
// of at most MaxPayload bytes. It never panics.
func decodeBody(b []byte, maxParents int) (body, error) {
	if len(b) > MaxBody {
		return body{}, fmt.Errorf("%w: body of %d bytes, at most %d", errOversize, len(b), MaxBody)
	}
	var pb wirepb.Body
	if err := unmarshal.Unmarshal(b, &pb); err != nil {
		return body{}, fmt.Errorf("%w: body: %v", errMalformed, err)
	}
	if pb.Version != BodyVersion {
		return body{}, fmt.Errorf("%w: %d, want %d", errVersion, pb.Version, BodyVersion)
	}
	if len(pb.Author) != IdentitySize {
		return body{}, fmt.Errorf("%w: author of %d bytes, want %d", errMalformed, len(pb.Author), IdentitySize)
	}
	if len(pb.Parents) > maxParents {
		return body{}, fmt.Errorf("%w: %d, at most %d", errTooManyParents, len(pb.Parents), maxParents)
	}
	if len(pb.Payload) > MaxPayload {
		return body{}, fmt.Errorf("%w: payload of %d bytes, at most %d", errOversize, len(pb.Payload), MaxPayload)
	}
	parents, err := toIDs(pb.Parents)
	if err != nil {
		return body{}, err
	}
	return body{author: pb.Author, parents: parents, payload: pb.Payload, ephemeral: pb.Ephemeral}, nil
}

// toIDs converts wire ids to IDs: each must be 32 bytes, and no two equal.
func toIDs(raw [][]byte) ([]ID, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	ids := make([]ID, len(raw))
	for i, r := range raw {
		if len(r) != len(ID{}) {
			return nil, fmt.Errorf("%w: parent of %d bytes", errBadID, len(r))
		}
		copy(ids[i][:], r)
		for _, prev := range ids[:i] {
			if prev == ids[i] {
				return nil, fmt.Errorf("%w: parent %s named twice", errMalformed, ids[i])
			}
		}
	}
	return ids, nil
}

// rawIDs converts IDs to wire ids.
func rawIDs(ids []ID) [][]byte {
	if len(ids) == 0 {
		return nil
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = bytes.Clone(id[:])
	}
	return out
}

// encodeBody returns the wire form of a Body, version 1.
func encodeBody(author []byte, parents []ID, payload []byte, ephemeral bool) ([]byte, error) {
	pb := &wirepb.Body{Version: BodyVersion, Author: author, Parents: rawIDs(parents), Payload: payload, Ephemeral: ephemeral}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("mvds: encode body: %w", err)
	}
	return b, nil
}

// specMessage returns a spec message: the payload as its body, and the
// parents and the ephemeral flag in its metadata, which is left out when
// there are no parents and the message is not ephemeral (as a node that
// does not use 4/MVDS-META sends it).
func specMessage(group []byte, ts int64, payload []byte, parents []ID, ephemeral bool) *wirepb.Message {
	m := &wirepb.Message{GroupId: group, Timestamp: ts, Body: payload}
	if len(parents) > 0 || ephemeral {
		m.Metadata = &wirepb.Metadata{Parents: rawIDs(parents), Ephemeral: ephemeral}
	}
	return m
}

// outMessage is a message to send, with the section it goes in.
type outMessage struct {
	m      *wirepb.Message
	format msgFormat
}

// payloadBuilder packs records into one Payload of at most maxFrame bytes
// and at most maxIDs entries per section. Each add reports whether the
// record fitted; one that did not is left for a later epoch.
type payloadBuilder struct {
	p        wirepb.Payload
	size     int
	maxFrame int
	maxIDs   int
	// ephemeralOnly stays true while every record is an ephemeral message.
	ephemeralOnly bool
	// trace is the trace id of the first own message in the payload, and
	// ackTrace that of the frame that brought what its first acks answer;
	// the payload's frame carries the first, else the second.
	trace, ackTrace uint64
}

func newPayloadBuilder(maxFrame, maxIDs int) *payloadBuilder {
	return &payloadBuilder{maxFrame: maxFrame, maxIDs: maxIDs, ephemeralOnly: true}
}

// addID appends id to a section if it fits.
func (b *payloadBuilder) addID(section *[][]byte, id ID) bool {
	if len(*section) >= b.maxIDs || b.size+idEntrySize > b.maxFrame {
		return false
	}
	*section = append(*section, bytes.Clone(id[:]))
	b.size += idEntrySize
	b.ephemeralOnly = false
	return true
}

func (b *payloadBuilder) addAck(id ID) bool     { return b.addID(&b.p.Acks, id) }
func (b *payloadBuilder) addOffer(id ID) bool   { return b.addID(&b.p.Offers, id) }
func (b *payloadBuilder) addRequest(id ID) bool { return b.addID(&b.p.Requests, id) }

// addMessage appends m, to Payload.messages or Payload.bound_messages
// as its format says, if it fits.
func (b *payloadBuilder) addMessage(m outMessage, ephemeral bool) bool {
	section, field := &b.p.Messages, protowire.Number(5004)
	if m.format == formatBound {
		section, field = &b.p.BoundMessages, 5100
	}
	n := protowire.SizeTag(field) + protowire.SizeBytes(proto.Size(m.m))
	if len(b.p.Messages)+len(b.p.BoundMessages) >= b.maxIDs || b.size+n > b.maxFrame {
		return false
	}
	*section = append(*section, m.m)
	b.size += n
	b.ephemeralOnly = b.ephemeralOnly && ephemeral
	return true
}

func (b *payloadBuilder) empty() bool {
	return len(b.p.Acks)+len(b.p.Offers)+len(b.p.Requests)+len(b.p.Messages)+len(b.p.BoundMessages) == 0
}

// encode returns the Payload's wire form.
func (b *payloadBuilder) encode() ([]byte, error) {
	out, err := proto.Marshal(&b.p)
	if err != nil {
		return nil, fmt.Errorf("mvds: encode payload: %w", err)
	}
	return out, nil
}
