package suite

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/strata-msg/strata/plugins/mls/codec"
)

// ErrBadSignature is returned by VerifyWithLabel when a signature does not
// verify.
var ErrBadSignature = errors.New("mls/suite: bad signature")

// signContent encodes SignContent (RFC 9420 §5.1.2):
//
//	struct { opaque label<V> = "MLS 1.0 " + Label; opaque content<V>; } SignContent;
func signContent(label string, content []byte) []byte {
	var w codec.Writer
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(content)
	return w.Bytes()
}

func (s *Suite) curve() elliptic.Curve {
	switch s.p.sig {
	case sigP256:
		return elliptic.P256()
	case sigP384:
		return elliptic.P384()
	case sigP521:
		return elliptic.P521()
	}
	return nil
}

// SignWithLabel signs content under label with the serialized signature
// private key priv (RFC 9420 §5.1.2). ECDSA signatures are DER-encoded and
// sign the suite's hash of SignContent; EdDSA signs SignContent itself (pure
// Ed25519, Ed448 with an empty context).
func (s *Suite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	msg := signContent(label, content)
	switch s.p.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("mls/suite: SignWithLabel %q: Ed25519 private key is %d bytes, want %d", label, len(priv), ed25519.SeedSize)
		}
		sk := ed25519.NewKeyFromSeed(priv)
		defer clear(sk)
		return ed25519.Sign(sk, msg), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("mls/suite: SignWithLabel %q: Ed448 private key is %d bytes, want %d", label, len(priv), ed448.SeedSize)
		}
		sk := ed448.NewKeyFromSeed(priv)
		defer clear(sk)
		return ed448.Sign(sk, msg, ""), nil
	default:
		scalar := leftPad(priv, (s.curve().Params().BitSize+7)/8)
		sk, err := ecdsa.ParseRawPrivateKey(s.curve(), scalar)
		if len(scalar) != len(priv) {
			clear(scalar)
		}
		if err != nil {
			return nil, fmt.Errorf("mls/suite: SignWithLabel %q: %w", label, err)
		}
		sig, err := ecdsa.SignASN1(rand.Reader, sk, s.Hash(msg))
		if err != nil {
			return nil, fmt.Errorf("mls/suite: SignWithLabel %q: %w", label, err)
		}
		return sig, nil
	}
}

// VerifyWithLabel checks signature over content under label with the raw
// signature public key pub (RFC 9420 §5.1.2). It returns nil only for a valid
// signature; an invalid one gives an error wrapping ErrBadSignature.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg := signContent(label, content)
	ok := false
	switch s.p.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("mls/suite: VerifyWithLabel %q: Ed25519 public key is %d bytes, want %d", label, len(pub), ed25519.PublicKeySize)
		}
		ok = ed25519.Verify(ed25519.PublicKey(pub), msg, signature)
	case sigEd448:
		if len(pub) != ed448.PublicKeySize {
			return fmt.Errorf("mls/suite: VerifyWithLabel %q: Ed448 public key is %d bytes, want %d", label, len(pub), ed448.PublicKeySize)
		}
		ok = ed448.Verify(ed448.PublicKey(pub), msg, signature, "")
	default:
		pk, err := ecdsa.ParseUncompressedPublicKey(s.curve(), pub)
		if err != nil {
			return fmt.Errorf("mls/suite: VerifyWithLabel %q: %w", label, err)
		}
		ok = ecdsa.VerifyASN1(pk, s.Hash(msg), signature)
	}
	if !ok {
		return fmt.Errorf("mls/suite: VerifyWithLabel %q: %w", label, ErrBadSignature)
	}
	return nil
}

// GenerateSignatureKey returns a fresh signature key pair of the suite, in
// the serialized forms SignWithLabel and VerifyWithLabel take. rand may be
// nil for crypto/rand; ECDSA keys always come from crypto/rand.
func (s *Suite) GenerateSignatureKey(random io.Reader) (priv, pub []byte, err error) {
	if random == nil {
		random = rand.Reader
	}
	switch s.p.sig {
	case sigEd25519:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(random, seed); err != nil {
			return nil, nil, fmt.Errorf("mls/suite: generate Ed25519 key: %w", err)
		}
		sk := ed25519.NewKeyFromSeed(seed)
		defer clear(sk)
		return seed, append([]byte(nil), sk.Public().(ed25519.PublicKey)...), nil
	case sigEd448:
		seed := make([]byte, ed448.SeedSize)
		if _, err := io.ReadFull(random, seed); err != nil {
			return nil, nil, fmt.Errorf("mls/suite: generate Ed448 key: %w", err)
		}
		sk := ed448.NewKeyFromSeed(seed)
		defer clear(sk)
		return seed, append([]byte(nil), sk.Public().(ed448.PublicKey)...), nil
	default:
		// Since Go 1.26 ecdsa.GenerateKey always draws from crypto/rand and
		// ignores random.
		sk, err := ecdsa.GenerateKey(s.curve(), random)
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: generate ECDSA key: %w", err)
		}
		priv, err := sk.Bytes()
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: generate ECDSA key: %w", err)
		}
		pub, err := sk.PublicKey.Bytes()
		if err != nil {
			return nil, nil, fmt.Errorf("mls/suite: generate ECDSA key: %w", err)
		}
		return priv, pub, nil
	}
}

// leftPad returns b left-padded with zero bytes to n bytes, or b itself if
// it is not shorter. Some implementations serialize NIST-curve private
// scalars without their leading zero bytes (the interop vectors hold a
// 65-byte P-521 signature key); the value is the same big-endian integer.
func leftPad(b []byte, n int) []byte {
	if len(b) >= n || len(b) == 0 {
		return b
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}
