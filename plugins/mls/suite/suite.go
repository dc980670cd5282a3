// Package suite implements the cipher suites of MLS (RFC 9420 §5.1): the hash,
// KDF, AEAD, HPKE and signature primitives of each suite and the labeled
// operations built on them (ExpandWithLabel, DeriveSecret, DeriveTreeSecret,
// RefHash, SignWithLabel, EncryptWithLabel).
//
// Keys cross this package's API in their serialized MLS forms: HPKE public keys
// and signature public keys as raw key bytes, HPKE private keys in the RFC 9180
// SerializePrivateKey form, Ed25519 and Ed448 private keys as RFC 8032 seeds and
// ECDSA private keys as big-endian scalars of the curve's length.
package suite

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/hpke"
)

// ID is an MLS cipher suite identifier (RFC 9420 §17.1).
type ID uint16

// The cipher suites of RFC 9420 §17.1.
const (
	MLS128DHKEMX25519AES128GCMSHA256Ed25519        ID = 0x0001
	MLS128DHKEMP256AES128GCMSHA256P256             ID = 0x0002
	MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519 ID = 0x0003
	MLS256DHKEMX448AES256GCMSHA512Ed448            ID = 0x0004
	MLS256DHKEMP521AES256GCMSHA512P521             ID = 0x0005
	MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448     ID = 0x0006
	MLS256DHKEMP384AES256GCMSHA384P384             ID = 0x0007
)

// ErrUnsupported is returned by New for a cipher suite this package does not
// implement (GREASE values, private-use values, unknown values).
var ErrUnsupported = errors.New("mls/suite: unsupported cipher suite")

// String returns the suite's RFC 9420 name.
func (id ID) String() string {
	if p, ok := params[id]; ok {
		return p.name
	}
	return fmt.Sprintf("MLS cipher suite 0x%04x", uint16(id))
}

// aeadID names the AEAD algorithms of RFC 9180 §7.3 used by MLS.
type aeadID uint16

const (
	aeadAES128GCM        aeadID = 0x0001
	aeadAES256GCM        aeadID = 0x0002
	aeadChaCha20Poly1305 aeadID = 0x0003
)

// sigScheme names the signature schemes of MLS's cipher suites.
type sigScheme uint8

const (
	sigEd25519 sigScheme = iota + 1
	sigEd448
	sigP256
	sigP384
	sigP521
)

// suiteParams is the static description of one cipher suite.
type suiteParams struct {
	name    string
	hash    crypto.Hash
	kem     hpke.KEM
	kdf     hpke.KDF
	aead    aeadID
	hpkeAEA hpke.AEAD
	sig     sigScheme
}

var params = map[ID]suiteParams{
	MLS128DHKEMX25519AES128GCMSHA256Ed25519: {
		"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", crypto.SHA256,
		hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, aeadAES128GCM, hpke.AEAD_AES128GCM, sigEd25519},
	MLS128DHKEMP256AES128GCMSHA256P256: {
		"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", crypto.SHA256,
		hpke.KEM_P256_HKDF_SHA256, hpke.KDF_HKDF_SHA256, aeadAES128GCM, hpke.AEAD_AES128GCM, sigP256},
	MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519: {
		"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", crypto.SHA256,
		hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, aeadChaCha20Poly1305, hpke.AEAD_ChaCha20Poly1305, sigEd25519},
	MLS256DHKEMX448AES256GCMSHA512Ed448: {
		"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", crypto.SHA512,
		hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, aeadAES256GCM, hpke.AEAD_AES256GCM, sigEd448},
	MLS256DHKEMP521AES256GCMSHA512P521: {
		"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", crypto.SHA512,
		hpke.KEM_P521_HKDF_SHA512, hpke.KDF_HKDF_SHA512, aeadAES256GCM, hpke.AEAD_AES256GCM, sigP521},
	MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448: {
		"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", crypto.SHA512,
		hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, aeadChaCha20Poly1305, hpke.AEAD_ChaCha20Poly1305, sigEd448},
	MLS256DHKEMP384AES256GCMSHA384P384: {
		"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", crypto.SHA384,
		hpke.KEM_P384_HKDF_SHA384, hpke.KDF_HKDF_SHA384, aeadAES256GCM, hpke.AEAD_AES256GCM, sigP384},
}

// Suite is one MLS cipher suite. A Suite holds no secrets and no mutable
// state; it is safe for concurrent use.
type Suite struct {
	id ID
	p  suiteParams
}

// New returns the cipher suite id, or an error wrapping ErrUnsupported.
func New(id ID) (*Suite, error) {
	p, ok := params[id]
	if !ok {
		return nil, fmt.Errorf("mls/suite: 0x%04x: %w", uint16(id), ErrUnsupported)
	}
	return &Suite{id: id, p: p}, nil
}

// Supported lists the cipher suites New accepts, in ascending order.
func Supported() []ID {
	return []ID{
		MLS128DHKEMX25519AES128GCMSHA256Ed25519,
		MLS128DHKEMP256AES128GCMSHA256P256,
		MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519,
		MLS256DHKEMX448AES256GCMSHA512Ed448,
		MLS256DHKEMP521AES256GCMSHA512P521,
		MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448,
		MLS256DHKEMP384AES256GCMSHA384P384,
	}
}

// ID returns the suite's identifier.
func (s *Suite) ID() ID { return s.id }

// String returns the suite's RFC 9420 name.
func (s *Suite) String() string { return s.p.name }

// Nh is the output size of the suite's hash and KDF in bytes.
func (s *Suite) Nh() int { return s.p.hash.Size() }

// Nk is the key size of the suite's AEAD in bytes.
func (s *Suite) Nk() int {
	if s.p.aead == aeadAES128GCM {
		return 16
	}
	return 32
}

// Nn is the nonce size of the suite's AEAD in bytes.
func (s *Suite) Nn() int { return 12 }

// newHash returns a fresh hash of the suite.
func (s *Suite) newHash() hash.Hash { return newHash(s.p.hash) }

// newHash returns a fresh SHA-256, SHA-384 or SHA-512.
func newHash(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	default:
		return sha512.New()
	}
}

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}
