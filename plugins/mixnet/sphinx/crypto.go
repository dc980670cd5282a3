package sphinx

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/crypto/chacha20"
)

// kdfInfo is the HKDF info string of Katzenpost's code (lower-case k; its
// prose spec writes "Katzenpost-kdf-v0-hkdf-sha256").
const kdfInfo = "katzenpost-kdf-v0-hkdf-sha256"

// kdfOutputLength is the KDF output: MAC key 32, header key 32, header IV
// 16, SPRP key 48, blinding seed 32.
const kdfOutputLength = 32 + 32 + 16 + SPRPKeyLength + 32

// PublicKey is an X25519 public key (a node's per-epoch Sphinx key).
type PublicKey [GroupElementLength]byte

// PrivateKey is an X25519 private key with its public key. The 32 raw
// bytes are clamped at every use, as RFC 7748 does.
type PrivateKey struct {
	secret x25519.Key
	public PublicKey
}

// GenerateKey returns a fresh private key read from r (crypto/rand.Reader
// in production).
func GenerateKey(r io.Reader) (*PrivateKey, error) {
	var raw [32]byte
	defer clear(raw[:])
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return nil, fmt.Errorf("sphinx: generate key: %w", err)
	}
	return NewPrivateKey(raw[:])
}

// NewPrivateKey returns the private key with the given 32 raw bytes (the
// encoding Katzenpost's hpqc x25519 uses). It copies raw.
func NewPrivateKey(raw []byte) (*PrivateKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("%w: private key is %d bytes, want 32", ErrTruncated, len(raw))
	}
	k := new(PrivateKey)
	copy(k.secret[:], raw)
	var pub x25519.Key
	x25519.KeyGen(&pub, &k.secret)
	k.public = PublicKey(pub)
	return k, nil
}

// PublicKey returns the public key.
func (k *PrivateKey) PublicKey() PublicKey { return k.public }

// Bytes returns a copy of the 32 raw private key bytes.
func (k *PrivateKey) Bytes() []byte { return append([]byte(nil), k.secret[:]...) }

// Zero overwrites the private key. The key must not be used afterwards.
func (k *PrivateKey) Zero() {
	clear(k.secret[:])
	clear(k.public[:])
}

// ParsePublicKey returns the public key encoded in b, rejecting the values
// CheckGroupElement rejects.
func ParsePublicKey(b []byte) (PublicKey, error) {
	var p PublicKey
	if len(b) != GroupElementLength {
		return p, fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalidGroupElement, len(b), GroupElementLength)
	}
	copy(p[:], b)
	if err := CheckGroupElement(p[:]); err != nil {
		return PublicKey{}, err
	}
	return p, nil
}

// Small-order X25519 u-coordinates in canonical encoding: 0 and 1, p-1,
// and the two points of order 8. Their non-canonical encodings (u+p, top
// bit set) are rejected by the canonicality check before this list is
// consulted.
var smallOrderPoints = [5][32]byte{
	{},
	{1},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
}

// CheckGroupElement returns an error wrapping ErrInvalidGroupElement if u
// is not the canonical encoding of an X25519 u-coordinate (top bit set, or
// u >= 2^255-19) or is one of the small-order points, whose shared secret
// with any clamped scalar is zero. X25519 itself would accept the
// non-canonical forms (it masks the top bit and reduces), but no honest
// X25519 output has them. The inputs are public; the check takes the same
// time for every value.
func CheckGroupElement(u []byte) error {
	if len(u) != GroupElementLength {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidGroupElement, len(u), GroupElementLength)
	}
	if u[31]&0x80 != 0 {
		return fmt.Errorf("%w: top bit set", ErrInvalidGroupElement)
	}
	// u >= p = 2^255-19 iff u[31] == 0x7f, u[1..30] all 0xff, u[0] >= 0xed.
	allFF := 1
	for _, b := range u[1:31] {
		allFF &= subtle.ConstantTimeByteEq(b, 0xff)
	}
	if allFF&subtle.ConstantTimeByteEq(u[31], 0x7f) == 1 && u[0] >= 0xed {
		return fmt.Errorf("%w: not reduced modulo 2^255-19", ErrInvalidGroupElement)
	}
	small := 0
	for i := range smallOrderPoints {
		small |= subtle.ConstantTimeCompare(u, smallOrderPoints[i][:])
	}
	if small == 1 {
		return fmt.Errorf("%w: small-order point", ErrInvalidGroupElement)
	}
	return nil
}

var zero32 [32]byte

// x25519Shared sets dst = X25519(scalar, point) and reports whether the
// result is non-zero. The point must have passed CheckGroupElement, so a
// false result cannot happen for honest inputs; it is still checked.
func x25519Shared(dst, scalar *x25519.Key, point *[32]byte) bool {
	ok := x25519.Shared(dst, scalar, (*x25519.Key)(point))
	return ok && subtle.ConstantTimeCompare(dst[:], zero32[:]) == 0
}

// hopKeys is one hop's keys, derived from the shared secret.
type hopKeys struct {
	macKey  [32]byte
	hdrKey  [32]byte
	hdrIV   [16]byte
	sprpKey [SPRPKeyLength]byte
	blind   x25519.Key // blinding scalar (ChaCha20 keystream of the seed)
}

func (k *hopKeys) zero() { *k = hopKeys{} }

// deriveKeys computes HKDF-SHA256-Expand(secret, kdfInfo, 160) and splits
// it (section 3.2 of the digest); the blinding scalar is the first 32
// bytes of ChaCha20 keyed by the last 32 KDF bytes with an all-zero nonce.
func deriveKeys(k *hopKeys, secret *x25519.Key) error {
	okm, err := hkdf.Expand(sha256.New, secret[:], kdfInfo, kdfOutputLength)
	if err != nil {
		return fmt.Errorf("sphinx: kdf: %w", err)
	}
	defer clear(okm)
	copy(k.macKey[:], okm[0:32])
	copy(k.hdrKey[:], okm[32:64])
	copy(k.hdrIV[:], okm[64:80])
	copy(k.sprpKey[:], okm[80:128])
	var nonce [chacha20.NonceSize]byte
	c, err := chacha20.NewUnauthenticatedCipher(okm[128:160], nonce[:])
	if err != nil {
		return fmt.Errorf("sphinx: blinding prg: %w", err)
	}
	clear(k.blind[:])
	c.XORKeyStream(k.blind[:], k.blind[:])
	return nil
}

// headerStream XORs the AES-256-CTR keystream of the hop's header key and
// IV (the IV is the whole initial counter block) into b.
func (k *hopKeys) headerStream(b []byte) error {
	blk, err := aes.NewCipher(k.hdrKey[:])
	if err != nil {
		return fmt.Errorf("sphinx: header cipher: %w", err)
	}
	cipher.NewCTR(blk, k.hdrIV[:]).XORKeyStream(b, b)
	return nil
}

// headerMAC returns HMAC-SHA256 under the hop's MAC key of the
// concatenation of parts.
func (k *hopKeys) headerMAC(parts ...[]byte) [MACLength]byte {
	h := hmac.New(sha256.New, k.macKey[:])
	for _, p := range parts {
		h.Write(p)
	}
	var out [MACLength]byte
	h.Sum(out[:0])
	return out
}

// sprpKeyMaterial returns the hop's payload key followed by its IV.
func (k *hopKeys) sprpKeyMaterial() [SPRPKeyMaterialLength]byte {
	var m [SPRPKeyMaterialLength]byte
	copy(m[:SPRPKeyLength], k.sprpKey[:])
	copy(m[SPRPKeyLength:], k.hdrIV[:])
	return m
}

// isZero reports in constant time whether b is all zero.
func isZero(b []byte) bool {
	var acc byte
	for _, v := range b {
		acc |= v
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}
