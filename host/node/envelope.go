package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/conversations"
)

// Every message the host sends travels in a signed envelope
// (appv1.SignedMessage): the payload the top layer carries is the
// envelope, and the receiving host opens it before anything else looks at
// the message. The sync layer relays messages among members and names
// their author in a field nothing authenticates, and a secure layer
// authenticates the member a frame comes from, not the conversation a
// message was written for; the signature covers both, so a member can
// neither deliver a message as another member nor replay an old one into
// another conversation. It is Status's application metadata message
// (a signature by the author over the payload) with the conversation and
// a nonce added under the signature.

// envelopeVersion is MessageEnvelope.version.
const envelopeVersion = 1

// signatureContext separates the envelope's signatures from every other
// signature the identity key makes (contact cards sign "strata-card-v1").
var signatureContext = []byte("strata-message-v1\x00")

// idContext separates an envelope's id from other hashes of the same bytes.
var idContext = []byte("strata-message-id-v1\x00")

// nonceSize is the length of MessageEnvelope.nonce.
const nonceSize = 16

// MaxPayload is the largest payload the host sends or takes: larger ones
// are refused by Send and dropped on receipt (reason "oversize"). The
// layers' own limits may be lower (mvds takes 64 KiB, envelope included);
// the envelope adds at most EnvelopeOverhead bytes to a payload.
const MaxPayload = 1 << 20

// EnvelopeOverhead bounds what the signed envelope adds to a payload: the
// signature, the author's key, the conversation id (at most
// conversations.MaxIDSize bytes), the time, the nonce and the protobuf
// framing.
const EnvelopeOverhead = 448

// maxEnvelope bounds the encoding of a SignedMessage a host opens.
const maxEnvelope = MaxPayload + EnvelopeOverhead

// sealed is a message in its envelope, as sent.
type sealed struct {
	// wire is the serialized SignedMessage: the payload the layers carry.
	wire []byte
	// id names the envelope (envelopeID).
	id []byte
}

// seal puts payload in a signed envelope by the node's identity, for
// conversation conv.
func (n *Node) seal(conv, payload []byte) (*sealed, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("a payload is at most %d bytes, got %d", MaxPayload, len(payload))
	}
	if n.closing.Load() {
		return nil, errors.New("the node is closing")
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	env, err := proto.Marshal(&appv1.MessageEnvelope{
		Version:       envelopeVersion,
		Author:        n.id.Public(),
		Conversation:  conv,
		SentUnixMilli: time.Now().UnixMilli(),
		Nonce:         nonce,
		Payload:       payload,
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	sig := n.id.Sign(signedBytes(env))
	wire, err := proto.Marshal(&appv1.SignedMessage{Envelope: env, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return &sealed{wire: wire, id: envelopeID(env)}, nil
}

// signedBytes is what an envelope's signature covers.
func signedBytes(env []byte) []byte {
	return append(bytes.Clone(signatureContext), env...)
}

// envelopeID names an envelope: SHA-256 over a label and the envelope's
// bytes as signed. The nonce makes it unique per message; the history keeps
// each id once per conversation, so a replay in the same conversation is
// recognised.
func envelopeID(env []byte) []byte {
	h := sha256.New()
	h.Write(idContext)
	h.Write(env)
	return h.Sum(nil)
}

// opened is an envelope whose signature verified.
type opened struct {
	author       ed25519.PublicKey
	conversation []byte
	payload      []byte
	id           []byte
	// sent is when the author says it sent the message.
	sent time.Time
}

// Reasons an envelope is refused (openEnvelope's errors).
var (
	errMalformed = errors.New("not a signed message envelope")
	errForged    = errors.New("the signature does not verify with the named author's key")
)

// openEnvelope decodes a SignedMessage and verifies its signature with the
// author key the envelope names; whether that author may write in the
// conversation is the caller's to check. It never panics.
func openEnvelope(wire []byte) (*opened, error) {
	if len(wire) > maxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errMalformed, len(wire), maxEnvelope)
	}
	var sm appv1.SignedMessage
	if err := proto.Unmarshal(wire, &sm); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	var env appv1.MessageEnvelope
	if err := proto.Unmarshal(sm.GetEnvelope(), &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", errMalformed, err)
	}
	switch {
	case env.GetVersion() != envelopeVersion:
		return nil, fmt.Errorf("%w: version %d, want %d", errMalformed, env.GetVersion(), envelopeVersion)
	case len(env.GetAuthor()) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("%w: an author key of %d bytes", errMalformed, len(env.GetAuthor()))
	case len(env.GetConversation()) == 0 || len(env.GetConversation()) > conversations.MaxIDSize:
		return nil, fmt.Errorf("%w: a conversation id of %d bytes", errMalformed, len(env.GetConversation()))
	case len(env.GetNonce()) != nonceSize:
		return nil, fmt.Errorf("%w: a nonce of %d bytes", errMalformed, len(env.GetNonce()))
	case len(env.GetPayload()) > MaxPayload:
		return nil, fmt.Errorf("%w: a payload of %d bytes, at most %d", errMalformed, len(env.GetPayload()), MaxPayload)
	case len(sm.GetSignature()) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: a signature of %d bytes", errMalformed, len(sm.GetSignature()))
	}
	if !ed25519.Verify(ed25519.PublicKey(env.GetAuthor()), signedBytes(sm.GetEnvelope()), sm.GetSignature()) {
		return nil, errForged
	}
	return &opened{
		author:       ed25519.PublicKey(env.GetAuthor()),
		conversation: env.GetConversation(),
		payload:      env.GetPayload(),
		id:           envelopeID(sm.GetEnvelope()),
		sent:         time.UnixMilli(env.GetSentUnixMilli()),
	}, nil
}
