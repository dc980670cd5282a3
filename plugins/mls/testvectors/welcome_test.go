package testvectors

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("welcome", checkWelcome) }

// checkWelcome joins through each case's Welcome as far as the library
// reaches today (RFC 9420 §12.4.3.1): find the entry for the KeyPackage by
// its KeyPackageRef, decrypt the GroupSecrets with init_priv, derive the
// welcome key and nonce, decrypt the GroupInfo, verify its signature with
// signer_pub, run the key schedule from the joiner secret and check the
// GroupInfo's confirmation tag. It also re-encrypts the GroupInfo (the AEAD
// is deterministic, so the bytes must match) and seals the GroupSecrets to
// the KeyPackage's init key and opens them again.
func checkWelcome(t *testing.T, data []byte, rep *report) {
	type vector struct {
		CipherSuite uint16   `json:"cipher_suite"`
		InitPriv    hexBytes `json:"init_priv"`
		SignerPub   hexBytes `json:"signer_pub"`
		KeyPackage  hexBytes `json:"key_package"`
		Welcome     hexBytes `json:"welcome"`
	}
	for i, v := range decodeCases[vector](t, data) {
		s := caseSuite(t, v.CipherSuite, rep)
		if s == nil {
			continue
		}
		if err := joinWelcome(s, v.InitPriv, v.SignerPub, v.KeyPackage, v.Welcome); err != nil {
			t.Errorf("case %d (suite %d): %v", i, v.CipherSuite, err)
			continue
		}
		rep.pass()
	}
}

func joinWelcome(s *suite.Suite, initPriv, signerPub, kpMsg, welcomeMsg []byte) error {
	var kpm, wm wire.MLSMessage
	if err := wire.Unmarshal(kpMsg, &kpm); err != nil {
		return err
	}
	if err := wire.Unmarshal(welcomeMsg, &wm); err != nil {
		return err
	}
	if kpm.KeyPackage == nil || wm.Welcome == nil {
		return fmt.Errorf("wire formats %d and %d, want a KeyPackage and a Welcome", kpm.WireFormat, wm.WireFormat)
	}
	kp, welcome := kpm.KeyPackage, wm.Welcome
	if suite.ID(welcome.CipherSuite) != s.ID() || suite.ID(kp.CipherSuite) != s.ID() {
		return fmt.Errorf("suites %d (Welcome), %d (KeyPackage), want %d", welcome.CipherSuite, kp.CipherSuite, s.ID())
	}
	if pub, err := s.HPKEPublicKey(initPriv); err != nil || !bytes.Equal(pub, kp.InitKey) {
		return fmt.Errorf("init_priv does not match the KeyPackage's init_key (%v)", err)
	}

	kpBytes, err := wire.Marshal(kp)
	if err != nil {
		return err
	}
	ref := s.MakeKeyPackageRef(kpBytes)
	var mine *wire.EncryptedGroupSecrets
	for i := range welcome.Secrets {
		if bytes.Equal(welcome.Secrets[i].NewMember, ref) {
			mine = &welcome.Secrets[i]
		}
	}
	if mine == nil {
		return fmt.Errorf("no EncryptedGroupSecrets for KeyPackageRef %x", ref)
	}

	egs := mine.EncryptedGroupSecrets
	gsBytes, err := s.DecryptWithLabel(initPriv, "Welcome", welcome.EncryptedGroupInfo, egs.KEMOutput, egs.Ciphertext)
	if err != nil {
		return err
	}
	var gs wire.GroupSecrets
	if err := wire.Unmarshal(gsBytes, &gs); err != nil {
		return err
	}
	if len(gs.PSKs) != 0 {
		return fmt.Errorf("the Welcome needs %d PSKs the vector does not give", len(gs.PSKs))
	}
	pskSecret, err := schedule.PSKSecret(s, nil)
	if err != nil {
		return err
	}

	welcomeSecret, err := schedule.WelcomeSecret(s, gs.JoinerSecret, pskSecret)
	if err != nil {
		return err
	}
	key, nonce, err := schedule.WelcomeKeyNonce(s, welcomeSecret)
	if err != nil {
		return err
	}
	giBytes, err := s.Open(key, nonce, nil, welcome.EncryptedGroupInfo)
	if err != nil {
		return fmt.Errorf("GroupInfo: %w", err)
	}
	var gi wire.GroupInfo
	if err := wire.Unmarshal(giBytes, &gi); err != nil {
		return err
	}
	if suite.ID(gi.GroupContext.CipherSuite) != s.ID() {
		return fmt.Errorf("GroupInfo of suite %d", gi.GroupContext.CipherSuite)
	}
	tbs, err := gi.TBS()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(signerPub, "GroupInfoTBS", tbs, gi.Signature); err != nil {
		return fmt.Errorf("GroupInfo: %w", err)
	}
	gcBytes, err := wire.Marshal(&gi.GroupContext)
	if err != nil {
		return err
	}
	epoch, err := schedule.NewEpoch(s, gs.JoinerSecret, pskSecret, gcBytes)
	if err != nil {
		return err
	}
	defer epoch.Destroy()
	if !schedule.VerifyConfirmationTag(s, epoch.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return errors.New("GroupInfo: confirmation tag does not verify")
	}

	// The way back: the same GroupInfo under the same key and nonce gives
	// the same ciphertext, and GroupSecrets sealed to the init key open.
	giAgain, err := wire.Marshal(&gi)
	if err != nil {
		return err
	}
	if ct, err := s.Seal(key, nonce, nil, giAgain); err != nil || !bytes.Equal(ct, welcome.EncryptedGroupInfo) {
		return fmt.Errorf("re-encrypted GroupInfo differs (%v)", err)
	}
	kemOut, ct, err := s.EncryptWithLabel(kp.InitKey, "Welcome", welcome.EncryptedGroupInfo, gsBytes, nil)
	if err != nil {
		return err
	}
	if pt, err := s.DecryptWithLabel(initPriv, "Welcome", welcome.EncryptedGroupInfo, kemOut, ct); err != nil || !bytes.Equal(pt, gsBytes) {
		return fmt.Errorf("own EncryptWithLabel of the GroupSecrets does not open (%v)", err)
	}
	return nil
}
