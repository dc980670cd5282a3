// Package framing protects and unprotects MLS messages (RFC 9420 §6): it
// signs FramedContent, wraps it in a PublicMessage with a membership tag or
// encrypts it into a PrivateMessage with the epoch's secret tree, and checks
// and opens both on receipt.
//
// The package holds no group state. The caller passes the GroupContext of
// the message's epoch, the epoch's keys, and a function that gives the
// signature public key of a sender (from the ratchet tree).
package framing

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Errors of message protection. Each is wrapped with context.
var (
	// ErrApplicationPublic: application data may only travel in a
	// PrivateMessage (RFC 9420 §6.2).
	ErrApplicationPublic = errors.New("mls/framing: application data in a PublicMessage")
	// ErrWrongGroup: the message names another group or epoch than the
	// GroupContext it is checked against.
	ErrWrongGroup = errors.New("mls/framing: message for another group or epoch")
	// ErrMembershipTag: a PublicMessage's membership tag is missing or wrong.
	ErrMembershipTag = errors.New("mls/framing: bad membership tag")
	// ErrNotMember: a PrivateMessage can only come from a member.
	ErrNotMember = errors.New("mls/framing: sender is not a member")
	// ErrDecrypt: the sender data or the content does not decrypt.
	ErrDecrypt = errors.New("mls/framing: decryption failed")
	// ErrConfirmationTag: a commit lacks its confirmation tag.
	ErrConfirmationTag = errors.New("mls/framing: commit without confirmation tag")
)

// SignerKey returns the signature public key of a message's sender: for a
// member, the signature_key of its leaf in the ratchet tree. It returns an
// error for a sender that cannot send (a blank or out-of-range leaf, an
// unknown external sender).
type SignerKey func(sender wire.Sender) ([]byte, error)

// contextFor returns ctx if the sender's FramedContentTBS includes the
// GroupContext (member and new_member_commit senders), else nil.
func contextFor(sender wire.Sender, ctx *wire.GroupContext) *wire.GroupContext {
	switch sender.Type {
	case wire.SenderMember, wire.SenderNewMemberCommit:
		return ctx
	}
	return nil
}

// Sign signs content as it will travel in wireFormat and returns the
// AuthenticatedContent (RFC 9420 §6.1). ctx is the GroupContext of the
// content's epoch. For a commit the caller sets Auth.ConfirmationTag
// afterwards: the tag depends on the transcript hash, which covers the
// signature.
func Sign(s *suite.Suite, wireFormat wire.WireFormat, content wire.FramedContent, ctx *wire.GroupContext, signaturePriv []byte) (*wire.AuthenticatedContent, error) {
	ac := &wire.AuthenticatedContent{WireFormat: wireFormat, Content: content}
	tbs, err := ac.TBS(contextFor(content.Sender, ctx))
	if err != nil {
		return nil, fmt.Errorf("mls/framing: sign: %w", err)
	}
	if ac.Auth.Signature, err = s.SignWithLabel(signaturePriv, "FramedContentTBS", tbs); err != nil {
		return nil, fmt.Errorf("mls/framing: sign: %w", err)
	}
	return ac, nil
}

// Verify checks the signature of ac with the sender's key (RFC 9420 §6.1)
// and that a commit carries a confirmation tag.
func Verify(s *suite.Suite, ac *wire.AuthenticatedContent, ctx *wire.GroupContext, signerKey SignerKey) error {
	pub, err := signerKey(ac.Content.Sender)
	if err != nil {
		return fmt.Errorf("mls/framing: verify: signer: %w", err)
	}
	tbs, err := ac.TBS(contextFor(ac.Content.Sender, ctx))
	if err != nil {
		return fmt.Errorf("mls/framing: verify: %w", err)
	}
	if err := s.VerifyWithLabel(pub, "FramedContentTBS", tbs, ac.Auth.Signature); err != nil {
		return fmt.Errorf("mls/framing: verify: %w", err)
	}
	if ac.Content.ContentType == wire.ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return ErrConfirmationTag
	}
	return nil
}

// checkGroup reports whether the message's group and epoch are ctx's.
func checkGroup(groupID []byte, epoch uint64, ctx *wire.GroupContext) error {
	if !bytes.Equal(groupID, ctx.GroupID) || epoch != ctx.Epoch {
		return fmt.Errorf("%w: message for epoch %d, context at epoch %d", ErrWrongGroup, epoch, ctx.Epoch)
	}
	return nil
}
