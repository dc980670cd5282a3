package senderkey

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
)

// Stored-state encodings, version 1 (integers big-endian):
//
//	sender    0x01 ‖ key id u32 ‖ iteration u32 ‖ chain key 32 ‖ Ed25519 seed 32
//	receiver  0x02 ‖ key id u32 ‖ iteration u32 ‖ chain key 32 ‖ signing key 32
//	          ‖ count u32 ‖ count × (iteration u32 ‖ message key 32)
const (
	tagSender   = 0x01
	tagReceiver = 0x02
	senderLen   = 1 + 4 + 4 + KeySize + ed25519.SeedSize
	skippedLen  = 4 + KeySize
	receiverMin = 1 + 4 + 4 + KeySize + ed25519.PublicKeySize + 4
)

// MarshalBinary encodes the sender's state, secrets included; the caller
// protects and wipes it.
func (s *Sender) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, senderLen)
	b = append(b, tagSender)
	b = binary.BigEndian.AppendUint32(b, s.keyID)
	b = binary.BigEndian.AppendUint32(b, s.iteration)
	b = append(b, s.chainKey[:]...)
	return append(b, s.signing.Seed()...), nil
}

// UnmarshalSender decodes a sender's state.
func UnmarshalSender(b []byte) (*Sender, error) {
	if len(b) != senderLen || b[0] != tagSender {
		return nil, fmt.Errorf("%w: sender state of %d bytes", ErrMalformed, len(b))
	}
	s := &Sender{
		keyID:     binary.BigEndian.Uint32(b[1:]),
		iteration: binary.BigEndian.Uint32(b[5:]),
	}
	copy(s.chainKey[:], b[9:9+KeySize])
	s.signing = ed25519.NewKeyFromSeed(b[9+KeySize:])
	return s, nil
}

// MarshalBinary encodes the receiver's state, skipped keys in iteration
// order; the caller protects and wipes it.
func (r *Receiver) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, receiverMin+len(r.skipped)*skippedLen)
	b = append(b, tagReceiver)
	b = binary.BigEndian.AppendUint32(b, r.keyID)
	b = binary.BigEndian.AppendUint32(b, r.iteration)
	b = append(b, r.chainKey[:]...)
	b = append(b, r.verify...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.skipped)))
	its := make([]uint32, 0, len(r.skipped))
	for it := range r.skipped {
		its = append(its, it)
	}
	slices.Sort(its)
	for _, it := range its {
		k := r.skipped[it]
		b = binary.BigEndian.AppendUint32(b, it)
		b = append(b, k[:]...)
	}
	return b, nil
}

// UnmarshalReceiver decodes a receiver's state, with limits for what it
// takes from now on.
func UnmarshalReceiver(b []byte, limits Limits) (*Receiver, error) {
	if len(b) < receiverMin || b[0] != tagReceiver {
		return nil, fmt.Errorf("%w: receiver state of %d bytes", ErrMalformed, len(b))
	}
	r := &Receiver{
		keyID:     binary.BigEndian.Uint32(b[1:]),
		iteration: binary.BigEndian.Uint32(b[5:]),
		verify:    slices.Clone(b[9+KeySize : 9+KeySize+ed25519.PublicKeySize]),
		skipped:   map[uint32][KeySize]byte{},
		limits:    limits,
	}
	copy(r.chainKey[:], b[9:9+KeySize])
	rest := b[receiverMin:]
	n := binary.BigEndian.Uint32(b[receiverMin-4:])
	if uint64(len(rest)) != uint64(n)*skippedLen {
		return nil, fmt.Errorf("%w: receiver state says %d skipped keys in %d bytes", ErrMalformed, n, len(rest))
	}
	var prev uint32
	for i := 0; len(rest) > 0; rest, i = rest[skippedLen:], i+1 {
		it := binary.BigEndian.Uint32(rest)
		if i > 0 && it <= prev {
			return nil, fmt.Errorf("%w: skipped keys out of order", ErrMalformed)
		}
		if it >= r.iteration {
			return nil, fmt.Errorf("%w: skipped key %d at or past the chain's position %d", ErrMalformed, it, r.iteration)
		}
		prev = it
		var k [KeySize]byte
		copy(k[:], rest[4:skippedLen])
		r.skipped[it] = k
	}
	return r, nil
}
