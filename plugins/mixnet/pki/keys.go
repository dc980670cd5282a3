package pki

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
)

// SphinxKeySize is the size of an X25519 Sphinx public or private key.
const SphinxKeySize = 32

// lowOrder are the canonical encodings (little-endian u-coordinates
// below p) of the X25519 points whose multiple by any clamped scalar is
// the identity: 0, 1, the two points of order 8, and p-1. A Diffie-Hellman
// with such a key gives an all-zero secret known to everybody.
var lowOrder = [][SphinxKeySize]byte{
	{},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// CheckSphinxKey reports whether pub is usable as a Sphinx public key: 32
// bytes, canonically encoded (top bit clear, value below 2^255-19, so that
// one point has one encoding and duplicate checks on bytes are exact),
// and not of low order (zero included). The error matches ErrBadSphinxKey.
func CheckSphinxKey(pub []byte) error {
	if len(pub) != SphinxKeySize {
		return fmt.Errorf("%w: %d bytes, not %d", ErrBadSphinxKey, len(pub), SphinxKeySize)
	}
	if pub[31]&0x80 != 0 {
		return fmt.Errorf("%w: top bit set", ErrBadSphinxKey)
	}
	if pub[31] == 0x7f && pub[0] >= 0xed && allFF(pub[1:31]) {
		return fmt.Errorf("%w: not reduced modulo 2^255-19", ErrBadSphinxKey)
	}
	for _, lo := range lowOrder {
		if bytes.Equal(pub, lo[:]) {
			return fmt.Errorf("%w: low-order point", ErrBadSphinxKey)
		}
	}
	return nil
}

func allFF(b []byte) bool {
	for _, x := range b {
		if x != 0xff {
			return false
		}
	}
	return true
}

// SphinxKeyPair is one epoch's X25519 Sphinx key pair.
type SphinxKeyPair struct {
	// Epoch is the epoch the key serves.
	Epoch uint64
	// Private is the X25519 private scalar (clamped when used).
	Private [SphinxKeySize]byte
	// Public is X25519(Private, basepoint).
	Public [SphinxKeySize]byte
}

// MaxKeyChainAhead bounds how many epochs past its own a KeyChain derives
// keys for (and how far one Advance call may move it).
const MaxKeyChainAhead = 1 << 16

// keyChainVersion tags KeyChain's binary form.
const keyChainVersion = 1

// Labels of the key chain's HKDF steps.
const (
	keyChainSalt     = "strata-mixnet-sphinx-keychain-v1"
	keyChainNextInfo = "strata-mixnet-sphinx-keychain-v1 next"
	keyChainKeyInfo  = "strata-mixnet-sphinx-keychain-v1 key"
)

// KeyChain derives a node's per-epoch Sphinx key pairs from a forward-
// secure hash chain: the state is (epoch e, seed_e); the key pair for e
// is HKDF-Expand(seed_e, "…key") and seed_{e+1} = HKDF-Expand(seed_e,
// "…next"), both with SHA-256. Advancing the chain overwrites the seed,
// so a node that advances to epoch e and deletes its long-term secret
// cannot be made to reveal the keys of any epoch before e — the property
// that deleting an old Sphinx key (and with it its replay cache) is meant
// to give. Keys for the current epoch and any later one are derived on
// demand, so a node can publish its next epochs' public keys ahead.
//
// The state is 41 bytes (MarshalBinary); the relay persists it (or just
// its starting secret, if it accepts losing forward secrecy). A KeyChain
// is not safe for concurrent use.
type KeyChain struct {
	epoch uint64
	seed  [32]byte
}

// NewKeyChain starts a chain at epoch from a long-term secret of at least
// 32 bytes (HKDF-Extract with a fixed salt). The same secret and start
// epoch always give the same keys, so a testnet generator and the node it
// configures agree without exchanging private keys.
func NewKeyChain(secret []byte, epoch uint64) (*KeyChain, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("%w: key chain secret is %d bytes, under 32", ErrConfig, len(secret))
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte(keyChainSalt))
	if err != nil {
		return nil, fmt.Errorf("key chain: %w", err)
	}
	c := &KeyChain{epoch: epoch}
	copy(c.seed[:], prk)
	clear(prk)
	return c, nil
}

// Epoch returns the earliest epoch the chain can still derive keys for.
func (c *KeyChain) Epoch() uint64 { return c.epoch }

// step returns the seed after seed.
func step(seed [32]byte) ([32]byte, error) {
	next, err := hkdf.Expand(sha256.New, seed[:], keyChainNextInfo, 32)
	if err != nil {
		return [32]byte{}, fmt.Errorf("key chain step: %w", err)
	}
	var out [32]byte
	copy(out[:], next)
	clear(next)
	return out, nil
}

// Advance moves the chain to epoch, erasing the seeds of earlier epochs;
// keys for those epochs can no longer be derived. Moving backwards or
// more than MaxKeyChainAhead epochs at once is refused.
func (c *KeyChain) Advance(epoch uint64) error {
	if epoch < c.epoch {
		return fmt.Errorf("%w: key chain at epoch %d cannot go back to %d", ErrConfig, c.epoch, epoch)
	}
	if epoch-c.epoch > MaxKeyChainAhead {
		return fmt.Errorf("%w: key chain at epoch %d cannot jump to %d", ErrConfig, c.epoch, epoch)
	}
	for c.epoch < epoch {
		next, err := step(c.seed)
		if err != nil {
			return err
		}
		c.seed = next
		c.epoch++
	}
	return nil
}

// Key derives the key pair of epoch, which must be the chain's epoch or a
// later one within MaxKeyChainAhead.
func (c *KeyChain) Key(epoch uint64) (SphinxKeyPair, error) {
	if epoch < c.epoch {
		return SphinxKeyPair{}, fmt.Errorf("%w: key chain at epoch %d has erased epoch %d", ErrConfig, c.epoch, epoch)
	}
	if epoch-c.epoch > MaxKeyChainAhead {
		return SphinxKeyPair{}, fmt.Errorf("%w: epoch %d is too far past the key chain's %d", ErrConfig, epoch, c.epoch)
	}
	seed := c.seed
	defer clear(seed[:])
	for e := c.epoch; e < epoch; e++ {
		next, err := step(seed)
		if err != nil {
			return SphinxKeyPair{}, err
		}
		seed = next
	}
	for ctr := byte(0); ; ctr++ {
		// A derived scalar whose public key is unusable has probability
		// about 2^-250; the counter makes the derivation total anyway.
		priv, err := hkdf.Expand(sha256.New, seed[:], keyChainKeyInfo+string([]byte{ctr}), SphinxKeySize)
		if err != nil {
			return SphinxKeyPair{}, fmt.Errorf("key chain key: %w", err)
		}
		kp := SphinxKeyPair{Epoch: epoch}
		copy(kp.Private[:], priv)
		clear(priv)
		pub, err := curve25519.X25519(kp.Private[:], curve25519.Basepoint)
		if err == nil && CheckSphinxKey(pub) == nil {
			copy(kp.Public[:], pub)
			return kp, nil
		}
		if ctr == 255 {
			return SphinxKeyPair{}, fmt.Errorf("key chain: no usable key for epoch %d", epoch)
		}
	}
}

// MarshalBinary returns the chain's state: a version byte, the epoch
// (8 bytes big-endian) and the 32-byte seed. It is secret.
func (c *KeyChain) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 41)
	out = append(out, keyChainVersion)
	out = binary.BigEndian.AppendUint64(out, c.epoch)
	return append(out, c.seed[:]...), nil
}

// UnmarshalBinary restores a state written by MarshalBinary.
func (c *KeyChain) UnmarshalBinary(b []byte) error {
	if len(b) != 41 {
		return fmt.Errorf("%w: key chain state is %d bytes, not 41", ErrMalformed, len(b))
	}
	if b[0] != keyChainVersion {
		return fmt.Errorf("%w: key chain state version %d", ErrUnsupportedVersion, b[0])
	}
	c.epoch = binary.BigEndian.Uint64(b[1:9])
	copy(c.seed[:], b[9:])
	return nil
}

// RandomSphinxKey draws an X25519 key pair for epoch from rand (the
// alternative to a KeyChain: the relay must then persist the private key
// until the epoch's grace period ends, and delete it then).
func RandomSphinxKey(rand io.Reader, epoch uint64) (SphinxKeyPair, error) {
	for range 8 {
		kp := SphinxKeyPair{Epoch: epoch}
		if _, err := io.ReadFull(rand, kp.Private[:]); err != nil {
			return SphinxKeyPair{}, fmt.Errorf("random sphinx key: %w", err)
		}
		pub, err := curve25519.X25519(kp.Private[:], curve25519.Basepoint)
		if err == nil && CheckSphinxKey(pub) == nil {
			copy(kp.Public[:], pub)
			return kp, nil
		}
	}
	return SphinxKeyPair{}, fmt.Errorf("random sphinx key: the random source gives only unusable keys")
}
