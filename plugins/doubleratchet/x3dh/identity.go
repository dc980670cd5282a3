package x3dh

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
)

// identityFormat is the first byte of Identity.MarshalBinary.
const identityFormat = 1

// identitySize is the length of Identity.MarshalBinary: format byte,
// Ed25519 seed, X25519 private key.
const identitySize = 1 + ed25519.SeedSize + ecKeySize

// Identity is a node's long-term key pair set: an Ed25519 signing key and a
// separate X25519 identity DH key IK, bound together by the identity
// signature in the bundle. It is private key material; format it with %v
// and the private parts are redacted.
type Identity struct {
	signing ed25519.PrivateKey // seed || public key
	dh      [ecKeySize]byte    // X25519 private key IK (as drawn; clamped on use)
	dhPub   [ecKeySize]byte    // X25519(dh, 9)
	zeroed  bool
}

// NewIdentity creates an identity from 64 bytes of rand (nil:
// crypto/rand.Reader): first the 32-byte Ed25519 seed, then the 32-byte
// X25519 private key.
func NewIdentity(rand io.Reader) (*Identity, error) {
	var buf [ed25519.SeedSize + ecKeySize]byte
	defer clear(buf[:])
	if err := readRand(rand, buf[:]); err != nil {
		return nil, err
	}
	return newIdentity(buf[:ed25519.SeedSize], buf[ed25519.SeedSize:]), nil
}

func newIdentity(seed, dhPriv []byte) *Identity {
	id := &Identity{signing: ed25519.NewKeyFromSeed(seed)}
	copy(id.dh[:], dhPriv)
	id.dhPub = publicKey(&id.dh)
	return id
}

// usable reports whether id holds keys (it is not nil and not zeroed).
func (id *Identity) usable() bool {
	return id != nil && !id.zeroed && len(id.signing) == ed25519.PrivateKeySize
}

func (id *Identity) check() error {
	if !id.usable() {
		return fmt.Errorf("%w: identity is nil or zeroed", ErrBadKey)
	}
	return nil
}

// MarshalBinary returns the private identity for the plugin's database:
// 0x01 || Ed25519 seed (32) || X25519 private key (32). The caller must
// protect and eventually wipe it.
func (id *Identity) MarshalBinary() ([]byte, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, identitySize)
	out = append(out, identityFormat)
	out = append(out, id.signing.Seed()...)
	out = append(out, id.dh[:]...)
	return out, nil
}

// UnmarshalIdentity decodes the output of Identity.MarshalBinary. It never
// panics; anything but the exact format is ErrMalformed.
func UnmarshalIdentity(b []byte) (*Identity, error) {
	if len(b) != identitySize {
		return nil, fmt.Errorf("%w: identity is %d bytes, got %d", ErrMalformed, identitySize, len(b))
	}
	if b[0] != identityFormat {
		return nil, fmt.Errorf("%w: identity format %d, want %d", ErrMalformed, b[0], identityFormat)
	}
	return newIdentity(b[1:1+ed25519.SeedSize], b[1+ed25519.SeedSize:]), nil
}

// SigningKey returns the Ed25519 public key (a copy), or nil for a nil or
// zeroed identity.
func (id *Identity) SigningKey() ed25519.PublicKey {
	if !id.usable() {
		return nil
	}
	return bytes.Clone(id.signing[ed25519.SeedSize:])
}

// IdentityKey returns EncodeEC(IK), the X25519 identity public key, or nil
// for a nil or zeroed identity.
func (id *Identity) IdentityKey() []byte {
	if !id.usable() {
		return nil
	}
	return encodeEC(&id.dhPub)
}

// Zero wipes the private keys. The identity is unusable afterwards: its
// methods return nil or ErrBadKey.
func (id *Identity) Zero() {
	if id == nil {
		return
	}
	clear(id.signing)
	clear(id.dh[:])
	clear(id.dhPub[:])
	id.zeroed = true
}

// sign returns Ed25519(signing, context || msg). Every signature this
// package makes has a context prefix of its own (encoding.go), so that it
// verifies for nothing else.
func (id *Identity) sign(context string, msg []byte) []byte {
	return ed25519.Sign(id.signing, withContext(context, msg))
}

// verify reports whether sig is Ed25519(pub, context || msg).
func verify(pub ed25519.PublicKey, context string, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, withContext(context, msg), sig)
}

func withContext(context string, msg []byte) []byte {
	m := make([]byte, 0, len(context)+len(msg))
	return append(append(m, context...), msg...)
}

// Format prints the public keys only, so that an identity that ends up in a
// log line leaks nothing.
func (id Identity) Format(f fmt.State, _ rune) {
	if !id.usable() {
		fmt.Fprint(f, "x3dh.Identity{zeroed}")
		return
	}
	fmt.Fprintf(f, "x3dh.Identity{signing:%x, identity:%x, private:REDACTED}", []byte(id.signing[ed25519.SeedSize:]), id.dhPub[:])
}
