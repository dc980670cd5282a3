// Package wire implements the Whisper v6 (EIP-627) envelope and message
// codec and its cryptography, bit-compatible with go-ethereum v1.9.20's
// whisper/whisperv6 package, which is what deployed shh/6 nodes speak.
//
// It provides:
//
//   - the protocol constants (capability name/version, packet codes, sizes);
//   - topics and geth's topic-to-bloom mapping ([TopicToBloom]);
//   - the [Envelope] wire type: RLP encoding/decoding ([DecodeEnvelope] is
//     strict and never panics), [Envelope.Hash], [Envelope.PoW], nonce
//     search ([Envelope.Mine], [Envelope.Seal]) and the node-side admission
//     checks ([Envelope.Validate]) with typed errors;
//   - the plaintext payload format (flags | size field | payload | padding |
//     optional signature), signing with secp256k1 and signer recovery;
//   - symmetric (AES-256-GCM, nonce appended) and asymmetric (ECIES on
//     secp256k1 with go-ethereum's ECIES_AES128_SHA256 parameters)
//     encryption via [SentMessage.Wrap], [OpenSymmetric], [OpenAsymmetric];
//   - [SymKeyFromPassword], geth's password key derivation.
//
// # Where this package follows geth rather than the EIP text
//
//   - Integers (Expiry, TTL, Nonce) are canonical RLP integers, not
//     fixed-width byte strings.
//   - PoW = 2^lz / (len(rlp([Expiry,TTL,Topic,Data])) * (TTL + d)), where lz is
//     the number of leading zero bits of Keccak256(that RLP || BigEndian64(Nonce)):
//     the divisor is the RLP without the nonce, not the full envelope size.
//     A future-dated envelope is penalised with d = sent - now + 1.
//   - TopicToBloom assigns each bloom byte instead of OR-ing bits, so when
//     two of the three indices share a byte only the last bit survives.
//   - Signatures are R|S|V with V in {0,1} (not 27/28); V >= 4 is rejected,
//     as geth's recovery does.
//   - The password KDF is PBKDF2-HMAC-SHA256 with an empty salt and 65356
//     iterations (geth's value, not 65536).
//
// The payload parser is stricter than geth's: geth v1.9.20 panics on a
// plaintext whose size field claims more bytes than are present; this package
// returns [ErrBadPayload] instead. Otherwise it accepts exactly what geth
// accepts.
//
// # What it does not do
//
// It has no networking, peer handling, status/bloom/PoW-requirement packet
// codecs, envelope pool, filters, key store, mail server or rate limiting;
// those belong to the protocol plugin built on top of it. Envelopes carry no
// caches: Hash and PoW are recomputed on each call, so callers that need them
// repeatedly should keep the result.
package wire

import "time"

// Protocol identification and packet codes (geth whisperv6 doc.go).
const (
	ProtocolName         = "shh"     // devp2p capability name
	ProtocolVersion      = uint64(6) // protocol version number
	ProtocolVersionStr   = "6.0"     // the same, as a string
	NumberOfMessageCodes = 128       // capability length (codes 0..127)

	StatusCode         = 0   // status handshake
	MessagesCode       = 1   // list of envelopes
	PowRequirementCode = 2   // PoW requirement (float64 bits)
	BloomFilterExCode  = 3   // bloom filter exchange
	P2PRequestCode     = 126 // peer-to-peer request (mail server)
	P2PMessageCode     = 127 // peer-to-peer message, not forwarded
)

// Sizes and limits (geth whisperv6 doc.go).
const (
	SizeMask      = byte(3) // mask of the flags byte giving the size-field length
	signatureFlag = byte(4) // flags bit set when the message is signed
	// FreeFlags are the bits of the flags byte that EIP-627 and geth leave
	// unused: geth neither sets nor reads them, so a sender may use them
	// for its own purposes without changing what geth sees.
	FreeFlags = ^(SizeMask | signatureFlag)

	TopicLength     = 4  // bytes
	signatureLength = 65 // bytes: R(32) | S(32) | V(1)
	aesKeyLength    = 32 // bytes
	aesNonceLength  = 12 // bytes, GCM standard nonce
	KeyIDSize       = 32 // bytes, size of key identifiers in geth's API
	BloomFilterSize = 64 // bytes
	flagsLength     = 1  // bytes

	// EnvelopeHeaderLength is the fixed part of an envelope's size
	// (Expiry 4 + TTL 4 + Topic 4 + Nonce 8), as geth's size() counts it.
	EnvelopeHeaderLength = 20

	MaxMessageSize        = uint32(10 * 1024 * 1024) // hard cap geth allows to configure
	DefaultMaxMessageSize = uint32(1024 * 1024)      // default size limit
	DefaultMinimumPoW     = 0.2                      // default minimum PoW

	padSizeLimit = 256 // padding granularity

	DefaultTTL           = 50 // seconds
	DefaultSyncAllowance = 10 // seconds of clock tolerance

	// SignatureLength, AESKeyLength and AESNonceLength export the
	// corresponding sizes for users of this package.
	SignatureLength = signatureLength
	AESKeyLength    = aesKeyLength
	AESNonceLength  = aesNonceLength
	PadSizeLimit    = padSizeLimit
	FlagsLength     = flagsLength
	SignatureFlag   = signatureFlag

	// MaxFutureDrift is how far in the future an envelope's sent time
	// (Expiry - TTL) may be before it is rejected.
	MaxFutureDrift = DefaultSyncAllowance * time.Second
	// MaxPastDrift is how long after expiry an envelope is merely dropped
	// rather than treated as a protocol violation.
	MaxPastDrift = 2 * DefaultSyncAllowance * time.Second

	passwordKDFIterations = 65356 // sic: geth's value
)
