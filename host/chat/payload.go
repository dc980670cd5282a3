// Package chat is the one place where a chat payload (strata.chat.v1
// ChatPayload, core/api/chat/v1) is checked: Decode turns the bytes of a
// message's payload into a Message or refuses them with an *Error that names
// the Reason, and the Group state machine applies the membership events of
// a private group in causal order. A client shows only what Decode accepted;
// a payload of a content type or a version this package does not know is
// accepted as Unsupported, to be kept and shown as such, never dropped.
//
// docs/chat.md describes the payload, the rules and what is not built.
package chat

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// Limits on a payload. Decode refuses a payload that exceeds any of them.
const (
	// Version is the ChatPayload.version this package writes and reads in
	// full. A later version is accepted as Unsupported.
	Version = 1
	// MaxPayloadSize is the largest payload, in bytes: well inside what
	// every sync layer carries (mvds: 64 KiB with the host's envelope).
	MaxPayloadSize = 48 << 10
	// MaxTextSize is the largest text of a message, a reply or an edit, in
	// bytes of UTF-8.
	MaxTextSize = 16 << 10
	// MaxEmojiSize is the largest reaction, in bytes of UTF-8.
	MaxEmojiSize = 32
	// MaxMessageIDSize is the largest response_to: a message id, which is
	// 32 bytes with every shipped sync layer and without one.
	MaxMessageIDSize = 64
	// MaxEventMembers is the most identities one membership event names.
	MaxEventMembers = 256
	// MaxReceiptIDs is the most messages one receipt names.
	MaxReceiptIDs = 256
	// MaxClockSkew is how far a payload's clock may run ahead of the time
	// its envelope was signed, and how far its timestamp may be from that
	// time either way (Status's 120 seconds).
	MaxClockSkew = 2 * time.Minute
	// PublicChatIDSize is the length of a public chat's id
	// (conversations.PublicChatID).
	PublicChatIDSize = 16
)

// Reason names why Decode refused a payload, or why a Group refused an
// event or a message. It is also the counter a refusal is counted under.
type Reason string

// Reasons Decode refuses a payload.
const (
	// ReasonOversize: the payload is larger than MaxPayloadSize.
	ReasonOversize Reason = "oversize"
	// ReasonMalformed: the bytes are not a ChatPayload.
	ReasonMalformed Reason = "malformed"
	// ReasonVersion: version is 0 (unset).
	ReasonVersion Reason = "version"
	// ReasonClock: the clock is unset, below the timestamp, or too far
	// ahead of the envelope's time.
	ReasonClock Reason = "clock"
	// ReasonTimestamp: the timestamp is unset or too far from the
	// envelope's time.
	ReasonTimestamp Reason = "timestamp"
	// ReasonChatID: chat_id is not the envelope's conversation, or not an
	// id of the payload's chat type.
	ReasonChatID Reason = "chat_id"
	// ReasonChatType: the chat type is unset, or does not allow the
	// content type.
	ReasonChatType Reason = "chat_type"
	// ReasonContentType: the content type is unset.
	ReasonContentType Reason = "content_type"
	// ReasonBody: the body is missing, or not the one the content type
	// names.
	ReasonBody Reason = "body"
	// ReasonText: a text is empty or longer than MaxTextSize.
	ReasonText Reason = "text"
	// ReasonEmoji: a reaction is empty, too long, or holds a control or
	// space character.
	ReasonEmoji Reason = "emoji"
	// ReasonResponseTo: response_to is missing where the content type
	// needs it, present where it does not, or too long.
	ReasonResponseTo Reason = "response_to"
	// ReasonEvent: a membership event is not well formed (its type is
	// unset, its actor or a member is not a 32-byte key, a member is
	// repeated, members or name are where the type has none).
	ReasonEvent Reason = "event"
	// ReasonReceipt: a receipt's type is unset, or it names no message,
	// more than MaxReceiptIDs, one twice, or an id that is empty or
	// longer than MaxMessageIDSize.
	ReasonReceipt Reason = "receipt"
)

// Error is a refusal: the Reason, and what exactly was wrong.
type Error struct {
	Reason Reason
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	return "chat: " + string(e.Reason) + ": " + e.Detail
}

// refuse returns an *Error.
func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of a refusal, or "" if err is not one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Envelope is what the host's signed envelope says about a message, which
// Decode checks the payload against. The host verified it: Author wrote the
// message for Conversation at Sent.
type Envelope struct {
	// Author is the identity that signed the message.
	Author ed25519.PublicKey
	// Conversation is the conversation the message was signed for; the
	// payload's chat_id must be the same bytes.
	Conversation []byte
	// Sent is when the author says it sent the message (the envelope's
	// signed time): the payload's timestamp must agree with it. The zero
	// time skips that check.
	Sent time.Time
	// Received is when this node took the message (the API's
	// Message.time_unix_nano): no message is written after it is
	// received, so its timestamp and clock may not be more than
	// MaxClockSkew ahead of it. This is the check that keeps a chat's
	// clock from being pushed into the future, since the author signs
	// Sent too. The zero time skips it.
	Received time.Time
	// Self is the local node's identity, if known: a 1:1 message from
	// another identity must then be in the 1:1 conversation of the two.
	Self ed25519.PublicKey
	// PublicChat is the name of the public chat the conversation is, if
	// known: a public chat's id must then be the id of that name.
	PublicChat string
}

// Message is a payload that Decode accepted.
type Message struct {
	// Version is the payload's version.
	Version uint32
	// Clock is the payload's Lamport clock.
	Clock uint64
	// Timestamp is the sender's wall time.
	Timestamp time.Time
	// ChatID is the conversation the message is for.
	ChatID []byte
	// ChatType is the payload's chat type.
	ChatType chatv1.ChatType
	// ContentType is the payload's content type.
	ContentType chatv1.ContentType
	// ResponseTo is the id of the message replied or reacted to, edited
	// or deleted.
	ResponseTo []byte
	// Text is the text of a message, a reply or an edit.
	Text string
	// Emoji and Retracted are a reaction.
	Emoji     string
	Retracted bool
	// Event is a membership event; nil for other content types.
	Event *MembershipEvent
	// Receipt is a receipt; nil for other content types.
	Receipt *Receipt

	// Unsupported is set for a payload of a version, content type or chat
	// type this package does not know: a client keeps it and shows it as
	// unsupported (UnsupportedWhy says what), and acts on nothing in it.
	Unsupported    bool
	UnsupportedWhy string
}

// MembershipEvent is the body of a membership event, as the payload states
// it; whether it takes effect is the Group's to decide.
type MembershipEvent struct {
	Type    chatv1.MembershipType
	Actor   ed25519.PublicKey
	Members []ed25519.PublicKey
	Name    string
}

// Receipt is the body of a receipt.
type Receipt struct {
	Type chatv1.ReceiptType
	// IDs are the messages it is for.
	IDs [][]byte
}

// Marker begins the payload of every message that is a chat payload, as
// Encode writes it: a zero byte (which no text, and no protobuf message,
// begins with), a tag and a zero byte. The host checks a payload that
// begins with it as a chat payload on receipt, and takes any other payload
// as opaque bytes of an application of its own.
const Marker = "\x00strata-chat-v1\x00"

// IsPayload reports whether payload is marked as a chat payload.
func IsPayload(payload []byte) bool { return bytes.HasPrefix(payload, []byte(Marker)) }

// Encode returns the bytes a client sends as a message's payload
// (strata.app.v1 SendRequest.payload): Marker and the payload's protobuf
// encoding. It does not check the payload: Validate does.
func Encode(p *chatv1.ChatPayload) ([]byte, error) {
	b, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("chat: encode: %w", err)
	}
	return append([]byte(Marker), b...), nil
}

// Decode checks that payload is a conforming chat payload for the message
// env describes, and returns it. The payload is the protobuf encoding,
// with or without Marker in front (the marker is what tells the host to
// check it; a client may hold either). A refusal is an *Error. Decode
// never panics; a client shows nothing that Decode refused.
func Decode(payload []byte, env Envelope) (*Message, error) {
	payload, _ = bytes.CutPrefix(payload, []byte(Marker))
	if len(payload) > MaxPayloadSize {
		return nil, refuse(ReasonOversize, "%d bytes, at most %d", len(payload), MaxPayloadSize)
	}
	var p chatv1.ChatPayload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return nil, refuse(ReasonMalformed, "%v", err)
	}
	return check(&p, env)
}

// Validate checks a payload before it is sent: it is Decode of its
// encoding, so what one node sends every other node accepts.
func Validate(p *chatv1.ChatPayload, env Envelope) error {
	b, err := proto.Marshal(p)
	if err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	_, err = Decode(b, env)
	return err
}

// check applies the rules to a decoded payload.
func check(p *chatv1.ChatPayload, env Envelope) (*Message, error) {
	if p.GetVersion() == 0 {
		return nil, refuse(ReasonVersion, "version is unset")
	}
	m := &Message{
		Version:     p.GetVersion(),
		Clock:       p.GetClock(),
		ChatID:      p.GetChatId(),
		ChatType:    p.GetChatType(),
		ContentType: p.GetContentType(),
		ResponseTo:  p.GetResponseTo(),
	}
	// The header is the same in every version: check it first.
	if err := checkTime(p, env); err != nil {
		return nil, err
	}
	m.Timestamp = time.UnixMilli(int64(p.GetTimestamp()))
	if len(p.GetChatId()) == 0 || !bytes.Equal(p.GetChatId(), env.Conversation) {
		return nil, refuse(ReasonChatID, "chat_id is not the conversation the message was signed for")
	}
	if p.GetChatType() == chatv1.ChatType_CHAT_TYPE_UNSPECIFIED {
		return nil, refuse(ReasonChatType, "chat_type is unset")
	}
	if p.GetContentType() == chatv1.ContentType_CONTENT_TYPE_UNSPECIFIED {
		return nil, refuse(ReasonContentType, "content_type is unset")
	}
	if len(m.ResponseTo) > MaxMessageIDSize {
		return nil, refuse(ReasonResponseTo, "response_to is %d bytes, at most %d", len(m.ResponseTo), MaxMessageIDSize)
	}
	switch {
	case p.GetVersion() > Version:
		return unsupported(m, fmt.Sprintf("payload version %d", p.GetVersion())), nil
	case chatv1.ChatType_name[int32(p.GetChatType())] == "":
		return unsupported(m, fmt.Sprintf("chat type %d", p.GetChatType())), nil
	case chatv1.ContentType_name[int32(p.GetContentType())] == "":
		return unsupported(m, fmt.Sprintf("content type %d", p.GetContentType())), nil
	}
	if err := checkChatID(p.GetChatType(), p.GetChatId(), env); err != nil {
		return nil, err
	}
	needsTarget := false
	switch ct := p.GetContentType(); ct {
	case chatv1.ContentType_CONTENT_TYPE_TEXT, chatv1.ContentType_CONTENT_TYPE_REPLY:
		body, ok := p.GetBody().(*chatv1.ChatPayload_Text)
		if !ok {
			return nil, wrongBody(ct, "text")
		}
		if err := checkText(body.Text.GetText()); err != nil {
			return nil, err
		}
		m.Text = body.Text.GetText()
		needsTarget = ct == chatv1.ContentType_CONTENT_TYPE_REPLY
	case chatv1.ContentType_CONTENT_TYPE_REACTION:
		body, ok := p.GetBody().(*chatv1.ChatPayload_Reaction)
		if !ok {
			return nil, wrongBody(ct, "reaction")
		}
		if err := checkEmoji(body.Reaction.GetEmoji()); err != nil {
			return nil, err
		}
		m.Emoji, m.Retracted = body.Reaction.GetEmoji(), body.Reaction.GetRetracted()
		needsTarget = true
	case chatv1.ContentType_CONTENT_TYPE_EDIT:
		body, ok := p.GetBody().(*chatv1.ChatPayload_Edit)
		if !ok {
			return nil, wrongBody(ct, "edit")
		}
		if err := checkText(body.Edit.GetText()); err != nil {
			return nil, err
		}
		m.Text = body.Edit.GetText()
		needsTarget = true
	case chatv1.ContentType_CONTENT_TYPE_DELETE:
		if _, ok := p.GetBody().(*chatv1.ChatPayload_Delete); !ok {
			return nil, wrongBody(ct, "delete")
		}
		needsTarget = true
	case chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP:
		body, ok := p.GetBody().(*chatv1.ChatPayload_Membership)
		if !ok {
			return nil, wrongBody(ct, "membership")
		}
		if p.GetChatType() != chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP {
			return nil, refuse(ReasonChatType, "membership events are for private groups, not %s", p.GetChatType())
		}
		ev, unknown, err := checkEvent(body.Membership)
		if err != nil {
			return nil, err
		}
		if unknown != "" {
			return unsupported(m, unknown), nil
		}
		m.Event = ev
	case chatv1.ContentType_CONTENT_TYPE_RECEIPT:
		body, ok := p.GetBody().(*chatv1.ChatPayload_Receipt)
		if !ok {
			return nil, wrongBody(ct, "receipt")
		}
		if p.GetChatType() == chatv1.ChatType_CHAT_TYPE_PUBLIC {
			return nil, refuse(ReasonChatType, "no receipts in a public chat")
		}
		r, unknown, err := checkReceipt(body.Receipt)
		if err != nil {
			return nil, err
		}
		if unknown != "" {
			return unsupported(m, unknown), nil
		}
		m.Receipt = r
	}
	switch {
	case needsTarget && len(m.ResponseTo) == 0:
		return nil, refuse(ReasonResponseTo, "%s needs response_to", p.GetContentType())
	case !needsTarget && len(m.ResponseTo) != 0:
		return nil, refuse(ReasonResponseTo, "%s has no response_to", p.GetContentType())
	}
	return m, nil
}

// unsupported marks m as a message to keep and show as unsupported.
func unsupported(m *Message, why string) *Message {
	m.Unsupported, m.UnsupportedWhy = true, why
	return m
}

// wrongBody is the refusal of a payload whose body is not the one its
// content type names.
func wrongBody(ct chatv1.ContentType, want string) *Error {
	return refuse(ReasonBody, "%s needs a %s body", ct, want)
}

// checkTime checks the clock and the timestamp: both set, the clock not
// below the timestamp (Status's clock is max(timestamp, last clock + 1));
// neither more than MaxClockSkew ahead of the time of receipt, so that no
// one can push a chat's clock far into the future; and against the
// envelope's time, the timestamp within MaxClockSkew either way and the
// clock not more than MaxClockSkew ahead (Status's rule against the
// transport's time).
func checkTime(p *chatv1.ChatPayload, env Envelope) error {
	ts, clock := p.GetTimestamp(), p.GetClock()
	const maxMilli = uint64(1<<63-1) / 2 // far beyond any real time; keeps the arithmetic below in range
	switch {
	case ts == 0:
		return refuse(ReasonTimestamp, "timestamp is unset")
	case ts > maxMilli:
		return refuse(ReasonTimestamp, "timestamp %d is out of range", ts)
	case clock == 0:
		return refuse(ReasonClock, "clock is unset")
	case clock < ts:
		return refuse(ReasonClock, "clock %d is below the timestamp %d", clock, ts)
	}
	skew := MaxClockSkew.Milliseconds()
	if !env.Received.IsZero() {
		recv := env.Received.UnixMilli()
		if recv < 0 {
			return refuse(ReasonTimestamp, "the time of receipt is before 1970")
		}
		if ts > uint64(recv+skew) {
			return refuse(ReasonTimestamp, "timestamp is %v ahead of the time of receipt, at most %v",
				time.Duration(int64(ts)-recv)*time.Millisecond, MaxClockSkew)
		}
		if clock > uint64(recv+skew) {
			return refuse(ReasonClock, "clock %d is more than %v ahead of the time of receipt", clock, MaxClockSkew)
		}
	}
	if env.Sent.IsZero() {
		return nil
	}
	sent := env.Sent.UnixMilli()
	if sent < 0 {
		return refuse(ReasonTimestamp, "the envelope's time is before 1970")
	}
	if d := int64(ts) - sent; d > skew || d < -skew {
		return refuse(ReasonTimestamp, "timestamp is %v from the envelope's time, at most %v", time.Duration(d)*time.Millisecond, MaxClockSkew)
	}
	if clock > uint64(sent+skew) {
		return refuse(ReasonClock, "clock %d is more than %v ahead of the envelope's time", clock, MaxClockSkew)
	}
	return nil
}

// checkChatID checks that id is an id of chat type t.
func checkChatID(t chatv1.ChatType, id []byte, env Envelope) error {
	switch t {
	case chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE:
		if !isDirectID(id) {
			return refuse(ReasonChatID, "a 1:1 chat's id is dm: and 24 hex digits")
		}
		if len(env.Self) == ed25519.PublicKeySize && len(env.Author) == ed25519.PublicKeySize &&
			!bytes.Equal(env.Self, env.Author) &&
			!bytes.Equal(id, conversations.DirectID(env.Author, env.Self)) {
			return refuse(ReasonChatID, "not the 1:1 chat of the author and this node")
		}
	case chatv1.ChatType_CHAT_TYPE_PUBLIC:
		if len(id) != PublicChatIDSize {
			return refuse(ReasonChatID, "a public chat's id is %d bytes, not %d", PublicChatIDSize, len(id))
		}
		if env.PublicChat != "" && !bytes.Equal(id, conversations.PublicChatID(env.PublicChat)) {
			return refuse(ReasonChatID, "not the id of the public chat %q", env.PublicChat)
		}
	case chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP:
		if isDirectID(id) {
			return refuse(ReasonChatID, "a private group's id cannot be a 1:1 chat's")
		}
		if len(id) > conversations.MaxIDSize {
			return refuse(ReasonChatID, "%d bytes, at most %d", len(id), conversations.MaxIDSize)
		}
	}
	return nil
}

// isDirectID reports whether id has the form of conversations.DirectID.
func isDirectID(id []byte) bool {
	if len(id) != 3+24 || !bytes.HasPrefix(id, []byte("dm:")) {
		return false
	}
	for _, c := range id[3:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkText checks a message's text. The protobuf decoder already refused
// text that is not UTF-8.
func checkText(s string) error {
	switch {
	case s == "":
		return refuse(ReasonText, "text is empty")
	case len(s) > MaxTextSize:
		return refuse(ReasonText, "text is %d bytes, at most %d", len(s), MaxTextSize)
	case !utf8.ValidString(s):
		return refuse(ReasonText, "text is not UTF-8")
	}
	return nil
}

// checkEmoji checks a reaction: short, and nothing a terminal would act
// on or that would show as nothing.
func checkEmoji(s string) error {
	switch {
	case s == "":
		return refuse(ReasonEmoji, "reaction is empty")
	case len(s) > MaxEmojiSize:
		return refuse(ReasonEmoji, "reaction is %d bytes, at most %d", len(s), MaxEmojiSize)
	case !utf8.ValidString(s):
		return refuse(ReasonEmoji, "reaction is not UTF-8")
	}
	for _, r := range s {
		// U+200D (zero-width joiner) and U+FE0F (variation selector) are
		// parts of many emoji; other format characters are not.
		if unicode.IsControl(r) || unicode.IsSpace(r) ||
			(unicode.Is(unicode.Cf, r) && r != 0x200d && r != 0xfe0f) {
			return refuse(ReasonEmoji, "reaction holds %U", r)
		}
	}
	return nil
}

// checkEvent checks a membership event's form. unknown is set, and the
// event nil, for a type this package does not know.
func checkEvent(e *chatv1.MembershipEvent) (ev *MembershipEvent, unknown string, err error) {
	t := e.GetType()
	if t == chatv1.MembershipType_MEMBERSHIP_TYPE_UNSPECIFIED {
		return nil, "", refuse(ReasonEvent, "membership type is unset")
	}
	if chatv1.MembershipType_name[int32(t)] == "" {
		return nil, fmt.Sprintf("membership type %d", t), nil
	}
	if len(e.GetActor()) != ed25519.PublicKeySize {
		return nil, "", refuse(ReasonEvent, "actor is %d bytes, not an identity key", len(e.GetActor()))
	}
	members := e.GetMembers()
	switch t {
	case chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, chatv1.MembershipType_MEMBERSHIP_TYPE_LEAVE:
		if len(members) != 0 {
			return nil, "", refuse(ReasonEvent, "%s names no members, got %d", t, len(members))
		}
	case chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE:
	default:
		if len(members) == 0 {
			return nil, "", refuse(ReasonEvent, "%s names no members", t)
		}
	}
	if len(members) > MaxEventMembers {
		return nil, "", refuse(ReasonEvent, "%d members, at most %d", len(members), MaxEventMembers)
	}
	if e.GetName() != "" && t != chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE {
		return nil, "", refuse(ReasonEvent, "only create names the group")
	}
	if len(e.GetName()) > conversations.MaxNameSize {
		return nil, "", refuse(ReasonEvent, "name is %d bytes, at most %d", len(e.GetName()), conversations.MaxNameSize)
	}
	ev = &MembershipEvent{Type: t, Actor: ed25519.PublicKey(bytes.Clone(e.GetActor())), Name: e.GetName()}
	seen := make(map[string]bool, len(members))
	for i, k := range members {
		if len(k) != ed25519.PublicKeySize {
			return nil, "", refuse(ReasonEvent, "member %d is %d bytes, not an identity key", i, len(k))
		}
		if seen[string(k)] {
			return nil, "", refuse(ReasonEvent, "member %d is repeated", i)
		}
		seen[string(k)] = true
		ev.Members = append(ev.Members, ed25519.PublicKey(bytes.Clone(k)))
	}
	return ev, "", nil
}

// checkReceipt checks a receipt's form. unknown is set, and the receipt
// nil, for a type this package does not know.
func checkReceipt(r *chatv1.Receipt) (rc *Receipt, unknown string, err error) {
	t := r.GetType()
	if t == chatv1.ReceiptType_RECEIPT_TYPE_UNSPECIFIED {
		return nil, "", refuse(ReasonReceipt, "receipt type is unset")
	}
	if chatv1.ReceiptType_name[int32(t)] == "" {
		return nil, fmt.Sprintf("receipt type %d", t), nil
	}
	ids := r.GetMessageIds()
	if len(ids) == 0 || len(ids) > MaxReceiptIDs {
		return nil, "", refuse(ReasonReceipt, "%d message ids, 1 to %d", len(ids), MaxReceiptIDs)
	}
	rc = &Receipt{Type: t}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		switch {
		case len(id) == 0 || len(id) > MaxMessageIDSize:
			return nil, "", refuse(ReasonReceipt, "message id %d is %d bytes, 1 to %d", i, len(id), MaxMessageIDSize)
		case seen[string(id)]:
			return nil, "", refuse(ReasonReceipt, "message id %d is repeated", i)
		}
		seen[string(id)] = true
		rc.IDs = append(rc.IDs, bytes.Clone(id))
	}
	return rc, "", nil
}
