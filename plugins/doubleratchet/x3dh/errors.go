package x3dh

import "errors"

// Errors returned by this package. They are wrapped with context; test for
// them with errors.Is.
var (
	// ErrMalformed reports input that does not decode: a wrong tag or
	// length, a missing field, an id that does not match the keys given, a
	// limit exceeded.
	ErrMalformed = errors.New("x3dh: malformed input")
	// ErrVersion reports a bundle version this package does not speak.
	ErrVersion = errors.New("x3dh: unsupported version")
	// ErrBadSignature reports a signature in a bundle that does not verify.
	ErrBadSignature = errors.New("x3dh: bad signature")
	// ErrIdentityMismatch reports an initiator identity key that is not the
	// contact's pinned one.
	ErrIdentityMismatch = errors.New("x3dh: identity key mismatch")
	// ErrBadKey reports a key that decodes but cannot be used: a
	// non-canonical or low-order X25519 key (all-zero DH output), an ML-KEM
	// key that fails the FIPS 203 modulus check, or a zeroed identity.
	ErrBadKey = errors.New("x3dh: bad key")
)
