package loopix

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/crypto/chacha20poly1305"
)

// End-to-end sealing of a packet's user payload to its recipient. The
// recipient's provider is the terminal Sphinx hop and so sees the payload
// Sphinx delivers; sealing it to the recipient's own X25519 key (in its
// address) keeps it from the provider:
//
//	sealed = e ‖ ChaCha20-Poly1305(k, nonce 0, plaintext)
//	k      = HKDF-SHA256(ikm = X25519(e_priv, R), salt = e ‖ R, info "strata-mixnet-seal-v1")
//
// with a fresh ephemeral key e per packet (so the all-zero nonce is used
// once per key). Every sealed payload has the same size, SealOverhead more
// than its plaintext.
const (
	// KeyLength is the size of an X25519 key.
	KeyLength = 32
	// SealOverhead is the ephemeral key and the Poly1305 tag.
	SealOverhead = KeyLength + chacha20poly1305.Overhead
)

// ErrOpen reports a sealed payload that does not open with the key: not
// for this recipient, or altered.
var ErrOpen = errors.New("loopix: sealed payload does not open")

const sealInfo = "strata-mixnet-seal-v1"

// KeyPair is an X25519 key pair for sealing.
type KeyPair struct {
	Private [KeyLength]byte
	Public  [KeyLength]byte
}

// NewKeyPair draws a key pair from r.
func NewKeyPair(r io.Reader) (*KeyPair, error) {
	var k KeyPair
	if _, err := io.ReadFull(r, k.Private[:]); err != nil {
		return nil, fmt.Errorf("loopix: key pair: %w", err)
	}
	x25519.KeyGen((*x25519.Key)(&k.Public), (*x25519.Key)(&k.Private))
	return &k, nil
}

// KeyPairFromPrivate returns the key pair of a private key.
func KeyPairFromPrivate(priv [KeyLength]byte) *KeyPair {
	k := KeyPair{Private: priv}
	x25519.KeyGen((*x25519.Key)(&k.Public), (*x25519.Key)(&k.Private))
	return &k
}

// Wipe overwrites the private key.
func (k *KeyPair) Wipe() { clear(k.Private[:]) }

func sealKey(shared, eph, recipient []byte) ([]byte, error) {
	salt := make([]byte, 0, 2*KeyLength)
	salt = append(append(salt, eph...), recipient...)
	k, err := hkdf.Key(sha256.New, shared, salt, sealInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("loopix: seal key: %w", err)
	}
	return k, nil
}

// Seal seals plaintext to the recipient's public key, drawing the
// ephemeral key from r.
func Seal(r io.Reader, recipient [KeyLength]byte, plaintext []byte) ([]byte, error) {
	eph, err := NewKeyPair(r)
	if err != nil {
		return nil, err
	}
	defer eph.Wipe()
	var shared x25519.Key
	defer clear(shared[:])
	if !x25519.Shared(&shared, (*x25519.Key)(&eph.Private), (*x25519.Key)(&recipient)) {
		return nil, fmt.Errorf("loopix: seal: recipient key of low order")
	}
	k, err := sealKey(shared[:], eph.Public[:], recipient[:])
	if err != nil {
		return nil, err
	}
	defer clear(k)
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return nil, fmt.Errorf("loopix: seal: %w", err)
	}
	out := make([]byte, KeyLength, SealOverhead+len(plaintext))
	copy(out, eph.Public[:])
	var nonce [chacha20poly1305.NonceSize]byte
	return aead.Seal(out, nonce[:], plaintext, nil), nil
}

// Open opens a sealed payload with the recipient's key pair. Errors wrap
// ErrOpen; it never panics.
func Open(k *KeyPair, sealed []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes", ErrOpen, len(sealed))
	}
	var eph, shared x25519.Key
	copy(eph[:], sealed[:KeyLength])
	defer clear(shared[:])
	if !x25519.Shared(&shared, (*x25519.Key)(&k.Private), &eph) {
		return nil, fmt.Errorf("%w: ephemeral key of low order", ErrOpen)
	}
	key, err := sealKey(shared[:], eph[:], k.Public[:])
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("loopix: open: %w", err)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	pt, err := aead.Open(nil, nonce[:], sealed[KeyLength:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOpen, err)
	}
	return pt, nil
}
