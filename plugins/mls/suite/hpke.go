package suite

import (
	"crypto"
	"crypto/hkdf"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"github.com/strata-msg/strata/plugins/mls/codec"
)

// encryptContext encodes EncryptContext (RFC 9420 §5.1.3):
//
//	struct { opaque label<V> = "MLS 1.0 " + Label; opaque context<V>; } EncryptContext;
func encryptContext(label string, context []byte) []byte {
	var w codec.Writer
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	return w.Bytes()
}

// EncryptWithLabel seals plaintext to the HPKE public key pub with HPKE base
// mode, info = EncryptContext(label, context) and an empty AAD (RFC 9420
// §5.1.3). It returns the HPKECiphertext fields. random may be nil for
// crypto/rand.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte, random io.Reader) (kemOutput, ciphertext []byte, err error) {
	if random == nil {
		random = rand.Reader
	}
	pk, err := s.p.kem.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("mls/suite: EncryptWithLabel %q: public key: %w", label, err)
	}
	sender, err := hpke.NewSuite(s.p.kem, s.p.kdf, s.p.hpkeAEA).NewSender(pk, encryptContext(label, context))
	if err != nil {
		return nil, nil, fmt.Errorf("mls/suite: EncryptWithLabel %q: %w", label, err)
	}
	enc, sealer, err := sender.Setup(random)
	if err != nil {
		return nil, nil, fmt.Errorf("mls/suite: EncryptWithLabel %q: %w", label, err)
	}
	ct, err := sealer.Seal(plaintext, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls/suite: EncryptWithLabel %q: %w", label, err)
	}
	return enc, ct, nil
}

// unmarshalHPKEPrivate parses a serialized HPKE private key. A NIST-curve
// scalar shorter than Nsk is taken as missing its leading zero bytes.
func (s *Suite) unmarshalHPKEPrivate(priv []byte) (kem.PrivateKey, error) {
	if _, nsk, bitmask := s.kemParams(); bitmask != 0 {
		if padded := leftPad(priv, nsk); len(padded) != len(priv) {
			defer clear(padded)
			priv = padded
		}
	}
	return s.p.kem.Scheme().UnmarshalBinaryPrivateKey(priv)
}

// DecryptWithLabel opens an HPKECiphertext with the serialized HPKE private
// key priv (RFC 9420 §5.1.3).
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	sk, err := s.unmarshalHPKEPrivate(priv)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: DecryptWithLabel %q: private key: %w", label, err)
	}
	receiver, err := hpke.NewSuite(s.p.kem, s.p.kdf, s.p.hpkeAEA).NewReceiver(sk, encryptContext(label, context))
	if err != nil {
		return nil, fmt.Errorf("mls/suite: DecryptWithLabel %q: %w", label, err)
	}
	opener, err := receiver.Setup(kemOutput)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: DecryptWithLabel %q: %w", label, err)
	}
	pt, err := opener.Open(ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: DecryptWithLabel %q: %w", label, err)
	}
	return pt, nil
}

// kemParams returns the RFC 9180 parameters DeriveKeyPair needs: the hash of
// the KEM's own KDF, Nsk, and the mask applied to the first byte of NIST-curve
// candidates (0 for the X curves, which use no rejection sampling).
func (s *Suite) kemParams() (h crypto.Hash, nsk int, bitmask byte) {
	switch s.p.kem {
	case hpke.KEM_X25519_HKDF_SHA256:
		return crypto.SHA256, 32, 0
	case hpke.KEM_X448_HKDF_SHA512:
		return crypto.SHA512, 56, 0
	case hpke.KEM_P256_HKDF_SHA256:
		return crypto.SHA256, 32, 0xff
	case hpke.KEM_P384_HKDF_SHA384:
		return crypto.SHA384, 48, 0xff
	default: // DHKEM(P-521, HKDF-SHA512)
		return crypto.SHA512, 66, 0x01
	}
}

// DeriveKeyPair derives an HPKE key pair from ikm as RFC 9180 §7.1.3 does,
// returning the serialized private key and the raw public key. Unlike circl's
// KEM.DeriveKeyPair it accepts ikm of any length, as MLS needs: MLS passes Nh
// bytes, which for suites 4, 5 and 6 differs from the KEM's seed size.
func (s *Suite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	kemHash, nsk, bitmask := s.kemParams()
	newHash := func() hash.Hash { return newHash(kemHash) }
	var suiteID [5]byte
	copy(suiteID[:], "KEM")
	binary.BigEndian.PutUint16(suiteID[3:], uint16(s.p.kem))

	labeledIKM := make([]byte, 0, 7+len(suiteID)+7+len(ikm))
	labeledIKM = append(labeledIKM, "HPKE-v1"...)
	labeledIKM = append(labeledIKM, suiteID[:]...)
	labeledIKM = append(labeledIKM, "dkp_prk"...)
	labeledIKM = append(labeledIKM, ikm...)
	dkpPRK, err := hkdf.Extract(newHash, labeledIKM, nil)
	clear(labeledIKM)
	if err != nil {
		return nil, nil, fmt.Errorf("mls/suite: DeriveKeyPair: %w", err)
	}
	defer clear(dkpPRK)

	labeledExpand := func(label string, info []byte) ([]byte, error) {
		b := make([]byte, 2, 2+7+len(suiteID)+len(label)+len(info))
		binary.BigEndian.PutUint16(b, uint16(nsk))
		b = append(b, "HPKE-v1"...)
		b = append(b, suiteID[:]...)
		b = append(b, label...)
		b = append(b, info...)
		return hkdf.Expand(newHash, dkpPRK, string(b), nsk)
	}
	scheme := s.p.kem.Scheme()
	if bitmask == 0 {
		skBytes, err := labeledExpand("sk", nil)
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: DeriveKeyPair: %w", err)
		}
		defer clear(skBytes)
		sk, err := scheme.UnmarshalBinaryPrivateKey(skBytes)
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: DeriveKeyPair: %w", err)
		}
		return marshalPair(sk.Public(), sk)
	}
	for counter := 0; counter < 256; counter++ {
		candidate, err := labeledExpand("candidate", []byte{byte(counter)})
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: DeriveKeyPair: %w", err)
		}
		candidate[0] &= bitmask
		// UnmarshalBinaryPrivateKey rejects 0 and values not below the
		// group order: exactly the candidates RFC 9180 skips.
		sk, err := scheme.UnmarshalBinaryPrivateKey(candidate)
		clear(candidate)
		if err == nil {
			return marshalPair(sk.Public(), sk)
		}
	}
	return nil, nil, fmt.Errorf("mls/suite: DeriveKeyPair: no valid candidate in 256 tries")
}

type binaryMarshaler interface{ MarshalBinary() ([]byte, error) }

func marshalPair(pk, sk binaryMarshaler) (priv, pub []byte, err error) {
	if priv, err = sk.MarshalBinary(); err != nil {
		return nil, nil, fmt.Errorf("mls/suite: marshal private key: %w", err)
	}
	if pub, err = pk.MarshalBinary(); err != nil {
		return nil, nil, fmt.Errorf("mls/suite: marshal public key: %w", err)
	}
	return priv, pub, nil
}

// GenerateHPKEKey returns a fresh HPKE key pair of the suite: the serialized
// private key and the raw public key. random may be nil for crypto/rand.
func (s *Suite) GenerateHPKEKey(random io.Reader) (priv, pub []byte, err error) {
	if random == nil {
		random = rand.Reader
	}
	ikm := make([]byte, s.Nh())
	defer clear(ikm)
	if _, err := io.ReadFull(random, ikm); err != nil {
		return nil, nil, fmt.Errorf("mls/suite: generate HPKE key: %w", err)
	}
	return s.DeriveKeyPair(ikm)
}

// HPKEPublicKey returns the raw public key of a serialized HPKE private key.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) {
	sk, err := s.unmarshalHPKEPrivate(priv)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: HPKE private key: %w", err)
	}
	pub, err := sk.Public().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("mls/suite: HPKE public key: %w", err)
	}
	return pub, nil
}
