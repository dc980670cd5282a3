// Package ratchet implements the Double Ratchet algorithm with header
// encryption (Signal, "The Double Ratchet Algorithm", rev. 1, 2016-11-20,
// sections 3.5 and 4: RatchetInitAliceHE, RatchetInitBobHE,
// RatchetEncryptHE, RatchetDecryptHE, DHRatchetHE, SkipMessageKeysHE) for
// Strata's doubleratchet secure layer. The key agreement (X3DH/PQXDH) that
// produces the shared secret SK and the associated data AD lives in the
// sibling package x3dh; this package only ratchets.
//
// # Profile
//
//   - GENERATE_DH / DH: X25519 (crypto/ecdh). An all-zero DH output is
//     rejected with ErrBadKey. Ratchet public keys are the raw 32 bytes.
//     Private keys are 32 bytes read from the caller's io.Reader.
//   - KDF_RK_HE(rk, dh): HKDF-SHA256(salt = rk, IKM = dh,
//     info = "Strata_DR_RootKDF"), 96 bytes = root key ‖ chain key ‖ next
//     header key.
//   - KDF_CK(ck): message key = HMAC-SHA256(ck, 0x01), next chain key =
//     HMAC-SHA256(ck, 0x02).
//   - ENCRYPT(mk, pt, ad): HKDF-SHA256(salt = 32 zero bytes, IKM = mk,
//     info = "Strata_DR_MessageKeys") → 32-byte key ‖ 12-byte nonce;
//     ChaCha20-Poly1305. Every message key is used once.
//   - Initial header keys: HKDF-SHA256(salt = 32 zero bytes, IKM = SK,
//     info = "Strata_DR_HeaderKeys") → shared_hka ‖ shared_nhkb. Alice:
//     HKs = hka, NHKr = nhkb; Bob: NHKs = nhkb, NHKr = hka.
//   - HEADER: 41 bytes = version 1 ‖ ratchet public key ‖ PN (uint32 BE) ‖
//     N (uint32 BE).
//   - HENCRYPT(hk, hdr): XChaCha20-Poly1305 with a random 24-byte nonce and
//     the session AD as associated data; the encrypted header is
//     nonce ‖ sealed header, 81 bytes.
//   - CONCAT(AD, enc_hdr) = uint16 BE len(AD) ‖ AD ‖ enc_hdr, the
//     associated data of the message AEAD. AD is at most 65535 bytes.
//
// # Limits
//
// See Limits and DefaultLimits: at most MaxSkip (1000) message keys are
// skipped in one chain per message (ErrTooFarAhead otherwise); at most
// MaxSkippedKeys (1000) skipped keys are stored per session, in at most
// MaxSkippedChains (5) chains (distinct header keys). When a limit is
// exceeded the oldest stored keys, and then the oldest chains, are deleted:
// headers are authenticated, so only the genuine peer can make a receiver
// store keys, and eviction can at worst make the peer's own delayed
// messages undecryptable. A stored key is also deleted once it is older than
// SkippedKeyTTL (30 days) or once MaxKeepMessages (3000) later messages have
// been decrypted in the session (a deterministic event count, spec §6.7).
// Expiry runs on every successful Decrypt and on Expire.
//
// Skipped message keys are indexed by header key first, then by message
// number, so a receiver tries at most one header decryption per distinct
// stored header key plus HKr and NHKr. A replay is reported as ErrDuplicate
// while its chain's header key is known (the current receiving chain, or an
// old chain with stored keys) and as ErrHeader otherwise.
//
// A zero or negative Limits field selects its default. Limits are not
// serialised; Unmarshal rejects a state holding more skipped keys or chains
// than the limits it is given allow.
//
// # Transactions
//
// Decrypt is transactional: on any error the State is exactly as before
// (its MarshalBinary output is byte-identical). Decrypt works on a copy of
// the fixed-size part of the state and stages new skipped keys; it writes
// them back only after the message AEAD has opened. Encrypt changes nothing
// when it fails.
//
// # Not done
//
//   - Deferred ratchet key generation (spec §6.5) is not implemented: the new
//     sending key pair is generated during the DH ratchet step in Decrypt.
//   - Bob cannot send before he has decrypted a message from Alice
//     (CanSend reports it); the spec defines no extra initial chain.
//   - Which session an encrypted header belongs to is the caller's problem
//     (trial decryption across a peer's sessions; ErrHeader says "not this
//     one").
//   - Key material is overwritten where this package holds it (Zero, used and
//     deleted keys, failed attempts), but Go cannot guarantee that copies made
//     by the runtime or by crypto/ecdh are wiped. MarshalBinary's output holds
//     every secret of the session: whoever stores it must protect it and erase
//     superseded copies. The doubleratchet layer seals each stored state under
//     its at-rest key when the user configured a passphrase (file mode 0600 is
//     the only protection otherwise), and after every commit that supersedes
//     a state it erases the old one from its files (SQLite secure_delete and a
//     truncating WAL checkpoint).
//
// A State is not safe for concurrent use. The package has no global mutable
// state and never logs.
package ratchet
