// Package safetynumber computes the safety number of two identities: 60
// decimal digits that both sides compute from their two identity keys and
// compare out of band (read aloud, or side by side), as Signal users compare
// theirs. The number is symmetric (either side gets the same digits) and
// stable (it changes only with a key).
//
// The derivation is Signal's numeric fingerprint (libsignal
// NumericFingerprintGenerator, displayable form), bit for bit, proven by
// Signal's published vector in testdata/: for each identity, 5200 rounds
// of SHA-512, starting from SHA-512(0x0000 || key || id || key) and then
// hash = SHA-512(hash || key); the first 30 bytes of the result, taken as
// six 40-bit big-endian numbers, each modulo 100000, give 30 digits; the
// two 30-digit strings, the smaller first, make the safety number. Strata
// identities are Ed25519 keys and have no other stable identifier, so
// For takes the 32-byte identity key as both the key and the identifier.
package safetynumber

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// Iterations is the number of SHA-512 rounds per identity (Signal's).
const Iterations = 5200

// fingerprintVersion is the version prefix of the hash input (Signal's
// FINGERPRINT_VERSION).
const fingerprintVersion = 0

// Digits is the length of a safety number.
const Digits = 60

// Numeric returns the displayable numeric fingerprint of two identities,
// each a key and a stable identifier, as Signal computes it: 60 digits,
// the same whichever identity is local.
func Numeric(iterations int, localKey, localID, remoteKey, remoteID []byte) string {
	local := identityDigits(iterations, localKey, localID)
	remote := identityDigits(iterations, remoteKey, remoteID)
	if local <= remote {
		return local + remote
	}
	return remote + local
}

// identityDigits is one identity's 30 digits.
func identityDigits(iterations int, key, id []byte) string {
	h := sha512.New()
	hash := make([]byte, 0, 2+len(key)+len(id))
	hash = binary.BigEndian.AppendUint16(hash, fingerprintVersion)
	hash = append(hash, key...)
	hash = append(hash, id...)
	for range iterations {
		h.Reset()
		h.Write(hash)
		h.Write(key)
		hash = h.Sum(hash[:0])
	}
	var b strings.Builder
	for off := 0; off < 30; off += 5 {
		var chunk uint64
		for _, c := range hash[off : off+5] {
			chunk = chunk<<8 | uint64(c)
		}
		fmt.Fprintf(&b, "%05d", chunk%100000)
	}
	return b.String()
}

// For returns the safety number of two Strata identities: Numeric with
// each Ed25519 identity key as its key and its identifier.
func For(a, b ed25519.PublicKey) string {
	return Numeric(Iterations, a, a, b, b)
}

// Format shows a safety number in groups of five digits, four groups a
// line, as Signal shows it.
func Format(number string) string {
	var b strings.Builder
	for i := 0; i < len(number); i += 5 {
		switch {
		case i == 0:
		case i%20 == 0:
			b.WriteByte('\n')
		default:
			b.WriteByte(' ')
		}
		b.WriteString(number[i:min(i+5, len(number))])
	}
	return b.String()
}
