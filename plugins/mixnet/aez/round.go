package aez

import (
	"crypto/subtle"
	"encoding/binary"
)

// AEZ needs the bare AES round function (SubBytes, ShiftRows, MixColumns,
// AddRoundKey) keyed with AEZ's own round keys. crypto/aes exposes only the
// complete AES block cipher with its own key schedule, so single rounds with
// arbitrary round keys cannot be reached through it. On amd64 with AES-NI
// the rounds run as AESENC (round_amd64.s). This file is the portable
// fallback: table-free and constant time. SubBytes computes the S-box
// arithmetically (inversion in GF(2^8) as x^254, then the affine map) on
// eight bytes at a time packed in a uint64, with no secret-dependent branch
// or memory index. It is about two orders of magnitude slower than AESENC.

const (
	lsb64 = 0x0101010101010101
	low7  = 0x7f7f7f7f7f7f7f7f
)

// xtime8 multiplies each of the eight packed bytes by x in GF(2^8).
func xtime8(a uint64) uint64 {
	return ((a & low7) << 1) ^ (((a >> 7) & lsb64) * 0x1b)
}

// gmul8 multiplies the eight packed bytes of a and b pairwise in GF(2^8).
func gmul8(a, b uint64) uint64 {
	var r uint64
	for i := 0; i < 8; i++ {
		mask := ((b >> uint(i)) & lsb64) * 0xff
		r ^= a & mask
		a = xtime8(a)
	}
	return r
}

// rotl8 rotates each packed byte left by k bits (0 < k < 8).
func rotl8(x uint64, k uint) uint64 {
	hi := uint64(byte(0xff<<k)) * lsb64
	lo := uint64(byte(0xff>>(8-k))) * lsb64
	return ((x << k) & hi) | ((x >> (8 - k)) & lo)
}

// sbox8 applies the AES S-box to each of the eight packed bytes.
func sbox8(x uint64) uint64 {
	// x^254 = x^-1 (and 0 -> 0) by the chain 2,3,6,7,14,15,30,31,62,63,126,127,254.
	x2 := gmul8(x, x)
	x3 := gmul8(x2, x)
	x6 := gmul8(x3, x3)
	x7 := gmul8(x6, x)
	x14 := gmul8(x7, x7)
	x15 := gmul8(x14, x)
	x30 := gmul8(x15, x15)
	x31 := gmul8(x30, x)
	x62 := gmul8(x31, x31)
	x63 := gmul8(x62, x)
	x126 := gmul8(x63, x63)
	x127 := gmul8(x126, x)
	b := gmul8(x127, x127)
	return b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63*lsb64
}

// subBytes applies the S-box to all sixteen bytes of s.
func subBytes(s *[16]byte) {
	lo := sbox8(binary.LittleEndian.Uint64(s[0:8]))
	hi := sbox8(binary.LittleEndian.Uint64(s[8:16]))
	binary.LittleEndian.PutUint64(s[0:8], lo)
	binary.LittleEndian.PutUint64(s[8:16], hi)
}

// shiftRows rotates row r of the column-major state left by r positions.
func shiftRows(s *[16]byte) {
	var t [16]byte
	for c := 0; c < 4; c++ {
		for r := 0; r < 4; r++ {
			t[r+4*c] = s[r+4*((c+r)%4)]
		}
	}
	*s = t
}

// xtime multiplies one byte by x in GF(2^8) without branching.
func xtime(b byte) byte {
	return (b << 1) ^ ((b >> 7) * 0x1b)
}

// mixColumns applies AES MixColumns to each column of s.
func mixColumns(s *[16]byte) {
	for c := 0; c < 16; c += 4 {
		a0, a1, a2, a3 := s[c], s[c+1], s[c+2], s[c+3]
		t := a0 ^ a1 ^ a2 ^ a3
		s[c] = a0 ^ t ^ xtime(a0^a1)
		s[c+1] = a1 ^ t ^ xtime(a1^a2)
		s[c+2] = a2 ^ t ^ xtime(a2^a3)
		s[c+3] = a3 ^ t ^ xtime(a3^a0)
	}
}

// aesRound is one full AES encryption round (the AESENC instruction):
// SubBytes, ShiftRows, MixColumns, then XOR with the round key rk.
func aesRound(s *[16]byte, rk *[16]byte) {
	subBytes(s)
	shiftRows(s)
	mixColumns(s)
	xorInto(s[:], rk[:])
}

// xorInto sets dst[i] ^= src[i] for i < len(src).
func xorInto(dst, src []byte) {
	if len(src) == 16 && len(dst) >= 16 { // the common whole-block case
		le := binary.LittleEndian
		le.PutUint64(dst[0:8], le.Uint64(dst[0:8])^le.Uint64(src[0:8]))
		le.PutUint64(dst[8:16], le.Uint64(dst[8:16])^le.Uint64(src[8:16]))
		return
	}
	subtle.XORBytes(dst[:len(src)], dst[:len(src)], src)
}

// encRoundsGeneric applies len(keys) full AES rounds to x in portable Go.
func encRoundsGeneric(x *block, keys []block) {
	for n := range keys {
		aesRound(x, &keys[n])
	}
}

// encRounds8Generic applies len(keys) full AES rounds to the first n
// blocks of x in portable Go.
func encRounds8Generic(x *[8]block, n int, keys []block) {
	for p := range x[:n] {
		encRoundsGeneric(&x[p], keys)
	}
}
