package layer

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// CardVersion is the version of the contact-card section this layer writes
// and reads.
const CardVersion = 1

// Limits of a card section.
const (
	maxCardSize        = 64 << 10
	maxCardKeyPackages = 100
)

// Card is the layer's contact-card section: the node's MLS signature
// public key, its one-time KeyPackages and its last-resort KeyPackage, all
// of one cipher suite. Encoded (TLS presentation language, RFC 9420 §2.1):
//
//	struct {
//	  uint8 version = 1;
//	  uint16 cipher_suite;
//	  opaque signature_key<V>;
//	  KeyPackage one_time<V>;   // each a KeyPackage (RFC 9420 §10)
//	  KeyPackage last_resort;
//	} MLSCardSection;
//
// The host signs the whole card with the node's identity key, which binds
// the signature key to the identity; each KeyPackage's leaf carries a
// basic credential whose identity is the node's identity key and the
// card's signature key.
type Card struct {
	Suite        suite.ID
	SignatureKey []byte
	OneTime      []wire.KeyPackage
	LastResort   wire.KeyPackage
}

// Marshal encodes c.
func (c *Card) Marshal() ([]byte, error) {
	w := codec.NewWriter(nil)
	w.Uint8(CardVersion)
	w.Uint16(uint16(c.Suite))
	w.Opaque(c.SignatureKey)
	w.Vector(func(w *codec.Writer) {
		for i := range c.OneTime {
			c.OneTime[i].Encode(w)
		}
	})
	c.LastResort.Encode(w)
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls: encode card section: %w", err)
	}
	return w.Bytes(), nil
}

// DecodeCard decodes a card section. It checks the encoding only; Verify
// checks the keys.
func DecodeCard(b []byte) (*Card, error) {
	if len(b) > maxCardSize {
		return nil, fmt.Errorf("%w: card section of %d bytes", ErrOversize, len(b))
	}
	r := codec.NewReader(b)
	v, err := r.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	if v != CardVersion {
		return nil, fmt.Errorf("%w: card section version %d", ErrVersion, v)
	}
	c := &Card{}
	id, err := r.Uint16()
	if err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	c.Suite = suite.ID(id)
	if c.SignatureKey, err = r.Opaque(); err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	err = r.Vector(func(r *codec.Reader) error {
		if len(c.OneTime) == maxCardKeyPackages {
			return fmt.Errorf("more than %d KeyPackages", maxCardKeyPackages)
		}
		var kp wire.KeyPackage
		if err := kp.Decode(r); err != nil {
			return err
		}
		c.OneTime = append(c.OneTime, kp)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	if err := c.LastResort.Decode(r); err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: card section: %w", ErrMalformed, err)
	}
	return c, nil
}

// Verify checks that every KeyPackage of the card is valid now (RFC 9420
// §10.1: version, suite, signatures, lifetime), of the card's suite, and
// made for identity with the card's signature key.
func (c *Card) Verify(identity []byte, now time.Time) error {
	cs, err := suite.New(c.Suite)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadCard, err)
	}
	check := func(what string, kp *wire.KeyPackage) error {
		if kp.CipherSuite != wire.CipherSuite(c.Suite) {
			return fmt.Errorf("%w: %s is of suite %d, the card of %d", ErrBadCard, what, kp.CipherSuite, c.Suite)
		}
		if err := checkLeafIdentity(&kp.LeafNode, identity, c.SignatureKey); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadCard, what, err)
		}
		if err := group.ValidateKeyPackage(cs, kp, now); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadCard, what, err)
		}
		return nil
	}
	for i := range c.OneTime {
		if err := check(fmt.Sprintf("KeyPackage %d", i), &c.OneTime[i]); err != nil {
			return err
		}
	}
	return check("last-resort KeyPackage", &c.LastResort)
}

// checkLeafIdentity checks that a leaf is the member identity with the
// signature key sigKey: a basic credential naming the identity.
func checkLeafIdentity(leaf *wire.LeafNode, identity, sigKey []byte) error {
	if leaf.Credential.Type != wire.CredentialBasic {
		return fmt.Errorf("credential type %d, want basic", leaf.Credential.Type)
	}
	if subtle.ConstantTimeCompare(leaf.Credential.Identity, identity) != 1 {
		return fmt.Errorf("credential identity %x, want %x", leaf.Credential.Identity, identity)
	}
	if !bytes.Equal(leaf.SignatureKey, sigKey) {
		return fmt.Errorf("signature key is not the card's")
	}
	return nil
}
