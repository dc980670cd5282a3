package ratchet

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes and constants of the profile.
const (
	keyLen         = 32                                  // every key and ratchet public key
	headerVersion  = 1                                   // first byte of a header plaintext
	headerLen      = 1 + keyLen + 4 + 4                  // version ‖ DH ‖ PN ‖ N
	headerNonceLen = chacha20poly1305.NonceSizeX         // 24
	tagLen         = chacha20poly1305.Overhead           // 16
	encHeaderLen   = headerNonceLen + headerLen + tagLen // 81
	msgNonceLen    = chacha20poly1305.NonceSize          // 12
	maxADLen       = 0xffff                              // uint16 length prefix in CONCAT
	// maxPlaintext stays below chacha20poly1305's own limit so Seal never
	// panics.
	maxPlaintext = 1 << 36

	infoRoot        = "Strata_DR_RootKDF"
	infoMessageKeys = "Strata_DR_MessageKeys"
	infoHeaderKeys  = "Strata_DR_HeaderKeys"
)

// zeroSalt is the 32-byte all-zero HKDF salt of ENCRYPT and the header-key
// derivation. It is never written.
var zeroSalt [keyLen]byte

// errNilRand reports a nil io.Reader passed where randomness is needed.
var errNilRand = errors.New("ratchet: nil random source")

// wipe overwrites b with zeros.
func wipe(b []byte) { clear(b) }

// kdfRKHE is KDF_RK_HE: HKDF-SHA256(salt = rk, IKM = dhOut, info =
// "Strata_DR_RootKDF") → 96 bytes = root key ‖ chain key ‖ next header key.
func kdfRKHE(rk, dhOut []byte) (newRK, ck, nhk [keyLen]byte, err error) {
	out, err := hkdf.Key(sha256.New, dhOut, rk, infoRoot, 3*keyLen)
	if err != nil {
		return newRK, ck, nhk, fmt.Errorf("ratchet: KDF_RK_HE: %w", err)
	}
	copy(newRK[:], out[0:32])
	copy(ck[:], out[32:64])
	copy(nhk[:], out[64:96])
	wipe(out)
	return newRK, ck, nhk, nil
}

// ChainStep is KDF_CK for other symmetric chains of the layer (the sender
// keys of package senderkey): the message key and the next chain key.
func ChainStep(ck *[32]byte) (mk, next [32]byte) { return kdfCK(ck) }

// kdfCK is KDF_CK: message key = HMAC-SHA256(ck, 0x01), next chain key =
// HMAC-SHA256(ck, 0x02). One HMAC state serves both (same key, Reset).
func kdfCK(ck *[keyLen]byte) (mk, next [keyLen]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{0x01})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{0x02})
	h.Sum(next[:0])
	return mk, next
}

// headerKeys derives the initial header keys from the agreement's SK:
// HKDF-SHA256(salt = 32 zero bytes, IKM = SK, info = "Strata_DR_HeaderKeys")
// → shared_hka ‖ shared_nhkb.
func headerKeys(sk []byte) (hka, nhkb [keyLen]byte, err error) {
	out, err := hkdf.Key(sha256.New, sk, zeroSalt[:], infoHeaderKeys, 2*keyLen)
	if err != nil {
		return hka, nhkb, fmt.Errorf("ratchet: header keys: %w", err)
	}
	copy(hka[:], out[0:32])
	copy(nhkb[:], out[32:64])
	wipe(out)
	return hka, nhkb, nil
}

// messageKeyNonce derives ENCRYPT's AEAD key and nonce from a message key:
// HKDF-SHA256(salt = 32 zero bytes, IKM = mk, info =
// "Strata_DR_MessageKeys") → 32-byte key ‖ 12-byte nonce.
func messageKeyNonce(mk *[keyLen]byte) (key [keyLen]byte, nonce [msgNonceLen]byte, err error) {
	out, err := hkdf.Key(sha256.New, mk[:], zeroSalt[:], infoMessageKeys, keyLen+msgNonceLen)
	if err != nil {
		return key, nonce, fmt.Errorf("ratchet: message keys: %w", err)
	}
	copy(key[:], out[:keyLen])
	copy(nonce[:], out[keyLen:])
	wipe(out)
	return key, nonce, nil
}

// encryptMessage is ENCRYPT(mk, pt, ad): it appends the sealed plaintext to
// dst.
func encryptMessage(dst []byte, mk *[keyLen]byte, pt, ad []byte) ([]byte, error) {
	key, nonce, err := messageKeyNonce(mk)
	if err != nil {
		return nil, err
	}
	defer wipe(key[:])
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: message AEAD: %w", err)
	}
	return aead.Seal(dst, nonce[:], pt, ad), nil
}

// decryptMessage is DECRYPT(mk, ct, ad).
func decryptMessage(mk *[keyLen]byte, ct, ad []byte) ([]byte, error) {
	key, nonce, err := messageKeyNonce(mk)
	if err != nil {
		return nil, err
	}
	defer wipe(key[:])
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: message AEAD: %w", err)
	}
	pt, err := aead.Open(nil, nonce[:], ct, ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// header is a parsed header plaintext.
type header struct {
	dh    [keyLen]byte
	pn, n uint32
}

// encodeHeader is HEADER(dh, pn, n) in the fixed 41-byte layout.
func encodeHeader(dh *[keyLen]byte, pn, n uint32) (b [headerLen]byte) {
	b[0] = headerVersion
	copy(b[1:1+keyLen], dh[:])
	binary.BigEndian.PutUint32(b[1+keyLen:], pn)
	binary.BigEndian.PutUint32(b[1+keyLen+4:], n)
	return b
}

// hencrypt is HENCRYPT(hk, hdr) with the session AD as associated data.
// dst must have length encHeaderLen and hold the random nonce in its first
// headerNonceLen bytes; the sealed header is written after it.
func hencrypt(dst []byte, hk *[keyLen]byte, hdr *[headerLen]byte, ad []byte) error {
	aead, err := chacha20poly1305.NewX(hk[:])
	if err != nil {
		return fmt.Errorf("ratchet: header AEAD: %w", err)
	}
	aead.Seal(dst[headerNonceLen:headerNonceLen], dst[:headerNonceLen], hdr[:], ad)
	return nil
}

// hdecrypt is HDECRYPT(hk, enc): ok is false ("none") if the header does
// not open under hk, or its length or version is wrong.
func hdecrypt(hk *[keyLen]byte, enc, ad []byte) (h header, ok bool) {
	if len(enc) != encHeaderLen {
		return h, false
	}
	aead, err := chacha20poly1305.NewX(hk[:])
	if err != nil {
		return h, false
	}
	var buf [headerLen]byte
	pt, err := aead.Open(buf[:0], enc[:headerNonceLen], enc[headerNonceLen:], ad)
	if err != nil || len(pt) != headerLen || pt[0] != headerVersion {
		return h, false
	}
	copy(h.dh[:], pt[1:1+keyLen])
	h.pn = binary.BigEndian.Uint32(pt[1+keyLen:])
	h.n = binary.BigEndian.Uint32(pt[1+keyLen+4:])
	return h, true
}

// concatAD is CONCAT(AD, enc_hdr) = uint16 BE len(AD) ‖ AD ‖ enc_hdr. The
// caller has checked len(ad) ≤ maxADLen.
func concatAD(ad, encHdr []byte) []byte {
	b := make([]byte, 2+len(ad)+len(encHdr))
	binary.BigEndian.PutUint16(b, uint16(len(ad)))
	copy(b[2:], ad)
	copy(b[2+len(ad):], encHdr)
	return b
}

// generateDH is GENERATE_DH: 32 bytes from r as an X25519 private key.
// (crypto/ecdh's GenerateKey ignores a caller's reader since Go 1.26, so
// the bytes are read here; tests rely on an injected deterministic r.)
func generateDH(r io.Reader) (*ecdh.PrivateKey, error) {
	if r == nil {
		return nil, errNilRand
	}
	var b [keyLen]byte
	defer wipe(b[:])
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("ratchet: generating ratchet key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(b[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: generating ratchet key: %w", err)
	}
	return k, nil
}

// dh is DH(priv, pub); an all-zero output is ErrBadKey.
func dh(priv *ecdh.PrivateKey, pub *[keyLen]byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	out, err := priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("%w: X25519 output is all zero", ErrBadKey)
	}
	return out, nil
}
