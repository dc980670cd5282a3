package x3dh

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
)

// Key-type tags of EncodeEC and EncodeKEM, and the bundle format version.
const (
	// TagX25519 is the first byte of EncodeEC(PK) for an X25519 key.
	TagX25519 = 0x05
	// TagMLKEM1024 is the first byte of EncodeKEM(PK) for an ML-KEM-1024
	// encapsulation key.
	TagMLKEM1024 = 0x0A
	// BundleVersion is the version of the bundle format this package writes
	// and accepts. Version 2 signs under context prefixes (see the ctx
	// constants) and adds the bundle signature over the issue time and every
	// key; version 1 bundles (signatures over the bare key encodings, issue
	// time unsigned) are refused with ErrVersion.
	BundleVersion = 2
)

// Context prefixes of the Ed25519 signatures (bundle version 2). Every
// signature is over its own prefix followed by the signed bytes, so that a
// signature made for one purpose never verifies for another: without them
// the identity signature, over EncodeEC(IK), was also a valid signed-prekey
// signature for a bundle whose SPK is IK.
const (
	// ctxIdentity prefixes EncodeEC(IK) in identity_signature.
	ctxIdentity = "strata-dr-identity-v1\x00"
	// ctxSignedPreKey prefixes EncodeEC(SPK) in the signed prekey's
	// signature.
	ctxSignedPreKey = "strata-dr-spk-v1\x00"
	// ctxKEMPreKey prefixes EncodeKEM(PQPK) in the signature of every
	// ML-KEM prekey, last-resort and one-time (the bundle signature says
	// which slot a key is in).
	ctxKEMPreKey = "strata-dr-kem-v1\x00"
	// ctxBundle prefixes the bundle transcript in bundle_signature.
	ctxBundle = "strata-dr-bundle-v1\x00"
)

const (
	ecKeySize      = x25519.Size                     // raw X25519 key
	ecEncodedSize  = 1 + ecKeySize                   // EncodeEC
	kemKeySize     = mlkem1024.PublicKeySize         // raw encapsulation key
	kemEncodedSize = 1 + kemKeySize                  // EncodeKEM
	kemCTSize      = mlkem1024.CiphertextSize        // ML-KEM-1024 ciphertext
	kemSeedSize    = mlkem1024.KeySeedSize           // FIPS 203 (d, z) seed
	kemEncapsSeed  = mlkem1024.EncapsulationSeedSize // encapsulation randomness m
	sigSize        = 64                              // Ed25519 signature
	ssSize         = 32                              // DH output, KEM shared secret, SK
)

// encodeEC returns EncodeEC(pub).
func encodeEC(pub *[ecKeySize]byte) []byte {
	out := make([]byte, ecEncodedSize)
	out[0] = TagX25519
	copy(out[1:], pub[:])
	return out
}

// decodeEC checks EncodeEC(PK) and returns PK. A wrong tag or length is
// ErrMalformed; a u-coordinate that is not canonical (top bit set, or ≥ p =
// 2^255−19) is ErrBadKey, so that a key has exactly one encoding.
func decodeEC(b []byte, what string) ([ecKeySize]byte, error) {
	var k [ecKeySize]byte
	if len(b) != ecEncodedSize {
		return k, fmt.Errorf("%w: %s: EncodeEC is %d bytes, got %d", ErrMalformed, what, ecEncodedSize, len(b))
	}
	if b[0] != TagX25519 {
		return k, fmt.Errorf("%w: %s: key type tag 0x%02x, want 0x%02x", ErrMalformed, what, b[0], TagX25519)
	}
	copy(k[:], b[1:])
	if !canonicalU(&k) {
		return k, fmt.Errorf("%w: %s: non-canonical X25519 encoding", ErrBadKey, what)
	}
	return k, nil
}

// canonicalU reports whether the little-endian u-coordinate is < 2^255−19
// (which also means its top bit is clear). Public data: not constant time.
func canonicalU(k *[ecKeySize]byte) bool {
	if k[31]&0x80 != 0 {
		return false
	}
	if k[31] != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if k[i] != 0xff {
			return true
		}
	}
	return k[0] < 0xed
}

// checkKEM checks EncodeKEM(PK): tag, length (ErrMalformed) and the FIPS 203
// §7.2 encapsulation-key modulus check, every 12-bit coefficient < q
// (ErrBadKey). It does not expand the key, which is what makes verifying a
// bundle of seventeen ML-KEM keys cheap.
func checkKEM(b []byte, what string) error {
	if len(b) != kemEncodedSize {
		return fmt.Errorf("%w: %s: EncodeKEM is %d bytes, got %d", ErrMalformed, what, kemEncodedSize, len(b))
	}
	if b[0] != TagMLKEM1024 {
		return fmt.Errorf("%w: %s: key type tag 0x%02x, want 0x%02x", ErrMalformed, what, b[0], TagMLKEM1024)
	}
	const q = 3329
	t := b[1 : 1+kemKeySize-32] // ByteEncode12 of t̂; the last 32 bytes are ρ
	for i := 0; i+2 < len(t); i += 3 {
		c0 := uint16(t[i]) | uint16(t[i+1]&0x0f)<<8
		c1 := uint16(t[i+1]>>4) | uint16(t[i+2])<<4
		if c0 >= q || c1 >= q {
			return fmt.Errorf("%w: %s: ML-KEM coefficient out of range", ErrBadKey, what)
		}
	}
	return nil
}

// dh computes out = X25519(priv, pub) and fails with ErrBadKey when pub is a
// low-order point, i.e. when the output is all zero. out is wiped on
// failure.
func dh(out, priv, pub *[ecKeySize]byte) error {
	ok := x25519.Shared((*x25519.Key)(out), (*x25519.Key)(priv), (*x25519.Key)(pub))
	var zero [ecKeySize]byte
	if !ok || subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		clear(out[:])
		return fmt.Errorf("%w: all-zero X25519 output (low-order point)", ErrBadKey)
	}
	return nil
}

// publicKey returns X25519(priv, 9).
func publicKey(priv *[ecKeySize]byte) [ecKeySize]byte {
	var pub [ecKeySize]byte
	x25519.KeyGen((*x25519.Key)(&pub), (*x25519.Key)(priv))
	return pub
}

// readRand fills b from r, or from crypto/rand.Reader when r is nil.
func readRand(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("x3dh: reading randomness: %w", err)
	}
	return nil
}
