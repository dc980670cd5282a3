package doubleratchet

import (
	"errors"

	"github.com/strata-msg/strata/plugins/doubleratchet/ratchet"
	"github.com/strata-msg/strata/plugins/doubleratchet/senderkey"
	"github.com/strata-msg/strata/plugins/doubleratchet/x3dh"
)

// Errors of the seal and open paths. Every frame the layer drops is
// dropped for one of them, and counted under the Health counter that
// dropReason names.
var (
	// ErrUnknownContact: the frame's peer is not a contact.
	ErrUnknownContact = errors.New("doubleratchet: peer is not a contact")
	// ErrUnknownConversation: a group send to a conversation never set.
	ErrUnknownConversation = errors.New("doubleratchet: unknown conversation")
	// ErrNotMember: a message in a known conversation from a contact that
	// is not one of its members.
	ErrNotMember = errors.New("doubleratchet: sender is not a member of the conversation")
	// ErrConversationMismatch: the frame's conversation is not the one the
	// message was sealed in (the layer sends the conversation encrypted).
	ErrConversationMismatch = errors.New("doubleratchet: frame conversation differs from the sealed one")
	// ErrMalformed: the bytes are not a well-formed envelope or plaintext.
	ErrMalformed = errors.New("doubleratchet: malformed message")
	// ErrVersion: an envelope version this layer does not speak.
	ErrVersion = errors.New("doubleratchet: unsupported wire version")
	// ErrOversize: a payload above the layer's limits.
	ErrOversize = errors.New("doubleratchet: message too large")
	// ErrUnknownSession: no session with the sender opens the message.
	ErrUnknownSession = errors.New("doubleratchet: no session opens the message")
	// ErrReplay: a message, or a session's initial message, seen before.
	ErrReplay = errors.New("doubleratchet: replayed message")
	// ErrUnknownPreKey: an initial message names a prekey this node does
	// not have (never had, already used, or past its retention).
	ErrUnknownPreKey = errors.New("doubleratchet: unknown or used prekey")
	// ErrDowngrade: an X3DH initial message where both sides advertise a
	// post-quantum prekey, so PQXDH was due.
	ErrDowngrade = errors.New("doubleratchet: X3DH where PQXDH was due")
	// ErrBadBundle: a bundle that does not verify, or is not signed by the
	// contact's pinned key.
	ErrBadBundle = errors.New("doubleratchet: bad bundle")
	// ErrStaleBundle: a bundle issued before the one held for the contact.
	ErrStaleBundle = errors.New("doubleratchet: stale bundle")
	// ErrNoIdentity: the layer runs without a node identity.
	ErrNoIdentity = errors.New("doubleratchet: no node identity")
	// ErrUnknownSenderKey: a group message whose sender key never arrived
	// (it waited pendingGroupTTL, or was pushed out of the waiting room).
	ErrUnknownSenderKey = errors.New("doubleratchet: group message for an unknown sender key")
	// ErrSenderMismatch: a group message that the privacy layer says came
	// from one contact, sealed with another member's sender key.
	ErrSenderMismatch = errors.New("doubleratchet: group message from another member than its sender key's")
)

// dropReason maps an error of the seal or open path to the suffix of its
// dropped_* Health counter.
func dropReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrUnknownContact, "unknown_contact"},
		{ErrUnknownConversation, "unknown_conversation"},
		{ErrNotMember, "not_member"},
		{ErrConversationMismatch, "conversation_mismatch"},
		{ErrVersion, "version"},
		{ErrOversize, "oversize"},
		{ErrUnknownSession, "unknown_session"},
		{ErrReplay, "replay"},
		{ErrUnknownPreKey, "unknown_prekey"},
		{ErrDowngrade, "downgrade"},
		{ErrBadBundle, "bad_bundle"},
		{ErrStaleBundle, "stale_bundle"},
		{ErrNoIdentity, "no_identity"},
		{ErrUnknownSenderKey, "unknown_sender_key"},
		{ErrSenderMismatch, "sender_mismatch"},
		{senderkey.ErrSignature, "bad_signature"},
		{senderkey.ErrDecrypt, "bad_ciphertext"},
		{senderkey.ErrKeyID, "unknown_sender_key"},
		{senderkey.ErrReplay, "replay"},
		{senderkey.ErrTooFar, "too_far_ahead"},
		{senderkey.ErrMalformed, "malformed"},
		{ratchet.ErrDuplicate, "replay"},
		{ratchet.ErrTooFarAhead, "too_far_ahead"},
		{ratchet.ErrAuth, "bad_ciphertext"},
		{ratchet.ErrHeader, "unknown_session"},
		{ratchet.ErrBadKey, "bad_key"},
		{ratchet.ErrMalformed, "malformed"},
		{x3dh.ErrBadSignature, "bad_bundle"},
		{x3dh.ErrIdentityMismatch, "identity_mismatch"},
		{x3dh.ErrBadKey, "bad_key"},
		{x3dh.ErrVersion, "version"},
		{x3dh.ErrMalformed, "malformed"},
		{ErrMalformed, "malformed"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

// dropReasons are every reason dropReason can return, so that Health
// reports each counter from the start.
var dropReasons = []string{
	"unknown_contact", "unknown_conversation", "not_member", "conversation_mismatch",
	"version", "oversize", "unknown_session", "replay", "unknown_prekey", "downgrade",
	"bad_bundle", "stale_bundle", "no_identity", "too_far_ahead", "bad_ciphertext", "bad_key",
	"identity_mismatch", "malformed", "store_error", "wrong_direction", "other",
	"unknown_sender_key", "sender_mismatch", "bad_signature",
}
