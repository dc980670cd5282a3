// Package aez implements AEZ v5 (Hoang, Krovetz and Rogaway, "AEZ v5:
// Authenticated Encryption by Enciphering", 2017) as Katzenpost uses it:
// Extract (BLAKE2b-384 key derivation), the AES4/AES10 tweakable blockcipher
// E, AEZ-hash, AEZ-prf, AEZ-core (inputs of 32 bytes or more), AEZ-tiny
// (shorter inputs), and the Encrypt/Decrypt authenticated encryption with an
// arbitrary tag length tau in bytes. With tau = 0 and no associated data it
// is the length-preserving wide-block cipher Katzenpost's Sphinx applies to
// the packet payload.
//
// Katzenpost's payload SPRP is Encrypt(key48, iv16, nil, 0, payload) and
// Decrypt with the same arguments. Keys, nonces and associated-data strings
// may have any length; tau is any non-negative byte count.
//
// It does not implement: the earlier AEZ versions (v1-v4), which differ;
// an incremental or streaming interface (whole messages only); a
// crypto/cipher.AEAD wrapper; the Sphinx packet format itself; or key
// reuse across calls (each call re-derives the key schedule, which costs a
// BLAKE2b only for keys that are not 48 bytes). Buffers holding key
// material are not wiped.
//
// AEZ needs single AES rounds with its own round keys, which crypto/aes
// does not expose (it offers only whole AES with the standard key schedule).
// On amd64 with AES-NI the rounds therefore run as AESENC instructions from
// a few lines of assembly (round_amd64.s); elsewhere, or with the purego
// build tag, a table-free constant-time Go round is used (round.go), which
// is far slower. Everything else has no branch or memory index that depends
// on secret data; Decrypt checks the expanded zero tag in constant time.
package aez

import (
	"crypto/subtle"
	"errors"

	"golang.org/x/crypto/blake2b"
)

// KeySize is the size of an extracted AEZ key (I ‖ J ‖ L). Keys of this
// length are used as they are; keys of any other length go through Extract.
const KeySize = 48

const blockSize = 16

// ErrOpen is returned by Decrypt when the ciphertext does not authenticate.
var ErrOpen = errors.New("aez: message authentication failed")

type block = [blockSize]byte

// Extract returns the 48-byte AEZ key for a user key of any length: the key
// itself when it is already 48 bytes, otherwise BLAKE2b with a 48-byte
// digest of the key, as AEZ v5 specifies.
func Extract(key []byte) [KeySize]byte {
	var out [KeySize]byte
	if len(key) == KeySize {
		copy(out[:], key)
		return out
	}
	h, err := blake2b.New(KeySize, nil)
	if err != nil {
		panic("aez: blake2b: " + err.Error()) // unreachable: size and key are fixed and valid
	}
	h.Write(key)
	copy(out[:], h.Sum(nil))
	return out
}

// state is an extracted key with the values E derives from it.
type state struct {
	i, j, l block
	lmul    [8]block // 0·L .. 7·L

	aes4Keys  [4]block  // J, I, L, 0
	aes10Keys [10]block // I, J, L, I, J, L, I, J, L, I
}

func newState(extracted *[KeySize]byte) *state {
	s := new(state)
	copy(s.i[:], extracted[0:16])
	copy(s.j[:], extracted[16:32])
	copy(s.l[:], extracted[32:48])
	for n := 1; n < 8; n++ {
		s.lmul[n] = mulBlock(uint(n), &s.l)
	}
	s.aes4Keys = [4]block{s.j, s.i, s.l, {}}
	for r := range s.aes10Keys {
		s.aes10Keys[r] = [3]block{s.i, s.j, s.l}[r%3]
	}
	return s
}

// double multiplies b by x in GF(2^128) (AEZ's "2·b"), in constant time.
func double(b *block) {
	carry := b[0] >> 7
	for n := 0; n < blockSize-1; n++ {
		b[n] = b[n]<<1 | b[n+1]>>7
	}
	b[blockSize-1] = b[blockSize-1]<<1 ^ carry*0x87
}

// mulBlock returns n·b in GF(2^128). n is public (a tweak index).
func mulBlock(n uint, b *block) block {
	var r block
	t := *b
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			xorInto(r[:], t[:])
		}
		double(&t)
	}
	return r
}

// aes4 is AES4 with round keys (0, J, I, L, 0): four full rounds.
func (s *state) aes4(x *block) {
	encRounds(x, s.aes4Keys[:])
}

// aes10 is AES10 with round keys (0, I, J, L, I, J, L, I, J, L, I): ten full
// rounds, each including MixColumns.
func (s *state) aes10(x *block) {
	encRounds(x, s.aes10Keys[:])
}

// tweak holds the offset of E^{j,i} for j >= 0 and lets loops over i step
// it without recomputing 2^ceil(i/8)·I from the start.
type tweak struct {
	s    *state
	jj   block // j·J
	ipow block // 2^ceil(i/8)·I
	i    uint
}

func (s *state) tweak(j int, i uint) *tweak {
	t := &tweak{s: s, jj: mulBlock(uint(j), &s.j), ipow: s.i, i: i}
	for n := (i + 7) / 8; n > 0; n-- {
		double(&t.ipow)
	}
	return t
}

// next advances the tweak from i to i+1.
func (t *tweak) next() {
	t.i++
	if t.i%8 == 1 {
		double(&t.ipow)
	}
}

// enc returns E^{j,i}(x) = AES4(x ⊕ j·J ⊕ 2^ceil(i/8)·I ⊕ (i mod 8)·L).
func (t *tweak) enc(x *block) block {
	y := *x
	xorInto(y[:], t.jj[:])
	xorInto(y[:], t.ipow[:])
	xorInto(y[:], t.s.lmul[t.i%8][:])
	t.s.aes4(&y)
	return y
}

// e is E^{j,i}(x) for a single call. For j = -1 it is AES10(x ⊕ i·L).
func (s *state) e(j int, i uint, x *block) block {
	if j >= 0 {
		return s.tweak(j, i).enc(x)
	}
	y := *x
	d := mulBlock(i, &s.l)
	xorInto(y[:], d[:])
	s.aes10(&y)
	return y
}

// hashString folds one string into sum with tweak j: full blocks under
// E^{j,1}, E^{j,2}, ...; a final partial (or the only, empty) block padded
// with 10* under E^{j,0}.
func (s *state) hashString(sum *block, j int, x []byte) {
	t := s.tweak(j, 1)
	for len(x) >= blockSize {
		var b block
		copy(b[:], x)
		y := t.enc(&b)
		xorInto(sum[:], y[:])
		t.next()
		x = x[blockSize:]
	}
	if len(x) > 0 || t.i == 1 {
		var b block
		copy(b[:], x)
		b[len(x)] = 0x80
		y := s.e(j, 0, &b)
		xorInto(sum[:], y[:])
	}
}

// hash is AEZ-hash over the tweak (tauBits, nonce, ad...): tauBits as a
// 128-bit big-endian block under E^{3,1}, the nonce with j = 4 and the i-th
// AD string with j = 5+i.
func (s *state) hash(tauBits uint64, nonce []byte, ad [][]byte) block {
	var tb block
	for n := 0; n < 8; n++ {
		tb[15-n] = byte(tauBits >> (8 * uint(n)))
	}
	sum := s.e(3, 1, &tb)
	s.hashString(&sum, 4, nonce)
	for k, a := range ad {
		s.hashString(&sum, 5+k, a)
	}
	return sum
}

// prf is AEZ-prf: the first len(out) bytes of
// E^{-1,3}(Δ ⊕ [0]) ‖ E^{-1,3}(Δ ⊕ [1]) ‖ ..., counters as 128-bit big-endian.
func (s *state) prf(delta *block, out []byte) {
	var ctr block
	for off := 0; off < len(out); off += blockSize {
		x := *delta
		xorInto(x[:], ctr[:])
		y := s.e(-1, 3, &x)
		copy(out[off:], y[:])
		for n := blockSize - 1; n >= 0; n-- {
			ctr[n]++
			if ctr[n] != 0 {
				break
			}
		}
	}
}

// encipher applies AEZ's enciphering (d = 0) or deciphering (d = 1) to buf in
// place: AEZ-tiny below 32 bytes, AEZ-core from 32 bytes on.
func (s *state) encipher(delta *block, buf []byte, d uint) {
	switch {
	case len(buf) == 0:
	case len(buf) < 32:
		s.tiny(delta, buf, d)
	default:
		s.core(delta, buf, d)
	}
}

// Encrypt returns the AEZ v5 encryption of plaintext under key (any length;
// see Extract), nonce and the associated-data strings ad, with tau bytes of
// ciphertext expansion. The result is len(plaintext)+tau bytes. With tau = 0
// it is a length-preserving tweakable wide-block cipher. Encrypt panics if
// tau is negative.
func Encrypt(key, nonce []byte, ad [][]byte, tau int, plaintext []byte) []byte {
	if tau < 0 {
		panic("aez: negative tau")
	}
	k := Extract(key)
	s := newState(&k)
	delta := s.hash(uint64(tau)*8, nonce, ad)
	out := make([]byte, len(plaintext)+tau)
	if len(plaintext) == 0 {
		s.prf(&delta, out)
		return out
	}
	copy(out, plaintext)
	s.encipher(&delta, out, 0)
	return out
}

// Decrypt reverses Encrypt. It returns ErrOpen if the ciphertext is shorter
// than tau, tau is negative, or the tau bytes of expansion do not come out as
// the value Encrypt put there (checked in constant time). With tau = 0 every
// ciphertext decrypts.
func Decrypt(key, nonce []byte, ad [][]byte, tau int, ciphertext []byte) ([]byte, error) {
	if tau < 0 || len(ciphertext) < tau {
		return nil, ErrOpen
	}
	k := Extract(key)
	s := newState(&k)
	delta := s.hash(uint64(tau)*8, nonce, ad)
	if len(ciphertext) == tau {
		want := make([]byte, tau)
		s.prf(&delta, want)
		if subtle.ConstantTimeCompare(want, ciphertext) != 1 {
			return nil, ErrOpen
		}
		return []byte{}, nil
	}
	out := make([]byte, len(ciphertext))
	copy(out, ciphertext)
	s.encipher(&delta, out, 1)
	var acc byte
	for _, b := range out[len(out)-tau:] {
		acc |= b
	}
	if subtle.ConstantTimeByteEq(acc, 0) != 1 {
		return nil, ErrOpen
	}
	return out[:len(out)-tau], nil
}
