// Package sphinx implements Katzenpost's X25519 ("NIKE") Sphinx packet
// format (Danezis and Goldberg, 2009, as parameterised by
// katzenpost/katzenpost core/sphinx at e042af3): the geometry, packet and
// SURB creation, the per-hop unwrap and the routing commands, byte for byte
// compatible with Katzenpost's code (its test vectors pass; see
// testdata/README.md). The digest it follows is shared/specs/mixnet.md,
// sections 2 and 3.
//
// # Parameterisation
//
//   - Group: X25519 (cloudflare/circl dh/x25519), 32-byte points, scalars
//     clamped at every use.
//   - KDF: HKDF-SHA256 Expand only, the raw X25519 output as PRK, info
//     "katzenpost-kdf-v0-hkdf-sha256", 160 bytes = header MAC key 32 ‖
//     header AES key 32 ‖ header IV 16 ‖ payload key 48 ‖ blinding seed 32.
//   - Header MAC: HMAC-SHA256 over AD ‖ alpha ‖ beta, 32 bytes, compared in
//     constant time.
//   - Header stream cipher: AES-256-CTR, the 16-byte IV as the whole
//     initial counter block.
//   - Blinding: the first 32 bytes of ChaCha20 (key = blinding seed,
//     all-zero nonce), used as an X25519 scalar: alpha' = X25519(b, alpha).
//   - Payload SPRP: AEZ v5 (package aez) with tau 0 and no associated
//     data, the header IV as nonce.
//   - Replay tag: SHA-512/256(alpha).
//
// Where Katzenpost's prose specification and its code disagree (KDF info
// capitalisation, 12- versus 16-byte IV, replay tag over alpha versus the
// shared secret, 32- versus 64-byte recipient ids, the order of the SURB
// decryption keys) this package follows the code, which is what the
// vectors encode.
//
// # Use
//
// A Geometry (NewGeometry, DefaultGeometry) fixes every size; all nodes of
// a network must share it. Clients call NewPacket for forward packets and
// NewSURB for reply blocks; whoever receives a SURB calls NewPacketFromSURB;
// each hop calls Unwrap with its private key for the packet's epoch; the
// SURB creator calls DecryptSURBPayload on what the terminal hop delivered.
// With a geometry WithSURB, EncodeForwardPayload and DecodeForwardPayload
// frame the forward payload (flags, SURB slot, user payload).
//
// # Bad input
//
// Every function that takes bytes from the network (Unwrap,
// ParseCommands, NewPacketFromSURB, DecryptSURBPayload,
// DecodeForwardPayload, ParsePublicKey) returns an error wrapping one of
// the sentinel errors in errors.go and never panics. Alpha is checked
// before any scalar multiplication: non-canonical encodings and the
// small-order points are rejected, and an all-zero shared secret is
// rejected too. A failed Unwrap leaves the packet unchanged.
//
// # Not done
//
//   - KEM Sphinx (Katzenpost's post-quantum variant, with a KEM ciphertext
//     in place of alpha and no blinding) and CTIDH are not implemented.
//   - The replay cache, the PKI document, key rotation, path selection and
//     the delays themselves belong to other packages (plugins/mixnet/replay,
//     plugins/mixnet/pki and the Loopix plugin).
//   - Key material is overwritten where this package holds it (hop keys,
//     shared secrets, ephemeral scalars, SURB keys after use), but the
//     copies inside crypto/hmac, crypto/hkdf, crypto/aes, x/crypto/chacha20
//     and circl cannot be wiped from Go, and package aez does not wipe its
//     key schedule.
//
// The package has no global mutable state; a Geometry and a PrivateKey
// may be shared between goroutines (Unwrap only reads them).
package sphinx
