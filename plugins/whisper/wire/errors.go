package wire

import (
	"errors"
	"fmt"
)

// Envelope validation errors returned by [DecodeEnvelope] and
// [Envelope.Validate]. Use errors.Is to test for them.
var (
	// ErrMalformed: the bytes are not a canonical RLP envelope.
	ErrMalformed = errors.New("whisper: malformed envelope")
	// ErrExpired: the envelope has expired (geth drops it silently when it
	// expired at most MaxPastDrift ago).
	ErrExpired = errors.New("whisper: envelope expired")
	// ErrVeryOld: expired more than MaxPastDrift ago; geth treats this as a
	// peer error. errors.Is(ErrVeryOld, ErrExpired) is true.
	ErrVeryOld = fmt.Errorf("%w long ago", ErrExpired)
	// ErrFuture: sent time more than MaxFutureDrift in the future.
	ErrFuture = errors.New("whisper: envelope created in the future")
	// ErrTooLarge: 20+len(Data) exceeds the size limit.
	ErrTooLarge = errors.New("whisper: envelope too large")
	// ErrLowPoW: proof of work below the requirement.
	ErrLowPoW = errors.New("whisper: envelope PoW too low")
)

// Message errors returned by [NewSentMessage], [SentMessage.Wrap],
// [OpenSymmetric], [OpenAsymmetric] and [ParseMessage].
var (
	// ErrInvalidKey: a key is missing, of the wrong size, all zero or not
	// a valid secp256k1 key.
	ErrInvalidKey = errors.New("whisper: invalid key")
	// ErrNoKey: neither a symmetric nor an asymmetric key was given.
	ErrNoKey = errors.New("whisper: neither symmetric nor asymmetric key provided")
	// ErrDecrypt: decryption failed (wrong key, not addressed to us or
	// tampered ciphertext).
	ErrDecrypt = errors.New("whisper: decryption failed")
	// ErrBadPayload: the decrypted plaintext does not follow the payload
	// format.
	ErrBadPayload = errors.New("whisper: malformed message payload")
	// ErrBadSignature: the signature could not be verified/recovered.
	ErrBadSignature = errors.New("whisper: invalid message signature")
	// ErrPayloadTooLarge: payload too large for the 3-byte size field.
	ErrPayloadTooLarge = errors.New("whisper: payload too large")
	// ErrPoWTimeout: the PoW target was not reached in the allotted time.
	ErrPoWTimeout = errors.New("whisper: PoW target not reached in time")
	// ErrBadPoWTarget: the PoW target is NaN or infinite.
	ErrBadPoWTarget = errors.New("whisper: invalid PoW target")
)
