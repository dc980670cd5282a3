package boxlayer

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The wire form of a sealed message:
//
//	version (1 byte, = 1) || nonce (24 bytes) || XChaCha20-Poly1305 ciphertext and tag
const (
	wireVersion = 1
	nonceSize   = chacha20poly1305.NonceSizeX
	keySize     = chacha20poly1305.KeySize
	headerSize  = 1 + nonceSize
	// Overhead is what sealing adds to a plaintext, in bytes.
	Overhead = headerSize + chacha20poly1305.Overhead
)

// kdfInfo prefixes the HKDF info of every per-contact key.
const kdfInfo = "strata-box-v1"

// Errors of the wire decoder and of open.
var (
	// ErrTooShort is a sealed frame shorter than the smallest valid one.
	ErrTooShort = errors.New("box: sealed frame too short")
	// ErrVersion is a sealed frame of a wire version this layer does not know.
	ErrVersion = errors.New("box: unknown wire version")
	// ErrAuth is a sealed frame that does not authenticate under the key and
	// associated data it was opened with.
	ErrAuth = errors.New("box: message does not authenticate")
)

// envelope is a decoded sealed frame. ciphertext aliases the decoded bytes.
type envelope struct {
	nonce      [nonceSize]byte
	ciphertext []byte // ciphertext and tag
}

// decodeEnvelope parses the wire form. It never panics: anything it cannot
// parse is an error.
func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < Overhead {
		return e, fmt.Errorf("%w: %d bytes, want at least %d", ErrTooShort, len(b), Overhead)
	}
	if b[0] != wireVersion {
		return e, fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	copy(e.nonce[:], b[1:headerSize])
	e.ciphertext = b[headerSize:]
	return e, nil
}

// appendEnvelope appends the wire form of e to dst.
func appendEnvelope(dst []byte, e envelope) []byte {
	dst = append(dst, wireVersion)
	dst = append(dst, e.nonce[:]...)
	return append(dst, e.ciphertext...)
}

// associatedData binds a message to its direction and conversation: sender
// identity || recipient identity || conversation id. Identities have a fixed
// length (checked where they enter the layer), so the concatenation is
// unambiguous.
func associatedData(sender, recipient, conversation []byte) []byte {
	ad := make([]byte, 0, len(sender)+len(recipient)+len(conversation))
	ad = append(ad, sender...)
	ad = append(ad, recipient...)
	return append(ad, conversation...)
}

// seal encrypts plaintext for the contact whose key is key, with the given
// nonce, and returns the wire form.
func seal(key []byte, nonce [nonceSize]byte, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("box: seal: %w", err)
	}
	out := make([]byte, 0, Overhead+len(plaintext))
	out = append(out, wireVersion)
	out = append(out, nonce[:]...)
	return aead.Seal(out, nonce[:], plaintext, ad), nil
}

// open decodes and authenticates a sealed frame and returns its nonce and
// plaintext. Errors wrap ErrTooShort, ErrVersion or ErrAuth.
func open(key, wire, ad []byte) ([nonceSize]byte, []byte, error) {
	e, err := decodeEnvelope(wire)
	if err != nil {
		return e.nonce, nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return e.nonce, nil, fmt.Errorf("box: open: %w", err)
	}
	pt, err := aead.Open(nil, e.nonce[:], e.ciphertext, ad)
	if err != nil {
		return e.nonce, nil, ErrAuth
	}
	return e.nonce, pt, nil
}

// publicKey returns the X25519 public key of priv.
func publicKey(priv []byte) ([]byte, error) {
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("box: public key: %w", err)
	}
	return pub, nil
}

// deriveKey returns the key shared with a contact:
// HKDF-SHA256(X25519(priv, peerPub), salt nil, info "strata-box-v1" ||
// the two node identities in byte order). It fails for a low-order public
// key (an all-zero shared secret).
func deriveKey(priv, peerPub, self, peer []byte) ([]byte, error) {
	shared, err := curve25519.X25519(priv, peerPub)
	if err != nil {
		return nil, fmt.Errorf("box: key agreement: %w", err)
	}
	defer clear(shared)
	lo, hi := self, peer
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	info := make([]byte, 0, len(kdfInfo)+len(lo)+len(hi))
	info = append(info, kdfInfo...)
	info = append(info, lo...)
	info = append(info, hi...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), keySize)
	if err != nil {
		return nil, fmt.Errorf("box: key derivation: %w", err)
	}
	return key, nil
}
