package testvectors

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/framing"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("message-protection", checkMessageProtection) }

// checkMessageProtection follows the vector's verification steps for a
// Proposal, a Commit and application data sent by leaf 1 of a two-member
// group (RFC 9420 §6):
//   - the vector's PublicMessage (proposal, commit) unprotects with the
//     membership key and signature_pub to the raw content;
//   - protecting the raw content as a PublicMessage with signature_priv gives
//     a message that unprotects again; application data is refused;
//   - the vector's PrivateMessage unprotects with a secret tree of 2 leaves
//     built from encryption_secret, and sender_data_secret, to the raw content;
//   - protecting the raw content as a PrivateMessage gives a message that a
//     fresh receiver tree unprotects again.
func checkMessageProtection(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite             uint16   `json:"cipher_suite"`
		GroupID                 hexBytes `json:"group_id"`
		Epoch                   uint64   `json:"epoch"`
		TreeHash                hexBytes `json:"tree_hash"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		SignaturePriv           hexBytes `json:"signature_priv"`
		SignaturePub            hexBytes `json:"signature_pub"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		MembershipKey           hexBytes `json:"membership_key"`
		Proposal                hexBytes `json:"proposal"`
		ProposalPub             hexBytes `json:"proposal_pub"`
		ProposalPriv            hexBytes `json:"proposal_priv"`
		Commit                  hexBytes `json:"commit"`
		CommitPub               hexBytes `json:"commit_pub"`
		CommitPriv              hexBytes `json:"commit_priv"`
		Application             hexBytes `json:"application"`
		ApplicationPriv         hexBytes `json:"application_priv"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		mp := &mpCase{
			s: s,
			ctx: &wire.GroupContext{
				Version: wire.MLS10, CipherSuite: wire.CipherSuite(v.CipherSuite), GroupID: v.GroupID,
				Epoch: v.Epoch, TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
			},
			sigPriv: v.SignaturePriv, sigPub: v.SignaturePub,
			encryptionSecret: v.EncryptionSecret, senderDataSecret: v.SenderDataSecret,
			membershipKey: v.MembershipKey,
		}
		var errs []error
		for _, c := range []struct {
			ct             wire.ContentType
			raw, pub, priv []byte
		}{
			{wire.ContentProposal, v.Proposal, v.ProposalPub, v.ProposalPriv},
			{wire.ContentCommit, v.Commit, v.CommitPub, v.CommitPriv},
			{wire.ContentApplication, v.Application, nil, v.ApplicationPriv},
		} {
			if err := mp.check(c.ct, c.raw, c.pub, c.priv); err != nil {
				errs = append(errs, fmt.Errorf("content type %d: %w", c.ct, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			t.Errorf("case %d (suite %d): %v", i, v.CipherSuite, err)
			continue
		}
		rep.pass()
	}
}

// mpCase is the group state of one message-protection case.
type mpCase struct {
	s                                                 *suite.Suite
	ctx                                               *wire.GroupContext
	sigPriv, sigPub                                   []byte
	encryptionSecret, senderDataSecret, membershipKey []byte
}

// mpSender is the sender of every message of the vectors.
const mpSender = 1

func (c *mpCase) signerKey(sender wire.Sender) ([]byte, error) {
	if sender.Type != wire.SenderMember || sender.LeafIndex != mpSender {
		return nil, fmt.Errorf("no member %+v in the test group", sender)
	}
	return c.sigPub, nil
}

// keys returns a fresh secret tree of the two-member group.
func (c *mpCase) keys() (framing.EpochKeys, error) {
	tree, err := schedule.NewSecretTree(c.s, c.encryptionSecret, 2, schedule.Retention{})
	return framing.EpochKeys{SenderDataSecret: c.senderDataSecret, SecretTree: tree}, err
}

// body returns the encoding of a content's body, as the vector's raw
// fields hold it.
func mpBody(content *wire.Content) ([]byte, error) {
	switch content.ContentType {
	case wire.ContentProposal:
		return wire.Marshal(&content.Proposal)
	case wire.ContentCommit:
		return wire.Marshal(&content.Commit)
	case wire.ContentApplication:
		return content.ApplicationData, nil
	}
	return nil, fmt.Errorf("content type %d", content.ContentType)
}

func (c *mpCase) sameBody(ac *wire.AuthenticatedContent, ct wire.ContentType, raw []byte) error {
	if ac.Content.ContentType != ct {
		return fmt.Errorf("content type %d, want %d", ac.Content.ContentType, ct)
	}
	got, err := mpBody(&ac.Content.Content)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, raw) {
		return fmt.Errorf("content %x, want %x", got, raw)
	}
	return nil
}

// roundTrip encodes m as an MLSMessage and decodes it again, as a receiver
// would see it.
func mpRoundTrip(m *wire.MLSMessage) (*wire.MLSMessage, error) {
	b, err := wire.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out wire.MLSMessage
	return &out, wire.Unmarshal(b, &out)
}

func (c *mpCase) check(ct wire.ContentType, raw, pubMsg, privMsg []byte) error {
	content := wire.Content{ContentType: ct}
	var confirmationTag []byte
	switch ct {
	case wire.ContentProposal:
		if err := wire.Unmarshal(raw, &content.Proposal); err != nil {
			return err
		}
	case wire.ContentCommit:
		if err := wire.Unmarshal(raw, &content.Commit); err != nil {
			return err
		}
	case wire.ContentApplication:
		content.ApplicationData = raw
	}

	// The vector's PublicMessage.
	if pubMsg != nil {
		var m wire.MLSMessage
		if err := wire.Unmarshal(pubMsg, &m); err != nil {
			return err
		}
		if m.PublicMessage == nil {
			return fmt.Errorf("pub: wire format %d, want a PublicMessage", m.WireFormat)
		}
		ac, err := framing.UnprotectPublic(c.s, m.PublicMessage, c.ctx, c.membershipKey, c.signerKey)
		if err != nil {
			return fmt.Errorf("pub: %w", err)
		}
		if err := c.sameBody(ac, ct, raw); err != nil {
			return fmt.Errorf("pub: %w", err)
		}
		confirmationTag = ac.Auth.ConfirmationTag
		// A flipped membership tag must be refused.
		m.PublicMessage.MembershipTag[0] ^= 1
		if _, err := framing.UnprotectPublic(c.s, m.PublicMessage, c.ctx, c.membershipKey, c.signerKey); !errors.Is(err, framing.ErrMembershipTag) {
			return fmt.Errorf("pub: bad membership tag: %v, want ErrMembershipTag", err)
		}
	}

	fc := wire.FramedContent{
		GroupID: c.ctx.GroupID, Epoch: c.ctx.Epoch,
		Sender:            wire.Sender{Type: wire.SenderMember, LeafIndex: mpSender},
		AuthenticatedData: []byte{},
		Content:           content,
	}

	// Our own PublicMessage.
	ac, err := framing.Sign(c.s, wire.WireFormatPublicMessage, fc, c.ctx, c.sigPriv)
	if err != nil {
		return err
	}
	if ct == wire.ContentCommit {
		if confirmationTag == nil {
			return errors.New("no confirmation tag in the vector's commit")
		}
		ac.Auth.ConfirmationTag = confirmationTag
	}
	pm, err := framing.ProtectPublic(c.s, ac, c.ctx, c.membershipKey)
	if ct == wire.ContentApplication {
		if !errors.Is(err, framing.ErrApplicationPublic) {
			return fmt.Errorf("application data as PublicMessage: %v, want ErrApplicationPublic", err)
		}
	} else {
		if err != nil {
			return fmt.Errorf("protect public: %w", err)
		}
		m, err := mpRoundTrip(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm})
		if err != nil {
			return fmt.Errorf("protect public: %w", err)
		}
		got, err := framing.UnprotectPublic(c.s, m.PublicMessage, c.ctx, c.membershipKey, c.signerKey)
		if err != nil {
			return fmt.Errorf("unprotect own public: %w", err)
		}
		if err := c.sameBody(got, ct, raw); err != nil {
			return fmt.Errorf("unprotect own public: %w", err)
		}
	}

	// The vector's PrivateMessage.
	var m wire.MLSMessage
	if err := wire.Unmarshal(privMsg, &m); err != nil {
		return err
	}
	if m.PrivateMessage == nil {
		return fmt.Errorf("priv: wire format %d, want a PrivateMessage", m.WireFormat)
	}
	keys, err := c.keys()
	if err != nil {
		return err
	}
	got, err := framing.UnprotectPrivate(c.s, m.PrivateMessage, c.ctx, keys, c.signerKey)
	if err != nil {
		return fmt.Errorf("priv: %w", err)
	}
	if err := c.sameBody(got, ct, raw); err != nil {
		return fmt.Errorf("priv: %w", err)
	}
	if _, err := framing.UnprotectPrivate(c.s, m.PrivateMessage, c.ctx, keys, c.signerKey); !errors.Is(err, schedule.ErrKeyConsumed) {
		return fmt.Errorf("priv: replay: %v, want ErrKeyConsumed", err)
	}

	// Our own PrivateMessage, padded, through a sender's and a receiver's tree.
	ac, err = framing.Sign(c.s, wire.WireFormatPrivateMessage, fc, c.ctx, c.sigPriv)
	if err != nil {
		return err
	}
	if ct == wire.ContentCommit {
		ac.Auth.ConfirmationTag = confirmationTag
	}
	sender, err := c.keys()
	if err != nil {
		return err
	}
	priv, err := framing.ProtectPrivate(c.s, ac, sender, framing.PrivateOptions{PadTo: 64})
	if err != nil {
		return fmt.Errorf("protect private: %w", err)
	}
	m2, err := mpRoundTrip(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: priv})
	if err != nil {
		return fmt.Errorf("protect private: %w", err)
	}
	receiver, err := c.keys()
	if err != nil {
		return err
	}
	if got, err = framing.UnprotectPrivate(c.s, m2.PrivateMessage, c.ctx, receiver, c.signerKey); err != nil {
		return fmt.Errorf("unprotect own private: %w", err)
	}
	return c.sameBody(got, ct, raw)
}
