package layer

import (
	"errors"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/framing"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/schedule"
)

// Errors of the seal and open paths. Every frame the layer drops is
// dropped for one of them and counted under dropped_<reason> (dropReason).
var (
	// ErrMalformed: bytes that are not a well-formed envelope, card
	// section or MLS message.
	ErrMalformed = errors.New("mls: malformed message")
	// ErrVersion: an envelope or card section of a version this layer does
	// not speak.
	ErrVersion = errors.New("mls: unsupported version")
	// ErrOversize: a payload above the layer's limits.
	ErrOversize = errors.New("mls: message too large")
	// ErrUnknownConversation: a DOWN frame for a conversation never set.
	ErrUnknownConversation = errors.New("mls: unknown conversation")
	// ErrNotMember: a DOWN frame for a peer that is not a member of its
	// conversation, or a message from a member's own leaf reflected back.
	ErrNotMember = errors.New("mls: not a member of the conversation")
	// ErrBadPeer: a DOWN frame whose peer is not a 32-byte identity.
	ErrBadPeer = errors.New("mls: peer is not an identity")
	// ErrConversationMismatch: an UP frame whose conversation is not the
	// group the MLS message names.
	ErrConversationMismatch = errors.New("mls: frame conversation differs from the message's group")
	// ErrReplay: an application message delivered before.
	ErrReplay = errors.New("mls: replayed message")
	// ErrStale: a handshake message of an epoch the group left beyond the
	// settling window.
	ErrStale = errors.New("mls: message of an epoch left behind")
	// ErrUnknownKeyPackage: a Welcome for none of this node's KeyPackages
	// (used already, expired, or for someone else).
	ErrUnknownKeyPackage = errors.New("mls: Welcome for no KeyPackage of this node")
	// ErrHeldOverflow: a held frame pushed out by newer ones, or kept past
	// its time.
	ErrHeldOverflow = errors.New("mls: held frame dropped")
	// ErrBadCard: a contact-card section that does not verify.
	ErrBadCard = errors.New("mls: bad contact-card section")
	// ErrStore: the database failed; the frame was not handled.
	ErrStore = errors.New("mls: storage failed")
)

// dropReason maps an error of the seal or open path to the suffix of its
// dropped_* Health counter.
func dropReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrVersion, "version"},
		{ErrOversize, "oversize"},
		{ErrUnknownConversation, "unknown_conversation"},
		{ErrNotMember, "not_member"},
		{ErrBadPeer, "bad_peer"},
		{ErrConversationMismatch, "conversation_mismatch"},
		{ErrReplay, "replay"},
		{ErrStale, "stale_epoch"},
		{ErrUnknownKeyPackage, "unknown_keypackage"},
		{ErrHeldOverflow, "held_overflow"},
		{ErrBadCard, "bad_card"},
		{ErrStore, "store_error"},
		{group.ErrRejectedLeaf, "rejected_leaf"},
		{group.ErrNotMember, "removed"},
		{group.ErrWrongEpoch, "wrong_epoch"},
		{group.ErrWrongGroup, "wrong_group"},
		{group.ErrInvalidWelcome, "bad_welcome"},
		{group.ErrConfirmationTag, "bad_commit"},
		{group.ErrInvalidCommit, "bad_commit"},
		{group.ErrInvalidProposal, "bad_commit"},
		{group.ErrInvalidLeaf, "bad_commit"},
		{group.ErrInvalidKeyPackage, "bad_commit"},
		{group.ErrUnknownProposal, "bad_commit"},
		{group.ErrMissingPSK, "bad_commit"},
		{group.ErrUnsupported, "unsupported"},
		{schedule.ErrKeyConsumed, "replay"},
		{schedule.ErrTooFarAhead, "too_far_ahead"},
		{framing.ErrNotMember, "not_member"},
		{framing.ErrDecrypt, "bad_ciphertext"},
		{framing.ErrMembershipTag, "bad_commit"},
		{codec.ErrShort, "malformed"},
		{ErrMalformed, "malformed"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "bad_message"
}

// dropReasons are every reason dropReason can return, so that Health
// reports each counter from the start.
var dropReasons = []string{
	"version", "oversize", "unknown_conversation", "not_member", "bad_peer", "conversation_mismatch",
	"replay", "stale_epoch", "unknown_keypackage", "held_overflow", "bad_card", "store_error",
	"rejected_leaf", "removed", "wrong_epoch", "wrong_group", "bad_welcome", "bad_commit",
	"unsupported", "too_far_ahead", "bad_ciphertext", "malformed", "bad_message", "wrong_direction",
}
