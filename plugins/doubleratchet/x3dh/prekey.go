package x3dh

import (
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
)

// PreKeyPair is an X25519 prekey with its private key: a signed prekey (SPK)
// or a one-time prekey (OPK). The plugin stores it and hands it back to
// Respond, looked up by ID. Format it with %v and Private is redacted.
type PreKeyPair struct {
	// ID is the nonzero id the bundle and the PreKeyMessage name it by.
	ID uint32
	// Private is the 32-byte X25519 private key.
	Private []byte
	// Public is EncodeEC of the public key (33 bytes).
	Public []byte
	// Signature is Ed25519(signing, "strata-dr-spk-v1\x00" || Public) for a
	// signed prekey; nil for a one-time prekey.
	Signature []byte
}

// KEMPreKeyPair is an ML-KEM-1024 prekey with its private key in FIPS 203
// seed form: the last-resort prekey (PQSPK) or a one-time one (PQOPK). Both
// kinds are signed. Format it with %v and Seed is redacted.
type KEMPreKeyPair struct {
	// ID is the nonzero id the bundle and the PreKeyMessage name it by; the
	// last-resort and the one-time ML-KEM prekeys share one id space.
	ID uint32
	// Seed is the 64-byte (d, z) seed the decapsulation key is expanded from.
	Seed []byte
	// Public is EncodeKEM of the encapsulation key (1569 bytes).
	Public []byte
	// Signature is Ed25519(signing, "strata-dr-kem-v1\x00" || Public).
	Signature []byte
}

func checkID(id uint32) error {
	if id == 0 {
		return fmt.Errorf("%w: prekey id must be nonzero", ErrMalformed)
	}
	return nil
}

// newECPair draws a 32-byte X25519 private key from rand.
func newECPair(rand io.Reader, id uint32) (*PreKeyPair, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var priv [ecKeySize]byte
	if err := readRand(rand, priv[:]); err != nil {
		return nil, err
	}
	pub := publicKey(&priv)
	p := &PreKeyPair{ID: id, Private: make([]byte, ecKeySize), Public: encodeEC(&pub)}
	copy(p.Private, priv[:])
	clear(priv[:])
	return p, nil
}

// NewOneTimePreKey creates an unsigned one-time X25519 prekey with the given
// nonzero id from 32 bytes of rand (nil: crypto/rand.Reader).
func NewOneTimePreKey(rand io.Reader, id uint32) (*PreKeyPair, error) {
	return newECPair(rand, id)
}

// NewSignedPreKey creates a signed X25519 prekey with the given nonzero id
// from 32 bytes of rand (nil: crypto/rand.Reader) and signs EncodeEC of it
// with the identity's Ed25519 key, under the signed-prekey context.
func (id *Identity) NewSignedPreKey(rand io.Reader, keyID uint32) (*PreKeyPair, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	p, err := newECPair(rand, keyID)
	if err != nil {
		return nil, err
	}
	p.Signature = id.SignPreKey(p.Public)
	return p, nil
}

// NewKEMPreKey creates a signed ML-KEM-1024 prekey with the given nonzero id
// from a 64-byte seed drawn from rand (nil: crypto/rand.Reader). The same
// function makes the last-resort key and the one-time ones.
func (id *Identity) NewKEMPreKey(rand io.Reader, keyID uint32) (*KEMPreKeyPair, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	if err := checkID(keyID); err != nil {
		return nil, err
	}
	k := &KEMPreKeyPair{ID: keyID, Seed: make([]byte, kemSeedSize), Public: make([]byte, kemEncodedSize)}
	if err := readRand(rand, k.Seed); err != nil {
		clear(k.Seed)
		return nil, err
	}
	pk, _ := mlkem1024.NewKeyFromSeed(k.Seed)
	k.Public[0] = TagMLKEM1024
	pk.Pack(k.Public[1:])
	k.Signature = id.SignKEMPreKey(k.Public)
	return k, nil
}

// SignPreKey returns the signature of a signed prekey, EncodeEC(SPK), under
// the signed-prekey context; nil for a nil or zeroed identity. A store that
// kept signatures of an older bundle version re-signs its prekeys with it.
func (id *Identity) SignPreKey(public []byte) []byte {
	if !id.usable() {
		return nil
	}
	return id.sign(ctxSignedPreKey, public)
}

// SignKEMPreKey returns the signature of an ML-KEM prekey, EncodeKEM(PK),
// under the KEM-prekey context; nil for a nil or zeroed identity.
func (id *Identity) SignKEMPreKey(public []byte) []byte {
	if !id.usable() {
		return nil
	}
	return id.sign(ctxKEMPreKey, public)
}

// Zero wipes the private key.
func (p *PreKeyPair) Zero() {
	if p != nil {
		clear(p.Private)
	}
}

// Zero wipes the private seed.
func (k *KEMPreKeyPair) Zero() {
	if k != nil {
		clear(k.Seed)
	}
}

// Format prints the id and public key only.
func (p PreKeyPair) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "x3dh.PreKeyPair{ID:%d, Public:%x, Private:REDACTED}", p.ID, p.Public)
}

// Format prints the id and a prefix of the public key only.
func (k KEMPreKeyPair) Format(f fmt.State, _ rune) {
	pub := k.Public
	if len(pub) > 9 {
		pub = pub[:9]
	}
	fmt.Fprintf(f, "x3dh.KEMPreKeyPair{ID:%d, Public:%x…, Seed:REDACTED}", k.ID, pub)
}
