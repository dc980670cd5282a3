package framing

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// EpochKeys are the keys of one epoch that PrivateMessages use.
type EpochKeys struct {
	SenderDataSecret []byte
	SecretTree       *schedule.SecretTree
}

// PrivateOptions tune ProtectPrivate. The zero value pads nothing and draws
// the reuse guard from crypto/rand.
type PrivateOptions struct {
	// PadTo pads the plaintext with zero bytes to a multiple of PadTo bytes
	// (RFC 9420 §6.3.1), hiding the content's exact length. 0 or 1 pads
	// nothing.
	PadTo int
	// Random is the source of the reuse guard; nil means crypto/rand.
	Random io.Reader
}

// ratchetFor returns the secret-tree ratchet a content type uses: the
// handshake ratchet for proposals and commits, the application ratchet for
// application data.
func ratchetFor(ct wire.ContentType) schedule.RatchetType {
	if ct == wire.ContentApplication {
		return schedule.Application
	}
	return schedule.Handshake
}

// applyReuseGuard XORs the reuse guard into the first four bytes of nonce.
func applyReuseGuard(nonce []byte, guard [4]byte) {
	for i := range guard {
		nonce[i] ^= guard[i]
	}
}

// ProtectPrivate encrypts signed content into a PrivateMessage (RFC 9420
// §6.3): the content and its auth data, padded, under the next key of the
// sender's ratchet with a fresh reuse guard, then the SenderData under the
// sender-data key sampled from that ciphertext. The content must come from
// a member and be signed for the PrivateMessage wire format.
func ProtectPrivate(s *suite.Suite, ac *wire.AuthenticatedContent, keys EpochKeys, opts PrivateOptions) (*wire.PrivateMessage, error) {
	if ac.WireFormat != wire.WireFormatPrivateMessage {
		return nil, fmt.Errorf("mls/framing: protect private: content signed for wire format %d", ac.WireFormat)
	}
	fc := &ac.Content
	if fc.Sender.Type != wire.SenderMember {
		return nil, fmt.Errorf("mls/framing: protect private: %w", ErrNotMember)
	}
	if fc.ContentType == wire.ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, ErrConfirmationTag
	}
	random := opts.Random
	if random == nil {
		random = rand.Reader
	}
	pm := &wire.PrivateMessage{
		GroupID:           fc.GroupID,
		Epoch:             fc.Epoch,
		ContentType:       fc.ContentType,
		AuthenticatedData: fc.AuthenticatedData,
	}

	pmc := wire.PrivateMessageContent{Content: fc.Content, Auth: ac.Auth}
	var w codec.Writer
	pmc.Encode(&w)
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	plaintext := w.Bytes()
	if opts.PadTo > 1 {
		if rem := len(plaintext) % opts.PadTo; rem != 0 {
			plaintext = append(plaintext, make([]byte, opts.PadTo-rem)...)
		}
	}
	defer clear(plaintext)

	var guard [4]byte
	if _, err := io.ReadFull(random, guard[:]); err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: reuse guard: %w", err)
	}
	kn, err := keys.SecretTree.Next(fc.Sender.LeafIndex, ratchetFor(fc.ContentType))
	if err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	defer kn.Destroy()
	applyReuseGuard(kn.Nonce, guard)
	aad, err := pm.ContentAAD()
	if err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	if pm.Ciphertext, err = s.Seal(kn.Key, kn.Nonce, aad, plaintext); err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}

	sd := wire.SenderData{LeafIndex: fc.Sender.LeafIndex, Generation: kn.Generation, ReuseGuard: guard}
	sdBytes, err := wire.Marshal(&sd)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	sdKey, sdNonce, err := schedule.SenderDataKeyNonce(s, keys.SenderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	defer clear(sdKey)
	sdAAD, err := pm.SenderDataAAD()
	if err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	if pm.EncryptedSenderData, err = s.Seal(sdKey, sdNonce, sdAAD, sdBytes); err != nil {
		return nil, fmt.Errorf("mls/framing: protect private: %w", err)
	}
	return pm, nil
}

// UnprotectPrivate decrypts and checks a received PrivateMessage (RFC 9420
// §6.3): group and epoch against ctx, the SenderData, the content under the
// sender's key of that generation (consumed, so a replay fails), zero
// padding, and the signature. It returns the AuthenticatedContent.
//
// A key whose content does not authenticate is put back into the tree
// (SecretTree.PutBack): the sender data decrypts for anyone who changed a
// byte of the ciphertext past its first Nh, so consuming the key would let
// the network burn it. Once the content authenticates, the key stays
// consumed even if the content then fails to decode or verify: only a
// holder of the key can have made it.
func UnprotectPrivate(s *suite.Suite, pm *wire.PrivateMessage, ctx *wire.GroupContext, keys EpochKeys, signerKey SignerKey) (*wire.AuthenticatedContent, error) {
	if err := checkGroup(pm.GroupID, pm.Epoch, ctx); err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	sdKey, sdNonce, err := schedule.SenderDataKeyNonce(s, keys.SenderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	defer clear(sdKey)
	sdAAD, err := pm.SenderDataAAD()
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	sdBytes, err := s.Open(sdKey, sdNonce, sdAAD, pm.EncryptedSenderData)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: sender data: %w", ErrDecrypt)
	}
	var sd wire.SenderData
	if err := wire.Unmarshal(sdBytes, &sd); err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}

	kn, err := keys.SecretTree.Get(sd.LeafIndex, ratchetFor(pm.ContentType), sd.Generation)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	defer kn.Destroy()
	applyReuseGuard(kn.Nonce, sd.ReuseGuard)
	aad, err := pm.ContentAAD()
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	plaintext, err := s.Open(kn.Key, kn.Nonce, aad, pm.Ciphertext)
	if err != nil {
		applyReuseGuard(kn.Nonce, sd.ReuseGuard) // back to the ratchet's nonce
		if perr := keys.SecretTree.PutBack(sd.LeafIndex, ratchetFor(pm.ContentType), kn); perr != nil {
			return nil, fmt.Errorf("mls/framing: unprotect private: content: %w (%v)", ErrDecrypt, perr)
		}
		return nil, fmt.Errorf("mls/framing: unprotect private: content: %w", ErrDecrypt)
	}
	defer clear(plaintext)
	pmc, err := wire.DecodePrivateMessageContent(plaintext, pm.ContentType)
	if err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}

	ac := &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPrivateMessage,
		Content: wire.FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            wire.Sender{Type: wire.SenderMember, LeafIndex: sd.LeafIndex},
			AuthenticatedData: pm.AuthenticatedData,
			Content:           pmc.Content,
		},
		Auth: pmc.Auth,
	}
	if err := Verify(s, ac, ctx, signerKey); err != nil {
		return nil, fmt.Errorf("mls/framing: unprotect private: %w", err)
	}
	return ac, nil
}
