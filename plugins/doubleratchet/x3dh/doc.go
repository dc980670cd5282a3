// Package x3dh implements the key agreement of Strata's doubleratchet secure
// layer: X3DH (Signal, "The X3DH Key Agreement Protocol", rev. 1) and PQXDH
// (Signal, "The PQXDH Key Agreement Protocol", rev. 3), and the prekey bundles
// a node publishes for them. Its output, a 32-byte shared secret SK, the
// associated data AD and the responder's signed prekey, is the input of the
// Double Ratchet (package ratchet).
//
// # Profile
//
// The package follows the two specifications with this fixed profile (the
// one proposed in shared/specs/doubleratchet.md §1):
//
//   - curve X25519; EncodeEC(PK) = 0x05 || 32-byte u-coordinate;
//   - KEM ML-KEM-1024 (FIPS 203); EncodeKEM(PK) = 0x0A || 1568-byte
//     encapsulation key; private keys are kept as their 64-byte FIPS 203 seed;
//   - identity: an Ed25519 signing key plus a separate X25519 identity DH key
//     IK, bound by identity_signature = Ed25519(signing,
//     "strata-dr-identity-v1\x00" || EncodeEC(IK)); the signed prekey is
//     signed over "strata-dr-spk-v1\x00" || EncodeEC(SPK) and every ML-KEM
//     prekey (last-resort and one-time) over "strata-dr-kem-v1\x00" ||
//     EncodeKEM(PK), so that no signature verifies for another purpose (a
//     shared encoding let an identity signature pass as the prekey
//     signature of a bundle whose SPK is IK); one-time X25519 prekeys have
//     no signature of their own;
//   - the bundle signature, over "strata-dr-bundle-v1\x00" || the
//     transcript of the issue time and every key (Bundle.Transcript), binds
//     them together, so that a receiver can refuse a bundle older than the
//     one it holds and no key of an older bundle passes for a current one
//     (bundle version 2; version 1 is refused);
//   - SK = HKDF-SHA256(IKM = 0xFF×32 || DH1 || DH2 || DH3 [|| DH4] [|| SS],
//     salt = 32 zero bytes, info, 32 bytes) with info
//     "Strata_X3DH_X25519_SHA-256" or "Strata_PQXDH_X25519_SHA-256_ML-KEM-1024";
//   - AD = EncodeEC(IK_A) || EncodeEC(IK_B), followed for PQXDH by
//     EncodeKEM(PQPK_B) (PQXDH §4.12; not needed for ML-KEM, but harmless);
//   - PQXDH is used whenever the responder's bundle offers an ML-KEM prekey
//     (a one-time one if the bundle has any, else the last-resort one); the
//     bundle's first one-time X25519 prekey is used if there is one.
//
// Every DH output that is all zero (a low-order peer key) is rejected with
// [ErrBadKey], and so is a non-canonical X25519 encoding (u ≥ 2^255−19), so
// that one key has exactly one wire spelling. DH outputs, the ephemeral
// private key, the KEM shared secret and the key-derivation input are wiped
// with clear() after use. Go cannot promise that no other copy exists (the
// HKDF state, the expanded ML-KEM decapsulation key inside circl, stack
// spills), so secrets are kept short-lived rather than guaranteed erased.
//
// # What it does not implement
//
//   - XEdDSA: Signal signs with the X25519 identity key through XEdDSA; this
//     profile uses a separate Ed25519 signing key instead (so the PQXDH
//     signature randomness Z does not apply: Ed25519 is deterministic).
//   - Round-3 CRYSTALS-Kyber (libsignal's 0x08 keys): it does not
//     interoperate with ML-KEM-1024, and Strata needs no Signal interop.
//   - SPQR / the "Triple Ratchet" and libsignal's 96-byte key schedule.
//   - The initial AEAD message, prekey storage and lookup, one-time-key
//     deletion, replay detection and identity pinning: these belong to the
//     plugin layer, which passes the pinned identity key to [Respond] and the
//     keys it looked up by the ids in the header.
//
// # Randomness
//
// Every function that takes an io.Reader draws its randomness from it (nil
// means crypto/rand.Reader) in a documented order, so that tests can pin
// known answers with a deterministic reader; production callers pass nil or
// crypto/rand.Reader.
//
// Nothing in this package logs, and the types that hold private keys format
// themselves with the private parts redacted.
package x3dh
