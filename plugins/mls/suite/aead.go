package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrOpen is returned when an AEAD ciphertext does not authenticate.
var ErrOpen = errors.New("mls/suite: AEAD open failed")

// aead returns the suite's AEAD keyed with key, which must be Nk bytes.
func (s *Suite) aead(key []byte) (cipher.AEAD, error) {
	if len(key) != s.Nk() {
		return nil, fmt.Errorf("mls/suite: AEAD key is %d bytes, want %d", len(key), s.Nk())
	}
	if s.p.aead == aeadChaCha20Poly1305 {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts and authenticates plaintext and aad with the suite's AEAD.
// key must be Nk bytes and nonce Nn bytes.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aead(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("mls/suite: AEAD nonce is %d bytes, want %d", len(nonce), a.NonceSize())
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// Open authenticates and decrypts ciphertext with the suite's AEAD. A
// ciphertext that does not authenticate gives ErrOpen.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.aead(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("mls/suite: AEAD nonce is %d bytes, want %d", len(nonce), a.NonceSize())
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
