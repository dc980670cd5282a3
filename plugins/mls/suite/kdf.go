package suite

import (
	"crypto/hkdf"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"hash"
	"math"

	"github.com/strata-msg/strata/plugins/mls/codec"
)

// labelPrefix is prepended to every label of ExpandWithLabel, SignWithLabel
// and EncryptWithLabel (RFC 9420 §5.1.3, §5.1.2, §5.1.3).
const labelPrefix = "MLS 1.0 "

// Extract is HKDF-Extract with the suite's hash (RFC 5869). An empty salt
// stands for Nh zero bytes. It fails only where crypto/hkdf refuses the input
// (FIPS 140-only mode with a short secret).
func (s *Suite) Extract(salt, ikm []byte) ([]byte, error) {
	prk, err := hkdf.Extract[hash.Hash](s.newHash, ikm, salt)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: HKDF-Extract: %w", err)
	}
	return prk, nil
}

// Expand is HKDF-Expand with the suite's hash. It fails if length exceeds
// 255*Nh.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	out, err := hkdf.Expand[hash.Hash](s.newHash, prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: HKDF-Expand %d bytes: %w", length, err)
	}
	return out, nil
}

// ExpandWithLabel derives length bytes from secret (RFC 9420 §8):
//
//	struct { uint16 length; opaque label<V> = "MLS 1.0 " + Label; opaque context<V>; } KDFLabel;
//	ExpandWithLabel(Secret, Label, Context, Length) = KDF.Expand(Secret, KDFLabel, Length)
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > math.MaxUint16 {
		return nil, fmt.Errorf("mls/suite: ExpandWithLabel %q: length %d out of range", label, length)
	}
	var w codec.Writer
	w.Uint16(uint16(length))
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	out, err := s.Expand(secret, w.Bytes(), length)
	if err != nil {
		return nil, fmt.Errorf("mls/suite: ExpandWithLabel %q: %w", label, err)
	}
	return out, nil
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh) (RFC 9420 §8).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.Nh())
}

// DeriveTreeSecret is ExpandWithLabel(secret, label, generation, length) with
// the generation encoded as a big-endian uint32 (RFC 9420 §9).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	var ctx [4]byte
	binary.BigEndian.PutUint32(ctx[:], generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// MAC is HMAC with the suite's hash (RFC 9420 §5.1).
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC reports, in constant time, whether tag is MAC(key, data).
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.MAC(key, data), tag)
}

// RefHash hashes value under label (RFC 9420 §5.2):
//
//	struct { opaque label<V>; opaque value<V>; } RefHashInput;
//
// The label is used as given: the "MLS 1.0 " prefix is part of the label
// strings of §5.2, not added here.
func (s *Suite) RefHash(label string, value []byte) []byte {
	var w codec.Writer
	w.Opaque([]byte(label))
	w.Opaque(value)
	return s.Hash(w.Bytes())
}

// MakeKeyPackageRef returns the KeyPackageRef of an encoded KeyPackage.
func (s *Suite) MakeKeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
}

// MakeProposalRef returns the ProposalRef of an encoded AuthenticatedContent
// that carries a proposal.
func (s *Suite) MakeProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}
