package schedule

import (
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/suite"
)

// zeroIfNil returns secret, or Nh zero bytes when secret is empty: the value
// RFC 9420 §8 uses for a missing commit_secret or psk_secret.
func zeroIfNil(s *suite.Suite, secret []byte) []byte {
	if len(secret) == 0 {
		return make([]byte, s.Nh())
	}
	return secret
}

// JoinerSecret derives the joiner secret of a new epoch (RFC 9420 §8):
//
//	joiner_secret = ExpandWithLabel(Extract(init_secret[n-1], commit_secret), "joiner", GroupContext[n], Nh)
//
// initSecret is the previous epoch's init_secret, commitSecret the Commit's
// (nil for Nh zero bytes) and groupContext the encoded GroupContext of the
// new epoch.
func JoinerSecret(s *suite.Suite, initSecret, commitSecret, groupContext []byte) ([]byte, error) {
	prk, err := s.Extract(initSecret, zeroIfNil(s, commitSecret))
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: joiner secret: %w", err)
	}
	defer clear(prk)
	out, err := s.ExpandWithLabel(prk, "joiner", groupContext, s.Nh())
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: joiner secret: %w", err)
	}
	return out, nil
}

// memberSecret is the unnamed intermediate of RFC 9420 §8:
// Extract(joiner_secret, psk_secret).
func memberSecret(s *suite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	return s.Extract(joinerSecret, zeroIfNil(s, pskSecret))
}

// WelcomeSecret derives welcome_secret = DeriveSecret(Extract(joiner_secret,
// psk_secret), "welcome") (RFC 9420 §8). pskSecret nil stands for Nh zero
// bytes.
func WelcomeSecret(s *suite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	m, err := memberSecret(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: welcome secret: %w", err)
	}
	defer clear(m)
	out, err := s.DeriveSecret(m, "welcome")
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: welcome secret: %w", err)
	}
	return out, nil
}

// WelcomeKeyNonce derives the AEAD key and nonce that encrypt a Welcome's
// GroupInfo (RFC 9420 §12.4.3.1).
func WelcomeKeyNonce(s *suite.Suite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = s.ExpandWithLabel(welcomeSecret, "key", nil, s.Nk()); err != nil {
		return nil, nil, fmt.Errorf("mls/schedule: welcome key: %w", err)
	}
	if nonce, err = s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.Nn()); err != nil {
		return nil, nil, fmt.Errorf("mls/schedule: welcome nonce: %w", err)
	}
	return key, nonce, nil
}

// Epoch holds the secrets derived from one epoch's epoch_secret (RFC 9420
// §8, table 4). The epoch_secret itself is not kept.
type Epoch struct {
	suite *suite.Suite

	SenderDataSecret   []byte // "sender data": keys the SenderData of PrivateMessages
	EncryptionSecret   []byte // "encryption": root of the secret tree
	ExporterSecret     []byte // "exporter": MLS-Exporter
	ExternalSecret     []byte // "external": seed of the external key pair
	ConfirmationKey    []byte // "confirm": confirmation tags
	MembershipKey      []byte // "membership": PublicMessage membership tags
	ResumptionPSK      []byte // "resumption": resumption PSK of this epoch
	EpochAuthenticator []byte // "authentication": equal for members that agree on the group
	InitSecret         []byte // "init": feeds the next epoch's joiner secret
}

// NewEpoch runs the key schedule from a joiner secret (RFC 9420 §8):
//
//	epoch_secret = ExpandWithLabel(Extract(joiner_secret, psk_secret), "epoch", GroupContext[n], Nh)
//
// then derives every epoch secret from it. pskSecret nil stands for Nh zero
// bytes; groupContext is the encoded GroupContext of the epoch.
func NewEpoch(s *suite.Suite, joinerSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	m, err := memberSecret(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: epoch secret: %w", err)
	}
	defer clear(m)
	epochSecret, err := s.ExpandWithLabel(m, "epoch", groupContext, s.Nh())
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: epoch secret: %w", err)
	}
	defer clear(epochSecret)
	return EpochFromSecret(s, epochSecret)
}

// EpochFromSecret derives the secrets of an epoch from its epoch_secret. A
// group's creator uses it for epoch 0, whose epoch_secret is random (RFC 9420
// §11); NewEpoch uses it for every other epoch. The caller keeps ownership of
// epochSecret.
func EpochFromSecret(s *suite.Suite, epochSecret []byte) (*Epoch, error) {
	e := &Epoch{suite: s}
	for _, d := range []struct {
		label string
		dst   *[]byte
	}{
		{"sender data", &e.SenderDataSecret},
		{"encryption", &e.EncryptionSecret},
		{"exporter", &e.ExporterSecret},
		{"external", &e.ExternalSecret},
		{"confirm", &e.ConfirmationKey},
		{"membership", &e.MembershipKey},
		{"resumption", &e.ResumptionPSK},
		{"authentication", &e.EpochAuthenticator},
		{"init", &e.InitSecret},
	} {
		v, err := s.DeriveSecret(epochSecret, d.label)
		if err != nil {
			e.Destroy()
			return nil, fmt.Errorf("mls/schedule: %s secret: %w", d.label, err)
		}
		*d.dst = v
	}
	return e, nil
}

// Suite returns the cipher suite the epoch's secrets belong to.
func (e *Epoch) Suite() *suite.Suite { return e.suite }

// ExternalKeyPair returns the epoch's external HPKE key pair,
// KEM.DeriveKeyPair(external_secret) (RFC 9420 §8); the public key is what a
// GroupInfo's external_pub extension carries.
func (e *Epoch) ExternalKeyPair() (priv, pub []byte, err error) {
	priv, pub, err = e.suite.DeriveKeyPair(e.ExternalSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("mls/schedule: external key pair: %w", err)
	}
	return priv, pub, nil
}

// Export is MLS-Exporter(label, context, length) (RFC 9420 §8.5):
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported", Hash(context), length)
func (e *Epoch) Export(label string, context []byte, length int) ([]byte, error) {
	derived, err := e.suite.DeriveSecret(e.ExporterSecret, label)
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: exporter %q: %w", label, err)
	}
	defer clear(derived)
	out, err := e.suite.ExpandWithLabel(derived, "exported", e.suite.Hash(context), length)
	if err != nil {
		return nil, fmt.Errorf("mls/schedule: exporter %q: %w", label, err)
	}
	return out, nil
}

// Destroy zeroes every secret of the epoch. The Epoch must not be used
// afterwards.
func (e *Epoch) Destroy() {
	for _, b := range [][]byte{
		e.SenderDataSecret, e.EncryptionSecret, e.ExporterSecret, e.ExternalSecret,
		e.ConfirmationKey, e.MembershipKey, e.ResumptionPSK, e.EpochAuthenticator, e.InitSecret,
	} {
		clear(b)
	}
}
