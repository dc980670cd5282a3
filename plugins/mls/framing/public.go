package framing

import (
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// ProtectPublic wraps signed content in a PublicMessage (RFC 9420 §6.2).
// For a member sender it adds
//
//	membership_tag = MAC(membership_key, AuthenticatedContentTBM)
//
// where AuthenticatedContentTBM is FramedContentTBS || FramedContentAuthData.
// Application data is refused (ErrApplicationPublic).
func ProtectPublic(s *suite.Suite, ac *wire.AuthenticatedContent, ctx *wire.GroupContext, membershipKey []byte) (*wire.PublicMessage, error) {
	if ac.Content.ContentType == wire.ContentApplication {
		return nil, ErrApplicationPublic
	}
	if ac.WireFormat != wire.WireFormatPublicMessage {
		return nil, fmt.Errorf("mls/framing: protect public: content signed for wire format %d", ac.WireFormat)
	}
	pm := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == wire.SenderMember {
		tbm, err := ac.TBM(ctx)
		if err != nil {
			return nil, fmt.Errorf("mls/framing: protect public: %w", err)
		}
		pm.MembershipTag = s.MAC(membershipKey, tbm)
	}
	return pm, nil
}

// UnprotectPublic checks a received PublicMessage against the GroupContext
// of the current epoch: group and epoch, the membership tag of a member
// sender, the signature, and that it carries no application data (RFC 9420
// §6.2). It returns the AuthenticatedContent that the message carries.
func UnprotectPublic(s *suite.Suite, pm *wire.PublicMessage, ctx *wire.GroupContext, membershipKey []byte, signerKey SignerKey) (*wire.AuthenticatedContent, error) {
	if pm.Content.ContentType == wire.ContentApplication {
		return nil, ErrApplicationPublic
	}
	if err := checkGroup(pm.Content.GroupID, pm.Content.Epoch, ctx); err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect public: %w", err)
	}
	ac := pm.AuthenticatedContent()
	if pm.Content.Sender.Type == wire.SenderMember {
		tbm, err := ac.TBM(ctx)
		if err != nil {
			return nil, fmt.Errorf("mls/framing: unprotect public: %w", err)
		}
		if !s.VerifyMAC(membershipKey, tbm, pm.MembershipTag) {
			return nil, ErrMembershipTag
		}
	}
	if err := Verify(s, ac, ctx, signerKey); err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect public: %w", err)
	}
	return ac, nil
}
